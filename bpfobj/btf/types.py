"""Decoded BTF types: one frozen record (bpfobj.records) per BTF kind.

Instances are produced by `Btf.type(id)` on demand; nothing here reads bytes. Field
meanings follow Documentation/bpf/btf.rst (Linux 6.12):

* every type has ``id``, ``name`` ("" when anonymous) and a class-level ``kind`` (BtfKind);
* a ``type`` field is a type id (0 is void);
* ``kind_flag`` semantics are decoded into the field they change: `Member.bitfield_size`
  (struct/union), `Enum.signed` / `Enum64.signed`, `Fwd.is_union`.
"""

from __future__ import annotations

from collections import namedtuple

from bpfobj import records
from bpfobj.uapi import BtfFuncLinkage, BtfKind, BtfVarLinkage

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import ClassVar, NamedTuple

# BTF_INT_ENCODING bits (linux/btf.h).
INT_SIGNED = 1 << 0
INT_CHAR = 1 << 1
INT_BOOL = 1 << 2


@records.frozen
class BtfType:
    """Common part of every decoded type."""

    kind: ClassVar[BtfKind] = BtfKind.UNKN

    id: int
    name: str

    def describe(self) -> str:
        """``[id] KIND 'name'`` as bpftool prints it (used in error messages)."""
        return f"[{self.id}] {self.kind.name} '{self.name or '(anon)'}'"


@records.frozen
class Void(BtfType):
    """Type id 0. It has no size and no name."""

    id: int = 0
    name: str = ""


@records.frozen
class Int(BtfType):
    """BTF_KIND_INT. ``encoding`` holds the BTF_INT_* bits; see the ``is_*`` properties."""

    kind: ClassVar[BtfKind] = BtfKind.INT

    size: int
    encoding: int
    bit_offset: int
    nr_bits: int

    @property
    def is_signed(self) -> bool:
        return bool(self.encoding & INT_SIGNED)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & INT_CHAR)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & INT_BOOL)


@records.frozen
class _Ref(BtfType):
    """A kind whose third word is a type id."""

    type: int


@records.frozen
class Ptr(_Ref):
    kind: ClassVar[BtfKind] = BtfKind.PTR


@records.frozen
class Typedef(_Ref):
    kind: ClassVar[BtfKind] = BtfKind.TYPEDEF


@records.frozen
class Volatile(_Ref):
    kind: ClassVar[BtfKind] = BtfKind.VOLATILE


@records.frozen
class Const(_Ref):
    kind: ClassVar[BtfKind] = BtfKind.CONST


@records.frozen
class Restrict(_Ref):
    kind: ClassVar[BtfKind] = BtfKind.RESTRICT


@records.frozen
class TypeTag(_Ref):
    """BTF_KIND_TYPE_TAG. ``kind_flag`` set means a C attribute rather than btf_type_tag
    (newer kernels); 6.12 requires it clear."""

    kind: ClassVar[BtfKind] = BtfKind.TYPE_TAG

    kind_flag: bool = False


@records.frozen
class Array(BtfType):
    kind: ClassVar[BtfKind] = BtfKind.ARRAY

    type: int
    index_type: int
    nelems: int


@records.frozen
class Member:
    """One struct/union member. ``bitfield_size`` is 0 for a plain member.

    With kind_flag clear the whole btf_member.offset is the bit offset; with it set the top
    8 bits are the bitfield size and the low 24 the bit offset (btf.rst 2.2.4).
    """

    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8


@records.frozen
class _Composite(BtfType):
    size: int
    members: tuple[Member, ...]
    kind_flag: bool = False

    def member(self, name: str) -> Member | None:
        """The first member called `name` (anonymous members are not searched into)."""
        for m in self.members:
            if m.name == name:
                return m
        return None


@records.frozen
class Struct(_Composite):
    kind: ClassVar[BtfKind] = BtfKind.STRUCT


@records.frozen
class Union(_Composite):
    kind: ClassVar[BtfKind] = BtfKind.UNION


# Typed NamedTuples for the type checker; at run time the same collections.namedtuple
# without importing typing (see bpfobj.insn.codec._Fields).
if TYPE_CHECKING:
    EnumValue = NamedTuple("EnumValue", [("name", str), ("value", int)])  # noqa: UP014
else:
    EnumValue = namedtuple("EnumValue", ["name", "value"])


