"""Reading a BPF ELF object: sections, symbols, relocations.

A BPF object is a small ELF64 relocatable file, so this reads it with `struct` directly:
the header, the section table, the symbol table and SHT_REL relocations. (pyelftools,
imported only by `read_elf_sections` for kernel files, costs about 30 ms to import: more
than parsing a whole object.) Every offset and size is checked against the file before it
is used, and anything malformed becomes `ElfError` naming the object and, where known, the
section, so a forged size can neither crash the parser nor make it allocate or loop.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from bpfobj import records
from bpfobj.errors import BpfObjError, ElfError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Literal

# ELF constants (elf.h).
EM_BPF = 247
ET_REL = 1
SHT_NULL = 0
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_NOBITS = 8
SHT_REL = 9
SHT_LLVM_ADDRSIG = 0x6FFF4C03
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STT_FILE = 4
STV_DEFAULT = 0
STV_INTERNAL = 1
STV_HIDDEN = 2

# BPF relocation types (llvm_reloc.rst).
R_BPF_NONE = 0
R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4
R_BPF_64_32 = 10

_EHDR64 = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR64_SIZE = 64
_SYM64_SIZE = 24
_REL64_SIZE = 16


@records.frozen
class Section:
    index: int
    name: str
    type: int
    flags: int
    size: int
    link: int
    info: int
    entsize: int
    addralign: int
    data: bytes = records.field(repr=False)  # b"" for SHT_NOBITS

    @property
    def is_exec(self) -> bool:
        return self.type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)


@records.frozen
class Symbol:
    index: int
    name: str
    value: int
    size: int
    bind: int
    type: int
    visibility: int
    shndx: int  # section index, or SHN_UNDEF / SHN_ABS / SHN_COMMON

    @property
    def is_global(self) -> bool:
        return self.bind in (STB_GLOBAL, STB_WEAK)


@records.frozen
class Relocation:
    offset: int  # byte offset in the target section
    symbol: int  # index into the symbol table
    type: int  # R_BPF_*


@records.frozen
class ElfObject:
    """The parts of an ELF relocatable object that a BPF loader needs."""

    name: str
    byteorder: Literal["little", "big"]
    sections: tuple[Section, ...]  # indexed by section index (0 is the null section)
    symbols: tuple[Symbol, ...]  # indexed by symbol index
    relocations: dict[int, tuple[Relocation, ...]]  # target section index -> relocations
    symtab_index: int

    def section_by_name(self, name: str) -> Section | None:
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def symbols_in(self, shndx: int) -> list[Symbol]:
        return [s for s in self.symbols if s.shndx == shndx]


@contextmanager
def _converted(obj: str, section: str | None = None) -> Iterator[None]:
    """Turn any exception from pyelftools into ElfError."""
    try:
        yield
    except BpfObjError:
        raise
    except Exception as exc:  # pyelftools raises many unrelated types
        raise ElfError(
            f"malformed ELF: {type(exc).__name__}: {exc}",
            obj=obj,
            section=section,
            hint="the file is truncated or corrupt; rebuild it with clang -target bpf",
        ) from exc


_Header = tuple[int, int, int, int, int, int, int, int, int, int]


def _precheck(data: bytes, name: str) -> tuple[Literal["little", "big"], list[_Header], int]:
    """Validate the ELF header and the section table's bounds; return the byte order, the
    section headers (sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link,
    sh_info, sh_addralign, sh_entsize) and the section name table's index."""
    if len(data) < _EHDR64.size:
        raise ElfError(
            f"file is too short for an ELF header ({len(data)} bytes)",
            obj=name,
            hint="is this a BPF object built with clang -target bpf -c?",
        )
    if data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file (bad magic)", obj=name, hint="pass a BPF object file")
    if data[4] != 2:
        raise ElfError("not a 64-bit ELF object", obj=name, hint="BPF objects are ELF64")
    if data[5] not in (1, 2):
        raise ElfError(f"unknown ELF data encoding {data[5]}", obj=name)
    order: Literal["little", "big"] = "little" if data[5] == 1 else "big"
    fmt = ("<" if order == "little" else ">") + _EHDR64.format[1:]
    (_, e_type, e_machine, _, _, _, e_shoff, _, _, _, _, e_shentsize, e_shnum, e_shstrndx) = (
        struct.unpack_from(fmt, data)
    )
    if e_machine != EM_BPF:
        raise ElfError(
            f"ELF machine is {e_machine}, not BPF ({EM_BPF})",
            obj=name,
            hint="compile with clang -target bpf",
        )
    if e_type != ET_REL:
        raise ElfError(
            f"ELF type is {e_type}, not a relocatable object (ET_REL)",
            obj=name,
            hint="pass the .o produced by clang -c, not a linked file",
        )
    if e_shnum == 0 or e_shentsize != _SHDR64_SIZE:
        raise ElfError(
            f"bad section header table (count {e_shnum}, entry size {e_shentsize})",
            obj=name,
            hint="the file is truncated or corrupt",
        )
    if e_shoff + e_shnum * _SHDR64_SIZE > len(data):
        raise ElfError(
            f"section header table at {e_shoff:#x} runs past the end of the file "
            f"({len(data)} bytes)",
            obj=name,
            hint="the file is truncated",
        )
    if e_shstrndx >= e_shnum:
        raise ElfError(f"section name table index {e_shstrndx} out of range", obj=name)
    # Each section's file range must be inside the file (NOBITS takes no space).
    shfmt = ("<" if order == "little" else ">") + "IIQQQQIIQQ"
    headers: list[_Header] = list(
        struct.iter_unpack(shfmt, data[e_shoff : e_shoff + e_shnum * _SHDR64_SIZE])
    )
    for i, (_, sh_type, _, _, sh_offset, sh_size, _, _, _, _) in enumerate(headers):
        if sh_type not in (SHT_NOBITS, SHT_NULL) and sh_offset + sh_size > len(data):
            raise ElfError(
                f"section #{i} (offset {sh_offset:#x}, size {sh_size:#x}) runs past the end "
                f"of the file ({len(data)} bytes)",
                obj=name,
                hint="the file is truncated",
            )
    return order, headers, e_shstrndx


