"""Module BTF in every form it comes in, made into split BTF on the target vmlinux.

The ids CO-RE writes into instructions (TYPE_ID_TARGET, typed ksyms, kfuncs) must be the ids
the target kernel gives the module's types: vmlinux's count plus the module's own index. A
module's BTF arrives as one of:

* split BTF on that vmlinux (/sys/kernel/btf/<module>, or a .ko's .BTF): used as is, after a
  check that it really was built against this vmlinux (`check_base`);
* standalone BTF that references only itself (ids from 1): renumbered after vmlinux, as the
  kernel numbers it;
* split BTF on a distilled base (a .ko with .BTF and .BTF.base, pahole's distilled_base):
  relocated onto the target vmlinux like libbpf/kernel btf_relocate() does.

A module that does not fit its base raises `ModuleBtfMismatch`; callers that search many
modules skip that one with a warning instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable

from bpfobj import records
from bpfobj.btf import types as T
from bpfobj.errors import BpfObjError, BtfError
from bpfobj.uapi import BtfKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from bpfobj.btf.reader import Btf

_COMPOSITE = (BtfKind.STRUCT, BtfKind.UNION)
# Kinds a member, array element, pointer target or variable may not refer to.
_NOT_A_VALUE_TYPE = (BtfKind.FUNC, BtfKind.VAR, BtfKind.DATASEC, BtfKind.DECL_TAG)


class ModuleBtfMismatch(BtfError):
    """Module BTF built against a different vmlinux than the target's."""


def remap(t: T.BtfType, fn: Callable[[int], int]) -> T.BtfType:
    """A copy of `t` whose type references are mapped through `fn` (void stays 0)."""

    def m(x: int) -> int:
        return fn(x) if x else 0

    if isinstance(t, T.Struct | T.Union):
        return records.evolve(t, members=tuple(records.evolve(mb, type=m(mb.type)) for mb in t.members))
    if isinstance(t, T.FuncProto):
        return records.evolve(
            t, return_type=m(t.return_type),
            params=tuple(p._replace(type=m(p.type)) for p in t.params),
        )
    if isinstance(t, T.Datasec):
        return records.evolve(t, vars=tuple(records.evolve(v, type=m(v.type)) for v in t.vars))
    if isinstance(t, T.Array):
        return records.evolve(t, type=m(t.type), index_type=m(t.index_type))
    ref = getattr(t, "type", None)
    if isinstance(ref, int) and not isinstance(t, T.Unknown):
        return records.evolve(t, type=m(ref))
    return t


def _rebuild(types: list[T.BtfType], vmlinux: Btf, fn: Callable[[int], int], name: str) -> Btf:
    from bpfobj.btf.writer import BtfBuilder

    b = BtfBuilder(byteorder=vmlinux.byteorder, base=vmlinux)
    for t in types:
        b.add_type(remap(t, fn))
    from bpfobj.btf.reader import Btf

    return Btf.parse(b.encode(), base=vmlinux, name=name, cache=False)


def standalone_to_split(btf: Btf, vmlinux: Btf, name: str) -> Btf:
    """Standalone module BTF (ids 1..n, no base) renumbered after vmlinux's types."""
    shift = len(vmlinux)
    types = [btf.type(i) for i in range(1, len(btf) + 1)]
    return _rebuild(types, vmlinux, lambda i: i + shift, name)


def relocate_distilled(split: Btf, vmlinux: Btf, name: str) -> Btf:
    """Split BTF on a distilled base (.BTF.base) relocated onto `vmlinux` (btf_relocate.c).

    Each distilled base type (named INT/FLOAT/ENUM/FWD/STRUCT/UNION) is matched in vmlinux by
    name and kind; sizes must match for INT/FLOAT/ENUM, for composites embedded by value in
    the module's types, and for composites whose name vmlinux uses more than once."""
    dist = split.base
    if dist is None:
        raise BtfError("module BTF has no distilled base", obj=name)
    n_dist = len(dist) + 1  # ids 0..n_dist-1 belong to the distilled base
    embedded = _embedded_composites(split, n_dist)
    id_map: dict[int, int] = {}
    for did in range(1, n_dist):
        id_map[did] = _match_distilled(dist, did, vmlinux, did in embedded, name)
    shift = len(vmlinux) + 1 - n_dist
    types = [split.type(i) for i in range(n_dist, len(split) + 1)]
    return _rebuild(types, vmlinux, lambda i: id_map[i] if i < n_dist else i + shift, name)


