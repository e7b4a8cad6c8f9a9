"""The prepare phase: an ObjectSpec plus a target BTF give each program's final instructions.

    prepared = prepare(spec, target)          # no bpf(2): any host, any target kernel
    prepared.programs["handle_exec"].insns    # final instructions, map refs as indices
    prepared.core_log                         # one CoreRecord per CO-RE decision

Order of work follows libbpf's bpf_object__relocate(): CO-RE relocations are applied to each
(sub)program's own code first, then every autoloaded main program is linked (subprograms
appended, calls fixed), then data relocations turn map references into map indices.

__arena globals (section .addr_space.1) go into the object's arena map at the start or at
the end of the arena (`arena_layout`; see `prepare`'s `arena_globals`).
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfobj import records
from bpfobj.errors import BpfObjError, LinkError
from bpfobj.insn import Instruction
from bpfobj.linker import ExternRef, Linker, MapRef, ResolvedExtern
from bpfobj.spec import ARENA_SECTION, Extern, ExternKind, MapSpec, ObjectSpec, ProgramSpec
from bpfobj.uapi import BtfKind, MapType, ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf.ext import CoreRelo
    from bpfobj.btf.target import TargetBtf
    from bpfobj.core.record import CoreRecord
    from bpfobj.structops import StructOpsPlan, StructOpsTarget


@records.define
class PreparedProgram:
    name: str
    section: str
    spec: ProgramSpec = records.field(repr=False)
    insns: list[Instruction] = records.field(repr=False)
    map_refs: list[MapRef] = records.field(factory=list, repr=False)
    extern_refs: list[ExternRef] = records.field(factory=list, repr=False)
    func_info: list[Any] = records.field(factory=list, repr=False)
    line_info: list[Any] = records.field(factory=list, repr=False)
    core_log: list[CoreRecord] = records.field(factory=list, repr=False)
    layout: list[tuple[str, int]] = records.field(factory=list, repr=False)
    # In-kernel CO-RE (prepare(core="kernel")): the relocations PROG_LOAD hands to the
    # kernel, with insn_off in bytes of the final program; the instructions stay unpatched.
    kernel_core_relos: list[CoreRelo] = records.field(factory=list, repr=False)
    # struct_ops programs: the kernel struct (attach_btf_id in the target BTF), the member
    # (expected_attach_type) and the maps that use it; None for other programs.
    struct_ops: StructOpsTarget | None = None

    def to_bytes(self, byteorder: str) -> bytes:
        from bpfobj.insn import encode

        return encode(self.insns, byteorder)  # type: ignore[arg-type]


#: where prepare may place the __arena globals in the arena map
ARENA_PLACEMENTS = ("start", "end")
#: the verifier's limit on ld_imm64 map value offsets before Linux 7.0 (BPF_MAX_VAR_OFF,
#: include/linux/bpf_verifier.h; lifted by kernel commit 12a1fe6e12db)
MAX_LDIMM64_VALUE_OFF = 1 << 29


def arena_placement_for(release: str) -> str:
    """libbpf 1.7's placement of __arena globals on a kernel of `release` (``uname -r``):
    "end" from Linux 7.0, whose verifier takes ld_imm64 map value offsets of any size
    (kernel commit 12a1fe6e12db, what libbpf's FEAT_LDIMM64_FULL_RANGE_OFF probe detects),
    else "start". Decided from the release because prepare makes no bpf(2) call;
    integration/test_arena_globals.py checks it against the probe on every matrix kernel,
    and create_maps refuses globals the kernel cannot reach before creating anything."""
    parts = release.split(".", 2)
    try:
        version = (int(parts[0]), int("".join(c for c in parts[1][:3] if c.isdigit()) or 0))
    except (ValueError, IndexError):
        return "start"
    return "end" if version >= (7, 0) else "start"


@records.frozen
class ArenaLayout:
    """Where the __arena globals (.addr_space.1) are in the arena map: `offset` bytes into
    it (libbpf obj->arena_data_off), `size` bytes (arena_data_sz); `placement` "start"
    (offset 0) or "end" (the last pages)."""

    map: str
    map_index: int
    offset: int
    size: int
    placement: str
    section: str = ARENA_SECTION

    def to_json(self) -> dict[str, Any]:
        return {"map": self.map, "map_index": self.map_index, "section": self.section,
                "offset": self.offset, "size": self.size, "placement": self.placement}


def arena_layout(spec: ObjectSpec, placement: str = "start") -> ArenaLayout | None:
    """Where the object's __arena globals go (None: it has none), as libbpf places them.

    libbpf 1.4 to 1.6 put them at the start of the arena (offset 0). libbpf 1.7 puts them
    at its end, ``mmap_sz - roundup(data_sz, page_size)`` with ``mmap_sz = page_size *
    max_entries`` (bpf_map_mmap_sz()), when the kernel takes ld_imm64 map value offsets of
    any size (FEAT_LDIMM64_FULL_RANGE_OFF: Linux 7.0+), else still at offset 0: libbpf
    1.7.0 src/libbpf.c:7388-7393 (bpf_object__relocate), features.c:509
    (probe_ldimm64_full_range_off); libbpf commits 9dd6fda5 and 429aaef6.
    """
    if placement not in ARENA_PLACEMENTS:
        raise LinkError(f"arena_globals={placement!r}: use 'start' or 'end'", obj=spec.name,
                        section=ARENA_SECTION)
    arena = spec.arena_globals
    if arena is None:
        return None
    m = spec.maps[arena.map]
    offset = 0
    if placement == "end":
        page = arena.page_size
        offset = page * m.max_entries - -(-arena.size // page) * page
    return ArenaLayout(map=arena.map, map_index=list(spec.maps).index(arena.map),
                       offset=offset, size=arena.size, placement=placement)


@records.define
class PreparedObject:
    spec: ObjectSpec = records.field(repr=False)
    programs: dict[str, PreparedProgram]
    maps: list[MapSpec] = records.field(repr=False)
    core_log: list[CoreRecord] = records.field(repr=False)
    externs: list[ResolvedExtern] = records.field(factory=list, repr=False)
    target: str = ""
    core_mode: str = "user"
    # struct_ops maps (created ones): name -> the kernel layout of their value
    struct_ops: dict[str, StructOpsPlan] = records.field(factory=dict, repr=False)
    # where the __arena globals are in the arena map (None: the object has none)
    arena: ArenaLayout | None = None

    def insns(self, name: str) -> list[Instruction]:
        try:
            return self.programs[name].insns
        except KeyError:
            raise LinkError(
                f"no prepared program named {name!r}",
                obj=self.spec.name,
                hint=f"prepared programs are: {', '.join(self.programs) or '(none)'}"
                " (programs with autoload off are not prepared)",
            ) from None

    def to_json(self) -> dict[str, Any]:
        """The `bpfobj prepare --json` document."""
        order = self.spec.byteorder
        return {
            "target": self.target,
            "maps": [
                {"index": i, "name": m.name, "section": m.section, "type": m.type.label}
                for i, m in enumerate(self.maps)
            ],
            "programs": [
                {
                    "name": p.name,
                    "section": p.section,
                    "insns": [i.to_bytes(order).hex() for i in p.insns],  # type: ignore[arg-type]
                    "map_refs": [
                        {"insn": r.insn, "map_index": r.map_index, "map": r.map,
                         "value_off": r.value_off,
                         **({"arena_global": r.arena_global} if r.arena_global else {})}
                        for r in p.map_refs
                    ],
                    **({"attach_btf_id": p.struct_ops.attach_btf_id,
                        "expected_attach_type": p.struct_ops.member_index}
                       if p.struct_ops is not None else {}),
                }
                for p in self.programs.values()
            ],
            "core_relos": [r.to_json() for r in self.core_log],
            **({"struct_ops": [plan.to_json() for plan in self.struct_ops.values()]}
               if self.struct_ops else {}),
            **({"arena": self.arena.to_json()} if self.arena is not None else {}),
        }


def resolve_externs(spec: ObjectSpec, target: TargetBtf | None) -> list[ResolvedExtern]:
    """Find each ksym extern in the target BTF (vmlinux first, then modules), like libbpf's
    bpf_object__resolve_ksyms_btf_id(); kconfig externs need no target BTF."""
    out: list[ResolvedExtern] = []
    for ext in spec.externs:
        if ext.kind is not ExternKind.KSYM or target is None:
            out.append(ResolvedExtern())
            continue
        want = BtfKind.FUNC if ext.is_func else BtfKind.VAR
        found = ResolvedExtern()
        if ext.is_func or ext.type_id:
            name = _essential_name(ext.name)
            for source, btf in target.all():
                ids = [i for i in btf.find(name) if btf.kind(i) == want]
                if ids:
                    found = ResolvedExtern(btf_id=ids[0], module=source if source != "vmlinux" else None)
                    break
            if not found.btf_id and not ext.weak:
                raise _extern_missing(spec, ext, target)
        out.append(found)
    return out


def _essential_name(name: str) -> str:
    """libbpf bpf_core_essential_name_len(): drop a ___flavor suffix."""
    i = name.find("___")
    return name[:i] if i > 0 else name


def _extern_missing(spec: ObjectSpec, ext: Extern, target: TargetBtf) -> LinkError:
    what = "kfunc" if ext.is_func else "kernel variable"
    return LinkError(
        f"extern {what} {ext.name!r} is not in the target BTF ({target.describe()})",
        obj=spec.name,
        section=".ksyms",
        hint="the target kernel lacks it; declare it __weak to make it optional",
    )


def prepare(
    spec: ObjectSpec,
    target: TargetBtf | None,
    *,
    programs: Sequence[str] | None = None,
    core: str = "user",
    arena_globals: str = "start",
) -> PreparedObject:
    """Link and relocate every autoloaded program of `spec` for `target`.

    `target` may be None for objects without CO-RE relocations or ksyms. `programs` limits
    the work to the named main programs (default: every program with autoload on).
    `core`: "user" applies CO-RE relocations here, as libbpf does; "kernel" leaves the
    instructions as compiled and hands the relocations to the kernel at load (5.17+).
    `arena_globals`: where the __arena globals go in the arena map (`arena_layout`):
    "start" as libbpf up to 1.6, and 1.7 on kernels before Linux 7.0; "end" as libbpf 1.7
    on Linux 7.0+ (older kernels take it too while the offset stays below 512 MiB).
    """
    if core not in ("user", "kernel"):
        raise LinkError(f"core={core!r}: use 'user' or 'kernel'", obj=spec.name)
    arena = arena_layout(spec, arena_globals)
    from bpfobj.core.engine import CoreEngine

    if programs is not None:
        unknown = sorted(set(programs) - set(spec.programs))
        if unknown:
            raise LinkError(f"no program named {', '.join(map(repr, unknown))}", obj=spec.name,
                            hint=f"programs are: {', '.join(spec.programs)}")
        # As if only these were autoloaded: libbpf skips the CO-RE relocations of the
        # others, and candidate pruning depends on which relocations ran before.
        spec = records.evolve(spec, programs={
            n: records.evolve(p, autoload=n in programs) for n, p in spec.programs.items()
        })
    so_plans: dict[str, StructOpsPlan] = {}
    so_targets: dict[str, StructOpsTarget] = {}
    if any(p.type == ProgType.STRUCT_OPS for p in spec.programs.values()) or any(
            m.type == MapType.STRUCT_OPS for m in spec.maps.values()):
        spec, so_plans, so_targets = _struct_ops(spec, target, programs)
    linker = Linker(spec, arena_data_off=arena.offset if arena is not None else 0)
    selected = [p for p in spec.programs.values() if p.autoload]
    engine = CoreEngine(spec, target)
    # CO-RE first, on each (sub)program's own code (libbpf: bpf_object__relocate_core).
    patched: dict[str, list[Instruction]] = {}
    core_by_prog: dict[str, list[CoreRecord]] = {}
    for prog in (*selected, *spec.subprograms.values()):
        insns = list(prog.instructions)
        core_by_prog[prog.name] = engine.apply(prog, insns) if core == "user" else []
        patched[prog.name] = insns
    resolved = resolve_externs(spec, target)
    prepared: dict[str, PreparedProgram] = {}
    core_log: list[CoreRecord] = []
    for prog in selected:
        try:
            linked = linker.link(prog, lambda p: patched[p.name], resolved)
        except BpfObjError:
            raise
        # CO-RE records move with their code: each appended subprogram's records get the
        # instruction index they have in this program.
        relos_log: list[CoreRecord] = []
        kernel_relos: list[CoreRelo] = []
        by_name = {**spec.programs, **spec.subprograms}
        for name, base in linked.layout:
            for rec in core_by_prog.get(name, ()):
                relos_log.append(rec.placed(program=prog.name, insn=base + rec.insn))
            if core == "kernel":
                kernel_relos.extend(
                    records.evolve(r, insn_off=r.insn_off + base * 8)
                    for r in by_name[name].core_relos
                )
        prepared[prog.name] = PreparedProgram(
            name=prog.name,
            section=prog.section,
            spec=prog,
            insns=linked.insns,
            map_refs=linked.map_refs,
            extern_refs=linked.extern_refs,
            func_info=linked.func_info,
            line_info=linked.line_info,
            core_log=relos_log,
            layout=linked.layout,
            kernel_core_relos=kernel_relos,
            struct_ops=so_targets.get(prog.name),
        )
        core_log.extend(relos_log)
    failed = [r for r in core_log if r.outcome == "error"]
    if failed:
        raise failed[0].as_error(obj=spec.name)
    return PreparedObject(
        spec=spec,
        programs=prepared,
        maps=[_kernel_map(m, so_plans) for m in spec.maps.values()],
        core_log=core_log,
        externs=resolved,
        target=target.describe() if target is not None else "",
        core_mode=core,
        struct_ops=so_plans,
        arena=arena,
    )


def _struct_ops(spec: ObjectSpec, target: TargetBtf | None, programs: Sequence[str] | None
                ) -> tuple[ObjectSpec, dict[str, StructOpsPlan], dict[str, StructOpsTarget]]:
    """Plan the struct_ops maps against `target` and give the programs they use the
    autoload libbpf gives them; an autoloaded struct_ops program no map uses is an error."""
    from bpfobj.structops import plan_struct_ops, unreferenced_error

    plans, targets, autoload = plan_struct_ops(spec, target)
    changed = {n: a for n, a in autoload.items()
               if n in spec.programs and spec.programs[n].autoload != a
               and (programs is None or n in programs)}
    if changed:
        spec = records.evolve(spec, programs={
            n: records.evolve(p, autoload=changed[n]) if n in changed else p
            for n, p in spec.programs.items()
        })
    for p in spec.programs.values():
        if p.type == ProgType.STRUCT_OPS and p.autoload and p.name not in targets:
            raise unreferenced_error(spec, p)
    return spec, plans, targets


def _kernel_map(m: MapSpec, plans: dict[str, StructOpsPlan]) -> MapSpec:
    """A struct_ops map takes the size of the kernel's value struct (libbpf sets
    def.value_size to it); its value is raw bytes then, not the local struct."""
    plan = plans.get(m.name)
    if plan is None:
        return m
    return records.evolve(m, value_size=plan.value_size, value_type_id=0)
