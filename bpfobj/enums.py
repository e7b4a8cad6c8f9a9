"""Enum bases whose subclasses are built in one pass: bpfobj's tables, cheap to define.

``class Cmd(enums.IntEnum)`` is an ordinary `enum.IntEnum` (the same members, values,
reprs, lookups, pickling, ``isinstance(Cmd.MAP_CREATE, enum.IntEnum)``), only built faster.
A class statement on the standard bases routes every member through Python-level hooks
(``_EnumDict.__setitem__``, ``_proto_member.__set_name__``): about 13 us a member in 3.11,
and bpfobj defines some 300 members that every tool builds at start-up. Here the class body
is collected as a plain dict and handed to ``enum._simple_enum``, the standard library's own
one-pass builder (it builds http.HTTPStatus and re.RegexFlag that way), which takes half
the time. Where ``enum._simple_enum`` is missing, the standard path is used.

``_simple_enum`` skips some checks of the standard path (a name defined twice in the body
silently wins, for one); tests/test_enums.py compares every table with its standard build.
"""

from __future__ import annotations

import enum
import types
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
            table = _simple_enum(base)(type(cls, (), classdict))
            _store_members(table)
            return table
        return super().__new__(metacls, cls, bases, classdict, **kwds)


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
