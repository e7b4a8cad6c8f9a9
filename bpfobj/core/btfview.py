"""The few BTF queries the CO-RE engine needs, with libbpf's exact semantics.

The engine reads BTF through `bpfobj.btf.Btf` (``btf.type(id)`` returning frozen per-kind
records with ``.kind``/``.name`` and per-kind fields). It relies only on the small
`BtfLike` protocol below, so hand-built test BTF works the same way.

The helpers mirror libbpf's: `skip_mods_and_typedefs` (libbpf.c), `resolve_size`
(btf.c btf__resolve_size, including determine_ptr_size for pointers), `kind_str`
(libbpf.c __btf_kind_str) and `kind_core_compat` (btf.h btf_kind_core_compat).
"""

from __future__ import annotations

import weakref

from bpfobj.errors import BtfError
from bpfobj.uapi import BtfKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # protocols only matter to the type checker

# btf.h BTF_INT_SIGNED: the encoding bit of a signed integer.
BTF_INT_SIGNED = 1

# btf.c MAX_RESOLVE_DEPTH
MAX_RESOLVE_DEPTH = 32

_MODS = frozenset({BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG})
_COMPOSITE = frozenset({BtfKind.STRUCT, BtfKind.UNION})
_ANY_ENUM = frozenset({BtfKind.ENUM, BtfKind.ENUM64})

# libbpf.c __btf_kind_str
_KIND_STR = {
    BtfKind.UNKN: "void",
    BtfKind.INT: "int",
    BtfKind.PTR: "ptr",
    BtfKind.ARRAY: "array",
    BtfKind.STRUCT: "struct",
    BtfKind.UNION: "union",
    BtfKind.ENUM: "enum",
    BtfKind.FWD: "fwd",
    BtfKind.TYPEDEF: "typedef",
    BtfKind.VOLATILE: "volatile",
    BtfKind.CONST: "const",
    BtfKind.RESTRICT: "restrict",
    BtfKind.FUNC: "func",
    BtfKind.FUNC_PROTO: "func_proto",
    BtfKind.VAR: "var",
    BtfKind.DATASEC: "datasec",
    BtfKind.FLOAT: "float",
    BtfKind.DECL_TAG: "decl_tag",
    BtfKind.TYPE_TAG: "type_tag",
    BtfKind.ENUM64: "enum64",
}

# btf.c determine_ptr_size: the spellings of `long` that give the pointer size.
_LONG_ALIASES = (
    "long",
    "long int",
    "int long",
    "unsigned long",
    "long unsigned",
    "unsigned long int",
    "unsigned int long",
    "long unsigned int",
    "long int unsigned",
    "int unsigned long",
    "int long unsigned",
)


class BtfLike(Protocol):
    """What the engine needs from a BTF (satisfied by `bpfobj.btf.Btf`).

    ``len(btf)`` is the number of types but void, a split BTF's base included; ids of a
    split BTF continue its base's from ``btf.start_id``. ``find`` looks up exact names.
    """

    def type(self, type_id: int) -> Any: ...

    def find(self, name: str, kind: Any = None) -> list[int]: ...

    def __len__(self) -> int: ...


class _Void:
    """Type id 0 (libbpf's btf_void: kind UNKN, no name, size 0)."""

    id = 0
    name = ""
    kind = BtfKind.UNKN
    size = 0


VOID = _Void()


class ResolveError(Exception):
    """A libbpf helper failed with an errno (e.g. btf__resolve_size on a func)."""

    def __init__(self, errno: int, message: str = "") -> None:
        super().__init__(message or f"errno {errno}")
        self.errno = errno


def start_id(btf: Any) -> int:
    """The first type id this BTF defines itself (1, or the base's count for split BTF)."""
    sid = getattr(btf, "start_id", None)
    if isinstance(sid, int) and sid > 0:
        return sid
    return 1


def type_count(btf: Any) -> int:
    """libbpf's btf__type_cnt: one more than the largest valid type id (void included).

    ``len(btf)`` counts the types but void, the base's included (bpfobj.btf.Btf).
    """
    return len(btf) + 1


