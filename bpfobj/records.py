"""Record classes: the slotted data classes of bpfobj's data model.

``@frozen`` (immutable, hashable) and ``@define`` (mutable) turn a class with annotated
fields into a slotted record with ``__init__``, ``__repr__``, ``__eq__`` (and ``__hash__``
when frozen, ordering with ``order=True``); `field` sets a default, a factory, or leaves a
field out of repr/eq/order; `evolve`, `fields`, `asdict` and `astuple` work on instances.
The semantics are those of the attrs APIs of the same names (inherited fields first, a
redefined field moves to the subclass's position, mandatory fields may not follow defaulted
ones unless ``kw_only``).

Why not attrs itself: attrs generates and compiles each class's methods when the class
statement runs (about 0.6 ms per class, and importing attrs costs about 20 ms). bpfobj has
about 70 records, so a fresh ``bpfobj prepare`` or a tool's start-up spent some 60 ms
before doing any work. Here a class costs a few microseconds to define; its first instances
go through a generic ``__init__``, and only a class built many times gets a compiled one.
The other methods are shared, driven by an `operator.attrgetter` over the fields.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, TypeVar, dataclass_transform, overload

    _C = TypeVar("_C", bound=type)
    _T = TypeVar("_T")

__all__ = [
    "Field",
    "FrozenInstanceError",
    "asdict",
    "astuple",
    "define",
    "evolve",
    "field",
    "fields",
    "frozen",
]


class _Nothing:
    """The absence of a default (distinct from None)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOTHING"


NOTHING: Any = _Nothing()


class FrozenInstanceError(AttributeError):
    """An attempt to change a field of a frozen record."""


class Field:
    """One field of a record, as `fields` returns it."""

    __slots__ = ("default", "eq", "factory", "name", "order", "repr")

    def __init__(self, name: str, default: Any = NOTHING, factory: Callable[[], Any] | None = None,
                 repr: bool = True, eq: bool = True, order: bool = True) -> None:
        self.name = name
        self.default = default
        self.factory = factory
        self.repr = repr
        self.eq = eq
        self.order = order

    @property
    def has_default(self) -> bool:
        return self.default is not NOTHING or self.factory is not None

    def named(self, name: str) -> Field:
        return Field(name, self.default, self.factory, self.repr, self.eq, self.order)

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(*, default: Any = NOTHING, factory: Callable[[], Any] | None = None,
          repr: bool = True, eq: bool = True, order: bool = True) -> Any:
    """A field's options, as the class-level value of an annotated name."""
    if default is not NOTHING and factory is not None:
        raise TypeError("field(): give a default or a factory, not both")
    return Field("", default, factory, repr, eq, order)


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))


def _collect(cls: type, kw_only: bool) -> tuple[Field, ...]:
    own: list[Field] = []
    own_names: set[str] = set()
    namespace = cls.__dict__
    # Own annotations only (not inherited); inspect.get_annotations would import inspect.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if _is_classvar(annotation):
            continue
        value = namespace.get(name, NOTHING)
        own.append(value.named(name) if isinstance(value, Field) else Field(name, value))
        own_names.add(name)
    inherited: list[Field] = []
    if len(cls.__mro__) > 2:  # a base other than object may carry fields
        seen: set[str] = set()
        for base in reversed(cls.__mro__[1:]):
            for f in base.__dict__.get("__record_fields__", ()):
                if f.name not in own_names and f.name not in seen:
                    seen.add(f.name)
                    inherited.append(f)
    result = (*inherited, *own)
    if not kw_only:
        defaulted = None
        for f in result:
            if f.default is not NOTHING or f.factory is not None:
                defaulted = f.name
            elif defaulted is not None:
                raise TypeError(f"{cls.__qualname__}: mandatory field {f.name!r} follows "
                                f"defaulted field {defaulted!r}")
    return result


