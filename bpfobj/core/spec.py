"""CO-RE access specs: parse an access string against BTF and print it as libbpf does.

A `CoreSpec` is relo_core.h's ``struct bpf_core_spec``: a high-level list of accessors
(named fields and array indices), the raw (low-level) list of indices, one per element of
the access string, and the bit offset they add up to. `parse_spec` is relo_core.c
bpf_core_parse_spec and `format_spec` is bpf_core_format_spec, so the text matches what
libbpf prints in its debug log, e.g. ``<byte_off> [7] struct task_struct.pid (0:12 @ offset 2512)``.
"""

from __future__ import annotations

import re

from bpfobj import records
from bpfobj.core.btfview import (
    ResolveError,
    enum_name,
    enum_value,
    is_any_enum,
    is_composite,
    kflag,
    kind_of,
    kind_str,
    resolve_size,
    skip_mods_and_typedefs,
    type_by_id,
    vlen,
)
from bpfobj.uapi import BtfKind, CoreReloKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

# relo_core.h BPF_CORE_SPEC_MAX_LEN
SPEC_MAX_LEN = 64

EINVAL = 22
E2BIG = 7
EOPNOTSUPP = 95
EUCLEAN = 117
ERANGE = 34

FIELD_KINDS = frozenset(
    {
        CoreReloKind.FIELD_BYTE_OFFSET,
        CoreReloKind.FIELD_BYTE_SIZE,
        CoreReloKind.FIELD_EXISTS,
        CoreReloKind.FIELD_SIGNED,
        CoreReloKind.FIELD_LSHIFT_U64,
        CoreReloKind.FIELD_RSHIFT_U64,
    }
)
TYPE_KINDS = frozenset(
    {
        CoreReloKind.TYPE_ID_LOCAL,
        CoreReloKind.TYPE_ID_TARGET,
        CoreReloKind.TYPE_EXISTS,
        CoreReloKind.TYPE_MATCHES,
        CoreReloKind.TYPE_SIZE,
    }
)
ENUMVAL_KINDS = frozenset({CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE})


def kind_label(kind: int) -> str:
    """relo_core.c core_relo_kind_str ("unknown" for a kind outside the UAPI table)."""
    try:
        return CoreReloKind(kind).label
    except ValueError:
        return "unknown"


def is_field_based(kind: int) -> bool:
    return kind in FIELD_KINDS


def is_type_based(kind: int) -> bool:
    return kind in TYPE_KINDS


def is_enumval_based(kind: int) -> bool:
    return kind in ENUMVAL_KINDS


