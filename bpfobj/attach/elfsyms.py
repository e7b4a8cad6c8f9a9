"""Function symbols of native ELF files (executables, shared libraries), for uprobes.

A small reader of what uprobe attach needs from an ELF file: the header, program headers
(PT_LOAD segments), section headers, ``.dynsym`` / ``.symtab`` with their string tables, and
symbol versions (``.gnu.version`` + ``.gnu.version_d``). It reads through ``mmap`` and
``struct`` only: a 100 MB binary costs a page fault per symbol, not a copy, and pyelftools
stays inside `bpfobj.elf` (which reads BPF objects). ELF32 and ELF64, both byte orders.

`find_func_offset` is libbpf's elf_find_func_offset() (tools/lib/bpf/elf.c): ``.dynsym``
first, then ``.symtab``; ``name``, ``name@VER`` or ``name@@VER``; several non-weak symbols
at different offsets are ambiguous, a weak one loses to a strong one. The file offset the
kernel wants is the symbol's address translated through the PT_LOAD segment containing it:
``st_value - p_vaddr + p_offset`` (libbpf before 1.2 did this with segments; elf.c in 6.12
uses the section header, ``st_value - sh_addr + sh_offset``, which gives the same number
for every symbol inside a loaded section -- `section_offset` computes that one, and the
unit tests check they agree). `resolve_pattern` is elf_resolve_pattern_offsets() with
libbpf's glob_match().
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator

from bpfobj import records
from bpfobj.closing import Closing
from bpfobj.errors import InputError, NotSupportedError

# elf.h
ET_EXEC = 2
ET_DYN = 3
PT_LOAD = 1
PF_X = 1
SHT_SYMTAB = 2
SHT_DYNSYM = 11
SHT_NOTE = 7
SHT_GNU_VERDEF = 0x6FFFFFFD
SHT_GNU_VERSYM = 0x6FFFFFFF
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
STT_FUNC = 2
STT_GNU_IFUNC = 10
VERSYM_HIDDEN = 0x8000
VERSYM_VERSION = 0x7FFF
#: e_machine numbers of the Arch records' ``elf_machine`` names (elf.h)
E_MACHINE = {"EM_386": 3, "EM_ARM": 40, "EM_X86_64": 62, "EM_AARCH64": 183, "EM_BPF": 247}


@records.frozen
class Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


@records.frozen
class SectionHeader:
    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


@records.frozen
class NativeSymbol:
    """One symbol of ``.dynsym`` or ``.symtab``; ``version`` from ``.gnu.version_d``
    (dynsym only), ``hidden`` for ``name@VER`` (not the default ``name@@VER``)."""

    name: str
    value: int
    size: int
    bind: int
    type: int
    shndx: int
    table: int  # SHT_DYNSYM or SHT_SYMTAB
    version: str | None = None
    hidden: bool = False


class NativeElf(Closing):
    """An mmap-ed native ELF file. Use as a context manager, or `close()` it."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < 52:
                    raise self._error("too small to be an ELF file")
                self._mm: mmap.mmap | bytes = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}", hint="check the path "
                             "and its permissions (uprobes need a readable binary)") from None
        try:
            self._parse_header()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<memory>") -> NativeElf:
        self = cls.__new__(cls)
        self.path = name
        self._mm = data
        self._parse_header()
        return self

    def _error(self, what: str) -> InputError:
        return InputError(f"{self.path}: {what}", hint="uprobes attach to ELF executables "
                          "and shared libraries")

    # -- headers ----------------------------------------------------------------------------

    def _parse_header(self) -> None:
        mm = self._mm
        if len(mm) < 52 or mm[:4] != b"\x7fELF":
            raise self._error("not an ELF file")
        ei_class, ei_data = mm[4], mm[5]
        if ei_class not in (1, 2) or ei_data not in (1, 2):
            raise self._error(f"bad ELF class {ei_class} or data encoding {ei_data}")
        self.is64 = ei_class == 2
        self.byteorder = "little" if ei_data == 1 else "big"
        e = "<" if ei_data == 1 else ">"
        self._e = e
        if self.is64:
            (self.e_type, self.e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum,
             e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from(e + "HHIQQQIHHHHHH", mm, 16)
        else:
            (self.e_type, self.e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum,
             e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from(e + "HHIIIIIHHHHHH", mm, 16)
        self.segments = self._read_segments(e_phoff, e_phentsize, e_phnum)
        self.sections = self._read_sections(e_shoff, e_shentsize, e_shnum, e_shstrndx)

    def _check_range(self, off: int, size: int, what: str) -> None:
        if off < 0 or size < 0 or off + size > len(self._mm):
            raise self._error(f"{what} at {off:#x} (+{size:#x}) is past the end of the file")

    def _read_segments(self, phoff: int, phentsize: int, phnum: int) -> tuple[Segment, ...]:
        if not phoff or not phnum:
            return ()
        fmt = self._e + ("IIQQQQQQ" if self.is64 else "IIIIIIII")
        need = struct.calcsize(fmt)
        if phentsize < need:
            raise self._error(f"program header entries of {phentsize} bytes")
        self._check_range(phoff, phentsize * phnum, "program headers")
        out = []
        for i in range(phnum):
            v = struct.unpack_from(fmt, self._mm, phoff + i * phentsize)
            if self.is64:
                p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = v
            else:
                p_type, p_offset, p_vaddr, _, p_filesz, p_memsz, p_flags, _ = v
            out.append(Segment(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz))
        return tuple(out)

    def _read_sections(self, shoff: int, shentsize: int, shnum: int,
                       shstrndx: int) -> tuple[SectionHeader, ...]:
        if not shoff:
            return ()
        fmt = self._e + ("IIQQQQIIQQ" if self.is64 else "IIIIIIIIII")
        need = struct.calcsize(fmt)
        if shentsize < need:
            raise self._error(f"section header entries of {shentsize} bytes")
        if shnum == 0:  # extended numbering: the count is in section 0's sh_size
            self._check_range(shoff, need, "section header 0")
            shnum = struct.unpack_from(fmt, self._mm, shoff)[5]
        self._check_range(shoff, shentsize * shnum, "section headers")
        raw = [struct.unpack_from(fmt, self._mm, shoff + i * shentsize) for i in range(shnum)]
        if shstrndx == 0xFFFF and raw:  # SHN_XINDEX: the index is in section 0's sh_link
            shstrndx = raw[0][6]
        strtab = raw[shstrndx] if 0 < shstrndx < len(raw) else None
        out = []
        for i, (name, typ, flags, addr, off, size, link, info, _align, entsize) in enumerate(raw):
            sname = self._str(strtab[4], strtab[5], name) if strtab is not None else ""
            out.append(SectionHeader(i, sname, typ, flags, addr, off, size, link, info, entsize))
        return tuple(out)

    def _str(self, table_off: int, table_size: int, off: int) -> str:
        if off >= table_size:
            return ""
        start = table_off + off
        end = self._mm.find(b"\0", start, table_off + table_size)
        if end < 0:
            end = table_off + table_size
        return bytes(self._mm[start:end]).decode(errors="replace")

    def section_by_type(self, sh_type: int) -> SectionHeader | None:
        for sec in self.sections:
            if sec.type == sh_type:
                return sec
        return None

    def section_by_name(self, name: str) -> SectionHeader | None:
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def section_data(self, sec: SectionHeader) -> bytes:
        self._check_range(sec.offset, sec.size, f"section {sec.name}")
        return bytes(self._mm[sec.offset : sec.offset + sec.size])

    # -- symbols ----------------------------------------------------------------------------

    def _verdefs(self) -> dict[int, str]:
        """Version index -> name from ``.gnu.version_d`` (Elf_Verdef / Elf_Verdaux)."""
        sec = self.section_by_type(SHT_GNU_VERDEF)
        if sec is None or not 0 < sec.link < len(self.sections):
            return {}
        strtab = self.sections[sec.link]
        out: dict[int, str] = {}
        off, e = 0, self._e
        for _ in range(sec.info or 0xFFFF):
            if off + 20 > sec.size:
                break
            _ver, _flags, ndx, cnt, _hash, aux, nxt = struct.unpack_from(
                e + "HHHHIII", self._mm, sec.offset + off)
            if cnt and off + aux + 8 <= sec.size:
                vda_name = struct.unpack_from(e + "I", self._mm, sec.offset + off + aux)[0]
                out[ndx] = self._str(strtab.offset, strtab.size, vda_name)
            if not nxt:
                break
            off += nxt
        return out

    def symbols(self, sh_type: int, st_type: int | None = STT_FUNC) -> Iterator[NativeSymbol]:
        """Defined symbols of the first section of `sh_type` (SHT_DYNSYM / SHT_SYMTAB),
        of `st_type` (None: any), like libbpf elf_sym_iter_next() (symbols whose section
        does not exist -- undefined, absolute -- are skipped)."""
        sec = self.section_by_type(sh_type)
        if sec is None or not sec.entsize or not 0 < sec.link < len(self.sections):
            return
        strtab = self.sections[sec.link]
        fmt = self._e + ("IBBHQQ" if self.is64 else "IIIBBH")
        size = struct.calcsize(fmt)
        if sec.entsize < size:
            raise self._error(f"symbol entries of {sec.entsize} bytes in {sec.name}")
        count = sec.size // sec.entsize
        self._check_range(sec.offset, count * sec.entsize, sec.name)
        versym = self.section_by_type(SHT_GNU_VERSYM) if sh_type == SHT_DYNSYM else None
        verdefs = self._verdefs() if versym is not None else {}
        nsec = len(self.sections)
        for i in range(count):
            v = struct.unpack_from(fmt, self._mm, sec.offset + i * sec.entsize)
            if self.is64:
                st_name, st_info, _other, st_shndx, st_value, st_size = v
            else:
                st_name, st_value, st_size, st_info, _other, st_shndx = v
            typ = st_info & 0xF
            if st_type is not None and typ != st_type:
                continue
            if st_shndx == SHN_UNDEF or st_shndx >= SHN_LORESERVE or st_shndx >= nsec:
                continue
            name = self._str(strtab.offset, strtab.size, st_name)
            if not name:
                continue
            version, hidden = None, False
            if versym is not None and (i + 1) * 2 <= versym.size:
                vs = struct.unpack_from(self._e + "H", self._mm, versym.offset + i * 2)[0]
                version = verdefs.get(vs & VERSYM_VERSION)
                hidden = bool(vs & VERSYM_HIDDEN)
            yield NativeSymbol(name, st_value, st_size, st_info >> 4, typ, st_shndx, sh_type,
                               version, hidden)

    # -- addresses -> file offsets -------------------------------------------------------

    def file_offset(self, vaddr: int) -> int:
        """The file offset of virtual address `vaddr`: through the PT_LOAD segment that
        contains it (executable segments first), else through its section."""
        loads = [s for s in self.segments if s.type == PT_LOAD]
        loads.sort(key=lambda s: not s.flags & PF_X)
        for seg in loads:
            if seg.vaddr <= vaddr < seg.vaddr + max(seg.memsz, seg.filesz):
                return vaddr - seg.vaddr + seg.offset
        for sec in self.sections:
            if sec.addr and sec.addr <= vaddr < sec.addr + sec.size:
                return vaddr - sec.addr + sec.offset
        if not loads:  # a relocatable object: addresses are section-relative already
            return vaddr
        raise self._error(f"address {vaddr:#x} is in no loadable segment")

    def sym_offset(self, sym: NativeSymbol) -> int:
        """The uprobe offset of `sym` (see the module docstring)."""
        if not self.segments:
            return self.section_offset(sym)
        return self.file_offset(sym.value)

    def section_offset(self, sym: NativeSymbol) -> int:
        """libbpf 6.12 elf_sym_offset(): ``st_value - sh_addr + sh_offset``."""
        sec = self.sections[sym.shndx]
        return sym.value - sec.addr + sec.offset

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        mm = self._mm
        self._mm = b""
        if isinstance(mm, mmap.mmap):
            mm.close()


def glob_match(text: str, pattern: str) -> bool:
    """libbpf glob_match(): ``*`` any run, ``?`` any one character, nothing else special."""
    n, p = len(text), len(pattern)
    ti = pi = 0
    star_p, star_t = -1, 0
    while ti < n:
        if pi < p and (pattern[pi] == "?" or pattern[pi] == text[ti]):
            ti += 1
            pi += 1
        elif pi < p and pattern[pi] == "*":
            star_p, star_t = pi, ti
            pi += 1
        elif star_p >= 0:
            pi = star_p + 1
            star_t += 1
            ti = star_t
        else:
            return False
    while pi < p and pattern[pi] == "*":
        pi += 1
    return pi == p


def _symbol_match(sym: NativeSymbol, name: str, lib_ver: str | None) -> bool:
    """libbpf elf.c symbol_match()."""
    sname = sym.name
    if not sname.startswith(name):
        return False
    if len(sname) > len(name) and sname[len(name)] != "@":
        return False
    if lib_ver is None:
        return True
    if sym.table == SHT_DYNSYM:
        return sym.version == lib_ver
    return sname == f"{name}@{lib_ver}" or sname == f"{name}@@{lib_ver}"


def find_func_offset(elf: NativeElf, name: str) -> int:
    """The uprobe offset of function `name` (``func``, ``func@VER``, ``func@@VER``) in
    `elf` (libbpf elf_find_func_offset()). Raises `InputError` when it is missing, 0 or
    ambiguous."""
    base, at, ver = name.partition("@")
    lib_ver = ver.lstrip("@") if at else None
    for table in (SHT_DYNSYM, SHT_SYMTAB):
        found: int | None = None
        last_bind = -1
        for sym in elf.symbols(table, STT_FUNC):
            if not _symbol_match(sym, base, lib_ver):
                continue
            off = elf.sym_offset(sym)
            if found is not None:
                if off == found:
                    continue  # same offset, no problem
                if last_bind != STB_WEAK and sym.bind != STB_WEAK:
                    raise InputError(
                        f"{elf.path}: function {name!r} is ambiguous: symbols at offsets "
                        f"{found:#x} and {off:#x}", hint="name a version (func@@VER) or "
                        "attach by offset")
                if sym.bind == STB_WEAK:
                    continue  # a strong one wins
            found, last_bind = off, sym.bind
        if found:
            return found
    hint = ("is it a macro, an inline function, or an IFUNC (memcpy, strlen...)?"
            if elf.e_type == ET_DYN else "try the shared library that defines it")
    raise InputError(f"{elf.path}: no function {name!r} in .dynsym or .symtab", hint=hint)


def resolve_pattern(elf: NativeElf, pattern: str) -> list[tuple[str, int]]:
    """(name, offset) of every function matching glob `pattern` (libbpf
    elf_resolve_pattern_offsets(): ``.symtab`` first; ``.dynsym`` only when it found none)."""
    for table in (SHT_SYMTAB, SHT_DYNSYM):
        out = [(s.name, elf.sym_offset(s)) for s in elf.symbols(table, STT_FUNC)
               if glob_match(s.name, pattern)]
        if out:
            return out
    raise InputError(f"{elf.path}: no function matches {pattern!r}")


def resolve_names(elf: NativeElf, names: list[str]) -> list[int]:
    """Offsets of functions `names`, in order (libbpf elf_resolve_syms_offsets())."""
    want = set(names)
    found: dict[str, tuple[int, int]] = {}
    for table in (SHT_DYNSYM, SHT_SYMTAB):
        for sym in elf.symbols(table, STT_FUNC):
            if sym.name not in want:
                continue
            off = elf.sym_offset(sym)
            prev = found.get(sym.name)
            if prev is not None:
                if prev[0] == off or sym.bind == STB_WEAK:
                    continue
                if prev[1] != STB_WEAK:
                    raise InputError(f"{elf.path}: function {sym.name!r} is ambiguous")
            found[sym.name] = (off, sym.bind)
    missing = [n for n in names if n not in found]
    if missing:
        raise InputError(f"{elf.path}: no function {', '.join(map(repr, missing))}")
    return [found[n][0] for n in names]


def check_machine(elf: NativeElf, elf_machine: str) -> None:
    """Refuse a binary of another architecture than `elf_machine` (an Arch record's)."""
    want = E_MACHINE.get(elf_machine)
    if want is not None and elf.e_machine != want:
        raise NotSupportedError(
            f"{elf.path} is for ELF machine {elf.e_machine}, this kernel runs {elf_machine}",
            hint="uprobes attach to binaries of the running architecture")