def _compile_init(cls: type) -> Callable[..., None]:
    """Generate ``cls.__init__`` (called once, at the first instantiation)."""
    fs: tuple[Field, ...] = cls.__dict__["__record_fields__"]
    frozen_: bool = cls.__dict__["__record_frozen__"]
    kw_only: bool = cls.__dict__["__record_kw_only__"]
    ns: dict[str, Any] = {"NOTHING": NOTHING}
    params, body = [], []
    for i, f in enumerate(fs):
        if f.factory is not None:
            ns[f"_f{i}"] = f.factory
            params.append(f"{f.name}=NOTHING")
            body.append(f"    if {f.name} is NOTHING: {f.name} = _f{i}()")
        elif f.default is not NOTHING:
            ns[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
        else:
            params.append(f.name)
        if frozen_:
            ns[f"_s{i}"] = getattr(cls, f.name).__set__  # the slot's descriptor
            body.append(f"    _s{i}(self, {f.name})")
        else:
            body.append(f"    self.{f.name} = {f.name}")
    star = "*, " if kw_only and params else ""
    source = f"def __init__(self, {star}{', '.join(params)}):\n" + ("\n".join(body) or "    pass")
    # exec() of the text, not of compile(text, filename): the compile() builtin first checks
    # whether its argument is an AST, which builds the ~120 classes of the ast module
    # (~3 ms, once per process) that nothing else on a tool's start-up path needs.
    exec(source, ns)
    init: Callable[..., None] = ns["__init__"]
    init.__code__ = init.__code__.replace(
        co_filename=f"<record {cls.__module__}.{cls.__qualname__}.__init__>")
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


# Instances built by the generic __init__ before one is compiled: an instance costs ~0.9 us
# more through the generic one (with every field given), compiling ~50-150 us.
_COMPILE_AFTER = 128


def _lazy_init(cls: type) -> Callable[..., None]:
    """The first ``__init__`` of a record: generic (binds arguments in a loop) for the first
    few instances, then it compiles the class's own and installs it. Compiling costs about
    0.15 ms, worth it only for the records a process builds many of (BTF members, say)."""
    fs: tuple[Field, ...] = cls.__dict__["__record_fields__"]
    kw_only: bool = cls.__dict__["__record_kw_only__"]
    names = frozenset(f.name for f in fs)
    ordered = tuple(f.name for f in fs)
    setter = object.__setattr__
    built = 0

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal built
        built += 1
        if built > _COMPILE_AFTER:
            init = _compile_init(cls)
            type.__setattr__(cls, "__init__", init)
            init(self, *args, **kwargs)
            return
        # Every field given, all by position or all by keyword: nothing to check or default.
        if not kwargs and len(args) == len(ordered) and not kw_only:
            for name, value in zip(ordered, args):
                setter(self, name, value)
            return
        if not args and len(kwargs) == len(ordered) and kwargs.keys() == names:
            for name in ordered:
                setter(self, name, kwargs[name])
            return
        if args and (kw_only or len(args) > len(fs)):
            allowed = 0 if kw_only else len(fs)
            raise TypeError(f"{cls.__qualname__}() takes {allowed} positional arguments "
                            f"but {len(args)} were given")
        for f, value in zip(fs, args):
            if f.name in kwargs:
                raise TypeError(f"{cls.__qualname__}() got multiple values for argument "
                                f"{f.name!r}")
            setter(self, f.name, value)
        for f in fs[len(args):]:
            if f.name in kwargs:
                value = kwargs[f.name]
            elif f.factory is not None:
                value = f.factory()
            elif f.default is not NOTHING:
                value = f.default
            else:
                raise TypeError(f"{cls.__qualname__}() missing required argument {f.name!r}")
            setter(self, f.name, value)
        if not kwargs.keys() <= names:
            extra = sorted(kwargs.keys() - names)[0]
            raise TypeError(f"{cls.__qualname__}() got an unexpected keyword argument "
                            f"{extra!r}")

    return __init__


def _repr(self: Any) -> str:
    names = type(self).__record_repr__
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
    return f"{type(self).__qualname__}({inner})"


def _key(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda _self: ()
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda self: (get(self),)
    return attrgetter(*names)


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = self.__record_eq_key__
    return bool(key(self) == key(other))


def _hash(self: Any) -> int:
    return hash((self.__class__, self.__record_eq_key__(self)))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"{type(self).__qualname__} is frozen: cannot set {name!r} "
                              "(use bpfobj.records.evolve to make a changed copy)")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"{type(self).__qualname__} is frozen: cannot delete {name!r}")


def _rebuild(cls: type, values: dict[str, Any]) -> Any:
    return cls(**values)


def _reduce(self: Any) -> tuple[Any, ...]:
    # pickle and copy go through the constructor, which a frozen record needs.
    return _rebuild, (self.__class__, {f.name: getattr(self, f.name)
                                       for f in self.__record_fields__})


