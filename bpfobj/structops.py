"""struct_ops, the offline half: maps from ``.struct_ops`` sections at open, their kernel
layout at prepare. Pure: no kernel involved.

A struct_ops object fills a kernel "ops" struct (``tcp_congestion_ops``, ``sched_ext_ops``)
with BPF programs::

    SEC("struct_ops/my_ssthresh") __u32 my_ssthresh(...) { ... }
    SEC(".struct_ops.link") struct tcp_congestion_ops my_cc = { .ssthresh = (void *)my_ssthresh, .name = "my_cc" };

* open (`collect_struct_ops`, libbpf init_struct_ops_maps() and
  bpf_object__collect_st_ops_relos()): each variable of ``.struct_ops`` / ``.struct_ops.link``
  (``?`` in front: not created by default) is a `MapSpec` of kind STRUCT_OPS named after the
  variable, its value the variable's local BTF struct, its ``values`` the function-pointer
  members (index in the local struct) bound to programs by the section's ELF relocations;
* prepare (`plan_struct_ops`, libbpf bpf_map__init_kern_struct_ops() and
  bpf_object_adjust_struct_ops_autoload()): against the target BTF, the kernel struct and its
  value wrapper ``struct bpf_struct_ops_<name>``, members matched by name, the value bytes in
  the kernel's layout with each program's slot recorded (`StructOpsPlan`), and each program's
  attach_btf_id (the kernel struct) and expected_attach_type (the kernel member's index).

The kernel layer (`bpfobj.loader`, `bpfobj.struct_ops_map`) creates the map with
``btf_vmlinux_value_type_id``, loads the programs with those ids, writes the program fds into
the slots and registers the map.
"""

from __future__ import annotations

from bpfobj import records
from bpfobj.errors import LinkError, SpecError
from bpfobj.uapi import BPF_F_LINK, BtfKind, MapType, ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from bpfobj.btf import Btf
    from bpfobj.btf.target import TargetBtf
    from bpfobj.collect import _Collector
    from bpfobj.spec import MapSpec, ObjectSpec, ProgramSpec

VALUE_PREFIX = "bpf_struct_ops_"  # libbpf STRUCT_OPS_VALUE_PREFIX
LINK_SECTION = ".struct_ops.link"
_MODS = (BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG)
_SHN_LORESERVE = 0xFF00


# --------------------------------------------------------------------------------------
# open
# --------------------------------------------------------------------------------------


def _skip_mods(btf: Btf, type_id: int) -> int:
    """libbpf skip_mods_and_typedefs()."""
    seen = 0
    while type_id and btf.kind(type_id) in _MODS:
        type_id = btf.type(type_id).type  # type: ignore[attr-defined]
        seen += 1
        if seen > 64:
            break
    return type_id


def is_func_ptr(btf: Btf, type_id: int) -> bool:
    """libbpf resolve_func_ptr(): a pointer (through modifiers) to a FUNC_PROTO."""
    tid = _skip_mods(btf, type_id)
    if not tid or btf.kind(tid) != BtfKind.PTR:
        return False
    target = _skip_mods(btf, btf.type(tid).type)  # type: ignore[attr-defined]
    return bool(target) and btf.kind(target) == BtfKind.FUNC_PROTO


