"""Specs: the pure-data result of the open phase.

An `ObjectSpec` says everything the object file says, with no kernel involved: programs with
their instructions and debug info, maps (BTF-defined, legacy, and data sections), externs,
license and version. Specs can be copied, inspected and serialised; loaded objects (with file
descriptors) are built from them later. Modelled after cilium/ebpf's CollectionSpec.
"""

from __future__ import annotations

from bpfobj import enums, records
from bpfobj.uapi import AttachType, MapType, ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf import Btf, BtfExt
    from bpfobj.btf.ext import CoreRelo, FuncInfo, LineInfo
    from bpfobj.elf.secdefs import SecDef
    from bpfobj.insn import Instruction


@records.frozen
class ElfReloc:
    """An ELF relocation against one instruction of a program, kept for the linker.

    ``insn`` is the instruction index relative to the program's first instruction. The
    symbol fields describe the relocation's target as the ELF symbol table has it.
    """

    insn: int
    type: int  # R_BPF_*
    symbol: str
    symbol_index: int
    symbol_shndx: int  # section index of the target symbol (0 = undefined/extern)
    symbol_section: str | None  # its section name, None for externs and absolute symbols
    symbol_value: int
    symbol_type: int  # STT_*
    symbol_bind: int  # STB_*


@records.define
class ProgramSpec:
    """A program (an entry point) or a subprogram of the object."""

    name: str
    section: str
    type: ProgType
    expected_attach_type: AttachType | None
    attach_target: str | None
    autoload: bool
    sleepable: bool
    instructions: list[Instruction] = records.field(repr=False)
    section_index: int = 0
    section_offset: int = 0  # instruction index of the first instruction within the section
    is_subprog: bool = False  # lives in .text: linked into programs, never loaded alone
    is_global: bool = True
    mark_btf_static: bool = False  # hidden global: libbpf marks its BTF FUNC static
    sec_def: SecDef | None = records.field(default=None, repr=False)
    func_info: list[FuncInfo] = records.field(factory=list, repr=False)  # insn_off rebased
    line_info: list[LineInfo] = records.field(factory=list, repr=False)  # insn_off rebased
    core_relos: list[CoreRelo] = records.field(factory=list, repr=False)  # insn_off rebased
    relocations: list[ElfReloc] = records.field(factory=list, repr=False)
    license: str = ""
    kern_version: int = 0

    @property
    def insn_cnt(self) -> int:
        return len(self.instructions)

    def copy(self) -> ProgramSpec:
        return records.evolve(
            self,
            instructions=list(self.instructions),
            func_info=list(self.func_info),
            line_info=list(self.line_info),
            core_relos=list(self.core_relos),
            relocations=list(self.relocations),
        )


class MapKind(enums.Enum):
    """Where a map definition comes from."""

    BTF = "btf"  # SEC(".maps"), BTF-defined
    LEGACY = "legacy"  # SEC("maps"), struct bpf_map_def
    DATA = "data"  # .data, .data.*, .bss, .bss.*
    RODATA = "rodata"  # .rodata, .rodata.*: frozen after load
    KCONFIG = "kconfig"  # values of __kconfig externs, filled at load
    STRUCT_OPS = "struct_ops"  # a variable of .struct_ops / .struct_ops.link


@records.define
class MapSpec:
    """A map as the object defines it."""

    name: str
    section: str
    kind: MapKind
    type: MapType
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    numa_node: int = 0
    pinning: int = 0  # uapi.PIN_NONE / PIN_BY_NAME
    map_extra: int = 0
    key_type_id: int = 0  # BTF type ids in the object's BTF (0 = none)
    value_type_id: int = 0
    inner: MapSpec | None = None  # map-in-map: the inner map's definition
    # Initial contents of prog-array and map-in-map slots: index -> program or map name;
    # struct_ops maps: index of a function-pointer member (in the local type) -> program.
    values: dict[int, str] = records.field(factory=dict)
    data: bytes | None = records.field(default=None, repr=False)  # data sections' contents
    kernel_name: str = ""  # the (<= 15 chars) name given to the kernel, libbpf's rules
    section_index: int = 0
    section_offset: int = 0  # offset of the definition / data in its ELF section
    autocreate: bool = True  # False for SEC("?.struct_ops"): libbpf's map->autocreate

    @property
    def is_internal(self) -> bool:
        """A map libbpf would call internal: data sections and .kconfig."""
        return self.kind in (MapKind.DATA, MapKind.RODATA, MapKind.KCONFIG)

    def copy(self) -> MapSpec:
        return records.evolve(
            self, values=dict(self.values), inner=self.inner.copy() if self.inner else None
        )


#: clang's section for variables in address space 1 (``__arena`` globals); libbpf ARENA_SEC
ARENA_SECTION = ".addr_space.1"