def _order(op: str) -> Callable[[Any, Any], Any]:
    def compare(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = self.__record_order_key__
        return getattr(key(self), op)(key(other))

    compare.__name__ = op
    return compare


def _build(cls: type, *, is_frozen: bool, kw_only: bool, order: bool) -> type:
    fs = _collect(cls, kw_only)
    base_slots = {s for b in cls.__mro__[1:-1] for s in b.__dict__.get("__slots__", ())}
    namespace = dict(cls.__dict__)
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    slots, repr_names, eq_names = [], [], []
    for f in fs:
        namespace.pop(f.name, None)  # a class attribute would shadow the slot
        if f.name not in base_slots:
            slots.append(f.name)
        if f.repr:
            repr_names.append(f.name)
        if f.eq:
            eq_names.append(f.name)
    namespace["__slots__"] = tuple(slots)
    namespace["__record_fields__"] = fs
    namespace["__record_frozen__"] = is_frozen
    namespace["__record_kw_only__"] = kw_only
    namespace["__record_repr__"] = tuple(repr_names)
    namespace["__record_names__"] = frozenset(f.name for f in fs)  # for evolve's check
    namespace["__record_eq_key__"] = staticmethod(_key(tuple(eq_names)))
    if namespace.get("__hash__", NOTHING) is None and "__eq__" in namespace:
        del namespace["__hash__"]  # set implicitly by a class-level __eq__
    namespace.setdefault("__repr__", _repr)
    namespace.setdefault("__eq__", _eq)
    namespace["__reduce__"] = _reduce
    if is_frozen:
        namespace.setdefault("__hash__", _hash)
        namespace["__setattr__"] = _frozen_setattr
        namespace["__delattr__"] = _frozen_delattr
    elif "__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None:
        namespace["__hash__"] = None  # mutable and compared by value: unhashable
    if order:
        namespace["__record_order_key__"] = staticmethod(
            _key(tuple(f.name for f in fs if f.order)))
        for op in ("__lt__", "__le__", "__gt__", "__ge__"):
            namespace[op] = _order(op)
    new = type(cls)(cls.__name__, cls.__bases__, namespace)
    new.__qualname__ = cls.__qualname__
    new.__init__ = _lazy_init(new)  # type: ignore[misc]
    return new


# The signatures the type checker reads (PEP 681 puts dataclass_transform on the first
# overload); at run time only the implementation exists, and typing is not imported.
if TYPE_CHECKING:
    @overload
    @dataclass_transform(frozen_default=True, field_specifiers=(field,))
    def frozen(cls: _C, /) -> _C: ...
    @overload
    def frozen(*, kw_only: bool = False, order: bool = False) -> Callable[[_C], _C]: ...


def frozen(cls: Any = None, /, *, kw_only: bool = False, order: bool = False) -> Any:
    """An immutable, hashable record (``attrs.frozen``)."""

    def wrap(c: type) -> type:
        return _build(c, is_frozen=True, kw_only=kw_only, order=order)

    return wrap if cls is None else wrap(cls)


if TYPE_CHECKING:
    @overload
    @dataclass_transform(field_specifiers=(field,))
    def define(cls: _C, /) -> _C: ...
    @overload
    def define(*, kw_only: bool = False, order: bool = False) -> Callable[[_C], _C]: ...


def define(cls: Any = None, /, *, kw_only: bool = False, order: bool = False) -> Any:
    """A mutable record (``attrs.define``)."""

    def wrap(c: type) -> type:
        return _build(c, is_frozen=False, kw_only=kw_only, order=order)

    return wrap if cls is None else wrap(cls)


def _fields_of(cls: type) -> tuple[Field, ...]:
    result: tuple[Field, ...] | None = getattr(cls, "__record_fields__", None)
    if result is None:
        raise TypeError(f"{cls!r} is not a record class")
    return result


def fields(cls: type) -> tuple[Field, ...]:
    """The fields of a record class, in ``__init__`` order."""
    if not isinstance(cls, type):
        raise TypeError(f"fields() takes a record class, not {cls!r}")
    return _fields_of(cls)


def evolve(inst: _T, **changes: Any) -> _T:
    """A copy of ``inst`` with ``changes`` applied (``attrs.evolve``)."""
    cls = inst.__class__
    fs = _fields_of(cls)
    if not changes.keys() <= cls.__record_names__:  # type: ignore[attr-defined]
        unknown = changes.keys() - cls.__record_names__  # type: ignore[attr-defined]
        raise TypeError(f"evolve(): {cls.__qualname__} has no field {sorted(unknown)[0]!r}")
    # Every field by position (or by keyword for kw_only records): __init__'s fast path.
    if cls.__record_kw_only__:  # type: ignore[attr-defined]
        return cls(**{f.name: changes[f.name] if f.name in changes else getattr(inst, f.name)
                      for f in fs})
    return cls(*[changes[f.name] if f.name in changes else getattr(inst, f.name) for f in fs])


def _is_record(value: object) -> bool:
    return hasattr(type(value), "__record_fields__")


def _plain(value: Any, mapping: bool) -> Any:
    if _is_record(value):
        return asdict(value) if mapping else astuple(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, mapping) for v in value]
    if isinstance(value, dict):
        return {_plain(k, mapping): _plain(v, mapping) for k, v in value.items()}
    return value


def asdict(inst: Any) -> dict[str, Any]:
    """The fields as a dict, nested records and collections converted (``attrs.asdict``)."""
    return {f.name: _plain(getattr(inst, f.name), True) for f in _fields_of(type(inst))}


def astuple(inst: Any) -> tuple[Any, ...]:
    """The fields as a tuple, nested records converted (``attrs.astuple``)."""
    return tuple(_plain(getattr(inst, f.name), False) for f in _fields_of(type(inst)))