class SpecError(Exception):
    """bpf_core_parse_spec / bpf_core_spec_match failed with an errno."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


@records.define
class Accessor:
    """struct bpf_core_accessor: a named field (name set) or an array index (name None)."""

    type_id: int
    idx: int
    name: str | None = None


@records.define
class CoreSpec:
    """struct bpf_core_spec (mutable while it is being built, like libbpf's scratch specs)."""

    btf: Any
    root_type_id: int
    relo_kind: int
    spec: list[Accessor] = records.field(factory=list)
    raw_spec: list[int] = records.field(factory=list)
    bit_offset: int = 0

    @property
    def len(self) -> int:
        return len(self.spec)

    @property
    def raw_len(self) -> int:
        return len(self.raw_spec)

    def copy(self) -> CoreSpec:
        return CoreSpec(
            btf=self.btf,
            root_type_id=self.root_type_id,
            relo_kind=self.relo_kind,
            spec=[records.evolve(a) for a in self.spec],
            raw_spec=list(self.raw_spec),
            bit_offset=self.bit_offset,
        )

    def format(self) -> str:
        return format_spec(self)


_NUM = re.compile(r"[ \t\n\v\f\r]*([+-]?\d+)")


def parse_access_string(text: str) -> list[int]:
    """The raw spec of an access string ("0:1:2:3"), as bpf_core_parse_spec's sscanf loop.

    Raises SpecError(EINVAL) for an empty string, a leading ':', a non-number or a negative
    index, SpecError(E2BIG) past BPF_CORE_SPEC_MAX_LEN elements.
    """
    if not text or text[0] == ":":
        raise SpecError(EINVAL, f"invalid access string {text!r}")
    raw: list[int] = []
    pos = 0
    while pos < len(text):
        if text[pos] == ":":
            pos += 1
        m = _NUM.match(text, pos)
        if m is None:
            raise SpecError(EINVAL, f"invalid access string {text!r}")
        value = int(m.group(1))
        if value < 0 or value > 0x7FFF_FFFF:
            raise SpecError(EINVAL, f"invalid access index {m.group(1)} in {text!r}")
        if len(raw) == SPEC_MAX_LEN:
            raise SpecError(E2BIG, f"access string {text!r} is too long")
        pos = m.end()
        raw.append(value)
    return raw


def is_flex_arr(btf: Any, acc: Accessor | None, nelems: int) -> bool:
    """relo_core.c is_flex_arr: a zero-sized array that is the last member of its struct."""
    if acc is None or not acc.name or nelems > 0:
        return False
    t = type_by_id(btf, acc.type_id)
    return t is not None and acc.idx == vlen(t) - 1


def _size(btf: Any, type_id: int) -> int:
    try:
        return resolve_size(btf, type_id)
    except ResolveError as exc:
        raise SpecError(exc.errno, f"cannot size type [{type_id}]: {exc}") from None


def parse_spec(btf: Any, type_id: int, access_str: str, kind: int) -> CoreSpec:
    """relo_core.c bpf_core_parse_spec: the local spec of one relocation.

    Raises SpecError with libbpf's errno where libbpf's parse fails.
    """
    if not access_str or access_str[0] == ":":
        raise SpecError(EINVAL, f"invalid access string {access_str!r}")
    spec = CoreSpec(btf=btf, root_type_id=type_id, relo_kind=kind)

    # type-based relocations don't have a field access string
    if is_type_based(kind):
        if access_str != "0":
            raise SpecError(EINVAL, f"type relocation needs access string '0', got {access_str!r}")
        return spec

    spec.raw_spec = parse_access_string(access_str)
    if not spec.raw_spec:
        raise SpecError(EINVAL, f"empty access string {access_str!r}")

    tid, t = skip_mods_and_typedefs(btf, type_id)
    if t is None:
        raise SpecError(EINVAL, f"type [{type_id}] does not exist")

    access_idx = spec.raw_spec[0]
    acc = Accessor(type_id=tid, idx=access_idx)
    spec.spec.append(acc)

    if is_enumval_based(kind):
        if not is_any_enum(t) or len(spec.raw_spec) > 1 or access_idx >= vlen(t):
            raise SpecError(
                EINVAL, f"enum value access {access_str!r} does not fit [{type_id}] {kind_str(t)}"
            )
        acc.name = enum_name(t, access_idx)
        return spec

    if not is_field_based(kind):
        raise SpecError(EINVAL, f"unknown relocation kind {kind}")

    sz = _size(btf, tid)
    spec.bit_offset = access_idx * sz * 8

    for i in range(1, len(spec.raw_spec)):
        tid, t = skip_mods_and_typedefs(btf, tid)
        if t is None:
            raise SpecError(EINVAL, f"type [{tid}] does not exist")
        access_idx = spec.raw_spec[i]
        if is_composite(t):
            if access_idx >= vlen(t):
                raise SpecError(
                    EINVAL,
                    f"member index {access_idx} out of range for [{tid}] {kind_str(t)} "
                    f"{t.name or '<anon>'} with {vlen(t)} members",
                )
            m = t.members[access_idx]
            spec.bit_offset += int(m.bit_offset)
            if m.name:
                spec.spec.append(Accessor(type_id=tid, idx=access_idx, name=str(m.name)))
            tid = int(m.type)
        elif kind_of(t) == BtfKind.ARRAY:
            nelems = int(t.nelems)
            tid, et = skip_mods_and_typedefs(btf, int(t.type))
            if et is None:
                raise SpecError(EINVAL, f"array element type [{tid}] does not exist")
            flex = is_flex_arr(btf, spec.spec[-1], nelems)
            if not flex and access_idx >= nelems:
                raise SpecError(EINVAL, f"array index {access_idx} out of bounds (nelems {nelems})")
            spec.spec.append(Accessor(type_id=tid, idx=access_idx))
            sz = _size(btf, tid)
            spec.bit_offset += access_idx * sz * 8
        else:
            raise SpecError(
                EINVAL,
                f"relo for [{type_id}] {access_str} (at idx {i}) captures type [{tid}] "
                f"of unexpected kind {kind_str(t)}",
            )
    return spec


def format_spec(spec: CoreSpec) -> str:
    """relo_core.c bpf_core_format_spec, character for character."""
    type_id = spec.root_type_id
    t = type_by_id(spec.btf, type_id)
    name = (t.name if t is not None else "") or "<anon>"
    out = [f"<{kind_label(spec.relo_kind)}> [{type_id}] {kind_str(t)} {name}"]

    if is_type_based(spec.relo_kind):
        return out[0]

    if is_enumval_based(spec.relo_kind):
        _, et = skip_mods_and_typedefs(spec.btf, type_id)
        idx = spec.raw_spec[0] if spec.raw_spec else 0
        if et is not None and is_any_enum(et) and idx < vlen(et):
            ename = enum_name(et, idx)
            value = enum_value(et, idx)
            if kind_of(et) == BtfKind.ENUM:
                value &= 0xFFFF_FFFF
                if kflag(et) and value & 0x8000_0000:
                    value -= 1 << 32
            elif kflag(et) and value & (1 << 63):
                value -= 1 << 64
            out.append(f"::{ename} = {value}")
        return "".join(out)

    if is_field_based(spec.relo_kind):
        for i, acc in enumerate(spec.spec):
            if acc.name:
                out.append(f".{acc.name}")
            elif i > 0 or acc.idx > 0:
                out.append(f"[{acc.idx & 0xFFFF_FFFF}]")
        out.append(" (")
        out.append(":".join(str(_s32(v)) for v in spec.raw_spec))
        bit_offset = spec.bit_offset & 0xFFFF_FFFF
        if bit_offset % 8:
            out.append(f" @ offset {bit_offset // 8}.{bit_offset % 8})")
        else:
            out.append(f" @ offset {bit_offset // 8})")
    return "".join(out)


def _s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & 0x8000_0000 else v