def collect_struct_ops(c: _Collector, programs: Sequence[ProgramSpec]) -> list[MapSpec]:
    """The struct_ops maps of the object, in section then variable order (libbpf
    bpf_object_init_struct_ops()), with their program slots from the relocations."""
    from bpfobj.collect import STRUCT_OPS_SECTIONS
    from bpfobj.spec import MapKind, MapSpec

    btf = c.btf
    out: list[MapSpec] = []
    for sec in c.elf.sections:
        bare = sec.name.removeprefix("?")
        if bare not in STRUCT_OPS_SECTIONS:
            continue
        if btf is None:
            raise c.error(f"the object has a {sec.name} section but no BTF", section=sec.name,
                          hint="compile with -g so that clang emits BTF")
        datasecs = btf.find(sec.name, BtfKind.DATASEC)
        if not datasecs:
            raise c.error(f"BTF has no DATASEC {sec.name!r} for the struct_ops variables",
                          section=sec.name, hint="compile with -g (clang 10+)")
        maps: list[MapSpec] = []
        for vi, _linkage in c._datasec_vars(datasecs[0], sec):
            var = btf.type(vi.type)
            var_name = var.name
            type_id = _skip_mods(btf, getattr(var, "type", 0))
            t = btf.type(type_id) if type_id else None
            if t is None or not t.name:
                raise c.error(f"struct_ops variable {var_name!r} has an anonymous type, which "
                              "libbpf does not support", section=sec.name,
                              hint="declare it as `struct <kernel ops struct> name = {...}`")
            if t.kind != BtfKind.STRUCT:
                raise c.error(f"struct_ops variable {var_name!r} is a {t.kind.label} "
                              f"{t.name!r}, not a struct", section=sec.name,
                              type=f"[{type_id}]")
            size = int(t.size)  # type: ignore[attr-defined]
            if vi.offset + size > len(sec.data):
                raise c.error(f"struct_ops variable {var_name!r} at {vi.offset}+{size} is past "
                              f"the end of {sec.name}", section=sec.name,
                              hint="the object is corrupt")
            maps.append(MapSpec(
                name=var_name, section=bare, kind=MapKind.STRUCT_OPS, type=MapType.STRUCT_OPS,
                key_size=4, value_size=size, max_entries=1,
                flags=BPF_F_LINK if bare == LINK_SECTION else 0,
                value_type_id=type_id, data=bytes(sec.data[vi.offset: vi.offset + size]),
                kernel_name=var_name[:15], section_index=sec.index, section_offset=vi.offset,
                autocreate=not sec.name.startswith("?"),
            ))
        _collect_relos(c, sec.index, sec.name, maps, programs)
        out.extend(maps)
    return out


