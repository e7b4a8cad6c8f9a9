"""The open phase: read an ELF object into an `ObjectSpec`.

Mirrors what libbpf's `bpf_object__open` does (libbpf.c: bpf_object__elf_collect,
bpf_object__add_programs, bpf_object__collect_externs, bpf_object__init_maps,
bpf_object__collect_map_relos), so that programs, maps and externs come out the same, in
the same order, with the same sizes. Pure: no kernel involved.
"""

from __future__ import annotations

import mmap
import os
from bisect import bisect_left
from collections.abc import Sequence

from bpfobj import records
from bpfobj.elf.reader import (
    SHF_EXECINSTR,
    SHN_COMMON,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_PROGBITS,
    STB_GLOBAL,
    STB_LOCAL,
    STB_WEAK,
    STT_FUNC,
    STT_NOTYPE,
    STV_HIDDEN,
    STV_INTERNAL,
    ElfObject,
    Section,
    Symbol,
    read_elf,
)
from bpfobj.elf.secdefs import parse_section
from bpfobj.errors import BpfObjError, BtfError, SpecError
from bpfobj.insn import decode
from bpfobj.spec import (
    ARENA_SECTION,
    ArenaGlobals,
    ElfReloc,
    Extern,
    ExternKind,
    KconfigType,
    MapKind,
    MapSpec,
    ObjectSpec,
    ProgramSpec,
)
from bpfobj.uapi import (
    BPF_F_MMAPABLE,
    BPF_F_RDONLY_PROG,
    PIN_BY_NAME,
    PIN_NONE,
    BtfFuncLinkage,
    BtfKind,
    BtfVarLinkage,
    MapType,
    ProgType,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf import Btf, BtfExt

BPF_OBJ_NAME_LEN = 16
_MODIFIERS = (BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG)
_MAP_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)
STRUCT_OPS_SECTIONS = (".struct_ops", ".struct_ops.link")  # libbpf STRUCT_OPS_SEC, _LINK_SEC
_LEGACY_MAP_DEF = 20  # struct bpf_map_def: type, key_size, value_size, max_entries, map_flags


def object_name(path_or_name: str) -> str:
    """libbpf's object name: the file's base name up to its first dot."""
    return os.path.basename(path_or_name).split(".", 1)[0]


def open_spec(data: bytes, name: str = "<memory>", *, page_size: int | None = None) -> ObjectSpec:
    """Parse a BPF object's bytes into an ObjectSpec.

    `page_size` is the target kernel's page size (default: this host's); like libbpf, ring
    buffer sizes are rounded up to a power-of-two number of pages at open.
    """
    try:
        elf = read_elf(data, name)
        collector = _Collector(elf, name, data)
        collector.page_size = page_size or mmap.PAGESIZE
        return collector.collect()
    except BpfObjError as exc:
        # Lower layers (instruction decoding, BTF helpers) do not always know the object.
        exc.with_context(obj=name)
        raise


