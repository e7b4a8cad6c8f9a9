"""What libbpf does to an object's BTF before BPF_BTF_LOAD, as a pure function.

Open time (bpf_object__open, libbpf.c):

* bpf_object__collect_externs: when .ksyms holds an extern function, append a VAR
  "dummy_ksym" (add_dummy_ksym_var); every .ksyms variable becomes an allocated global
  of the first 32-bit INT, every .ksyms function becomes a global FUNC whose secinfo points
  at dummy_ksym, with unnamed parameters named "dummy_ksym"; the secinfos get offsets
  0, 4, 8, ... and size 4. .kconfig variables become allocated globals at the offsets of
  the .kconfig map (`Extern.kcfg_offset`), the DATASEC sized to that map;
* bpf_object_fixup_btf / btf_fixup_datasec: a DATASEC of size 0 (clang's) takes the size
  of its ELF section and its global variables the values of their ELF symbols; a global
  variable whose symbol is hidden or internal becomes static; secinfos are sorted by
  offset (stably, as glibc's qsort is).

Load time (bpf_object__sanitize_and_load_btf): FUNCs of hidden global subprograms
(`ProgramSpec.mark_btf_static`) become static, then the BTF is sanitised for the kernel's
features (`bpfobj.btf.sanitize`). Before that, on kernels without __arg_ctx support
(FEAT_ARG_CTX_TAG), libbpf 1.4+ rewrites the context arguments of global subprograms per
program (bpf_program_fixup_func_info): `fixup_func_info_arg_ctx`, which the load phase
calls for each program and whose new func_info type ids it uses.

Type ids never change: libbpf only appends (dummy_ksym, enum64_placeholder), so func_info,
map definitions and instructions keep their ids; `FixedBtf.id_map` stays empty and is
there for callers that must not assume it.

The ELF facts this needs (section sizes, symbol values and visibility) are not in
`ObjectSpec`: pass the `ElfObject` of `bpfobj.elf.reader.read_elf(data)` (or anything with
the same `sections` / `symbols` fields). This module does not read ELF itself, so that
bpfobj.btf keeps away from pyelftools.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bpfobj import records
from bpfobj.btf import types as T
from bpfobj.btf.writer import BtfBuilder
from bpfobj.errors import SpecError
from bpfobj.spec import ExternKind
from bpfobj.uapi import BtfFuncLinkage, BtfKind, BtfVarLinkage, ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Protocol

    from bpfobj.btf.reader import Btf
    from bpfobj.btf.sanitize import BtfFeatures
    from bpfobj.spec import Extern, ObjectSpec
else:
    Protocol = object  # protocols only matter to the type checker

KSYMS_SEC = ".ksyms"
KCONFIG_SEC = ".kconfig"
DUMMY_KSYM = "dummy_ksym"

# ELF constants (elf.h) for the symbol checks libbpf makes.
_STT_OBJECT = 1
_STB_GLOBAL = 1
_STB_WEAK = 2
_STV_INTERNAL = 1
_STV_HIDDEN = 2


class ElfSymbolLike(Protocol):
    """The fields of `bpfobj.elf.reader.Symbol` used here."""

    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    @property
    def type(self) -> int: ...
    @property
    def bind(self) -> int: ...
    @property
    def visibility(self) -> int: ...


class ElfSectionLike(Protocol):
    """The fields of `bpfobj.elf.reader.Section` used here."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...


class ElfLike(Protocol):
    """What fixup reads from the object: `bpfobj.elf.reader.ElfObject` fits."""

    @property
    def sections(self) -> Sequence[ElfSectionLike]: ...
    @property
    def symbols(self) -> Sequence[ElfSymbolLike]: ...


@records.frozen
class FixedBtf:
    """The BTF to hand to BPF_BTF_LOAD, and what changed.

    ``raw``: the encoded BTF; ``id_map``: old -> new type ids for ids that moved (always
    empty: libbpf only appends); ``dummy_ksym_id``: the appended dummy_ksym VAR (0: none);
    ``enum64_placeholder_id``: the INT sanitisation appended (0: none);
    ``static_funcs``: FUNC ids turned static for hidden subprograms."""

    raw: bytes = records.field(repr=False)
    id_map: Mapping[int, int] = records.field(factory=dict)
    dummy_ksym_id: int = 0
    enum64_placeholder_id: int = 0
    static_funcs: tuple[int, ...] = ()

    def to_btf(self, name: str = "") -> Btf:
        from bpfobj.btf.reader import Btf

        return Btf.parse(self.raw, name=name, cache=False)