def read_elf(data: bytes, name: str = "<memory>") -> ElfObject:
    """Parse `data` as a BPF ELF object. Raises ElfError on anything malformed."""
    order, headers, shstrndx = _precheck(data, name)
    shstr = headers[shstrndx]
    names = data[shstr[4] : shstr[4] + shstr[5]] if shstr[1] != SHT_NOBITS else b""
    sections: list[Section] = []
    for i, (sh_name, sh_type, flags, _, start, size, link, info, align, entsize) in enumerate(
        headers
    ):
        # The stored bytes, as libbpf sees them (libelf's elf_getdata), compressed or not.
        sections.append(
            Section(
                index=i,
                name=_cstring(names, sh_name, name, f"#{i}"),
                type=sh_type,
                flags=flags,
                size=size,
                link=link,
                info=info,
                entsize=entsize,
                addralign=align,
                data=b"" if sh_type in (SHT_NOBITS, SHT_NULL) else data[start : start + size],
            )
        )

    symtabs = [s for s in sections if s.type == SHT_SYMTAB]
    if not symtabs:
        raise ElfError(
            "no symbol table (stripped object?)",
            obj=name,
            hint="do not strip BPF objects; libbpf needs the symbols too",
        )
    if len(symtabs) > 1:
        raise ElfError("more than one symbol table", obj=name)
    symtab = symtabs[0]
    symbols = _read_symbols(symtab, sections, order, name)
    relocations: dict[int, tuple[Relocation, ...]] = {}
    for rel in sections:
        if rel.type == SHT_REL:
            if rel.info >= len(sections) or not _needs_relocations(sections[rel.info]):
                continue  # DWARF and BTF relocations: libbpf ignores them too
            relocations[rel.info] = _read_relocations(rel, sections, len(symbols), order, name)
        elif rel.type == SHT_RELA and rel.size:
            raise ElfError(
                "RELA relocations are not used by BPF objects",
                obj=name,
                section=rel.name,
                hint="compile with clang -target bpf",
            )
    return ElfObject(
        name=name,
        byteorder=order,
        sections=tuple(sections),
        symbols=symbols,
        relocations=relocations,
        symtab_index=symtab.index,
    )