@records.frozen
class Enum(BtfType):
    """BTF_KIND_ENUM: values are sign-extended when ``signed`` (kind_flag) is set."""

    kind: ClassVar[BtfKind] = BtfKind.ENUM

    size: int
    values: tuple[EnumValue, ...]
    signed: bool = False


@records.frozen
class Enum64(BtfType):
    """BTF_KIND_ENUM64: 64-bit values, sign-extended when ``signed`` (kind_flag) is set."""

    kind: ClassVar[BtfKind] = BtfKind.ENUM64

    size: int
    values: tuple[EnumValue, ...]
    signed: bool = False


@records.frozen
class Fwd(BtfType):
    kind: ClassVar[BtfKind] = BtfKind.FWD

    is_union: bool = False


@records.frozen
class Func(BtfType):
    """BTF_KIND_FUNC: ``type`` is its FUNC_PROTO; the linkage lives in the vlen bits."""

    kind: ClassVar[BtfKind] = BtfKind.FUNC

    type: int
    linkage: BtfFuncLinkage = BtfFuncLinkage.STATIC


if TYPE_CHECKING:
    Param = NamedTuple("Param", [("name", str), ("type", int)])  # noqa: UP014
else:
    Param = namedtuple("Param", ["name", "type"])
Param.__doc__ = """A FUNC_PROTO parameter; ``("", 0)`` as the last one means ``...``."""


@records.frozen
class FuncProto(BtfType):
    kind: ClassVar[BtfKind] = BtfKind.FUNC_PROTO

    return_type: int
    params: tuple[Param, ...]

    @property
    def type(self) -> int:
        """The return type, under the name the raw encoding uses."""
        return self.return_type

    @property
    def is_variadic(self) -> bool:
        return bool(self.params) and self.params[-1] == ("", 0)


@records.frozen
class Var(BtfType):
    kind: ClassVar[BtfKind] = BtfKind.VAR

    type: int
    linkage: BtfVarLinkage = BtfVarLinkage.STATIC


@records.frozen
class VarSecinfo:
    type: int
    offset: int
    size: int


@records.frozen
class Datasec(BtfType):
    kind: ClassVar[BtfKind] = BtfKind.DATASEC

    size: int
    vars: tuple[VarSecinfo, ...]


@records.frozen
class Float(BtfType):
    kind: ClassVar[BtfKind] = BtfKind.FLOAT

    size: int


@records.frozen
class DeclTag(BtfType):
    """BTF_KIND_DECL_TAG: ``component_idx`` is -1 for the type itself, else a member or
    parameter index. ``kind_flag`` set means a C attribute (newer kernels)."""

    kind: ClassVar[BtfKind] = BtfKind.DECL_TAG

    type: int
    component_idx: int
    kind_flag: bool = False


@records.frozen
class Unknown(BtfType):
    """A kind this version does not know, skipped with the header's layout section.

    ``kind`` is UNKN; ``raw_kind`` is the number found. ``data`` is the bytes after the
    12-byte common header (in file byte order).
    """

    raw_kind: int
    kind_flag: bool
    vlen: int
    size_or_type: int
    data: bytes = b""


# Kinds whose third word is a size, and kinds `Btf.resolve` skips.
SIZED_KINDS = frozenset(
    {
        BtfKind.INT,
        BtfKind.STRUCT,
        BtfKind.UNION,
        BtfKind.ENUM,
        BtfKind.ENUM64,
        BtfKind.DATASEC,
        BtfKind.FLOAT,
    }
)
MODIFIER_KINDS = frozenset(
    {BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG}
)

AnyType = (
    Void
    | Int
    | Ptr
    | Array
    | Struct
    | Union
    | Enum
    | Enum64
    | Fwd
    | Typedef
    | Volatile
    | Const
    | Restrict
    | TypeTag
    | Func
    | FuncProto
    | Var
    | Datasec
    | Float
    | DeclTag
    | Unknown
)

__all__ = [
    "INT_BOOL",
    "INT_CHAR",
    "INT_SIGNED",
    "MODIFIER_KINDS",
    "SIZED_KINDS",
    "AnyType",
    "Array",
    "BtfType",
    "Const",
    "Datasec",
    "DeclTag",
    "Enum",
    "Enum64",
    "EnumValue",
    "Float",
    "Func",
    "FuncProto",
    "Fwd",
    "Int",
    "Member",
    "Param",
    "Ptr",
    "Restrict",
    "Struct",
    "TypeTag",
    "Typedef",
    "Union",
    "Unknown",
    "Var",
    "VarSecinfo",
    "Void",
]