def open_btf(spec: ObjectSpec, elf: ElfLike) -> FixedBtf | None:
    """The object's BTF as libbpf holds it after bpf_object__open (externs rewritten,
    DATASECs fixed up); None when the object has no BTF."""
    if spec.btf is None:
        return None
    b = BtfBuilder.from_btf(spec.btf)
    dummy = fixup_open_btf(b, elf, spec.externs, obj=spec.name)
    return FixedBtf(b.encode(), dummy_ksym_id=dummy)


def load_btf_for_kernel(
    spec: ObjectSpec, elf: ElfLike, features: BtfFeatures | None = None
) -> FixedBtf | None:
    """The BTF libbpf would load for `spec`: the open-time fixups, hidden global
    subprograms' FUNCs made static, then (when `features` is given) sanitised for a kernel
    with those features. None when the object has no BTF.

    A loader that also needs the __arg_ctx rewrite composes the steps itself, in libbpf's
    order::

        b = BtfBuilder.from_btf(spec.btf)
        dummy = fixup_open_btf(b, elf, spec.externs)
        ids = fixup_func_info_arg_ctx(b, prog.name, prog.type, ids)  # per program
        fixed = finish_load_btf(b, spec, features, dummy_ksym_id=dummy)
    """
    if spec.btf is None:
        return None
    b = BtfBuilder.from_btf(spec.btf)
    dummy = fixup_open_btf(b, elf, spec.externs, obj=spec.name)
    return finish_load_btf(b, spec, features, dummy_ksym_id=dummy)


def finish_load_btf(
    b: BtfBuilder,
    spec: ObjectSpec,
    features: BtfFeatures | None = None,
    *,
    dummy_ksym_id: int = 0,
) -> FixedBtf:
    """bpf_object__sanitize_and_load_btf on `b`: hidden subprograms' FUNCs made static,
    then sanitised for `features` (None: the kernel has them all); encoded."""
    from bpfobj.btf.sanitize import sanitize_builder

    hidden = [p.name for p in spec.subprograms.values() if p.mark_btf_static]
    statics = mark_funcs_static(b, hidden)
    placeholder = 0
    if features is not None:
        placeholder = sanitize_builder(b, features)
    return FixedBtf(
        b.encode(),
        dummy_ksym_id=dummy_ksym_id,
        enum64_placeholder_id=placeholder,
        static_funcs=tuple(statics),
    )


# --------------------------------------------------------------------------------------
# The steps, on a builder
# --------------------------------------------------------------------------------------


def fixup_open_btf(
    b: BtfBuilder, elf: ElfLike, externs: Sequence[Extern], *, obj: str | None = None
) -> int:
    """bpf_object__collect_externs' BTF edits, then bpf_object_fixup_btf, on `b`.
    `externs` are the object's (`ObjectSpec.externs`). Returns the dummy_ksym id or 0."""
    dummy = add_dummy_ksym_var(b)
    rewrite_extern_datasecs(b, externs, dummy, obj=obj)
    fixup_datasecs(b, elf, obj=obj)
    return dummy


def find_int_btf_id(b: BtfBuilder) -> int:
    """libbpf find_int_btf_id(): the first INT of 32 bits, 0 if none."""
    for tid in b.own_ids():
        if b.kind(tid) == BtfKind.INT:
            t = b.type(tid)
            if isinstance(t, T.Int) and t.nr_bits == 32:
                return tid
    return 0