def _embedded_composites(split: Btf, n_dist: int) -> set[int]:
    """Distilled struct/union ids that module types embed by value (through modifiers and
    arrays): their size must match (btf_mark_embedded_composite_type_ids)."""
    out: set[int] = set()
    for tid in range(n_dist, len(split) + 1):
        t = split.type(tid)
        if not isinstance(t, T.Struct | T.Union):
            continue
        for mb in t.members:
            nxt, hops = mb.type, 0
            while nxt and hops < 64:
                hops += 1
                kind = split.kind(nxt)
                if kind in (BtfKind.CONST, BtfKind.RESTRICT, BtfKind.VOLATILE,
                            BtfKind.TYPEDEF, BtfKind.TYPE_TAG) or kind == BtfKind.ARRAY:
                    nxt = split.type(nxt).type  # type: ignore[attr-defined]
                else:
                    if kind in _COMPOSITE and nxt < n_dist:
                        out.add(nxt)
                    break
    return out


def _match_distilled(dist: Btf, did: int, vmlinux: Btf, embedded: bool, name: str) -> int:
    d = dist.type(did)
    if not d.name or d.kind not in (*_COMPOSITE, BtfKind.INT, BtfKind.FLOAT, BtfKind.ENUM,
                                    BtfKind.FWD):
        raise BtfError(
            f"distilled base type {d.describe()} is not a named int/float/enum/fwd/struct/union",
            obj=name, hint="the .BTF.base section is corrupt",
        )
    cands = vmlinux.find(d.name)
    composite_count = sum(1 for c in cands if vmlinux.kind(c) in _COMPOSITE)
    found: list[int] = []
    for cid in cands:
        c = vmlinux.type(cid)
        dsize, csize = getattr(d, "size", None), getattr(c, "size", None)
        if d.kind == BtfKind.FWD:
            ok = (c.kind == BtfKind.FWD and c.is_union == d.is_union  # type: ignore[attr-defined]
                  ) or (c.kind == BtfKind.STRUCT and not d.is_union  # type: ignore[attr-defined]
                        ) or (c.kind == BtfKind.UNION and d.is_union)  # type: ignore[attr-defined]
        elif d.kind == BtfKind.INT:
            ok = (c.kind == BtfKind.INT and dsize == csize
                  and c.encoding == d.encoding)  # type: ignore[attr-defined]
        elif d.kind == BtfKind.FLOAT:
            ok = c.kind == BtfKind.FLOAT and dsize == csize
        elif d.kind == BtfKind.ENUM:
            ok = c.kind in (BtfKind.ENUM, BtfKind.ENUM64) and dsize == csize
        else:  # struct/union
            ok = c.kind in _COMPOSITE and (
                (not embedded and composite_count <= 1) or dsize == csize
            )
        if ok:
            found.append(cid)
    if not found:
        raise ModuleBtfMismatch(
            f"distilled base type {d.describe()} has no match in the target vmlinux",
            obj=name, hint="the module was built for a kernel whose types differ from the target",
        )
    if len(found) > 1 and d.kind in _COMPOSITE:
        raise ModuleBtfMismatch(
            f"distilled base type {d.describe()} matches several vmlinux types "
            f"({', '.join(map(str, found))}) of the same size",
            obj=name,
        )
    return found[0]


