"""bpfobj.insn.disasm against llvm-objdump-19 -d: the same text, byte for byte.

The objects are tests/progs/insn_*.c (every cpu v1..v4, little and big endian, with the
INSN_ASM/INSN_EDGE inline assembly) and every other tests/progs/*.c that builds here; on
top of that, generated sections hold every opcode byte with many register bytes and field
values, decodable or not.
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import bpfbuild
import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfobj.insn import (
    ByteOrder,
    Instruction,
    Symbol,
    decode,
    disassemble_section,
    encode,
    format_insn,
)
from bpfobj.insn.disasm import SymbolLike, disassemble_insns

OBJDUMP = "llvm-objdump-19"
PROGS = Path(__file__).resolve().parent / "progs"
INSN_SOURCES = sorted(p.name for p in PROGS.glob("insn_*.c"))
INSN_DEFINES = ("INSN_ASM", "INSN_EDGE")
CPUS = ("v1", "v2", "v3", "v4")
TARGETS = ("bpf", "bpfeb")

needs_objdump = pytest.mark.skipif(
    shutil.which(OBJDUMP) is None, reason=f"{OBJDUMP} is not installed (apt-get install llvm-19)"
)


# -- the two sides ---------------------------------------------------------------------------------


def llvm_disassembly(path: Path) -> str:
    """llvm-objdump-19 -d output after its "<file>:\\tfile format ..." header line."""
    out = subprocess.run(
        [OBJDUMP, "-d", str(path)], check=True, capture_output=True, text=True
    ).stdout
    header = re.search(r"^.*\tfile format .*\n", out, re.M)
    assert header is not None, out[:200]
    return out[header.end() :]


def our_disassembly(path: Path) -> str:
    """The same listing from bpfobj: executable sections in header order, each with every
    .symtab symbol defined in it."""
    with path.open("rb") as f:
        elf = ELFFile(f)
        order: ByteOrder = "little" if elf.little_endian else "big"
        by_section: dict[int, list[tuple[int, str, str]]] = {}
        symtab = elf.get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            for sym in symtab.iter_symbols():
                if isinstance(sym["st_shndx"], int):
                    entry = (sym["st_value"], sym.name, sym["st_info"]["type"])
                    by_section.setdefault(sym["st_shndx"], []).append(entry)
        parts = []
        for index, sec in enumerate(elf.iter_sections()):
            if not sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR or sec["sh_type"] == "SHT_NOBITS":
                continue
            parts.append(
                disassemble_section(sec.name, sec.data(), order, by_section.get(index, []))
            )
    return "".join(parts)


def assert_same_listing(path: Path) -> str:
    expected = llvm_disassembly(path)
    actual = our_disassembly(path)
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "llvm-objdump", "bpfobj", lineterm=""
        )
        pytest.fail(f"{path.name}: listing differs\n" + "\n".join(list(diff)[:60]))
    return expected


# -- builds ----------------------------------------------------------------------------------------


def _insn_builds() -> list[Any]:
    return [
        pytest.param(src, {"target": t, "cpu": c, "defines": INSN_DEFINES}, id=f"{src}-{t}-{c}")
        for src in INSN_SOURCES
        for t in TARGETS
        for c in CPUS
    ]


def _catalogue_options() -> dict[str, dict[str, Any]]:
    """Build options of the shared object catalogue (tests/objects.py), per source."""
    try:
        import objects
    except ImportError:  # pragma: no cover - the catalogue is optional here
        return {}
    options: dict[str, dict[str, Any]] = {}
    for case in getattr(objects, "OBJECTS", []):
        options.setdefault(case.source, dict(case.build))
    return options


def _other_builds() -> list[Any]:
    catalogue = _catalogue_options()
    params = []
    for src in sorted(p.name for p in PROGS.glob("*.c") if not p.name.startswith("insn_")):
        base = {k: v for k, v in catalogue.get(src, {}).items() if k not in ("target", "tag")}
        for target, cpu in (("bpf", None), ("bpfeb", None), ("bpf", "v4")):
            opts = {**base, "target": target}
            if cpu:
                opts["cpu"] = cpu
            params.append(pytest.param(src, opts, id=f"{src}-{target}-{cpu or 'default'}"))
    return params


def build(bpf_build: Any, source: str | Path, opts: dict[str, Any]) -> Path:
    """Build with `opts` (skip when it does not compile here: wrong arch headers, ...)."""
    opts = dict(opts)
    tag = "-".join(str(opts.get(k)) for k in ("target", "cpu") if opts.get(k))
    opts.setdefault("tag", tag)
    try:
        path: Path = bpf_build(source, **opts)
        return path
    except subprocess.CalledProcessError:
        pass
    if not opts.get("vmlinux") and bpfbuild.VMLINUX_BTF.exists() and shutil.which("bpftool"):
        try:
            path = bpf_build(source, **{**opts, "vmlinux": True})
            return path
        except subprocess.CalledProcessError:
            pass
    pytest.skip(f"{source} does not compile with {opts}")


# -- llvm-objdump parity on real objects -----------------------------------------------------------


@needs_objdump
@pytest.mark.parametrize(("source", "opts"), _insn_builds())
def test_insn_objects_match_llvm_objdump(bpf_build: Any, source: str, opts: dict[str, Any]) -> None:
    path = build(bpf_build, source, opts)
    listing = assert_same_listing(path)
    assert "Disassembly of section" in listing


@needs_objdump
@pytest.mark.parametrize(("source", "opts"), _other_builds())
def test_other_objects_match_llvm_objdump(
    bpf_build: Any, source: str, opts: dict[str, Any]
) -> None:
    assert_same_listing(build(bpf_build, source, opts))


# What the insn_*.c programs must make llvm-objdump print somewhere (any cpu, either order):
# proof that every instruction kind of cpu v1..v4 went through the comparison above.
REQUIRED_FORMS = {
    "alu64 imm": r"\tr\d+ \+= 0x",
    "alu64 reg": r"\tr\d+ \^= r\d+$",
    "alu32 imm": r"\tw\d+ -= 0x",
    "alu32 reg": r"\tw\d+ \*= w\d+$",
    "div/mod": r"\tr\d+ %= r\d+$",
    "sdiv": r"\tr\d+ s/= ",
    "smod": r"\tw\d+ s%= ",
    "arsh": r"\tw\d+ s>>= ",
    "neg64": r"\tr(\d+) = -r\1$",
    "neg32": r"\tw(\d+) = -w\1$",
    "mov imm": r"\tr\d+ = -?0x[0-9a-f]+$",
    "mov32 reg": r"\tw\d+ = w\d+$",
    "movsx8": r"= \(s8\)r\d+",
    "movsx16 32-bit": r"\tw\d+ = \(s16\)w\d+",
    "movsx32": r"= \(s32\)r\d+",
    "addr_space_cast": r"= addr_space_cast\(r\d+, 0x1, 0x0\)",
    "bswap": r"= bswap(16|32|64) r",
    "to_le": r"= le(16|32|64) r",
    "to_be": r"= be(16|32|64) r",
    "jmp imm": r"\tif r\d+ s<= 0x",
    "jmp reg": r"\tif r\d+ != r\d+ goto",
    "jmp32 imm": r"\tif w\d+ & 0x",
    "jmp32 reg": r"\tif w\d+ s>= w\d+ goto",
    "goto": r"\tgoto [+-]0x[0-9a-f]+ <",
    "gotol": r"\tgotol [+-]0x[0-9a-f]+ <",
    "may_goto": r"\tmay_goto \+0x",
    "call helper": r"\tcall 0x[1-9a-f]",
    "call pseudo": r"85 10 00 00 ff ff ff ff\tcall -0x1$",
    "call kfunc": r"\t85 (20 00 00 34 12 00 00|02 00 00 00 00 12 34)\tcall 0x1234$",
    "callx": r"\tcallx r\d+$",
    "exit": r"\texit$",
    "ldx": r"\tr\d+ = \*\(u(8|16|32|64) \*\)\(r\d+ [+-] 0x",
    "ldsx": r"\tr\d+ = \*\(s(8|16|32) \*\)",
    "st imm": r"\t\*\(u(8|16|32|64) \*\)\(r\d+ [+-] 0x[0-9a-f]+\) = -?0x",
    "stx": r"\t\*\(u(8|16|32|64) \*\)\(r\d+ [+-] 0x[0-9a-f]+\) = r\d+$",
    "atomic add32": r"\tlock \*\(u32 \*\)\(r\d+ \+ 0x0\) \+= r\d+",
    "atomic or64": r"\tlock \*\(u64 \*\)\(r\d+ \+ 0x0\) \|= r\d+",
    "atomic and64": r"\tlock \*\(u64 \*\)\(r\d+ \+ 0x0\) &= r\d+",
    "atomic xor64": r"\tlock \*\(u64 \*\)\(r\d+ \+ 0x0\) \^= r\d+",
    "fetch add": r"= atomic_fetch_add\(\(u64 \*\)",
    "fetch or": r"= atomic_fetch_or\(",
    "fetch and": r"= atomic_fetch_and\(",
    "fetch xor": r"= atomic_fetch_xor\(",
    "xchg": r"= xchg_64\(",
    "cmpxchg": r"r0 = cmpxchg_64\(r\d+ [+-] 0x[0-9a-f]+, r0, r\d+\)",
    "32-bit fetch (unknown to llvm 19)": r"\tc3 .. 00 00 (41|e1|f1) 00 00 00\t<unknown>$",
    "ld_imm64": r"\tr\d+ = -?0x[0-9a-f]+ ll$",
    "ld_imm64 map fd": r"\tld_pseudo\tr1, 0x1, ",
    "ld_imm64 map value": r"\tld_pseudo\tr1, 0x2, ",
    "ld_imm64 btf id": r"\tld_pseudo\tr1, 0x3, ",
    "ld_imm64 func": r"\tld_pseudo\tr\d+, 0x4, ",
    "ld_imm64 map idx": r"\tld_pseudo\tr1, 0x5, ",
    "ld_imm64 map idx value": r"\tld_pseudo\tr1, 0x6, ",
    "ld_abs": r"\tr0 = \*\(u(8|16|32) \*\)skb\[-?0x",
    "ld_ind": r"\tr0 = \*\(u(8|16|32) \*\)skb\[r\d+\]",
    "unknown": r"\t<unknown>$",
    "zero run": r"^\t\t\.\.\.$",
    "data symbol": r"^ +[0-9a-f]+: 48 65 6c 6c 6f",
}


@needs_objdump
def test_insn_programs_cover_every_instruction_kind(bpf_build: Any) -> None:
    listings = []
    for param in _insn_builds():
        source, opts = param.values
        listings.append(assert_same_listing(build(bpf_build, source, opts)))
    text = "".join(listings)
    missing = [name for name, rx in REQUIRED_FORMS.items() if not re.search(rx, text, re.M)]
    assert not missing, f"no instruction of these kinds in the insn_*.c objects: {missing}"


# -- generated encodings ---------------------------------------------------------------------------

FIELD_VALUES = [(0, 0), (1, 1), (0, 16), (8, 32), (16, 64), (32, -1), (-1, 0x41), (1, 0xF1)]
REG_BYTES = (0x00, 0x01, 0x10, 0x21, 0x12, 0xA0, 0x0A, 0xBB, 0xB0, 0x0B, 0xC1, 0x1C, 0xF0, 0x0F)


def _raw_source(sections: dict[str, bytes], order: str) -> str:
    """A C file whose top-level asm puts `sections` (name -> bytes) in executable sections."""
    lines = []
    for name, data in sections.items():
        lines.append(f'.section "{name}","ax"')
        lines += [f".globl {name}_sym", f".type {name}_sym,@function", f"{name}_sym:"]
        words = [data[i : i + 8] for i in range(0, len(data) - len(data) % 8, 8)]
        lines += [f".8byte {int.from_bytes(w, order):#x}" for w in words]  # type: ignore[arg-type]
        tail = data[len(data) - len(data) % 8 :]
        if tail:
            lines.append(".byte " + ", ".join(str(b) for b in tail))
    lines.append(".text")
    quoted = ('"' + line.replace("\\", "\\\\").replace('"', '\\"') + '\\n"' for line in lines)
    return "asm(" + "\n    ".join(quoted) + ");\n"


def _compile_raw(
    bpf_build: Any, tmp_path: Path, name: str, sections: dict[str, bytes], target: str
) -> Path:
    order = "big" if target == "bpfeb" else "little"
    src = tmp_path / f"{name}.c"
    src.write_text(_raw_source(sections, order))
    path: Path = bpf_build(src, target=target, tag=target)
    return path


@needs_objdump
@pytest.mark.parametrize("target", TARGETS)
def test_every_opcode_byte(bpf_build: Any, tmp_path: Path, target: str) -> None:
    """All 256 opcodes x register bytes x (off, imm) pairs, one section per pair."""
    order = "big" if target == "bpfeb" else "little"
    sections = {}
    for n, (off, imm) in enumerate(FIELD_VALUES):
        insns = []
        for code in range(256):
            for regs in REG_BYTES:
                dst, src = (regs & 0xF, regs >> 4) if order == "little" else (regs >> 4, regs & 0xF)
                insns.append(Instruction(code, dst, src, off, imm))
        sections[f"enc{n}"] = encode(insns, order)  # type: ignore[arg-type]
    path = _compile_raw(bpf_build, tmp_path, f"opcodes_{target}", sections, target)
    listing = assert_same_listing(path)
    assert listing.count("<unknown>") > 1000  # undecodable encodings are compared too


@needs_objdump
@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_every_opcode_and_register_byte(bpf_build: Any, tmp_path: Path, target: str) -> None:
    order = "big" if target == "bpfeb" else "little"
    sections = {}
    for n, (off, imm) in enumerate(FIELD_VALUES[:4]):
        raw = bytearray()
        for code in range(256):
            for regs in range(256):
                dst, src = (regs & 0xF, regs >> 4) if order == "little" else (regs >> 4, regs & 0xF)
                raw += Instruction(code, dst, src, off, imm).to_bytes(order)  # type: ignore[arg-type]
        sections[f"all{n}"] = bytes(raw)
    assert_same_listing(_compile_raw(bpf_build, tmp_path, f"all_{target}", sections, target))


interesting_insns = st.builds(
    Instruction,
    code=st.one_of(
        st.integers(0, 255),
        st.sampled_from([0x18, 0xC3, 0xDB, 0xBF, 0xBC, 0xD4, 0xDC, 0xD7, 0x95, 0x06, 0xE5]),
    ),
    dst=st.integers(0, 15),
    src=st.integers(0, 15),
    off=st.one_of(st.sampled_from([0, 1, -1, 8, 16, 32]), st.integers(-0x8000, 0x7FFF)),
    imm=st.one_of(
        st.sampled_from([0, 1, -1, 16, 32, 64, 0x01, 0x41, 0xE1, 0xF1, 0xA0]),
        st.integers(-(1 << 31), (1 << 31) - 1),
    ),
)


@needs_objdump
@pytest.mark.slow
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    insns=st.lists(interesting_insns, min_size=1, max_size=300),
    tail=st.binary(max_size=7),
    big=st.booleans(),
)
def test_random_sections(
    bpf_build: Any, tmp_path: Path, insns: list[Instruction], tail: bytes, big: bool
) -> None:
    target = "bpfeb" if big else "bpf"
    data = encode(insns, "big" if big else "little") + tail
    assert_same_listing(_compile_raw(bpf_build, tmp_path, f"rand_{target}", {"rnd": data}, target))


# -- the API, with literal expectations --------------------------------------------------------


def _one(insn: Instruction, order: ByteOrder = "little") -> str:
    return format_insn([insn], 0, order)


@pytest.mark.parametrize(
    ("insn", "text"),
    [
        (Instruction(0x79, dst=1, src=1, off=0x10), "r1 = *(u64 *)(r1 + 0x10)"),
        (Instruction(0x61, dst=2, src=10, off=-4), "r2 = *(u32 *)(r10 - 0x4)"),
        (Instruction(0x85, imm=6), "call 0x6"),
        (Instruction(0x85, src=1, imm=-1), "call -0x1"),
        (Instruction(0x55, dst=1, off=3), "if r1 != 0x0 goto +0x3"),
        (Instruction(0x5E, dst=1, src=2, off=-3), "if w1 != w2 goto -0x3"),
        (Instruction(0x06, imm=-0x8000_0000), "gotol -0x80000000"),
        (Instruction(0x37, dst=1, off=1, imm=-3), "r1 s/= -0x3"),
        (Instruction(0xBF, dst=1, src=2, off=32), "r1 = (s32)r2"),
        (Instruction(0xD7, dst=3, imm=16), "r3 = bswap16 r3"),
        (Instruction(0xDC, dst=3, imm=32), "r3 = be32 r3"),
        (
            Instruction(0xDB, dst=1, src=2, off=8, imm=0xA1),
            "r2 = atomic_fetch_xor((u64 *)(r1 + 0x8), r2)",
        ),
        (Instruction(0xDB, dst=1, src=2, imm=0xF1), "r0 = cmpxchg_64(r1 + 0x0, r0, r2)"),
        (Instruction(0xC3, dst=1, src=2, imm=0x01), "lock *(u32 *)(r1 + 0x0) += r2"),
        (Instruction(0xC3, dst=1, src=2, imm=0xE1), "<unknown>"),
        (Instruction(0x7A, dst=10, off=-8, imm=-1), "*(u64 *)(r10 - 0x8) = -0x1"),
        (Instruction(0x50, src=7), "r0 = *(u8 *)skb[r7]"),
        (Instruction(0x95), "exit"),
        (Instruction(0x95, imm=1), "<unknown>"),
        (Instruction(0xBF, dst=12, src=1), "<unknown>"),
        (Instruction(0xB7, dst=11, imm=-0x8000_0000), "r11 = -0x80000000"),
    ],
)
def test_format_insn(insn: Instruction, text: str) -> None:
    assert _one(insn) == text
    assert _one(insn, "big") == text  # same instruction, other byte order


def test_format_ld_imm64_pairs() -> None:
    pair = [Instruction(0x18, dst=1, imm=-1), Instruction(0, imm=-1)]
    assert format_insn(pair, 0, "little") == "r1 = -0x1 ll"
    assert format_insn(pair, 1, "little") == "<unknown>"  # the second slot on its own
    assert format_insn(pair[:1], 0, "little") == "<unknown>"  # truncated pair
    pseudo = [Instruction(0x18, dst=2, src=2, imm=-1), Instruction(0, imm=7)]
    assert format_insn(pseudo, 0, "big") == "ld_pseudo\tr2, 0x2, 0xffffffff"


def test_format_insn_labels() -> None:
    insns = [Instruction(0xB7), Instruction(0x05, off=-2), Instruction(0x95)]
    assert format_insn(insns, 1, "little") == "goto -0x2"
    assert format_insn(insns, 1, "little", symbols=[(0, "prog")]) == "goto -0x2 <prog>"
    syms: list[SymbolLike] = [(0, "prog"), (16, "late", "STT_NOTYPE")]
    insns[1] = Instruction(0x05, off=1)
    assert format_insn(insns, 1, "little", symbols=syms) == "goto +0x1 <late+0x8>"
    assert format_insn(insns, 1, "little", symbols=[(8, "mid")], section_name="tc") == (
        "goto +0x1 <mid+0x10>"
    )
    insns[1] = Instruction(0x05, off=-3)
    assert format_insn(insns, 1, "little", symbols=[], section_name="tc") == (
        "goto -0x3 <tc+0xfffffffffffffff8>"  # before the section: the address wraps
    )


def test_section_layout() -> None:
    insns = [
        Instruction(0xB7, imm=1),
        Instruction(0x18, dst=1, imm=0x55),
        Instruction(0, imm=1),
        Instruction(0x15, dst=1, off=-4),
        Instruction(0x95),
    ]
    data = encode(insns, "little")
    assert disassemble_section("xdp", data, "little", [(0, "prog")]) == (
        "\nDisassembly of section xdp:\n"
        "\n0000000000000000 <prog>:\n"
        "       0:\tb7 00 00 00 01 00 00 00\tr0 = 0x1\n"
        "       1:\t18 01 00 00 55 00 00 00 00 00 00 00 01 00 00 00\tr1 = 0x100000055 ll\n"
        "       3:\t15 01 fc ff 00 00 00 00\tif r1 == 0x0 goto -0x4 <prog>\n"
        "       4:\t95 00 00 00 00 00 00 00\texit\n"
    )
    assert disassemble_section("xdp", b"", "little", [(0, "prog")]) == ""
    # no symbol at offset 0: a dummy named after the section; 2-tuples are FUNC symbols
    listing = disassemble_insns(insns, "little", section_name="tc", symbols=[(32, "tail")])
    assert "\n0000000000000000 <tc>:\n" in listing
    assert "\n0000000000000020 <tail>:\n" in listing
    assert "goto -0x4 <tc>\n" in listing


def test_symbol_groups_and_data() -> None:
    data = encode([Instruction(0xB7), Instruction(0x95)], "little") + b"Hi!\x00\x01"
    syms: list[SymbolLike | Symbol] = [
        Symbol(0, "zeta"),
        Symbol(0, "alpha", 2),
        (0, "label", "STT_NOTYPE"),
        (0, "sec", "STT_SECTION"),  # ignored, like llvm-objdump
        (0, "", "STT_FUNC"),  # unnamed: ignored
        (16, "blob", "STT_OBJECT"),
    ]
    assert disassemble_section(".text", data, "little", syms) == (
        "\nDisassembly of section .text:\n"
        "\n0000000000000000 <zeta>:\n"  # the last code symbol in (offset, name, type) order
        "       0:\tb7 00 00 00 00 00 00 00\tr0 = 0x0\n"
        "       1:\t95 00 00 00 00 00 00 00\texit\n"
        "\n0000000000000010 <blob>:\n"
        "      10: 48 69 21 00 01                  Hi!..\n"
    )
    with pytest.raises(ValueError):
        disassemble_section(".text", data, "little", [(0, "x", "STT_WHATEVER")])
    with pytest.raises(ValueError):
        disassemble_section(".text", data, "sideways", [])  # type: ignore[arg-type]


def test_zero_runs_and_truncated_tail() -> None:
    data = bytes(16) + encode([Instruction(0x95)], "big") + bytes.fromhex("18 00 00")
    assert disassemble_section("s", data, "big", [(0, "f")]) == (
        "\nDisassembly of section s:\n"
        "\n0000000000000000 <f>:\n"
        "\t\t...\n"
        "       2:\t95 00 00 00 00 00 00 00\texit\n"
        "       3:\t18\t<unknown>\n"
        "       3:\t00\t<unknown>\n"
        "       3:\t00\t<unknown>\n"
    )


def test_decoded_objects_disassemble_like_raw_bytes() -> None:
    insns = decode(bytes.fromhex("b7 01 00 00 02 00 00 00 95 00 00 00 00 00 00 00"), "little")
    raw = disassemble_section(".text", encode(insns, "little"), "little", [(0, "f")])
    assert disassemble_insns(insns, "little", symbols=[(0, "f")]) == raw