def add_dummy_ksym_var(b: BtfBuilder) -> int:
    """libbpf add_dummy_ksym_var(): append VAR "dummy_ksym" (allocated global of the first
    32-bit INT) when the .ksyms DATASEC holds a FUNC. Returns its id, or 0."""
    sec_id = _find_datasec(b, KSYMS_SEC)
    if not sec_id:
        return 0
    sec = b.type(sec_id)
    assert isinstance(sec, T.Datasec)
    if not any(b.kind(v.type) == BtfKind.FUNC for v in sec.vars):
        return 0
    return b.add_var(DUMMY_KSYM, find_int_btf_id(b), BtfVarLinkage.GLOBAL_ALLOCATED)


def rewrite_extern_datasecs(
    b: BtfBuilder, externs: Sequence[Extern], dummy_id: int, *, obj: str | None = None
) -> None:
    """The end of bpf_object__collect_externs: .ksyms and .kconfig DATASECs become
    allocated variables the kernel accepts."""
    if not externs:
        return
    by_name = {e.name: e for e in externs}
    kinds = {e.kind for e in externs}
    if ExternKind.KSYM in kinds:
        sec_id = _extern_datasec(b, externs, ExternKind.KSYM)
        if sec_id:
            _rewrite_ksyms(b, sec_id, by_name, dummy_id, obj)
    if ExternKind.KCONFIG in kinds:
        sec_id = _extern_datasec(b, externs, ExternKind.KCONFIG)
        if sec_id:
            _rewrite_kconfig(b, sec_id, externs, by_name, obj)


def _rewrite_ksyms(
    b: BtfBuilder, sec_id: int, by_name: Mapping[str, Extern], dummy_id: int, obj: str | None
) -> None:
    sec = b.type(sec_id)
    assert isinstance(sec, T.Datasec)
    int_id = find_int_btf_id(b)
    dummy_name = b.name(dummy_id) if dummy_id else ""
    vars_: list[T.VarSecinfo] = []
    off = 0
    for vs in sec.vars:
        vt = b.type(vs.type)
        if vt.name not in by_name:
            raise SpecError(
                f"no extern for BTF {vt.kind.name} {vt.name!r} of {KSYMS_SEC}",
                obj=obj,
                section=KSYMS_SEC,
                type=vt.describe(),
                hint="the object is corrupt (BTF and symbol table disagree)",
            )
        if isinstance(vt, T.Func):
            proto = b.type(vt.type)
            if isinstance(proto, T.FuncProto) and any(p.type and not p.name for p in proto.params):
                # reuse the dummy_ksym string for the missing parameter names
                params = tuple(
                    T.Param(dummy_name, p.type) if p.type and not p.name else p
                    for p in proto.params
                )
                b.set_type(proto.id, records.evolve(proto, params=params))
            if vt.linkage != BtfFuncLinkage.GLOBAL:
                b.set_type(vt.id, records.evolve(vt, linkage=BtfFuncLinkage.GLOBAL))
            vs = T.VarSecinfo(dummy_id, off, 4)
        else:
            if isinstance(vt, T.Var):
                b.set_type(
                    vt.id, records.evolve(vt, type=int_id, linkage=BtfVarLinkage.GLOBAL_ALLOCATED)
                )
            vs = T.VarSecinfo(vs.type, off, 4)
        vars_.append(vs)
        off += 4
    b.set_type(sec_id, records.evolve(sec, size=off, vars=tuple(vars_)))


def _rewrite_kconfig(
    b: BtfBuilder,
    sec_id: int,
    externs: Sequence[Extern],
    by_name: Mapping[str, Extern],
    obj: str | None,
) -> None:
    sec = b.type(sec_id)
    assert isinstance(sec, T.Datasec)
    size = 0
    for e in externs:  # the end of the last kconfig extern in libbpf's order
        if e.kind is ExternKind.KCONFIG:
            size = e.kcfg_offset + e.kcfg_size
    vars_: list[T.VarSecinfo] = []
    for vs in sec.vars:
        vt = b.type(vs.type)
        ext = by_name.get(vt.name)
        if ext is None:
            raise SpecError(
                f"no extern for BTF var {vt.name!r} of {KCONFIG_SEC}",
                obj=obj,
                section=KCONFIG_SEC,
                type=vt.describe(),
                hint="the object is corrupt (BTF and symbol table disagree)",
            )
        if isinstance(vt, T.Var) and vt.linkage != BtfVarLinkage.GLOBAL_ALLOCATED:
            b.set_type(vt.id, records.evolve(vt, linkage=BtfVarLinkage.GLOBAL_ALLOCATED))
        vars_.append(records.evolve(vs, offset=ext.kcfg_offset))
    b.set_type(sec_id, records.evolve(sec, size=size, vars=tuple(vars_)))