def check_base(split: Btf, base: Btf, name: str) -> None:
    """Raise ModuleBtfMismatch when `split` was not built on top of `base`.

    Split BTF points into its base by string offset and type id only, so a module built
    against another vmlinux parses fine but means nonsense. Two checks catch it: every
    name offset into the base's string section must start a string there, and what the
    module's types refer to in the base must be of a kind that can be referred to that
    way (a member is never a FUNC, a pointer never points to a VAR ...)."""
    base_strs = base.header.str_len if hasattr(base, "header") else 0
    start = split.start_id
    bad: list[str] = []
    for tid in range(start, len(split) + 1):
        try:
            t = split.type(tid)
        except BpfObjError as exc:
            raise ModuleBtfMismatch(
                f"type [{tid}] cannot be read on this base: {exc.message}", obj=name,
                hint="the module's BTF was built against another vmlinux",
            ) from None
        for ref in _value_refs(t):
            if 0 < ref < start and base.kind(ref) in _NOT_A_VALUE_TYPE:
                bad.append(f"{t.describe()} refers to base {base.type(ref).describe()}")
        if len(bad) >= 3:
            break
    offsets = _base_name_offsets(split, base_strs)
    raw_strs = _base_string_bytes(base)
    for off in offsets:
        if off and raw_strs is not None and off < len(raw_strs) and raw_strs[off - 1] != 0:
            bad.append(f"name offset {off} points into the middle of a base string")
            break
    if bad:
        raise ModuleBtfMismatch(
            "module BTF does not match the target vmlinux: " + "; ".join(bad[:3]),
            obj=name,
            hint="the module was built against another kernel build; use the module BTF "
            "of the target kernel",
        )


def _value_refs(t: T.BtfType) -> list[int]:
    if isinstance(t, T.Struct | T.Union):
        return [mb.type for mb in t.members]
    if isinstance(t, T.Array):
        return [t.type]
    if isinstance(t, T.Ptr | T.Var | T.Typedef | T.Const | T.Volatile | T.Restrict):
        return [t.type]
    return []


def _base_name_offsets(split: Btf, base_str_len: int) -> list[int]:
    """The raw name offsets of the split types that point into the base's strings."""
    out: list[int] = []
    words = getattr(split, "_w", None)
    offs = getattr(split, "_offs", None)
    if words is None or offs is None:
        return out
    for i in range(len(offs)):
        off = int(words[offs[i]])
        if 0 < off < base_str_len:
            out.append(off)
    return out


def _base_string_bytes(base: Btf) -> bytes | None:
    hdr = getattr(base, "header", None)
    if hdr is None:
        return None
    raw = base.raw
    begin = hdr.hdr_len + hdr.str_off
    return bytes(raw[begin : begin + hdr.str_len])


def load_module_btf(
    data: bytes, vmlinux: Btf, name: str, *, base_data: bytes | None = None
) -> Btf:
    """Module BTF (raw bytes of any form above) as split BTF on `vmlinux`.

    `base_data` is a distilled base (.BTF.base) when the caller has one; an ELF .ko is
    searched for .BTF and .BTF.base itself."""
    from bpfobj.btf.reader import Btf

    if data[:4] == b"\x7fELF":
        from bpfobj.elf.reader import read_elf_sections

        secs = read_elf_sections(data, name)
        if ".BTF" not in secs:
            raise BtfError("module file has no .BTF section", obj=name,
                           hint="build the module with CONFIG_DEBUG_INFO_BTF_MODULES=y")
        data, base_data = secs[".BTF"], secs.get(".BTF.base", base_data)
    if base_data is not None:
        dist = Btf.parse(base_data, name=f"{name}:.BTF.base", cache=False)
        split = Btf.parse(data, base=dist, name=name, cache=False)
        return relocate_distilled(split, vmlinux, name)
    standalone = _try_standalone(data, name)
    if standalone is not None:
        return standalone_to_split(standalone, vmlinux, name)
    split = Btf.parse(data, base=vmlinux, name=name, cache=False)
    check_base(split, vmlinux, name)
    return split


def _try_standalone(data: bytes, name: str) -> Btf | None:
    """`data` parsed as BTF of its own, if it is complete on its own (every reference and
    name inside itself); split BTF is not: it names base strings and types."""
    from bpfobj.btf.reader import Btf

    try:
        btf = Btf.parse(data, name=name, cache=False)
        if not len(btf):
            return None
        btf.validate()
        if btf.string(0) != "":
            return None
    except BpfObjError:
        return None
    return btf