class _Collector:
    def __init__(self, elf: ElfObject, name: str, data: bytes) -> None:
        self.elf = elf
        self.name = name
        self.data = data
        self.obj_name = object_name(name)
        self.btf: Btf | None = None
        self.btf_ext: BtfExt | None = None
        self.text_shndx = -1
        self.page_size = mmap.PAGESIZE
        self._var_syms: dict[str, Symbol] | None = None
        self._extern_secs: dict[int, str] | None = None

    # -- helpers -------------------------------------------------------------------------

    def error(self, message: str, **context: Any) -> SpecError:
        return SpecError(message, obj=self.name, **context)

    def _u32(self, data: bytes, off: int) -> int:
        return int.from_bytes(data[off : off + 4], self.elf.byteorder)

    # -- the phase -----------------------------------------------------------------------

    def collect(self) -> ObjectSpec:
        elf = self.elf
        license, kern_version = self._license_and_version()
        self._read_btf()
        programs = self._programs(license, kern_version)
        externs = self._externs()
        maps: dict[str, MapSpec] = {}
        for m in self._btf_maps():
            maps[m.name] = m
        for m in self._data_maps():
            maps[m.name] = m
        kconfig = self._kconfig_map(externs)
        if kconfig is not None:
            maps[kconfig.name] = kconfig
        if any(sec.name.lstrip("?") in STRUCT_OPS_SECTIONS for sec in elf.sections):
            from bpfobj.structops import collect_struct_ops

            for m in collect_struct_ops(self, programs):
                if m.name in maps:
                    raise self.error(f"map {m.name!r} is defined twice", section=m.section)
                maps[m.name] = m
        for m in self._legacy_maps():
            if m.name in maps:
                raise self.error(f"map {m.name!r} is defined twice", section="maps")
            maps[m.name] = m
        arena_globals = self._arena_globals(maps, programs)
        return ObjectSpec(
            name=self.name,
            byteorder=elf.byteorder,
            license=license,
            kern_version=kern_version,
            programs={p.name: p for p in programs if not p.is_subprog},
            subprograms={p.name: p for p in programs if p.is_subprog},
            maps=maps,
            externs=externs,
            btf=self.btf,
            btf_ext=self.btf_ext,
            data=self.data,
            arena_globals=arena_globals,
        )

    def _license_and_version(self) -> tuple[str, int]:
        license, version = "", 0
        sec = self.elf.section_by_name("license")
        if sec is not None:
            license = sec.data.split(b"\0", 1)[0].decode(errors="replace")
        sec = self.elf.section_by_name("version")
        if sec is not None:
            if len(sec.data) != 4:
                raise self.error(
                    f"'version' section is {len(sec.data)} bytes, expected 4",
                    section="version",
                    hint="declare it as `__u32 _version SEC(\"version\")`",
                )
            version = self._u32(sec.data, 0)
        return license, version

    def _read_btf(self) -> None:
        from bpfobj.btf import Btf, BtfExt

        sec = self.elf.section_by_name(".BTF")
        if sec is None:
            return
        try:
            self.btf = Btf.parse(sec.data, name=self.name)
        except BpfObjError as exc:
            raise exc.with_context(obj=self.name, section=".BTF") from None
        ext = self.elf.section_by_name(".BTF.ext")
        if ext is not None:
            try:
                self.btf_ext = BtfExt.parse(ext.data, self.btf)
            except BpfObjError as exc:
                raise exc.with_context(obj=self.name, section=".BTF.ext") from None

    # -- programs ------------------------------------------------------------------------

    def _programs(self, license: str, kern_version: int) -> list[ProgramSpec]:
        elf = self.elf
        found: list[ProgramSpec] = []
        for sec in elf.sections:
            if sec.type != SHT_PROGBITS or not sec.flags & SHF_EXECINSTR or not sec.size:
                continue
            if sec.name == ".text":
                self.text_shndx = sec.index
        funcs: dict[int, list[Symbol]] = {}  # section index -> its FUNC symbols, in order
        for sym in elf.symbols:
            if sym.type == STT_FUNC:
                funcs.setdefault(sym.shndx, []).append(sym)
        for sec in elf.sections:
            if sec.type != SHT_PROGBITS or not sec.flags & SHF_EXECINSTR or not sec.size:
                continue
            insns = decode(sec.data, elf.byteorder, section=sec.name)
            relos = _ByOffset(elf.relocations.get(sec.index, ()), "offset")
            ext_sec = self._ext_records(sec.name)
            for sym in funcs.get(sec.index, ()):
                found.append(
                    self._program(sec, sym, insns, relos, ext_sec, license, kern_version)
                )
        found.sort(key=lambda p: (p.section_index, p.section_offset))
        return found

    def _ext_records(self, section: str) -> tuple[_ByOffset, _ByOffset, _ByOffset]:
        ext = self.btf_ext
        if ext is None:
            empty = _ByOffset((), "insn_off")
            return empty, empty, empty
        return (
            _ByOffset(ext.func_info.get(section, ()), "insn_off"),
            _ByOffset(ext.line_info.get(section, ()), "insn_off"),
            _ByOffset(ext.core_relos.get(section, ()), "insn_off"),
        )

    def _program(
        self,
        sec: Section,
        sym: Symbol,
        insns: list[Any],
        relos: _ByOffset,
        ext_sec: tuple[_ByOffset, _ByOffset, _ByOffset],
        license: str,
        kern_version: int,
    ) -> ProgramSpec:
        start, size = sym.value, sym.size
        if start + size > sec.size or start % 8 or size % 8:
            raise self.error(
                f"program {sym.name!r} at offset {start} (size {size}) crosses the section "
                f"boundary or is not instruction-aligned",
                section=sec.name,
                hint="the object is corrupt",
            )
        is_subprog = sec.index == self.text_shndx
        if not is_subprog and sym.bind == STB_LOCAL:
            raise self.error(
                f"program {sym.name!r} is static, which libbpf does not support outside .text",
                section=sec.name,
                program=sym.name,
                hint="remove `static` from the program's definition",
            )
        first, count = start // 8, size // 8
        ps = parse_section(sec.name) if not is_subprog else None
        func_info, line_info, core_relos = (
            [_rebase(r, start) for r in recs.within(start, start + size)]
            for recs in ext_sec
        )
        prog_relos = [self._elf_reloc(r, start) for r in relos.within(start, start + size)]
        is_global = sym.bind != STB_LOCAL
        # libbpf forgets the "?" (no autoload) once it has read it: the section name is the rest.
        section = sec.name[1:] if sec.name.startswith("?") else sec.name
        return ProgramSpec(
            name=sym.name,
            section=section,
            type=ps.prog_type if ps is not None else ProgType.UNSPEC,
            expected_attach_type=ps.expected_attach_type if ps is not None else None,
            attach_target=ps.attach_target if ps is not None else None,
            autoload=ps.autoload if ps is not None else not sec.name.startswith("?"),
            sleepable=ps.sleepable if ps is not None else False,
            instructions=insns[first : first + count],
            section_index=sec.index,
            section_offset=first,
            is_subprog=is_subprog,
            is_global=is_global,
            mark_btf_static=is_global and sym.visibility in (STV_HIDDEN, STV_INTERNAL),
            sec_def=ps.sec_def if ps is not None else None,
            func_info=func_info,
            line_info=line_info,
            core_relos=core_relos,
            relocations=prog_relos,
            license=license,
            kern_version=kern_version,
        )

    def _elf_reloc(self, r: Any, prog_start: int) -> ElfReloc:
        sym = self.elf.symbols[r.symbol]
        if r.offset % 8:
            raise self.error(
                f"relocation at byte {r.offset} is not on an instruction boundary",
                hint="the object is corrupt",
            )
        if sym.shndx == SHN_COMMON:
            raise self.error(
                f"global variable {sym.name!r} is a COMMON symbol, which BPF does not support",
                hint="initialise the variable or compile with -fno-common",
            )
        sec_name = (
            self.elf.sections[sym.shndx].name
            if 0 < sym.shndx < len(self.elf.sections)
            else None
        )
        return ElfReloc(
            insn=(r.offset - prog_start) // 8,
            type=r.type,
            symbol=sym.name,
            symbol_index=sym.index,
            symbol_shndx=sym.shndx,
            symbol_section=sec_name,
            symbol_value=sym.value,
            symbol_type=sym.type,
            symbol_bind=sym.bind,
        )

    # -- BTF-defined maps ----------------------------------------------------------------

    def _btf_maps(self) -> list[MapSpec]:
        sec = self.elf.section_by_name(".maps")
        if sec is None:
            return []
        btf = self.btf
        if btf is None:
            raise self.error(
                "the object has a .maps section but no BTF",
                section=".maps",
                hint="compile with -g so that clang emits BTF",
            )
        datasecs = [i for i in btf.find(".maps") if btf.kind(i) == BtfKind.DATASEC]
        if not datasecs:
            raise self.error("BTF has no DATASEC '.maps'", section=".maps")
        maps: list[MapSpec] = []
        extents: list[tuple[MapSpec, int, int, int]] = []  # map, offset, size, definition
        for vi, _linkage in self._datasec_vars(datasecs[0], sec):
            var = btf.type(vi.type)
            if var.kind != BtfKind.VAR:
                raise self.error(
                    f"entry at offset {vi.offset} of DATASEC .maps is a {var.kind.label}, "
                    "not a VAR",
                    section=".maps",
                    type=f"[{vi.type}]",
                )
            name = var.name
            if not name:
                raise self.error("a map in .maps has no name", section=".maps")
            if vi.offset + vi.size > len(sec.data):
                raise self.error(
                    f"map {name!r}: definition at {vi.offset}+{vi.size} is past the end of .maps",
                    section=".maps",
                )
            if var.linkage != BtfVarLinkage.GLOBAL_ALLOCATED:  # type: ignore[attr-defined]
                raise self.error(
                    f"map {name!r} is not a global variable",
                    section=".maps",
                    hint="map definitions must not be static or extern",
                )
            def_id = self._skip_mods(var.type)  # type: ignore[attr-defined]
            if btf.kind(def_id) != BtfKind.STRUCT:
                raise self.error(
                    f"map {name!r}: definition is a {btf.kind(def_id).label}, not a struct",
                    section=".maps",
                    type=f"[{def_id}]",
                )
            m = self._parse_map_def(name, def_id, inner=False)
            for mm in (m, m.inner):
                if mm is not None and mm.type in (MapType.RINGBUF, MapType.USER_RINGBUF):
                    mm.max_entries = ringbuf_size(mm.max_entries, self.page_size)
            m.section_index = sec.index
            m.section_offset = vi.offset
            maps.append(m)
            extents.append((m, vi.offset, vi.size, def_id))
        self._map_values(sec, extents)
        return maps

    def _skip_mods(self, type_id: int) -> int:
        btf = self.btf
        assert btf is not None
        seen = 0
        while btf.kind(type_id) in _MODIFIERS:
            type_id = btf.type(type_id).type  # type: ignore[attr-defined]
            seen += 1
            if seen > 64:
                raise BtfError("modifier chain too long (loop?)", obj=self.name, type=f"[{type_id}]")
        return type_id

    def _map_int(self, map_name: str, member: Any) -> int:
        """`__uint(name, N)` is encoded as `int (*name)[N]`: N is the array's nelems."""
        btf = self.btf
        assert btf is not None
        t = btf.type(self._skip_mods(member.type))
        if t.kind == BtfKind.PTR:
            arr = btf.type(self._skip_mods(t.type))  # type: ignore[attr-defined]
            if arr.kind == BtfKind.ARRAY:
                return int(arr.nelems)  # type: ignore[attr-defined]
        elif t.kind in (BtfKind.ENUM, BtfKind.ENUM64):  # __ulong(name, N) in newer libbpf
            values = t.values  # type: ignore[attr-defined]
            if len(values) == 1:
                return int(values[0][1])
        raise self.error(
            f"map {map_name!r}: attribute {member.name!r} is not an integer attribute",
            section=".maps",
            hint="use __uint(name, value) from bpf_helpers.h",
        )

    def _map_type_size(self, map_name: str, member: Any) -> tuple[int, int]:
        """`__type(key, T)` is encoded as `T *key`: returns (type id, size)."""
        btf = self.btf
        assert btf is not None
        t = btf.type(member.type)
        if t.kind != BtfKind.PTR:
            raise self.error(
                f"map {map_name!r}: {member.name} is a {t.kind.label}, not a pointer",
                section=".maps",
                hint=f"use __type({member.name}, T) from bpf_helpers.h",
            )
        target = t.type  # type: ignore[attr-defined]
        try:
            size = btf.size_of(target)
        except BpfObjError as exc:
            raise self.error(
                f"map {map_name!r}: cannot determine the size of its {member.name} type: "
                f"{exc.message}",
                section=".maps",
                type=f"[{target}]",
            ) from None
        return target, size

    def _parse_map_def(self, name: str, def_id: int, *, inner: bool) -> MapSpec:
        """libbpf's parse_btf_map_def()."""
        btf = self.btf
        assert btf is not None
        st = btf.type(def_id)
        m = MapSpec(
            name=name,
            section=".maps",
            kind=MapKind.BTF,
            type=MapType.UNSPEC,
            key_size=0,
            value_size=0,
            max_entries=0,
            kernel_name=name[: BPF_OBJ_NAME_LEN - 1],
        )
        members = st.members  # type: ignore[attr-defined]
        for i, mem in enumerate(members):
            field = mem.name
            if field == "type":
                m.type = self._map_type(name, self._map_int(name, mem))
            elif field == "max_entries":
                m.max_entries = self._map_int(name, mem)
            elif field == "map_flags":
                m.flags = self._map_int(name, mem)
            elif field == "numa_node":
                m.numa_node = self._map_int(name, mem)
            elif field in ("key_size", "value_size"):
                size = self._map_int(name, mem)
                self._set_size(m, field, size)
            elif field in ("key", "value"):
                type_id, size = self._map_type_size(name, mem)
                self._set_size(m, f"{field}_size", size)
                setattr(m, f"{field}_type_id", type_id)
            elif field == "values":
                self._parse_values_member(m, mem, i == len(members) - 1, inner=inner)
            elif field == "pinning":
                if inner:
                    raise self.error(f"map {name!r}: an inner map cannot be pinned", section=".maps")
                pin = self._map_int(name, mem)
                if pin not in (PIN_NONE, PIN_BY_NAME):
                    raise self.error(
                        f"map {name!r}: invalid pinning value {pin}",
                        section=".maps",
                        hint="use LIBBPF_PIN_NONE or LIBBPF_PIN_BY_NAME",
                    )
                m.pinning = pin
            elif field == "map_extra":
                m.map_extra = self._map_int(name, mem)
            else:
                raise self.error(
                    f"map {name!r}: unknown attribute {field!r}",
                    section=".maps",
                    hint="libbpf rejects unknown map attributes too; check the spelling",
                )
        if m.type == MapType.UNSPEC:
            raise self.error(
                f"map {name!r}: the map type is not specified",
                section=".maps",
                hint="add __uint(type, BPF_MAP_TYPE_...)",
            )
        return m

    def _map_type(self, map_name: str, value: int) -> MapType:
        try:
            return MapType(value)
        except ValueError:
            raise self.error(
                f"map {map_name!r}: unknown map type {value}",
                section=".maps",
                hint="this bpfobj does not know that map type; upgrade bpfobj",
            ) from None

    def _set_size(self, m: MapSpec, field: str, size: int) -> None:
        old = getattr(m, field)
        if old and old != size:
            raise self.error(
                f"map {m.name!r}: conflicting {field} {old} != {size}", section=".maps"
            )
        setattr(m, field, size)

    def _parse_values_member(self, m: MapSpec, mem: Any, is_last: bool, *, inner: bool) -> None:
        btf = self.btf
        assert btf is not None
        if inner:
            raise self.error(f"map {m.name!r}: multi-level inner maps are not supported", section=".maps")
        if not is_last:
            raise self.error(f"map {m.name!r}: 'values' must be the last member", section=".maps")
        is_prog_array = m.type == MapType.PROG_ARRAY
        if m.type not in _MAP_IN_MAP and not is_prog_array:
            raise self.error(
                f"map {m.name!r}: 'values' is only allowed in map-in-map and prog-array maps",
                section=".maps",
            )
        self._set_size(m, "value_size", 4)
        arr = btf.type(mem.type)
        if arr.kind != BtfKind.ARRAY or arr.nelems:  # type: ignore[attr-defined]
            raise self.error(
                f"map {m.name!r}: 'values' is not a zero-sized array", section=".maps"
            )
        ptr = btf.type(self._skip_mods(arr.type))  # type: ignore[attr-defined]
        if ptr.kind != BtfKind.PTR:
            raise self.error(f"map {m.name!r}: 'values' elements are not pointers", section=".maps")
        target = self._skip_mods(ptr.type)  # type: ignore[attr-defined]
        if is_prog_array:
            if btf.kind(target) != BtfKind.FUNC_PROTO:
                raise self.error(
                    f"map {m.name!r}: prog-array values must point to functions", section=".maps"
                )
            return
        if btf.kind(target) != BtfKind.STRUCT:
            raise self.error(
                f"map {m.name!r}: map-in-map inner definition is not a struct", section=".maps"
            )
        m.inner = self._parse_map_def(f"{m.name}.inner", target, inner=True)

    def _map_values(self, sec: Section, extents: list[tuple[MapSpec, int, int, int]]) -> None:
        """Initial prog-array / map-in-map slots from the relocations in .rel.maps
        (libbpf bpf_object__collect_map_relos)."""
        btf = self.btf
        assert btf is not None
        for r in self.elf.relocations.get(sec.index, ()):
            sym = self.elf.symbols[r.symbol]
            owner, def_id = None, 0
            for m, offset, size, struct_id in extents:
                if offset <= r.offset and r.offset + 8 <= offset + size:
                    owner, def_id = m, struct_id
                    break
            if owner is None:
                raise self.error(
                    f".maps relocation at offset {r.offset} to {sym.name!r} is outside every map",
                    section=".maps",
                )
            # The definition of this map's own VAR (libbpf: map->btf_var_idx), not the
            # first VAR with its name: a corrupt object may have several.
            st = btf.type(def_id)
            last = st.members[-1]  # type: ignore[attr-defined]
            if last.name != "values":
                raise self.error(
                    f"map {owner.name!r}: relocation to {sym.name!r} but no 'values' member",
                    section=".maps",
                )
            moff = r.offset - owner.section_offset - last.bit_offset // 8
            if moff < 0 or moff % 8:
                raise self.error(
                    f"map {owner.name!r}: bad relocation offset for {sym.name!r}", section=".maps"
                )
            if owner.type == MapType.PROG_ARRAY:
                if sym.type != STT_FUNC:
                    raise self.error(
                        f"map {owner.name!r}: slot {moff // 8} refers to {sym.name!r}, "
                        "which is not a program",
                        section=".maps",
                    )
            elif sym.shndx != sec.index:
                raise self.error(
                    f"map {owner.name!r}: slot {moff // 8} refers to {sym.name!r}, "
                    "which is not a map in .maps",
                    section=".maps",
                )
            owner.values[moff // 8] = sym.name

    # -- data sections -------------------------------------------------------------------

    def _data_maps(self) -> list[MapSpec]:
        maps = []
        for sec in self.elf.sections:
            kind = _data_kind(sec)
            if kind is None or not sec.size:
                continue
            flags = BPF_F_RDONLY_PROG if kind is MapKind.RODATA else 0
            value_type_id = self._datasec_id(sec.name)
            if value_type_id and self._datasec_has_global(value_type_id, sec):
                flags |= BPF_F_MMAPABLE
            maps.append(
                MapSpec(
                    name=sec.name,
                    section=sec.name,
                    kind=kind,
                    type=MapType.ARRAY,
                    key_size=4,
                    value_size=sec.size,
                    max_entries=1,
                    flags=flags,
                    value_type_id=value_type_id,
                    data=sec.data if sec.type != SHT_NOBITS else None,
                    kernel_name=internal_map_name(self.obj_name, sec.name),
                    section_index=sec.index,
                )
            )
        return maps

    def _datasec_id(self, name: str) -> int:
        btf = self.btf
        if btf is None:
            return 0
        for i in btf.find(name):
            if btf.kind(i) == BtfKind.DATASEC:
                return i
        return 0

    def _datasec_has_global(self, datasec_id: int, sec: Section) -> bool:
        """libbpf map_is_mmapable(): some VAR of the DATASEC is not static (after fixup)."""
        return any(
            linkage != BtfVarLinkage.STATIC for _, linkage in self._datasec_vars(datasec_id, sec)
        )

    def _datasec_vars(self, datasec_id: int, sec: Section) -> list[tuple[Any, int]]:
        """The DATASEC's variables as libbpf sees them after btf_fixup_datasec(): clang
        leaves offsets 0 (taken from the ELF symbols then), hidden globals count as static,
        and the variables are sorted by offset. Returns (secinfo, effective linkage)."""
        btf = self.btf
        assert btf is not None
        datasec = btf.type(datasec_id)
        fixup = datasec.size == 0  # type: ignore[attr-defined]
        out: list[tuple[Any, int]] = []
        for vi in datasec.vars:  # type: ignore[attr-defined]
            var = btf.type(vi.type)
            linkage = getattr(var, "linkage", BtfVarLinkage.STATIC)
            if var.kind == BtfKind.VAR and linkage not in (
                BtfVarLinkage.STATIC, BtfVarLinkage.GLOBAL_EXTERN
            ):
                sym = self._var_symbol(var.name)
                if sym is None:
                    raise self.error(
                        f"no ELF symbol for variable {var.name!r} of section {sec.name}",
                        section=sec.name,
                        type=f"[{vi.type}]",
                        hint="the object is corrupt (BTF and symbol table disagree)",
                    )
                if fixup:
                    vi = records.evolve(vi, offset=sym.value)
                if sym.visibility in (STV_HIDDEN, STV_INTERNAL):
                    linkage = BtfVarLinkage.STATIC
            out.append((vi, linkage))
        out.sort(key=lambda item: item[0].offset)
        return out

    def _var_symbol(self, name: str) -> Symbol | None:
        """libbpf find_elf_var_sym(): the first global OBJECT symbol of a variable."""
        if self._var_syms is None:
            self._var_syms = {}
            for sym in self.elf.symbols:
                if sym.type == 1 and sym.bind in (STB_GLOBAL, STB_WEAK):
                    self._var_syms.setdefault(sym.name, sym)
        return self._var_syms.get(name)

    # -- __arena globals -----------------------------------------------------------------

    def _arena_globals(self, maps: dict[str, MapSpec], programs: Sequence[ProgramSpec]
                       ) -> ArenaGlobals | None:
        """The .addr_space.1 section (__arena variables) and the arena map it belongs to,
        checked as libbpf's bpf_object__init_user_btf_maps() and init_arena_map_data() do
        (libbpf 1.7.0 src/libbpf.c:2991-3093; since 1.4): one arena map at most, one
        arena map at least when there are arena globals, and room for them in it."""
        arenas = [m for m in maps.values() if m.type == MapType.ARENA]
        if len(arenas) > 1:
            # libbpf: "map '%s': only single ARENA map is supported (map '%s' is also ARENA)"
            listed = ", ".join(repr(m.name) for m in arenas)
            raise self.error(
                f"the object defines {len(arenas)} arena maps ({listed}); libbpf and bpfobj "
                "support one arena per object", section=".maps", map=arenas[1].name,
                hint="keep one BPF_MAP_TYPE_ARENA map and allocate everything from it "
                "(or split the programs into objects of their own)")
        # libbpf only takes a non-empty PROGBITS .addr_space.1 (bpf_object__elf_collect)
        sec = self.elf.section_by_name(ARENA_SECTION)
        if sec is None or sec.type != SHT_PROGBITS or not sec.size or sec.is_exec:
            return None
        variables = sorted((s.value, s.name, s.size) for s in self.elf.symbols
                           if s.shndx == sec.index and s.type == 1 and s.name)  # STT_OBJECT
        names = sorted(name for _, name, _ in variables)
        what = f"{ARENA_SECTION} (the __arena variables {', '.join(names) or '?'})"
        if not arenas:
            # libbpf: "elf: sec '.addr_space.1': to use global __arena variables the ARENA
            # map should be explicitly declared in SEC(\".maps\")" (-ENOENT at open)
            use = next(((p, r) for p in programs for r in p.relocations
                        if r.symbol_shndx == sec.index), None)
            raise self.error(
                f"{what} need an arena map to live in, and the object defines none",
                section=ARENA_SECTION,
                program=use[0].name if use else None, insn=use[1].insn if use else None,
                hint="declare one: struct { __uint(type, BPF_MAP_TYPE_ARENA); "
                "__uint(map_flags, BPF_F_MMAPABLE); __uint(max_entries, PAGES); } arena "
                "SEC(\".maps\");")
        arena = arenas[0]
        page = self.page_size
        need = -(-sec.size // page)
        if need > arena.max_entries:
            # libbpf: "declared ARENA map size (%zu) is too small to hold global __arena
            # variables of size %zu" (-E2BIG at open)
            raise self.error(
                f"{what} take {sec.size} bytes ({need} pages of {page}), more than arena map "
                f"{arena.name!r} has ({arena.max_entries} pages)", section=ARENA_SECTION,
                map=arena.name,
                hint=f"raise the arena's max_entries to at least {need} (its size in pages)")
        return ArenaGlobals(map=arena.name, section_index=sec.index, data=bytes(sec.data),
                            datasec_id=self._datasec_id(ARENA_SECTION), page_size=page,
                            variables=tuple((n, off, size) for off, n, size in variables))

    # -- externs and .kconfig ------------------------------------------------------------

    def _externs(self) -> list[Extern]:
        externs: list[Extern] = []
        for sym in self.elf.symbols:
            if not (
                sym.shndx == SHN_UNDEF
                and sym.bind in (STB_GLOBAL, STB_WEAK)
                and sym.type == STT_NOTYPE
                and sym.name
            ):
                continue
            externs.append(self._extern(sym))
        # libbpf cmp_externs: kconfig before ksym; kconfig by alignment desc, size asc; name.
        order = {ExternKind.KCONFIG: 0, ExternKind.KSYM: 1}
        externs.sort(
            key=lambda e: (
                order[e.kind],
                -e.kcfg_align if e.kind is ExternKind.KCONFIG else 0,
                e.kcfg_size if e.kind is ExternKind.KCONFIG else 0,
                e.name.encode(),
            )
        )
        off = 0
        for e in externs:
            if e.kind is ExternKind.KCONFIG:
                e.kcfg_offset = -(-off // e.kcfg_align) * e.kcfg_align
                off = e.kcfg_offset + e.kcfg_size
        return externs

    def _extern(self, sym: Symbol) -> Extern:
        btf = self.btf
        if btf is None:
            raise self.error(
                f"extern {sym.name!r} needs BTF to be resolved",
                hint="compile with -g so that clang emits BTF",
            )
        btf_id = 0
        for i in btf.find(sym.name):
            kind = btf.kind(i)
            if kind not in (BtfKind.VAR, BtfKind.FUNC):
                continue
            t = btf.type(i)
            if kind == BtfKind.VAR and t.linkage != BtfVarLinkage.GLOBAL_EXTERN:  # type: ignore[attr-defined]
                raise self.error(f"BTF VAR for extern {sym.name!r} is not extern", type=f"[{i}]")
            if kind == BtfKind.FUNC and t.linkage != BtfFuncLinkage.EXTERN:  # type: ignore[attr-defined]
                raise self.error(f"BTF FUNC for extern {sym.name!r} is not extern", type=f"[{i}]")
            btf_id = i
            break
        if not btf_id:
            raise self.error(
                f"no BTF for extern {sym.name!r}",
                hint="declare it with __kconfig or __ksym from bpf_helpers.h",
            )
        sec_name = self._datasec_of(btf_id)
        t = btf.type(btf_id)
        is_func = t.kind == BtfKind.FUNC
        weak = sym.bind == STB_WEAK
        if sec_name == ".kconfig":
            if is_func:
                raise self.error(f"extern function {sym.name!r} cannot be __kconfig", section=".kconfig")
            var_type = t.type  # type: ignore[attr-defined]
            size = btf.size_of(var_type)
            if size <= 0:
                raise self.error(
                    f"__kconfig extern {sym.name!r} has size {size}",
                    section=".kconfig",
                    type=f"[{var_type}]",
                    hint="the BTF is corrupt; rebuild the object",
                )
            kcfg_type, signed = self._kcfg_type(var_type)
            if kcfg_type is None:
                raise self.error(
                    f"__kconfig extern {sym.name!r} has an unsupported type",
                    section=".kconfig",
                    type=f"[{var_type}]",
                    hint="use bool, char, char[N], an integer type, or enum libbpf_tristate",
                )
            align = align_of(btf, var_type)
            if align <= 0:
                raise self.error(
                    f"cannot determine the alignment of __kconfig extern {sym.name!r}",
                    section=".kconfig",
                    type=f"[{var_type}]",
                    hint="the BTF is corrupt; rebuild the object",
                )
            return Extern(
                name=sym.name,
                kind=ExternKind.KCONFIG,
                btf_id=btf_id,
                weak=weak,
                symbol_index=sym.index,
                type_id=var_type,
                kcfg_type=kcfg_type,
                kcfg_size=size,
                kcfg_align=align,
                kcfg_signed=signed,
            )
        if sec_name == ".ksyms":
            type_id = 0 if is_func else self._skip_mods(t.type)  # type: ignore[attr-defined]
            return Extern(
                name=sym.name,
                kind=ExternKind.KSYM,
                btf_id=btf_id,
                weak=weak,
                symbol_index=sym.index,
                is_func=is_func,
                type_id=btf_id if is_func else type_id,
            )
        raise self.error(
            f"extern {sym.name!r} is in section {sec_name!r}, which bpfobj cannot resolve",
            hint="externs must be __kconfig or __ksym",
        )

    def _datasec_of(self, type_id: int) -> str:
        btf = self.btf
        assert btf is not None
        if self._extern_secs is None:
            self._extern_secs = {}
            for name in (".kconfig", ".ksyms"):
                for ds in btf.find(name):
                    if btf.kind(ds) == BtfKind.DATASEC:
                        for vi in btf.type(ds).vars:  # type: ignore[attr-defined]
                            self._extern_secs.setdefault(vi.type, name)
        return self._extern_secs.get(type_id, "(none)")

    def _kcfg_type(self, type_id: int) -> tuple[KconfigType | None, bool]:
        """libbpf find_kcfg_type()."""
        btf = self.btf
        assert btf is not None
        t = btf.type(self._skip_mods(type_id))
        if t.kind == BtfKind.INT:
            enc = t.encoding  # type: ignore[attr-defined]
            size = t.size  # type: ignore[attr-defined]
            if enc & 4:  # BTF_INT_BOOL
                return (KconfigType.BOOL if size == 1 else None), False
            signed = bool(enc & 1)
            if size == 1:
                return KconfigType.CHAR, signed
            if size < 1 or size > 8 or size & (size - 1):
                return None, signed
            return KconfigType.INT, signed
        if t.kind in (BtfKind.ENUM, BtfKind.ENUM64):
            if t.name != "libbpf_tristate" or (t.kind == BtfKind.ENUM and t.size != 4):  # type: ignore[attr-defined]
                return None, False
            return KconfigType.TRISTATE, False
        if t.kind == BtfKind.ARRAY:
            if not t.nelems:  # type: ignore[attr-defined]
                return None, False
            elem, _ = self._kcfg_type(t.type)  # type: ignore[attr-defined]
            return (KconfigType.CHAR_ARRAY if elem is KconfigType.CHAR else None), False
        return None, False

    def _kconfig_map(self, externs: list[Extern]) -> MapSpec | None:
        kcfg = [e for e in externs if e.kind is ExternKind.KCONFIG]
        if not kcfg:
            return None
        last = kcfg[-1]
        value_type_id = self._datasec_id(".kconfig")
        return MapSpec(
            name=".kconfig",
            section=".kconfig",
            kind=MapKind.KCONFIG,
            type=MapType.ARRAY,
            key_size=4,
            value_size=last.kcfg_offset + last.kcfg_size,
            max_entries=1,
            # libbpf turns the extern VARs into global ones before it creates the map, so
            # the .kconfig map is mmapable whenever its DATASEC exists.
            flags=BPF_F_RDONLY_PROG | (BPF_F_MMAPABLE if value_type_id else 0),
            value_type_id=value_type_id,
            kernel_name=internal_map_name(self.obj_name, ".kconfig"),
            section_index=self.elf.symtab_index,
        )

    # -- legacy maps ---------------------------------------------------------------------

    def _legacy_maps(self) -> list[MapSpec]:
        sec = self.elf.section_by_name("maps")
        if sec is None:
            return []
        maps = []
        for sym in self.elf.symbols_in(sec.index):
            if not sym.name or sym.type not in (STT_NOTYPE, 1):  # NOTYPE or OBJECT
                continue
            if sym.value + _LEGACY_MAP_DEF > len(sec.data):
                raise self.error(
                    f"legacy map {sym.name!r} at offset {sym.value} is shorter than "
                    f"struct bpf_map_def ({_LEGACY_MAP_DEF} bytes)",
                    section="maps",
                )
            fields = [self._u32(sec.data, sym.value + 4 * i) for i in range(5)]
            maps.append(
                MapSpec(
                    name=sym.name,
                    section="maps",
                    kind=MapKind.LEGACY,
                    type=self._map_type(sym.name, fields[0]),
                    key_size=fields[1],
                    value_size=fields[2],
                    max_entries=fields[3],
                    flags=fields[4],
                    kernel_name=sym.name[: BPF_OBJ_NAME_LEN - 1],
                    section_index=sec.index,
                    section_offset=sym.value,
                )
            )
        return sorted(maps, key=lambda m: m.section_offset)


class _ByOffset:
    """A section's relocations or .BTF.ext records sorted by byte offset (attribute
    `field`), so that each program takes its share by bisection, not by a scan of all."""

    def __init__(self, items: Sequence[Any], field: str) -> None:
        self.items = items
        offsets = [getattr(item, field) for item in items]
        self.order = sorted(range(len(items)), key=offsets.__getitem__)
        self.keys = [offsets[i] for i in self.order]

    def within(self, start: int, end: int) -> list[Any]:
        """The items with start <= offset < end, in their original order."""
        picked = self.order[bisect_left(self.keys, start) : bisect_left(self.keys, end)]
        return [self.items[i] for i in sorted(picked)]


def _data_kind(sec: Section) -> MapKind | None:
    name = sec.name
    if sec.type == SHT_PROGBITS and not sec.flags & SHF_EXECINSTR:
        if name == ".data" or name.startswith(".data."):
            return MapKind.DATA
        if name == ".rodata" or name.startswith(".rodata."):
            return MapKind.RODATA
    if sec.type == SHT_NOBITS and (name == ".bss" or name.startswith(".bss.")):
        return MapKind.DATA
    return None


def _rebase(record: Any, start: int) -> Any:
    from bpfobj import records

    return records.evolve(record, insn_off=record.insn_off - start)


def ringbuf_size(size: int, page_size: int) -> int:
    """libbpf adjust_ringbuf_sz(): round up to page_size * 2**n (0 stays 0 to fail loudly)."""
    if size == 0:
        return 0
    if size % page_size == 0 and (size // page_size) & (size // page_size - 1) == 0:
        return size
    mul = 1
    while mul * page_size <= 0xFFFFFFFF:
        if mul * page_size > size:
            return mul * page_size
        mul <<= 1
    return size


def internal_map_name(obj_name: str, section: str) -> str:
    """libbpf internal_map_name(): the kernel-visible name of a data-section map."""
    sfx_len = min(max(7, len(section)), BPF_OBJ_NAME_LEN - 1)
    pfx_len = 0 if "." in section[1:] else min(BPF_OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
    name = obj_name[:pfx_len] + section[:sfx_len]
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)


def align_of(btf: Btf, type_id: int, depth: int = 0) -> int:
    """libbpf btf__align_of(): natural alignment of a type."""
    if depth > 64:
        raise BtfError("type chain too deep while computing alignment", type=f"[{type_id}]")
    t = btf.type(type_id)
    kind = t.kind
    if kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FLOAT):
        return min(8, int(t.size))  # type: ignore[attr-defined]
    if kind == BtfKind.PTR:
        return 8
    if kind in _MODIFIERS:
        return align_of(btf, t.type, depth + 1)  # type: ignore[attr-defined]
    if kind == BtfKind.ARRAY:
        return align_of(btf, t.type, depth + 1)  # type: ignore[attr-defined]
    if kind in (BtfKind.STRUCT, BtfKind.UNION):
        align = 1
        for m in t.members:  # type: ignore[attr-defined]
            a = align_of(btf, m.type, depth + 1)
            if m.bit_offset % (8 * a) != 0 and not m.bitfield_size:
                return 1  # packed
            align = max(align, a)
        if t.size % align:  # type: ignore[attr-defined]
            return 1
        return align
    raise BtfError(f"cannot compute the alignment of a {kind.label}", type=f"[{type_id}]")