def fixup_datasecs(b: BtfBuilder, elf: ElfLike, *, obj: str | None = None) -> None:
    """libbpf bpf_object_fixup_btf(): btf_fixup_datasec() on every DATASEC."""
    syms: dict[str, ElfSymbolLike] = {}
    for sym in elf.symbols:  # find_elf_var_sym(): the first global/weak OBJECT symbol
        if sym.type == _STT_OBJECT and sym.bind in (_STB_GLOBAL, _STB_WEAK):
            syms.setdefault(sym.name, sym)
    sizes: dict[str, int] = {}
    for sec in elf.sections:  # elf_sec_by_name(): the first section of that name
        sizes.setdefault(sec.name, sec.size)
    for tid in b.own_ids():
        if b.kind(tid) == BtfKind.DATASEC:
            _fixup_datasec(b, tid, syms, sizes, obj)


def _fixup_datasec(
    b: BtfBuilder,
    tid: int,
    syms: Mapping[str, ElfSymbolLike],
    sizes: Mapping[str, int],
    obj: str | None,
) -> None:
    t = b.type(tid)
    assert isinstance(t, T.Datasec)
    name = t.name
    vars_ = list(t.vars)
    size = t.size
    if name not in (KCONFIG_SEC, KSYMS_SEC):
        fix_offsets = False
        if size == 0:
            size = sizes.get(name, 0)
            if not size:
                raise SpecError(
                    f"cannot find the size of section {name!r} for its BTF DATASEC",
                    obj=obj,
                    section=name,
                    type=t.describe(),
                    hint="the object's BTF names a section the ELF file does not have",
                )
            fix_offsets = True
        for i, vs in enumerate(vars_):
            var = b.type(vs.type)
            if not isinstance(var, T.Var):
                raise SpecError(
                    f"DATASEC {name!r} holds {var.describe()}, not a VAR",
                    obj=obj,
                    section=name,
                    type=t.describe(),
                )
            if var.linkage in (BtfVarLinkage.STATIC, BtfVarLinkage.GLOBAL_EXTERN):
                continue
            sym = syms.get(var.name)
            if sym is None:
                raise SpecError(
                    f"no ELF symbol for variable {var.name!r} of section {name}",
                    obj=obj,
                    section=name,
                    type=var.describe(),
                    hint="the object is corrupt (BTF and symbol table disagree)",
                )
            if fix_offsets:
                vars_[i] = records.evolve(vs, offset=sym.value)
            if sym.visibility in (_STV_HIDDEN, _STV_INTERNAL):
                # hidden globals are static for the kernel (and not mmapable for libbpf)
                b.set_type(var.id, records.evolve(var, linkage=BtfVarLinkage.STATIC))
    vars_.sort(key=lambda v: v.offset)  # compare_vsi_off; glibc's qsort is stable here
    new = records.evolve(t, size=size, vars=tuple(vars_))
    if new != t:
        b.set_type(tid, new)


def mark_funcs_static(b: BtfBuilder, names: Iterable[str]) -> list[int]:
    """bpf_object__sanitize_and_load_btf's first loop: for each hidden global subprogram,
    the first global FUNC of that name becomes static. Returns the FUNC ids changed."""
    wanted = list(names)
    if not wanted:
        return []
    changed: list[int] = []
    for name in wanted:
        for tid in b.find(name, BtfKind.FUNC):
            if tid < b.start_id:
                continue
            t = b.type(tid)
            if isinstance(t, T.Func) and t.linkage == BtfFuncLinkage.GLOBAL:
                b.set_type(tid, records.evolve(t, linkage=BtfFuncLinkage.STATIC))
                changed.append(tid)
                break
    return changed


