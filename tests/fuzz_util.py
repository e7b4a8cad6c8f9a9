"""Helpers for tests/test_fuzz_open.py: map a real BPF object's structure and mutate it.

`Layout.of(data)` reads a (valid) catalogue object with plain `struct` -- on purpose not
through bpfobj or pyelftools -- and lists:

* `fields`: every header field worth corrupting, by category (ELF header, section headers,
  symbols, relocations, BTF header, BTF type records, .BTF.ext, the .maps DATASEC and the
  map definitions -- or the legacy `struct bpf_map_def`s --, the other DATASECs), each
  with its absolute file offset, width and a few nasty candidate values derived from the
  original (out of range ids, unknown kinds, huge vlen, sizes just past the end ...);
* `regions`: byte ranges of the interesting sections (for random flips);
* `file_cuts`: lengths to truncate the file at (every section and header boundary +-1);
* `section_cuts`: sizes to shrink a section to (its own record boundaries: inside the
  .BTF header and type records, the .BTF.ext subsections, symbol/relocation entries).

`run_open(data, name)` opens the bytes under a 1 s SIGALRM guard and checks the contract:
success, or a `BpfObjError` that is not an `InternalError`, whose text is one non-empty
line naming the object. Every call is counted in `STATS`.
"""

from __future__ import annotations

import collections
import hashlib
import signal
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bpfobj import BpfObject
from bpfobj.errors import BpfObjError, InternalError

HANG_SECONDS = 1.0
# A loaded machine (parallel CI jobs) can stretch a 0.3 s open past 1 s of wall time: the
# guard fails an input once it has used HANG_SECONDS of CPU, or WALL_SECONDS in any case.
WALL_SECONDS = 15.0

SHT_SYMTAB, SHT_STRTAB, SHT_REL, SHT_NOBITS = 2, 3, 9, 8
SHN_ABS, SHN_COMMON = 0xFFF1, 0xFFF2
SH_TYPES = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15, 16, 18, 19, 0x6FFF4C03, 0x6FFFFFF6,
    0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF, 0x70000000, 0x70000003, 0xFFFFFFFF,
)
SHF_EXECINSTR, SHF_COMPRESSED = 0x4, 0x800

# BTF kinds: (fixed u32 words, u32 words per vlen element), as btf.rst 2.2.
BTF_KIND_WORDS = {
    1: (4, 0), 2: (3, 0), 3: (6, 0), 4: (3, 3), 5: (3, 3), 6: (3, 2), 7: (3, 0), 8: (3, 0),
    9: (3, 0), 10: (3, 0), 11: (3, 0), 12: (3, 0), 13: (3, 2), 14: (4, 0), 15: (3, 3),
    16: (3, 0), 17: (4, 0), 18: (3, 0), 19: (3, 3),
}
K_ARRAY, K_STRUCT, K_UNION, K_ENUM, K_PROTO, K_VAR, K_DATASEC, K_DECL_TAG, K_ENUM64 = (
    3, 4, 5, 6, 13, 14, 15, 17, 19,
)
# Kinds whose third word is a type reference (not a size).
K_REF_IN_SIZE_TYPE = frozenset({2, 8, 9, 10, 11, 12, 13, 14, 17, 18})

CATEGORIES = ("ehdr", "shdr", "sym", "rel", "btf_hdr", "btf_type", "btf_ext", "maps", "datasec")