def type_by_id(btf: Any, type_id: int) -> Any | None:
    """libbpf's btf__type_by_id: the type, VOID for 0, None for an id out of range."""
    if type_id == 0:
        return VOID
    if type_id < 0 or type_id >= type_count(btf):
        return None
    try:
        return btf.type(type_id)
    except (IndexError, KeyError, ValueError, BtfError):
        # out of range, or a record that does not decode: libbpf's NULL
        return None


def kind_of(t: Any) -> BtfKind:
    return BtfKind(int(t.kind))


def kind_str(t: Any) -> str:
    """libbpf.c btf_kind_str."""
    if t is None:
        return "unknown"
    return _KIND_STR.get(kind_of(t), "unknown")


def is_mod(t: Any) -> bool:
    return kind_of(t) in _MODS


def is_composite(t: Any) -> bool:
    return t is not None and kind_of(t) in _COMPOSITE


def is_any_enum(t: Any) -> bool:
    return t is not None and kind_of(t) in _ANY_ENUM


def kind_core_compat(t1: Any, t2: Any) -> bool:
    """btf.h btf_kind_core_compat: same kind, or both ENUM/ENUM64."""
    k1, k2 = kind_of(t1), kind_of(t2)
    return k1 == k2 or (k1 in _ANY_ENUM and k2 in _ANY_ENUM)


def vlen(t: Any) -> int:
    """btf_vlen: members, enumerators or parameters."""
    k = kind_of(t)
    if k in _COMPOSITE:
        return len(t.members)
    if k in _ANY_ENUM:
        return len(t.values)
    if k == BtfKind.FUNC_PROTO:
        return len(t.params)
    if k == BtfKind.DATASEC:
        return len(t.vars)
    return 0


def kflag(t: Any) -> bool:
    """BTF_INFO_KFLAG for the kinds where the engine looks at it (enum sign, fwd union)."""
    k = kind_of(t)
    if k in _ANY_ENUM:
        return bool(getattr(t, "signed", False))
    if k == BtfKind.FWD:
        return bool(getattr(t, "is_union", False))
    return bool(getattr(t, "kind_flag", False))


def int_encoding(t: Any) -> int:
    return int(getattr(t, "encoding", 0))


def int_offset(t: Any) -> int:
    """BTF_INT_OFFSET of an INT (``bit_offset`` in bpfobj.btf.types.Int)."""
    value: Any = getattr(t, "bit_offset", None)
    if value is None:
        value = getattr(t, "offset", 0)
    return int(value)


def ref_type(t: Any) -> int:
    """`t->type` for kinds that reference one type (ptr, typedef, modifiers, func, var)."""
    k = kind_of(t)
    if k == BtfKind.FUNC_PROTO:
        return int(t.return_type)
    return int(getattr(t, "type", 0))


def _field(item: Any, attr: str, pos: int) -> Any:
    """Field `attr` of a (name, value)-style record that may also be a plain tuple."""
    value = getattr(item, attr, None)
    if value is None and isinstance(item, tuple):
        value = item[pos]
    return value


def param_type(p: Any) -> int:
    """The type id of a FUNC_PROTO parameter (``(name, type)``)."""
    return int(_field(p, "type", 1))


def enum_name(t: Any, idx: int) -> str:
    """The name of enumerator `idx` of an ENUM/ENUM64."""
    return str(_field(t.values[idx], "name", 0) or "")


def enum_value(t: Any, idx: int) -> int:
    """The value libbpf computes for enumerator `idx`, as an unsigned 64-bit number.

    ENUM stores `__s32 val`, which C sign-extends when it is widened to __u64
    (bpf_core_calc_enumval_relo); ENUM64 is (hi32 << 32) | lo32.
    """
    raw = int(_field(t.values[idx], "value", 1))
    if kind_of(t) == BtfKind.ENUM:
        raw &= 0xFFFF_FFFF
        if raw & 0x8000_0000:
            raw -= 1 << 32
    return raw & 0xFFFF_FFFF_FFFF_FFFF