@records.frozen
class ArenaGlobals:
    """The object's ``__arena`` global variables: ELF section .addr_space.1.

    Not a map of their own (libbpf neither): their initial contents belong to the object's
    one arena map, `map`, at an offset prepare chooses (`bpfobj.prepare.ArenaLayout`), and
    programs reach them through ld_imm64 references into that map.
    """

    map: str  # the arena map's name
    section_index: int
    data: bytes = records.field(repr=False)  # the initial contents: the section's bytes
    datasec_id: int = 0  # the .addr_space.1 DATASEC in the object's BTF (0: none)
    page_size: int = 4096  # the target's page size (BpfObject.open's page_size)
    # (name, offset in the section, size) of each variable (ELF symbol), by offset
    variables: tuple[tuple[str, int, int], ...] = ()

    @property
    def size(self) -> int:
        return len(self.data)

    def variable_at(self, offset: int) -> str | None:
        """The variable at `offset` of the section: ``name``, or ``name+N`` inside it."""
        for name, start, size in self.variables:
            if start <= offset < start + max(size, 1):
                return name if offset == start else f"{name}+{offset - start}"
        return None


class ExternKind(enums.Enum):
    KCONFIG = "kconfig"  # extern ... __kconfig: a value from the kernel config, in .kconfig
    KSYM = "ksym"  # extern ... __ksym: a kernel symbol (variable or kfunc)


class KconfigType(enums.Enum):
    """How a kconfig value is parsed (libbpf enum kcfg_type)."""

    BOOL = "bool"
    CHAR = "char"
    TRISTATE = "tristate"
    INT = "int"
    CHAR_ARRAY = "char_array"


@records.define
class Extern:
    """An extern the object expects the loader to resolve."""

    name: str
    kind: ExternKind
    btf_id: int  # the VAR or FUNC in the object's BTF
    weak: bool
    symbol_index: int
    is_func: bool = False  # a kfunc (extern function in .ksyms)
    type_id: int = 0  # ksym: the variable's type with modifiers skipped; 0 = typeless
    # .kconfig layout (libbpf's rules: sorted by alignment desc, size asc, name):
    kcfg_type: KconfigType | None = None
    kcfg_size: int = 0
    kcfg_align: int = 0
    kcfg_offset: int = 0
    kcfg_signed: bool = False

    @property
    def typeless(self) -> bool:
        return self.kind is ExternKind.KSYM and not self.is_func and self.type_id == 0


@records.define
class ObjectSpec:
    """Everything the open phase learns from a BPF object file."""

    name: str
    byteorder: str
    license: str
    kern_version: int
    programs: dict[str, ProgramSpec]  # entry points, in libbpf's order (section, offset)
    subprograms: dict[str, ProgramSpec]  # .text functions
    maps: dict[str, MapSpec]  # in libbpf's order: .maps, data sections, .kconfig, legacy
    externs: list[Extern]  # in libbpf's order (kconfig first, then ksyms)
    btf: Btf | None = records.field(default=None, repr=False)
    btf_ext: BtfExt | None = records.field(default=None, repr=False)
    data: bytes = records.field(default=b"", repr=False, eq=False)  # the object file
    arena_globals: ArenaGlobals | None = None  # __arena variables (.addr_space.1), if any

    @property
    def sha256(self) -> str:
        """The object file's sha256, hex."""
        return sha256_hex(self.data)

    @property
    def core_relo_count(self) -> int:
        return sum(len(p.core_relos) for p in (*self.programs.values(), *self.subprograms.values()))

    def program(self, name: str) -> ProgramSpec:
        from bpfobj.errors import SpecError

        try:
            return self.programs[name]
        except KeyError:
            raise SpecError(
                f"no program named {name!r}",
                obj=self.name,
                hint=f"programs are: {', '.join(self.programs) or '(none)'}",
            ) from None

    def to_summary(self) -> dict[str, Any]:
        """The `bpfobj inspect --json` document."""
        return {
            "programs": [
                {
                    "name": p.name,
                    "section": p.section,
                    "type": p.type.label,
                    "expected_attach_type": (
                        p.expected_attach_type.label if p.expected_attach_type is not None else None
                    ),
                    "insn_cnt": p.insn_cnt,
                    "autoload": p.autoload,
                }
                for p in self.programs.values()
            ],
            "maps": [
                {
                    "name": m.name,
                    "section": m.section,
                    "type": m.type.label,
                    "key_size": m.key_size,
                    "value_size": m.value_size,
                    "max_entries": m.max_entries,
                    "flags": m.flags,
                }
                for m in self.maps.values()
            ],
            "btf": {"types": len(self.btf) if self.btf is not None else 0},
            "core_relos": self.core_relo_count,
            **({} if self.arena_globals is None else {"arena_globals": {
                "map": self.arena_globals.map,
                "section": ARENA_SECTION,
                "size": self.arena_globals.size,
                "variables": [{"name": n, "offset": off, "size": size}
                              for n, off, size in self.arena_globals.variables],
            }}),
        }


def sha256_hex(data: bytes) -> str:
    """sha256 of an object file, hex: for `ObjectSpec.sha256` and bug reports
    (`InternalError`). hashlib is imported on first use (~2 ms of OpenSSL set-up)."""
    import hashlib

    return hashlib.sha256(data).hexdigest()