def _collect_relos(c: _Collector, shndx: int, section: str, maps: list[MapSpec],
                   programs: Sequence[ProgramSpec]) -> None:
    """libbpf bpf_object__collect_st_ops_relos(): each relocation binds a function-pointer
    member of one map to a struct_ops program."""
    btf = c.btf
    assert btf is not None
    by_place = {(p.section_index, p.section_offset): p for p in programs}
    for r in c.elf.relocations.get(shndx, ()):
        sym = c.elf.symbols[r.symbol] if 0 <= r.symbol < len(c.elf.symbols) else None
        if sym is None:
            raise c.error(f"struct_ops relocation at offset {r.offset}: symbol #{r.symbol} not "
                          "found", section=section, hint="the object is corrupt")
        owner = next((m for m in maps if m.section_offset <= r.offset
                      < m.section_offset + m.value_size), None)
        if owner is None:
            raise c.error(f"struct_ops relocation at offset {r.offset} (to {sym.name!r}) is "
                          "outside every struct_ops variable", section=section,
                          hint="the object is corrupt")
        moff = r.offset - owner.section_offset
        if sym.shndx >= _SHN_LORESERVE:
            raise c.error(f"struct_ops map {owner.name!r}: offset {moff} refers to "
                          f"{sym.name!r}, which is not a function of this object",
                          section=section, map=owner.name)
        if sym.value % 8:
            raise c.error(f"struct_ops map {owner.name!r}: target {sym.name!r} is at byte "
                          f"{sym.value}, not on an instruction", section=section,
                          map=owner.name, hint="the object is corrupt")
        st = btf.type(owner.value_type_id)
        members = st.members  # type: ignore[attr-defined]
        idx = next((i for i, m in enumerate(members) if m.bit_offset == moff * 8), None)
        if idx is None:
            raise c.error(f"struct_ops map {owner.name!r}: no member of struct {st.name!r} "
                          f"starts at offset {moff}", section=section, map=owner.name)
        member = members[idx]
        if not is_func_ptr(btf, member.type):
            raise c.error(f"struct_ops map {owner.name!r}: member {member.name!r} is not a "
                          f"function pointer, but is set to {sym.name!r}", section=section,
                          map=owner.name,
                          hint="only function-pointer members can name programs")
        prog = by_place.get((sym.shndx, sym.value // 8))
        if prog is None:
            raise c.error(f"struct_ops map {owner.name!r}: member {member.name!r} refers to "
                          f"{sym.name!r}, which is not a program of this object",
                          section=section, map=owner.name)
        if prog.type != ProgType.STRUCT_OPS:
            raise c.error(f"struct_ops map {owner.name!r}: member {member.name!r} is set to "
                          f"program {prog.name!r} of section {prog.section!r}, not a "
                          "struct_ops program", section=section, map=owner.name,
                          program=prog.name,
                          hint='put the program in SEC("struct_ops/<name>")')
        owner.values[idx] = prog.name


# --------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------


@records.frozen
class StructOpsSlot:
    """A function-pointer member of the kernel struct that gets a program's fd at load."""

    member: str
    member_index: int  # index in the kernel struct: the program's expected_attach_type
    offset: int  # byte offset in the map value (the bpf_struct_ops_<name> wrapper)
    program: str


@records.frozen
class StructOpsPlan:
    """A struct_ops map as the target kernel wants it: what BPF_MAP_CREATE and the value
    update take, computed offline (libbpf's st_ops->kern_vdata and kern_func_off)."""

    map: str
    type_name: str  # the kernel struct, e.g. "tcp_congestion_ops"
    kern_type_id: int  # its id in the target BTF: the programs' attach_btf_id
    kern_value_type_id: int  # struct bpf_struct_ops_<name>: btf_vmlinux_value_type_id
    value_size: int  # sizeof(struct bpf_struct_ops_<name>): the map's value_size
    data_offset: int  # where the kernel struct sits in the value
    data: bytes = records.field(repr=False)  # the value, program slots zero
    slots: tuple[StructOpsSlot, ...] = ()
    module: str | None = None  # the module whose BTF holds the types (None: vmlinux)
    skipped: tuple[str, ...] = ()  # zero members the kernel struct lacks

    def value(self, prog_fds: dict[str, int], byteorder: str) -> bytes:
        """The value with each slot holding its program's fd (libbpf
        bpf_map_prepare_vdata()), as BPF_MAP_UPDATE_ELEM takes it."""
        buf = bytearray(self.data)
        for s in self.slots:
            buf[s.offset: s.offset + 8] = prog_fds[s.program].to_bytes(8, byteorder)  # type: ignore[arg-type]
        return bytes(buf)

    def to_json(self) -> dict[str, Any]:
        return {
            "map": self.map, "type": self.type_name, "kern_type_id": self.kern_type_id,
            "kern_value_type_id": self.kern_value_type_id, "value_size": self.value_size,
            "module": self.module, "data": self.data.hex(), "skipped": list(self.skipped),
            "slots": [{"member": s.member, "member_index": s.member_index,
                       "offset": s.offset, "program": s.program} for s in self.slots],
        }


@records.frozen
class StructOpsTarget:
    """What a struct_ops program is loaded with (libbpf prog->attach_btf_id,
    expected_attach_type, attach_btf_obj_fd)."""

    attach_btf_id: int
    member_index: int
    module: str | None
    maps: tuple[str, ...]


def essential_name(name: str) -> str:
    """libbpf bpf_core_essential_name_len(): ``tcp_congestion_ops___v2`` -> the kernel's."""
    i = name.find("___")
    return name[:i] if i > 0 else name


def _find_kern_types(m: MapSpec, tname: str, target: TargetBtf, obj: str
                     ) -> tuple[str, Btf, int, int, Any]:
    """libbpf find_struct_ops_kern_types(): (source, btf, type id, value type id, the
    value's data member)."""
    vname = VALUE_PREFIX + tname
    for source, btf in target.all():
        vids = btf.find(vname, BtfKind.STRUCT)
        if not vids:
            continue
        tids = btf.find(tname, BtfKind.STRUCT)
        if not tids:
            raise LinkError(f"struct_ops map {m.name!r}: struct {tname!r} is not in the target "
                            f"BTF ({target.describe()}), though {vname!r} is", obj=obj,
                            map=m.name, hint="the target BTF is inconsistent")
        vtype = btf.type(vids[0])
        member = next((mm for mm in vtype.members  # type: ignore[attr-defined]
                       if mm.type == tids[0]), None)
        if member is None:
            raise LinkError(f"struct_ops map {m.name!r}: struct {vname!r} has no member of "
                            f"type struct {tname!r} in the target BTF", obj=obj, map=m.name,
                            hint="the target BTF is inconsistent")
        return source, btf, tids[0], vids[0], member
    raise LinkError(
        f"struct_ops map {m.name!r}: the target kernel has no struct_ops type {tname!r} "
        f"(no struct {vname!r} in {target.describe()})", obj=obj, map=m.name,
        hint="the kernel lacks this struct_ops (too old, or its subsystem is not built in "
             "or its module not loaded); check the struct's name",
    )


def plan_map(m: MapSpec, spec: ObjectSpec, target: TargetBtf) -> StructOpsPlan:
    """libbpf bpf_map__init_kern_struct_ops() for one map."""
    btf = spec.btf
    assert btf is not None
    obj = spec.name
    local = btf.type(m.value_type_id)
    tname = essential_name(local.name)
    source, kbtf, kern_type_id, kern_vtype_id, data_member = _find_kern_types(
        m, tname, target, obj)
    ktype = kbtf.type(kern_type_id)
    kmembers = {km.name: (i, km) for i, km in enumerate(ktype.members)}  # type: ignore[attr-defined]
    vsize = kbtf.size_of(kern_vtype_id)
    data_off = data_member.bit_offset // 8
    buf = bytearray(vsize)
    data = m.data or bytes(m.value_size)
    slots: list[StructOpsSlot] = []
    skipped: list[str] = []

    def err(message: str, hint: str) -> LinkError:
        return LinkError(f"struct_ops map {m.name!r}: {message}", obj=obj, map=m.name,
                         type=f"struct {tname}", hint=hint)

    for i, member in enumerate(local.members):  # type: ignore[attr-defined]
        mname = member.name
        moff = member.bit_offset // 8
        msize = btf.size_of(member.type)
        mdata = data[moff: moff + msize]
        prog = m.values.get(i)
        found = kmembers.get(mname)
        if found is None:
            if prog is not None or any(mdata):
                what = f"is set to program {prog!r}" if prog is not None else "is not zero"
                raise err(f"member {mname!r} {what}, but the target kernel's struct {tname} "
                          f"has no such member ({target.describe()})",
                          "leave the member unset (zero) for kernels without it, or use a "
                          "struct flavor (struct <name>___v2) per kernel")
            skipped.append(mname)
            continue
        kidx, kmember = found
        if member.bitfield_size or kmember.bitfield_size:
            raise err(f"member {mname!r} is a bitfield, which struct_ops does not support",
                      "declare the member without a bit width")
        kmoff = kmember.bit_offset // 8
        mtype = _skip_mods(btf, member.type)
        kmtype = _skip_mods(kbtf, kmember.type)
        if btf.kind(mtype) != kbtf.kind(kmtype):
            raise err(f"member {mname!r} is a {btf.kind(mtype).label} here but a "
                      f"{kbtf.kind(kmtype).label} in the target kernel",
                      "declare the member with the kernel's type")
        if btf.kind(mtype) == BtfKind.PTR:
            if prog is None:
                if any(mdata):
                    raise err(f"pointer member {mname!r} is set, but not to a struct_ops "
                              "program", "only function pointers to programs can be set")
                continue
            kproto = _skip_mods(kbtf, kbtf.type(kmtype).type)  # type: ignore[attr-defined]
            if not kproto or kbtf.kind(kproto) != BtfKind.FUNC_PROTO:
                raise err(f"member {mname!r} is a function pointer here but not in the target "
                          "kernel", "check the member against the kernel's struct")
            slots.append(StructOpsSlot(member=mname, member_index=kidx,
                                       offset=data_off + kmoff, program=prog))
            continue
        ksize = kbtf.size_of(kmtype)
        if msize != ksize:
            raise err(f"member {mname!r} is {msize} bytes here but {ksize} in the target kernel",
                      "declare the member with the kernel's type")
        buf[data_off + kmoff: data_off + kmoff + msize] = mdata
    return StructOpsPlan(
        map=m.name, type_name=tname, kern_type_id=kern_type_id,
        kern_value_type_id=kern_vtype_id, value_size=vsize, data_offset=data_off,
        data=bytes(buf), slots=tuple(slots), module=None if source == "vmlinux" else source,
        skipped=tuple(skipped),
    )


def plan_struct_ops(spec: ObjectSpec, target: TargetBtf | None
                    ) -> tuple[dict[str, StructOpsPlan], dict[str, StructOpsTarget],
                               dict[str, bool]]:
    """Every created struct_ops map's plan, each referenced program's attach target, and
    the autoload libbpf gives the referenced programs (bpf_object__init_kern_struct_ops_maps
    then bpf_object_adjust_struct_ops_autoload: a program is loaded when some created map
    uses it)."""
    from bpfobj.spec import MapKind

    maps = [m for m in spec.maps.values() if m.kind is MapKind.STRUCT_OPS]
    if not maps:
        return {}, {}, {}
    if target is None:
        raise LinkError("struct_ops maps need the target kernel's BTF", obj=spec.name,
                        map=maps[0].name,
                        hint="prepare against a kernel BTF (the running kernel's by default)")
    plans: dict[str, StructOpsPlan] = {}
    targets: dict[str, StructOpsTarget] = {}
    for m in maps:
        if not m.autocreate:
            continue
        plan = plan_map(m, spec, target)
        plans[m.name] = plan
        for s in plan.slots:
            prev = targets.get(s.program)
            if prev is None:
                targets[s.program] = StructOpsTarget(plan.kern_type_id, s.member_index,
                                                     plan.module, (m.name,))
                continue
            if (prev.attach_btf_id, prev.module) != (plan.kern_type_id, plan.module) \
                    or prev.member_index != s.member_index:
                raise LinkError(
                    f"struct_ops map {m.name!r}: program {s.program!r} is set to member "
                    f"{s.member!r} of struct {plan.type_name} but also to another member or "
                    f"struct (in map {prev.maps[0]!r})", obj=spec.name, map=m.name,
                    program=s.program,
                    hint="a struct_ops program serves one member of one struct; write one "
                         "program per member")
            targets[s.program] = records.evolve(prev, maps=(*prev.maps, m.name))
    # autoload: referenced from some map -> loaded iff some referencing map is created
    autoload: dict[str, bool] = {}
    for m in maps:
        for prog in m.values.values():
            autoload[prog] = autoload.get(prog, False) or prog in targets
    return plans, targets, autoload


def unreferenced_error(spec: ObjectSpec, prog: ProgramSpec) -> SpecError:
    """libbpf bpf_object_load_prog(): a struct_ops program no map uses cannot load."""
    return SpecError(
        f"struct_ops program {prog.name!r} is not set in any struct_ops map",
        obj=spec.name, program=prog.name, section=prog.section,
        hint="set it as a member of a struct in SEC(\".struct_ops\") or "
             "SEC(\".struct_ops.link\"), or turn its autoload off (SEC(\"?struct_ops/...\"))",
    )