def same_length_infos(kind: int, vlen: int, info: int) -> list[int]:
    """Info words of other kinds whose record has the same length as (kind, vlen): the type
    section still splits into the same records, so the change reaches the code that
    interprets the types (an ENUM of 3 values becomes an ENUM64 of 2, a STRUCT a DATASEC)."""
    fixed, per = BTF_KIND_WORDS[kind]
    words = fixed + per * vlen
    out = []
    for k, (kf, kp) in BTF_KIND_WORDS.items():
        if k == kind:
            continue
        if kp == 0:
            if kf == words:
                out.append((info & 0x80000000) | (k << 24))
        elif (words - kf) % kp == 0 and 0 <= (words - kf) // kp <= 0xFFFF:
            out.append((info & 0x80000000) | (k << 24) | (words - kf) // kp)
    return out


def _mask(size: int) -> int:
    return (1 << (8 * size)) - 1


def nasty(size: int) -> tuple[int, ...]:
    """Generic edge values for an unsigned field of `size` bytes."""
    top = _mask(size)
    return (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, top, top - 1, top >> 1, (top >> 1) + 1)


@dataclass(frozen=True)
class Field:
    """One integer field of the object: `name` for messages, where it is, and candidates."""

    name: str
    offset: int
    size: int  # bytes: 1, 2, 4 or 8
    original: int
    candidates: tuple[int, ...]

    def values(self) -> tuple[int, ...]:
        top = _mask(self.size)
        vals = {v & top for v in (*self.candidates, *nasty(self.size))}
        vals.discard(self.original)
        return tuple(sorted(vals)) or (self.original ^ 1,)


@dataclass(frozen=True)
class SectionInfo:
    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int
    header: int  # file offset of its section header


@dataclass
class Layout:
    data: bytes
    order: str  # "<" or ">"
    sections: list[SectionInfo]
    fields: dict[str, list[Field]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    regions: dict[str, tuple[int, int]] = field(default_factory=dict)
    file_cuts: list[int] = field(default_factory=list)
    section_cuts: dict[int, list[int]] = field(default_factory=dict)  # shndx -> sizes
    btf_names: tuple[int, ...] = ()  # .BTF string offsets of names the loader looks for
    btf_ids: tuple[int, ...] = ()  # the first type id of each kind
    btf_records: list[tuple[int, int, int, int]] = field(default_factory=list)  # id, at, kind, vlen
    btf_str_base: int = 0  # file offset of the .BTF string section

    # -- building ------------------------------------------------------------------------

    @classmethod
    def of(cls, data: bytes) -> Layout:
        assert data[:4] == b"\x7fELF" and data[4] == 2, "not an ELF64 object"
        order = "<" if data[5] == 1 else ">"
        (e_shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        e_shentsize, e_shnum, e_shstrndx = struct.unpack_from(order + "HHH", data, 0x3A)
        raw = []
        for i in range(e_shnum):
            at = e_shoff + i * 64
            vals = struct.unpack_from(order + "IIQQQQIIQQ", data, at)
            raw.append((at, vals))
        strtab_hdr = raw[e_shstrndx][1]
        shstr = data[strtab_hdr[4] : strtab_hdr[4] + strtab_hdr[5]]
        sections = []
        for i, (at, (sh_name, sh_type, flags, _, off, size, link, info, _, entsize)) in enumerate(
            raw
        ):
            name = shstr[sh_name : shstr.index(b"\0", sh_name)].decode()
            sections.append(
                SectionInfo(i, name, sh_type, flags, off, size, link, info, entsize, at)
            )
        self = cls(data, order, sections)
        self._ehdr(e_shoff, e_shentsize, e_shnum, e_shstrndx)
        self._shdrs(e_shoff, e_shnum)
        for sec in sections:
            if sec.type == SHT_SYMTAB:
                self._symtab(sec)
            elif sec.type == SHT_REL:
                self._rel(sec)
            elif sec.type == SHT_STRTAB:
                self._strtab(sec)
            elif sec.type != SHT_NOBITS and sec.size and sec.type:
                self.regions.setdefault(sec.name, (sec.offset, sec.offset + sec.size))
        legacy, symtab = self.section("maps"), self.section(".symtab")
        if legacy is not None and symtab is not None:
            self._legacy_maps(legacy, symtab)
        btf = self.section(".BTF")
        if btf is not None:
            self._btf(btf)
            ext = self.section(".BTF.ext")
            if ext is not None:
                self._btf_ext(ext)
        self._cuts(e_shoff, e_shnum)
        return self

    def section(self, name: str) -> SectionInfo | None:
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def _u(self, fmt: str, offset: int) -> int:
        (value,) = struct.unpack_from(self.order + fmt, self.data, offset)
        return int(value)

    def u32(self, offset: int) -> int:
        return self._u("I", offset)

    def u64(self, offset: int) -> int:
        return self._u("Q", offset)

    def btf_string(self, off: int) -> str:
        at = self.btf_str_base + off
        return self.data[at : self.data.index(b"\0", at)].decode(errors="replace")

    def _add(self, cat: str, name: str, offset: int, size: int, *cands: int) -> None:
        fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
        self.fields[cat].append(Field(name, offset, size, self._u(fmt, offset), tuple(cands)))

    def _ehdr(self, shoff: int, shentsize: int, shnum: int, shstrndx: int) -> None:
        n = len(self.data)
        self._add("ehdr", "e_ident[EI_CLASS]", 4, 1, 1, 2, 3)
        self._add("ehdr", "e_ident[EI_DATA]", 5, 1, 0, 1, 2, 3)
        self._add("ehdr", "e_type", 16, 2, 0, 1, 2, 3, 4)
        self._add("ehdr", "e_machine", 18, 2, 247, 62, 0)
        self._add("ehdr", "e_shoff", 0x28, 8, 0, 64, n, n - 64, n - 1, shoff - 64, shoff + 1,
                  shoff + 64, shoff - 1, 1 << 63, 1 << 62)
        self._add("ehdr", "e_ehsize", 0x34, 2, 0, 52, 64)
        self._add("ehdr", "e_shentsize", 0x3A, 2, 0, 40, 63, 65, 128, shentsize * 2)
        self._add("ehdr", "e_shnum", 0x3C, 2, 0, 1, 2, shnum - 1, shnum + 1, shnum * 2)
        self._add("ehdr", "e_shstrndx", 0x3E, 2, 0, 1, shnum - 1, shnum, shnum + 1, 0xFFFF,
                  *(s.index for s in self.sections if s.type != SHT_STRTAB))
        self.regions["elf header"] = (0, 64)

    def _shdrs(self, shoff: int, shnum: int) -> None:
        n = len(self.data)
        self.regions["section headers"] = (shoff, shoff + 64 * shnum)
        offsets = sorted({s.offset for s in self.sections})
        for s in self.sections:
            tag = f"shdr[{s.index} {s.name or '-'}]"
            at = s.header
            self._add("shdr", f"{tag}.sh_name", at, 4, s.offset, *(t.header for t in self.sections[:4]))
            self._add("shdr", f"{tag}.sh_type", at + 4, 4, *SH_TYPES)
            flags = self._u("Q", at + 8)
            self._add("shdr", f"{tag}.sh_flags", at + 8, 8, 0, 1, 2, 4, 6, 7, 0x30,
                      flags | SHF_COMPRESSED, flags ^ 4, flags ^ 1)
            self._add("shdr", f"{tag}.sh_offset", at + 24, 8, 0, 1, n, n - 1, s.offset + 1,
                      s.offset - 1, s.offset + 8, 1 << 63, *offsets[:: max(1, len(offsets) // 6)])
            self._add("shdr", f"{tag}.sh_size", at + 32, 8, 0, 1, s.size - 1, s.size + 1,
                      s.size - 8, s.size + 8, s.size // 2, s.size * 2, n, n - s.offset,
                      n - s.offset + 1, 1 << 63)
            self._add("shdr", f"{tag}.sh_link", at + 40, 4, 0, 1, shnum - 1, shnum, shnum + 1,
                      s.index, s.link + 1, s.link - 1, 0xFFFF, 0xFFF1)
            self._add("shdr", f"{tag}.sh_info", at + 44, 4, 0, 1, shnum - 1, shnum, shnum + 1,
                      s.index, s.info + 1, s.info - 1, 0xFFFF)
            self._add("shdr", f"{tag}.sh_entsize", at + 56, 8, 0, 1, 8, 16, 24, 32, 48, 1 << 40)

    def _symtab(self, sec: SectionInfo) -> None:
        self.regions[".symtab"] = (sec.offset, sec.offset + sec.size)
        nsec = len(self.sections)
        strsize = self.sections[sec.link].size if sec.link < nsec else 0
        names = []
        for k in range(sec.size // 24):
            names.append(self._u("I", sec.offset + 24 * k))
        for k in range(sec.size // 24):
            at = sec.offset + 24 * k
            shndx = self._u("H", at + 6)
            target = self.sections[shndx].size if shndx < nsec else 0
            tag = f"sym[{k}]"
            self._add("sym", f"{tag}.st_name", at, 4, 0, strsize - 1, strsize, strsize + 1,
                      *names[:: max(1, len(names) // 8)])
            # bind << 4 | type: LOCAL/GLOBAL/WEAK/bad x NOTYPE/OBJECT/FUNC/SECTION/FILE/bad
            infos = [(b << 4) | t for b in (0, 1, 2, 10) for t in (0, 1, 2, 3, 4, 15)]
            self._add("sym", f"{tag}.st_info", at + 4, 1, *infos)
            self._add("sym", f"{tag}.st_other", at + 5, 1, 0, 1, 2, 3)
            self._add("sym", f"{tag}.st_shndx", at + 6, 2, 0, 1, 2, nsec - 1, nsec, nsec + 1,
                      0xFF00, SHN_ABS, SHN_COMMON, 0xFFFF, shndx + 1, shndx - 1)
            self._add("sym", f"{tag}.st_value", at + 8, 8, 1, 4, 8, target, target - 8,
                      target + 8, 1 << 63, 1 << 40)
            self._add("sym", f"{tag}.st_size", at + 16, 8, 0, 1, 8, target, target + 8,
                      1 << 63, 1 << 40)

    def _rel(self, sec: SectionInfo) -> None:
        self.regions[sec.name] = (sec.offset, sec.offset + sec.size)
        symtab = next((s for s in self.sections if s.type == SHT_SYMTAB), None)
        nsyms = symtab.size // 24 if symtab else 0
        target_sec = self.sections[sec.info] if sec.info < len(self.sections) else None
        target = target_sec.size if target_sec else 0
        # Code and .maps relocations all; DWARF/BTF ones (which loaders skip) a few.
        wanted = target_sec is not None and (
            target_sec.name == ".maps" or bool(target_sec.flags & SHF_EXECINSTR)
        )
        for k in range(sec.size // 16 if wanted else min(8, sec.size // 16)):
            at = sec.offset + 16 * k
            r_off = self._u("Q", at)
            r_info = self._u("Q", at + 8)
            sym, typ = r_info >> 32, r_info & 0xFFFFFFFF
            tag = f"{sec.name}[{k}]"
            self._add("rel", f"{tag}.r_offset", at, 8, 1, 4, r_off + 1, r_off + 4, r_off + 8,
                      r_off - 8, target, target - 8, target + 8, 1 << 63)
            self._add("rel", f"{tag}.r_info", at + 8, 8,
                      *((s << 32) | typ for s in (0, 1, nsyms - 1, nsyms, nsyms + 1, 0xFFFFFFFF,
                                                  sym + 1, sym - 1)),
                      *((sym << 32) | t for t in (0, 1, 2, 3, 4, 5, 10, 11, 0xFFFFFFFF)))

    def _strtab(self, sec: SectionInfo) -> None:
        self.regions[sec.name or "strtab"] = (sec.offset, sec.offset + sec.size)

    # -- BTF -----------------------------------------------------------------------------

    def _btf(self, sec: SectionInfo) -> None:
        base = sec.offset
        self.regions[".BTF header"] = (base, base + 24)
        hdr_len = self._u("I", base + 4)
        type_off, type_len, str_off, str_len = (self._u("I", base + 8 + 4 * k) for k in range(4))
        body = sec.size - hdr_len
        for name, at, size, cands in (
            ("magic", 0, 2, (0x9FEB, 0xEB9F, 0)),
            ("version", 2, 1, (0, 2)),
            ("flags", 3, 1, (1, 0x80)),
            ("hdr_len", 4, 4, (0, 8, 16, 23, 25, 28, 32, 36, sec.size, sec.size + 1)),
            ("type_off", 8, 4, (1, 4, type_len, str_off, body, body - 4)),
            ("type_len", 12, 4, (0, 4, 12, type_len - 4, type_len + 4, type_len - 1, body,
                                 body + 4, str_off + 4)),
            ("str_off", 16, 4, (0, 1, type_len - 4, str_off - 1, str_off + 1, body, body - 1)),
            ("str_len", 20, 4, (0, 1, str_len - 1, str_len + 1, body - str_off,
                                body - str_off + 1)),
        ):
            self._add("btf_hdr", f".BTF.{name}", base + at, size, *cands)
        t0 = base + hdr_len + type_off
        s_end = str_len
        cuts = [0, 4, 8, 12, 16, 20, 23, 24, hdr_len + 1]
        self.regions[".BTF types"] = (t0, t0 + type_len)
        self.regions[".BTF strings"] = (base + hdr_len + str_off, base + hdr_len + str_off + str_len)
        records = []
        pos, tid = 0, 1
        while pos < type_len:
            info = self._u("I", t0 + pos + 4)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            fixed, per = BTF_KIND_WORDS[kind]
            words = fixed + per * vlen
            records.append((tid, t0 + pos, kind, vlen))
            pos += 4 * words
            tid += 1
        ntypes = tid - 1
        self.btf_records = records
        self.btf_str_base = base + hdr_len + str_off
        strs = self.data[base + hdr_len + str_off : base + hdr_len + str_off + str_len]
        self.btf_names = tuple(
            strs.find(b"\0" + w + b"\0") + 1
            for w in (b".maps", b".kconfig", b".ksyms", b".data", b".bss", b".rodata",
                      b"libbpf_tristate", b"values", b"type", b"max_entries", b"key", b"value",
                      b"int", b"char", b"LICENSE")
            if strs.find(b"\0" + w + b"\0") >= 0
        )
        first_of: dict[int, int] = {}
        for rtid, _, kind, _ in records:
            first_of.setdefault(kind, rtid)
        self.btf_ids = tuple(first_of.values())
        # Truncation points: the first and last records' boundaries, and a sample between.
        sample = records[:40] + records[40:-20:max(1, len(records) // 60)] + records[-20:]
        for _, at, _, _ in sample:
            rel = at - base
            cuts += [rel, rel + 1, rel + 4, rel + 8, rel + 12]
        cuts += [hdr_len + str_off + k for k in (0, 1, str_len // 2, str_len - 1)]
        cuts += [hdr_len + type_off + type_len + k for k in (-1, 0, 1)]
        self.section_cuts[sec.index] = sorted({c for c in cuts if 0 <= c < sec.size})

        pick = records if len(records) <= 400 else records[:: len(records) // 400]
        for tid, at, kind, vlen in pick:
            self._btf_record("btf_type", tid, at, kind, vlen, ntypes, s_end)
        datasecs = [r for r in records if r[2] == K_DATASEC]
        maps = [r[0] for r in datasecs if self.btf_string(self.u32(r[1])) == ".maps"]
        others = [r[0] for r in datasecs if r[0] not in maps]
        # .maps: the DATASEC, its VARs, their struct definitions, the PTR -> ARRAY types of
        # `__uint(...)` and the key/value types. Other DATASECs (data, .kconfig, .ksyms,
        # license): themselves, their VARs and the VARs' types.
        self._type_closure("maps", maps, records, ntypes, s_end, depth=8)
        self._type_closure("datasec", others, records, ntypes, s_end, depth=2)

    def _btf_record(
        self, cat: str, tid: int, at: int, kind: int, vlen: int, ntypes: int, s_end: int
    ) -> None:
        tag = f"type[{tid}]"
        ref = (0, tid, tid - 1, tid + 1, ntypes, ntypes + 1, 0x7FFFFFFF, 0xFFFFFFFF,
               *self.btf_ids)
        name = (0, 1, s_end - 1, s_end, s_end + 1, 0xFFFFFFFF, *self.btf_names)
        info = self._u("I", at + 4)
        kinds = [(info & 0xE0FFFFFF) | (k << 24) for k in range(32)]
        vlens = [(info & 0xFFFF0000) | v for v in (0, 1, vlen - 1, vlen + 1, 0xFFFF, 0x8000)]
        self._add(cat, f"{tag}.name_off", at, 4, *name)
        self._add(cat, f"{tag}.info", at + 4, 4, *kinds, *vlens, info ^ 0x80000000,
                  info | 0x00010000, info | 0x20000000, *same_length_infos(kind, vlen, info))
        third = "type" if kind in K_REF_IN_SIZE_TYPE else "size"
        self._add(cat, f"{tag}.{third}", at + 8, 4, *ref, 1, 3, 8, 0x10000)
        if kind == 1:  # INT encoding: bits 24-27 encoding, 16-23 offset, 0-7 nr_bits
            self._add(cat, f"{tag}.int_encoding", at + 12, 4, 0x01000020, 0x04000008,
                      0x0F000040, 0x00FF0080, 0x000000FF, 0x00000000)
        elif kind == K_ARRAY:
            self._add(cat, f"{tag}.array.type", at + 12, 4, *ref)
            self._add(cat, f"{tag}.array.index_type", at + 16, 4, *ref)
            self._add(cat, f"{tag}.array.nelems", at + 20, 4, 0, 1, 0xFFFF, 0x10000,
                      0x7FFFFFFF, 0xFFFFFFFF)
        elif kind in (K_VAR, K_DECL_TAG):
            self._add(cat, f"{tag}.extra", at + 12, 4, 0, 1, 2, 3, 0xFFFFFFFF)
        per = BTF_KIND_WORDS.get(kind, (3, 0))[1]
        for k in range(min(vlen, 24)):
            m = at + 12 + 4 * per * k
            if kind in (K_STRUCT, K_UNION):
                self._add(cat, f"{tag}.member[{k}].name_off", m, 4, *name)
                self._add(cat, f"{tag}.member[{k}].type", m + 4, 4, *ref)
                self._add(cat, f"{tag}.member[{k}].offset", m + 8, 4, 1, 0xFFFFFF, 0xFF000000,
                          0x7FFFFFFF)
            elif kind in (K_ENUM, K_PROTO):
                self._add(cat, f"{tag}.elem[{k}].name_off", m, 4, *name)
                second = "type" if kind == K_PROTO else "val"
                self._add(cat, f"{tag}.elem[{k}].{second}", m + 4, 4, *ref)
            elif kind in (K_DATASEC, K_ENUM64):
                first = "type" if kind == K_DATASEC else "name_off"
                self._add(cat, f"{tag}.elem[{k}].{first}", m, 4, *(ref if kind == K_DATASEC else name))
                self._add(cat, f"{tag}.elem[{k}].w1", m + 4, 4, 1, 4, 8, 0x7FFFFFFF, 0xFFFFFFFF)
                self._add(cat, f"{tag}.elem[{k}].w2", m + 8, 4, 0, 1, 4, 8, 0xFFFFFFFF)

    def _type_closure(
        self,
        cat: str,
        roots: list[int],
        records: list[tuple[int, int, int, int]],
        ntypes: int,
        s_end: int,
        depth: int,
    ) -> None:
        """Fields of the types `roots` and of those they refer to, `depth` levels down."""
        by_id = {r[0]: r for r in records}
        todo = [(t, 0) for t in reversed(roots)]
        seen: set[int] = set()
        while todo and len(seen) < 300:
            t, level = todo.pop()
            if t in seen or t not in by_id or level > depth:
                continue
            seen.add(t)
            tid, at, kind, vlen = by_id[t]
            self._btf_record(cat, tid, at, kind, vlen, ntypes, s_end)
            if kind in K_REF_IN_SIZE_TYPE:
                refs = [self.u32(at + 8)]
            elif kind == K_ARRAY:
                refs = [self.u32(at + 12)]
            elif kind in (K_STRUCT, K_UNION):
                refs = [self.u32(at + 12 + 12 * k + 4) for k in range(vlen)]
            elif kind == K_DATASEC:
                refs = [self.u32(at + 12 + 12 * k) for k in range(vlen)]
            else:
                refs = []
            todo += [(r, level + 1) for r in reversed(refs)]

    def _legacy_maps(self, maps: SectionInfo, symtab: SectionInfo) -> None:
        """struct bpf_map_def {type, key_size, value_size, max_entries, map_flags} of each
        symbol in the legacy "maps" section."""
        for k in range(symtab.size // 24):
            at = symtab.offset + 24 * k
            if self._u("H", at + 6) != maps.index:
                continue
            value = self.u64(at + 8)
            for i, what in enumerate(("type", "key_size", "value_size", "max_entries", "flags")):
                off = maps.offset + value + 4 * i
                if value + 4 * i + 4 <= maps.size:
                    self._add("maps", f"maps+{value}.{what}", off, 4, 0, 1, 2, 4, 8, 12, 27,
                              31, 32, 33, 100, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)

    def _btf_ext(self, sec: SectionInfo) -> None:
        base = sec.offset
        self.regions[".BTF.ext"] = (base, base + sec.size)
        hdr_len = self._u("I", base + 4)
        cuts = [0, 4, 8, 12, 16, 20, 24, 28, 32, hdr_len]
        for name, at, size, cands in (
            ("magic", 0, 2, (0x9FEB, 0xEB9F)),
            ("version", 2, 1, (0, 2)),
            ("flags", 3, 1, (1,)),
            ("hdr_len", 4, 4, (0, 8, 23, 24, 28, 32, 36, sec.size, sec.size + 1)),
        ):
            self._add("btf_ext", f".BTF.ext.{name}", base + at, size, *cands)
        subs = [("func_info", 8), ("line_info", 16)] + ([("core_relo", 24)] if hdr_len >= 32 else [])
        for what, hat in subs:
            off, length = self._u("I", base + hat), self._u("I", base + hat + 4)
            body = sec.size - hdr_len
            self._add("btf_ext", f".BTF.ext.{what}_off", base + hat, 4, 1, 4, off + 4, off - 4,
                      body, body - 4, body + 4)
            self._add("btf_ext", f".BTF.ext.{what}_len", base + hat + 4, 4, 0, 4, 8, 12,
                      length - 4, length + 4, length - 1, body, body + 4)
            if not length:
                continue
            start = base + hdr_len + off
            end = start + length
            rec_size = self._u("I", start)
            self._add("btf_ext", f".BTF.ext.{what}.rec_size", start, 4, 0, 4, 8, 12, 16, 20,
                      rec_size - 4, rec_size + 4, 0xFFFFFFFF)
            cuts += [start - base + k for k in (0, 2, 4, 8)]
            pos, block = start + 4, 0
            while pos < end:
                count = self._u("I", pos + 4)
                tag = f".BTF.ext.{what}.block[{block}]"
                self._add("btf_ext", f"{tag}.sec_name_off", pos, 4, 0, 1, 0xFFFFFFFF)
                self._add("btf_ext", f"{tag}.num_info", pos + 4, 4, 0, count - 1, count + 1,
                          0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)
                cuts += [pos - base + k for k in (0, 4, 8, 9)]
                for r in range(min(count, 8)):
                    rec = pos + 8 + r * rec_size
                    cuts.append(rec - base + rec_size // 2)
                    self._add("btf_ext", f"{tag}.rec[{r}].insn_off", rec, 4, 1, 4, 0x7FFFFFF8,
                              0xFFFFFFF8, 8 * 4096)
                    for w in range(1, rec_size // 4):
                        self._add("btf_ext", f"{tag}.rec[{r}].w{w}", rec + 4 * w, 4, 0, 1, 5, 7,
                                  8, 13, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)
                pos += 8 + count * rec_size
                block += 1
        self.section_cuts[sec.index] = sorted({c for c in cuts if 0 <= c < sec.size})

    # -- cut points ----------------------------------------------------------------------

    def _cuts(self, shoff: int, shnum: int) -> None:
        n = len(self.data)
        cuts = {0, 1, 4, 16, 52, 63, 64, 65, n - 1}
        for k in range(shnum + 1):
            cuts |= {shoff + 64 * k - 1, shoff + 64 * k, shoff + 64 * k + 1}
        for s in self.sections:
            if s.type in (0, SHT_NOBITS):
                continue
            cuts |= {s.offset - 1, s.offset, s.offset + 1, s.offset + s.size // 2,
                     s.offset + s.size - 1, s.offset + s.size, s.offset + s.size + 1}
            if s.type == SHT_SYMTAB:
                self.section_cuts[s.index] = sorted(
                    {c for k in range(s.size // 24) for c in (24 * k, 24 * k + 8, 24 * k + 23)}
                )
            elif s.type == SHT_REL:
                target = self.sections[s.info] if s.info < len(self.sections) else None
                code = target is not None and (
                    target.name == ".maps" or bool(target.flags & SHF_EXECINSTR)
                )
                entries = s.size // 16 if code else min(4, s.size // 16)  # DWARF/BTF: a few
                self.section_cuts[s.index] = sorted(
                    {c for k in range(entries) for c in (16 * k, 16 * k + 8)} | {s.size - 8}
                )
            elif s.type == SHT_STRTAB or s.name in (".maps", "maps", "license", "version"):
                self.section_cuts[s.index] = sorted(
                    {0, 1, s.size // 4, s.size // 2, s.size - 2, s.size - 1} - {s.size}
                )
            elif s.name.startswith((".data", ".rodata")) or (s.type == 1 and s.size % 8 == 0):
                self.section_cuts.setdefault(
                    s.index, sorted({0, 1, 4, 7, 8, s.size // 2, s.size - 1, s.size - 8})
                )
        self.file_cuts = sorted(c for c in cuts if 0 <= c < n)

    # -- mutations -----------------------------------------------------------------------

    def all_fields(self) -> list[Field]:
        return [f for cat in CATEGORIES for f in self.fields[cat]]

    def sh_size_field(self, shndx: int) -> Field:
        at = self.sections[shndx].header + 32
        return Field(f"shdr[{shndx}].sh_size", at, 8, self._u("Q", at), ())


def write(data: bytes | bytearray, f: Field, value: int, order: str) -> bytearray:
    out = bytearray(data)
    out[f.offset : f.offset + f.size] = (value & _mask(f.size)).to_bytes(
        f.size, "little" if order == "<" else "big"
    )
    return out


# ---------------------------------------------------------------------------------------
# Running one input
# ---------------------------------------------------------------------------------------


class OpenHang(BaseException):
    """Raised by the SIGALRM guard. A BaseException so no `except Exception` swallows it."""


@contextmanager
def hang_guard(seconds: float | None = None) -> Iterator[None]:
    """SIGALRM after `seconds` (default HANG_SECONDS); raises OpenHang then, unless the
    process has used less than `seconds` of CPU meanwhile (starved by other processes):
    then it waits on, up to WALL_SECONDS."""
    limit = HANG_SECONDS if seconds is None else seconds
    cpu0, wall0 = time.process_time(), time.monotonic()

    def on_alarm(signum: int, frame: object) -> None:
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        if cpu < limit and wall < WALL_SECONDS:
            signal.setitimer(signal.ITIMER_REAL, max(limit - cpu, 0.05))
            return
        raise OpenHang(
            f"BpfObject.open did not finish within {limit} s "
            f"(CPU {cpu:.2f} s, wall {wall:.2f} s)"
        )

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Stats:
    inputs: int = 0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    slowest: float = 0.0  # CPU seconds of the slowest open
    slowest_input: str = ""


STATS = Stats()


class ContractViolation(AssertionError):
    pass


def run_open(data: bytes | bytearray, name: str, recipe: str = "") -> BpfObjError | None:
    """Open `data`; return None on success or the BpfObjError raised. Anything else (an
    InternalError, another exception type, a hang, a bad message) raises ContractViolation
    with `recipe` (how the input was made) and the input's sha256 in its text."""
    data = bytes(data)
    STATS.inputs += 1
    where = f"input {recipe or '?'} (sha256 {hashlib.sha256(data).hexdigest()[:16]}, {len(data)} bytes)"
    t0 = time.process_time()
    try:
        with hang_guard():
            BpfObject.open(data=data, name=name)
    except OpenHang as exc:
        STATS.outcomes["hang"] += 1
        raise ContractViolation(f"{exc}: {where}") from None
    except InternalError as exc:
        STATS.outcomes["InternalError"] += 1
        cause = exc.__cause__
        raise ContractViolation(
            f"InternalError (a bpfobj bug) for {where}: {exc}"
            + (f" / cause {type(cause).__name__}: {cause}" if cause else "")
        ) from cause
    except BpfObjError as exc:
        STATS.outcomes[type(exc).__name__] += 1
        check_message(exc, name, where)
        return exc
    except Exception as exc:
        STATS.outcomes[type(exc).__name__] += 1
        raise ContractViolation(
            f"{type(exc).__name__} escaped BpfObject.open for {where}: {exc}"
        ) from exc
    finally:
        cpu = time.process_time() - t0
        if cpu > STATS.slowest:
            STATS.slowest, STATS.slowest_input = cpu, where
    STATS.outcomes["ok"] += 1
    return None


def check_message(exc: BpfObjError, name: str, where: str) -> None:
    text = str(exc)
    problems = []
    if not text.strip():
        problems.append("is empty")
    if len(text.splitlines()) > 1:
        problems.append("is not one line")
    if name not in text:
        problems.append(f"does not name the object {name!r}")
    if "bpfobj bug" in (exc.hint or ""):
        # The BTF readers' own safety net: a stray exception turned into BtfError.
        problems.append("is a bpfobj bug caught by a safety net")
    if problems:
        raise ContractViolation(
            f"{type(exc).__name__} message {' and '.join(problems)} for {where}: {text!r}"
        ) from exc