def skip_mods_and_typedefs(btf: Any, type_id: int) -> tuple[int, Any | None]:
    """libbpf.c skip_mods_and_typedefs: (resolved id, type or None)."""
    t = type_by_id(btf, type_id)
    rid = type_id
    depth = 0
    while t is not None and (is_mod(t) or kind_of(t) == BtfKind.TYPEDEF):
        rid = ref_type(t)
        t = type_by_id(btf, rid)
        depth += 1
        if depth > 1000:  # a cycle in broken BTF; libbpf would loop forever
            return rid, None
    return rid, t


_PTR_SIZES: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_PTR_SIZES_BY_ID: dict[int, tuple[Any, int]] = {}


def ptr_size(btf: Any) -> int:
    """btf.c btf_ptr_sz / determine_ptr_size: the size of the first `long` integer type.

    Falls back to 8 (sizeof(void *) on the 64-bit hosts libbpf runs on here).
    """
    explicit = getattr(btf, "pointer_size", None)
    if isinstance(explicit, int) and explicit > 0:
        return explicit
    try:
        return _PTR_SIZES[btf]
    except TypeError:
        cached = _PTR_SIZES_BY_ID.get(id(btf))
        if cached is not None and cached[0] is btf:
            return cached[1]
    except KeyError:
        pass
    size = _determine_ptr_size(btf)
    try:
        _PTR_SIZES[btf] = size
    except TypeError:
        _PTR_SIZES_BY_ID[id(btf)] = (btf, size)
    return size


def _determine_ptr_size(btf: Any) -> int:
    base = getattr(btf, "base", None)
    if base is not None:
        return ptr_size(base)
    best: tuple[int, int] | None = None
    for alias in _LONG_ALIASES:
        try:
            ids = btf.find(alias)
        except Exception:
            ids = []
        for tid in ids:
            t = type_by_id(btf, tid)
            if t is None or kind_of(t) != BtfKind.INT or t.size not in (4, 8):
                continue
            if best is None or tid < best[0]:
                best = (tid, int(t.size))
    return best[1] if best is not None else 8


_U32_MAX = 0xFFFF_FFFF


def resolve_size(btf: Any, type_id: int) -> int:
    """btf.c btf__resolve_size; raises ResolveError(EINVAL/E2BIG) where libbpf fails."""
    nelems = 1
    size = -1
    t = type_by_id(btf, type_id)
    i = 0
    while i < MAX_RESOLVE_DEPTH and t is not None and kind_of(t) != BtfKind.UNKN:
        k = kind_of(t)
        if k in (
            BtfKind.INT,
            BtfKind.STRUCT,
            BtfKind.UNION,
            BtfKind.ENUM,
            BtfKind.ENUM64,
            BtfKind.DATASEC,
            BtfKind.FLOAT,
        ):
            size = int(t.size)
            break
        if k == BtfKind.PTR:
            size = ptr_size(btf)
            break
        if k in (
            BtfKind.TYPEDEF,
            BtfKind.VOLATILE,
            BtfKind.CONST,
            BtfKind.RESTRICT,
            BtfKind.VAR,
            BtfKind.DECL_TAG,
            BtfKind.TYPE_TAG,
        ):
            type_id = int(t.type)
        elif k == BtfKind.ARRAY:
            n = int(t.nelems)
            if nelems and n > _U32_MAX // nelems:
                raise ResolveError(7, "array too big")  # E2BIG
            nelems *= n
            type_id = int(t.type)
        else:
            raise ResolveError(22, f"cannot size a {kind_str(t)}")  # EINVAL
        t = type_by_id(btf, type_id)
        i += 1
    if size < 0:
        raise ResolveError(22, "type has no size")
    if nelems and size > _U32_MAX // nelems:
        raise ResolveError(7, "type too big")
    return nelems * size