# libbpf global_ctx_map[]: the context struct of each program type whose global
# subprograms can take a context argument.
GLOBAL_CTX_MAP: Mapping[ProgType, str] = {
    ProgType.CGROUP_DEVICE: "bpf_cgroup_dev_ctx",
    ProgType.CGROUP_SKB: "__sk_buff",
    ProgType.CGROUP_SOCK: "bpf_sock",
    ProgType.CGROUP_SOCK_ADDR: "bpf_sock_addr",
    ProgType.CGROUP_SOCKOPT: "bpf_sockopt",
    ProgType.CGROUP_SYSCTL: "bpf_sysctl",
    ProgType.FLOW_DISSECTOR: "__sk_buff",
    ProgType.KPROBE: "bpf_user_pt_regs_t",
    ProgType.LWT_IN: "__sk_buff",
    ProgType.LWT_OUT: "__sk_buff",
    ProgType.LWT_SEG6LOCAL: "__sk_buff",
    ProgType.LWT_XMIT: "__sk_buff",
    ProgType.NETFILTER: "bpf_nf_ctx",
    ProgType.PERF_EVENT: "bpf_perf_event_data",
    ProgType.RAW_TRACEPOINT: "bpf_raw_tracepoint_args",
    ProgType.RAW_TRACEPOINT_WRITABLE: "bpf_raw_tracepoint_args",
    ProgType.SCHED_ACT: "__sk_buff",
    ProgType.SCHED_CLS: "__sk_buff",
    ProgType.SK_LOOKUP: "bpf_sk_lookup",
    ProgType.SK_MSG: "sk_msg_md",
    ProgType.SK_REUSEPORT: "sk_reuseport_md",
    ProgType.SK_SKB: "__sk_buff",
    ProgType.SOCK_OPS: "bpf_sock_ops",
    ProgType.SOCKET_FILTER: "__sk_buff",
    ProgType.XDP: "xdp_md",
}
ARG_CTX_TAG = "arg:ctx"


def fixup_func_info_arg_ctx(
    b: BtfBuilder,
    prog_name: str,
    prog_type: ProgType,
    func_type_ids: Sequence[int],
    *,
    user_pt_regs: str = "pt_regs",
) -> list[int]:
    """libbpf bpf_program_fixup_func_info() (1.4+), for a kernel without __arg_ctx support:
    each global subprogram `prog_name` calls (its FUNC id is in `func_type_ids`, the
    program's func_info type ids after linking) with a DECL_TAG "arg:ctx" on a parameter
    that is not already the canonical context pointer gets a clone of its FUNC and
    FUNC_PROTO whose parameter points to an empty ``struct <ctx>`` (appended once per
    program), plus a cloned DECL_TAG. Returns the new func_info type ids.

    `user_pt_regs` is the struct that bpf_user_pt_regs_t is on the target architecture
    (x86_64: pt_regs, arm64: user_pt_regs, s390: user_regs_struct), for perf_event."""
    ctx_name = GLOBAL_CTX_MAP.get(prog_type)
    out = list(func_type_ids)
    if ctx_name is None:
        return out
    orig = list(func_type_ids)
    ptr_id = 0
    for tid in range(b.start_id, len(b) + 1):  # the types present when the loop starts
        t = b.type(tid)
        if not isinstance(t, T.DeclTag) or t.name != ARG_CTX_TAG:
            continue
        orig_fn_id = t.type
        fn_t = b.type(orig_fn_id)
        if not isinstance(fn_t, T.Func) or fn_t.linkage != BtfFuncLinkage.GLOBAL:
            continue
        proto = b.type(fn_t.type)
        if not isinstance(proto, T.FuncProto):
            continue
        rec_idx = next((i for i, o in enumerate(orig) if o == orig_fn_id), -1)
        if rec_idx < 0:  # this program does not call that subprogram
            continue
        arg_idx = t.component_idx
        if not 0 <= arg_idx < len(proto.params):
            continue
        if not _need_arg_type_fixup(
            b, prog_type, proto.params[arg_idx].type, ctx_name, user_pt_regs
        ):
            continue
        if out[rec_idx] == orig_fn_id:  # clone FUNC/FUNC_PROTO once per program
            out[rec_idx] = _clone_func(b, fn_t, proto, prog_name)
        if not ptr_id:  # PTR -> STRUCT ctx, once per main program
            struct_id = b.add_struct(ctx_name, 0)
            ptr_id = b.add_ptr(struct_id)
        b.add_decl_tag(ARG_CTX_TAG, out[rec_idx], arg_idx)
        clone = b.type(out[rec_idx])
        assert isinstance(clone, T.Func)
        cproto = b.type(clone.type)
        assert isinstance(cproto, T.FuncProto)
        params = list(cproto.params)
        params[arg_idx] = T.Param(params[arg_idx].name, ptr_id)
        b.set_type(cproto.id, records.evolve(cproto, params=tuple(params)))
    return out