def _needs_relocations(target: Section) -> bool:
    """Relocations a BPF loader applies: to code, and to .maps / struct_ops definitions."""
    return bool(target.flags & SHF_EXECINSTR) or target.name.lstrip("?") in (
        ".maps", ".struct_ops", ".struct_ops.link"
    )


def _cstring(table: bytes, offset: int, name: str, where: str) -> str:
    if offset >= len(table) and offset != 0:
        raise ElfError(
            f"string offset {offset:#x} is past the string table ({len(table)} bytes)",
            obj=name,
            section=where,
            hint="the file is corrupt",
        )
    end = table.find(b"\0", offset)
    if end < 0:
        end = len(table)
    try:
        return table[offset:end].decode()
    except UnicodeDecodeError as exc:
        raise ElfError(f"string at {offset:#x} is not UTF-8", obj=name, section=where) from exc


def _read_symbols(
    symtab: Section, sections: list[Section], order: str, name: str
) -> tuple[Symbol, ...]:
    if symtab.entsize != _SYM64_SIZE:
        raise ElfError(
            f"symbol table entry size is {symtab.entsize}, expected {_SYM64_SIZE}",
            obj=name,
            section=symtab.name,
        )
    if symtab.link >= len(sections):
        raise ElfError("symbol table's string table index is out of range", obj=name)
    strtab = sections[symtab.link].data
    fmt = ("<" if order == "little" else ">") + "IBBHQQ"
    symbols = []
    for i, (st_name, st_info, st_other, st_shndx, st_value, st_size) in enumerate(
        struct.iter_unpack(fmt, symtab.data[: len(symtab.data) // _SYM64_SIZE * _SYM64_SIZE])
    ):
        sym_name = _cstring(strtab, st_name, name, symtab.name)
        bind, typ = st_info >> 4, st_info & 0xF
        if typ == STT_SECTION and not sym_name and st_shndx < len(sections):
            sym_name = sections[st_shndx].name
        symbols.append(
            Symbol(
                index=i,
                name=sym_name,
                value=st_value,
                size=st_size,
                bind=bind,
                type=typ,
                visibility=st_other & 0x3,
                shndx=st_shndx,
            )
        )
    return tuple(symbols)


def _read_relocations(
    sec: Section, sections: list[Section], nsyms: int, order: str, name: str
) -> tuple[Relocation, ...]:
    if sec.entsize != _REL64_SIZE:
        raise ElfError(
            f"relocation entry size is {sec.entsize}, expected {_REL64_SIZE}",
            obj=name,
            section=sec.name,
        )
    if sec.info >= len(sections):
        raise ElfError(
            f"relocations target section #{sec.info}, which does not exist",
            obj=name,
            section=sec.name,
        )
    fmt = ("<" if order == "little" else ">") + "QQ"
    relos = []
    for r_offset, r_info in struct.iter_unpack(fmt, sec.data[: len(sec.data) // 16 * 16]):
        sym, typ = r_info >> 32, r_info & 0xFFFFFFFF
        if sym >= nsyms:
            raise ElfError(
                f"relocation at {r_offset:#x} names symbol #{sym}, but there are only {nsyms}",
                obj=name,
                section=sec.name,
                hint="the file is corrupt",
            )
        relos.append(Relocation(offset=r_offset, symbol=sym, type=typ))
    return tuple(relos)


def read_elf_sections(data: bytes, name: str) -> dict[str, bytes]:
    """Section name -> contents of any ELF file (vmlinux, a .ko): for finding .BTF and
    .BTF.base in kernel files. Raises ElfError on malformed input."""
    from elftools.elf.elffile import ELFFile

    out: dict[str, bytes] = {}
    with _converted(name):
        elf = ELFFile(io.BytesIO(data))
        for sec in elf.iter_sections():
            if sec["sh_type"] in ("SHT_NOBITS", "SHT_NULL"):
                continue
            if sec["sh_offset"] + sec["sh_size"] > len(data):
                raise ElfError(f"section {sec.name} runs past the end of the file", obj=name)
            out[sec.name] = bytes(sec.data())
    return out
