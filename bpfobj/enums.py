"""Enum bases whose subclasses are built in one pass: bpfobj's tables, cheap to define.

``class Cmd(enums.IntEnum)`` is an ordinary `enum.IntEnum` (the same members, values,
reprs, lookups, pickling, ``isinstance(Cmd.MAP_CREATE, enum.IntEnum)``), only built faster.
A class statement on the standard bases routes every member through Python-level hooks
(``_EnumDict.__setitem__``, ``_proto_member.__set_name__``): about 13 us a member in 3.11,
and bpfobj defines some 300 members that every tool builds at start-up. Here the class body
is collected as a plain dict and built in one pass: on CPython 3.11 directly (`_direct`,
about 2 us a member), else by ``enum._simple_enum``, the standard library's own one-pass
builder (it builds http.HTTPStatus and re.RegexFlag that way; about half the standard
cost). Where ``enum._simple_enum`` is missing, the standard path is used.

``_simple_enum`` skips some checks of the standard path (a name defined twice in the body
silently wins, for one); tests/test_enums.py compares every table with its standard build.
"""

from __future__ import annotations

import enum
import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Enum", "IntEnum", "IntFlag", "StrEnum", "TableType"]

_simple_enum: Any = getattr(enum, "_simple_enum", None)


class TableType(enum.EnumType):
    """The metaclass of this module's bases: their subclasses are built by _simple_enum."""

    @classmethod
    def __prepare__(  # type: ignore[override]
        metacls, cls: str, bases: tuple[type, ...], **kwds: Any
    ) -> Any:
        if _simple_enum is not None and not kwds and any(isinstance(b, TableType) for b in bases):
            return {}  # a plain namespace: see __new__
        return super().__prepare__(cls, bases, **kwds)

    def __new__(metacls, cls: str, bases: tuple[type, ...], classdict: Any, **kwds: Any) -> Any:
        if type(classdict) is dict and not kwds:
            (base,) = bases  # a table derives from one base (its members' type)
            table = _direct(cls, base, classdict)
            if table is None:
                table = _simple_enum(base)(type(cls, (), classdict))
                _store_members(table)
            return table
        return super().__new__(metacls, cls, bases, classdict, **kwds)


# CPython 3.11's enum internals, which `_direct` fills in as enum._simple_enum does.
_DIRECT = sys.version_info[:2] == (3, 11)
_NOT_SIMPLE = ("__new__", "__init__", "_generate_next_value_", "_missing_", "_ignore_")


def _direct(cls: str, base: Any, classdict: dict[str, Any]) -> Any:
    """The table built directly, or None where it needs `_simple_enum`'s general path.

    What `_simple_enum` does for a plain Enum/IntEnum/StrEnum table on 3.11 (one class, then
    each member created and registered), less its per-member generality: an intermediate
    class, a property per member that `_store_members` then replaces, ``auto()``, tuple
    values and custom ``__new__``/``__init__``, which send a table to the general path.
    About 6x faster; tests/test_enums.py compares every table with its standard build.
    """
    if not _DIRECT or issubclass(base, enum.Flag) or any(k in classdict for k in _NOT_SIMPLE):
        return None
    body: dict[str, Any] = {}
    members: list[tuple[str, Any]] = []
    private = f"_{cls}__"
    reserved = _base_descriptors(base)
    for name, value in classdict.items():
        if name[0] == "_" or name.startswith(private) or (
                type(value) not in (int, str) and _is_descriptor(value)):
            body[name] = value
        elif name in reserved or isinstance(value, (enum.auto, tuple)):
            return None
        else:
            members.append((name, value))
    member_type = base._member_type_
    new_member: Any = object.__new__ if member_type is object else member_type.__new__
    member_names: list[str] = []
    member_map: dict[str, Any] = {}
    value2member: dict[Any, Any] = {}
    body.update(
        _new_member_=new_member, _use_args_=base._use_args_,
        _generate_next_value_=base._generate_next_value_, _member_names_=member_names,
        _member_map_=member_map, _value2member_map_=value2member, _unhashable_values_=[],
        _member_type_=member_type, _value_repr_=base._value_repr_,
    )
    if body.get("__doc__") is None:
        body["__doc__"] = "An enumeration."
    table: Any = type(cls, (base,), body, boundary=None, _simple=True)
    for meth in ("__repr__", "__str__", "__format__", "__reduce_ex__"):
        if meth not in body:  # as _simple_enum: the enum's method, not the mixin's
            found = getattr(table, meth)
            if found in (getattr(member_type, meth), getattr(object, meth)):
                setattr(table, meth, getattr(base, meth))
    use_args = table._use_args_
    for name, value in members:
        member = value2member.get(value)
        if member is None:  # a new member (else an alias of an earlier one)
            member = new_member(table, value) if use_args else new_member(table)
            member._value_ = value
            member._name_ = name
            member.__objclass__ = table
            member._sort_order_ = len(member_names)
            value2member[value] = member
            member_names.append(name)
        member_map[name] = member
        type.__setattr__(table, name, member)  # (EnumType.__setattr__ refuses members)
    table.__new__ = enum.Enum.__new__
    return table


# The standard path's own test (3.11-3.13 enum.py; `_direct` runs on 3.11 only).
_is_descriptor: Any = getattr(enum, "_is_descriptor", None)


_DESCRIPTORS: dict[type, frozenset[str]] = {}


def _base_descriptors(base: type) -> frozenset[str]:
    """The names `base` and its bases define as descriptors (``name``, ``value``...): for
    a member of such a name the standard path keeps the descriptor and reaches the member
    through a property."""
    names = _DESCRIPTORS.get(base)
    if names is None:
        names = _DESCRIPTORS[base] = frozenset(
            n for b in base.__mro__ for n, v in b.__dict__.items() if _is_descriptor(v))
    return names


def _store_members(table: type[enum.Enum]) -> None:
    """Store each member itself as the class attribute of its name, as a class statement
    does: _simple_enum (3.11) stores an `enum.property` that looks the member up, which
    makes ``BtfKind.STRUCT`` 4x slower to read (~450 ns). Like the standard path
    (`enum._proto_member.__set_name__`), a name a base defines as a descriptor keeps the
    property."""
    mro = table.__mro__[1:]
    for name, member in table._member_map_.items():
        if table.__dict__.get(name) is member:
            continue  # already stored (newer Pythons)
        for base in mro:
            descriptor = base.__dict__.get(name)
            if descriptor is not None and (
                    isinstance(descriptor, types.DynamicClassAttribute)
                    or all(hasattr(descriptor, a) for a in ("fget", "fset", "fdel"))):
                break
        else:
            type.__setattr__(table, name, member)  # (EnumType.__setattr__ refuses members)


class Enum(enum.Enum, metaclass=TableType):
    """`enum.Enum`, built fast."""


class IntEnum(enum.IntEnum, metaclass=TableType):
    """`enum.IntEnum`, built fast."""


class IntFlag(enum.IntFlag, metaclass=TableType):
    """`enum.IntFlag`, built fast."""


class StrEnum(enum.StrEnum, metaclass=TableType):
    """`enum.StrEnum`, built fast."""