def _need_arg_type_fixup(
    b: BtfBuilder, prog_type: ProgType, arg_type: int, ctx_name: str, user_pt_regs: str
) -> bool:
    """libbpf need_func_arg_type_fixup()."""
    t = b.type(_skip_mods_and_typedefs(b, arg_type))
    if not isinstance(t, T.Ptr):
        return False
    # (libbpf checks here for a `bpf_user_pt_regs_t` typedef, but on the PTR itself, so the
    # check never matches; kept out to behave the same)
    t = b.type(_skip_mods_and_typedefs(b, t.type))
    if isinstance(t, T.Void):
        return True  # `void *`: definitely
    if isinstance(t, T.Struct) and t.name == ctx_name:
        return False  # already the canonical type
    if prog_type == ProgType.KPROBE:
        return isinstance(t, T.Struct) and t.name == "pt_regs"
    if prog_type == ProgType.PERF_EVENT:
        return isinstance(t, T.Struct) and t.name == user_pt_regs
    if prog_type in (ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE):
        return isinstance(t, T.Int) and t.size == 8  # u64 *
    return False


def _skip_mods_and_typedefs(b: BtfBuilder, tid: int) -> int:
    mods = (
        BtfKind.TYPEDEF,
        BtfKind.VOLATILE,
        BtfKind.CONST,
        BtfKind.RESTRICT,
        BtfKind.TYPE_TAG,
    )
    seen = 0
    while tid and b.kind(tid) in mods and seen < 64:
        tid = b.type(tid).type  # type: ignore[attr-defined]
        seen += 1
    return tid


def _clone_func(b: BtfBuilder, fn: T.Func, proto: T.FuncProto, prog_name: str) -> int:
    """libbpf clone_func_btf_info(): a FUNC_PROTO copy (same parameter name strings), then
    a FUNC copy; libbpf adds the FUNC under the program's name and then gives it the
    original name's offset, so the program's name is interned on the way."""
    proto_id = b.add_type(T.FuncProto(0, "", proto.return_type, proto.params))
    b.add_string(prog_name)
    return b.add_type(T.Func(0, fn.name, proto_id, fn.linkage))


def _find_datasec(b: BtfBuilder, name: str) -> int:
    ids = b.find(name, BtfKind.DATASEC)
    return ids[0] if ids else 0


def _extern_datasec(b: BtfBuilder, externs: Sequence[Extern], kind: ExternKind) -> int:
    """libbpf find_extern_sec_btf_id() for the externs of `kind`: the first DATASEC
    holding one of their BTF ids (libbpf keeps the last extern's, which is the same)."""
    ids = {e.btf_id for e in externs if e.kind is kind}
    want = KSYMS_SEC if kind is ExternKind.KSYM else KCONFIG_SEC
    for tid in b.own_ids():
        if b.kind(tid) != BtfKind.DATASEC:
            continue
        t = b.type(tid)
        assert isinstance(t, T.Datasec)
        if t.name == want and any(v.type in ids for v in t.vars):
            return tid
    return 0


__all__ = [
    "DUMMY_KSYM",
    "GLOBAL_CTX_MAP",
    "ElfLike",
    "ElfSectionLike",
    "ElfSymbolLike",
    "FixedBtf",
    "add_dummy_ksym_var",
    "find_int_btf_id",
    "finish_load_btf",
    "fixup_datasecs",
    "fixup_func_info_arg_ctx",
    "fixup_open_btf",
    "load_btf_for_kernel",
    "mark_funcs_static",
    "open_btf",
    "rewrite_extern_datasecs",
]
