"""A disassembler whose output is byte-for-byte that of ``llvm-objdump-19 -d``.

It reproduces three pieces of LLVM 19:

* the BPF decoder (lib/Target/BPF/Disassembler, decoder table "BPF64": llvm-objdump never
  enables the ``alu32`` feature for BPF, so 32-bit loads print with r registers and the
  32-bit atomics other than ``lock ... +=`` are ``<unknown>``) and which encodings it
  rejects: fixed fields (off of ALU ops, imm of exit and END...), registers above r11, ...;
* the BPF instruction printer (asm strings of BPFInstrInfo.td, immediates as ``0x..``/``-0x..``);
* llvm-objdump's listing: instruction index (byte address / 8) per line, raw bytes, symbol
  headers, ``<sym+0xoff>`` after branch targets, runs of zero bytes folded to ``...``, and
  symbol groups that only hold data symbols dumped as bytes.

Everything was checked against llvm-objdump-19 (tests/test_disasm.py).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from bpfobj.arch import ByteOrder
from bpfobj.insn.codec import Instruction, encode
from bpfobj.insn.opcodes import (
    ADDR_SPACE_CAST_OFF,
    CALL,
    CALLX,
    END_WIDTHS,
    EXIT,
    INSN_SIZE,
    JA,
    JA32,
    LD_IMM64,
    MAY_GOTO,
    MOVSX_OFFSETS,
    SIGNED_DIVMOD_OFF,
    AluOp,
    AtomicOp,
    Endian,
    InsnClass,
    JmpOp,
    Mode,
    Size,
    Source,
)

# ELF symbol types (elf.h STT_*) that matter to llvm-objdump's listing.
STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STT_FILE = 4
STT_COMMON = 5
_STT_BY_NAME = {
    "STT_NOTYPE": STT_NOTYPE,
    "STT_OBJECT": STT_OBJECT,
    "STT_FUNC": STT_FUNC,
    "STT_SECTION": STT_SECTION,
    "STT_FILE": STT_FILE,
    "STT_COMMON": STT_COMMON,
    "STT_TLS": 6,
    "STT_GNU_IFUNC": 10,
}
# A group of symbols made only of these is dumped as data, not disassembled.
_DATA_TYPES = frozenset((STT_OBJECT, STT_COMMON))

_U64 = 1 << 64


class Symbol(NamedTuple):
    """A symbol defined in the section being disassembled: byte offset, name, ELF type."""

    offset: int
    name: str
    type: int = STT_FUNC


SymbolLike = tuple[int, str] | tuple[int, str, int | str]


# -- operand formatting (MCInstPrinter::formatHex, BPFInstPrinter) ---------------------------


def _hex(value: int) -> str:
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def _branch(value: int) -> str:
    return f"+{value:#x}" if value >= 0 else f"-{-value:#x}"


def _mem(base: str, off: int) -> str:
    return f"{base} + {off:#x}" if off >= 0 else f"{base} - {-off:#x}"


# GPR decoder tables: r0..r11 decode, 12..15 make the whole instruction <unknown>.
_R: tuple[str | None, ...] = tuple(f"r{i}" for i in range(12)) + (None,) * 4
_W: tuple[str | None, ...] = tuple(f"w{i}" for i in range(12)) + (None,) * 4

# (text, branch displacement in instructions or None), or None for <unknown>.
_Decoded = tuple[str, int | None] | None
_Handler = Callable[[int, int, int, int], _Decoded]


def _unknown(dst: int, src: int, off: int, imm: int) -> _Decoded:
    return None


_ALU_SYMBOLS = {
    AluOp.ADD: "+=",
    AluOp.SUB: "-=",
    AluOp.MUL: "*=",
    AluOp.DIV: "/=",
    AluOp.OR: "|=",
    AluOp.AND: "&=",
    AluOp.LSH: "<<=",
    AluOp.RSH: ">>=",
    AluOp.MOD: "%=",
    AluOp.XOR: "^=",
    AluOp.ARSH: "s>>=",
}
_JMP_SYMBOLS = {
    JmpOp.JEQ: "==",
    JmpOp.JGT: ">",
    JmpOp.JGE: ">=",
    JmpOp.JSET: "&",
    JmpOp.JNE: "!=",
    JmpOp.JSGT: "s>",
    JmpOp.JSGE: "s>=",
    JmpOp.JLT: "<",
    JmpOp.JLE: "<=",
    JmpOp.JSLT: "s<",
    JmpOp.JSLE: "s<=",
}
_SIZE_NAMES = {Size.W: "32", Size.H: "16", Size.B: "8", Size.DW: "64"}
_FETCH_NAMES = {AtomicOp.ADD: "add", AtomicOp.OR: "or", AtomicOp.AND: "and", AtomicOp.XOR: "xor"}
_NOFETCH_SYMBOLS = {AtomicOp.ADD: "+=", AtomicOp.OR: "|=", AtomicOp.AND: "&=", AtomicOp.XOR: "^="}


def _alu(op: AluOp, source: Source, regs: tuple[str | None, ...]) -> _Handler:
    """ALU/ALU64 binary operations: off is fixed at 0 (1 selects sdiv/smod)."""
    symbol = _ALU_SYMBOLS[op]
    signed = op in (AluOp.DIV, AluOp.MOD)

    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        sym = symbol
        if off:
            if not (signed and off == SIGNED_DIVMOD_OFF):
                return None
            sym = "s" + symbol
        d = regs[dst]
        if d is None:
            return None
        if source == Source.K:
            return f"{d} {sym} {_hex(imm)}", None
        s = regs[src]
        if s is None:
            return None
        return f"{d} {sym} {s}", None

    return handler


def _neg(regs: tuple[str | None, ...]) -> _Handler:
    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        d = regs[dst]
        return None if d is None else (f"{d} = -{d}", None)

    return handler


def _mov_k(regs: tuple[str | None, ...]) -> _Handler:
    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        d = regs[dst]
        if d is None or off:
            return None
        return f"{d} = {_hex(imm)}", None

    return handler


def _mov_x(regs: tuple[str | None, ...], alu64: bool) -> _Handler:
    """MOV/MOVSX (and addr_space_cast in ALU64): off selects the form."""
    sign_offsets = MOVSX_OFFSETS if alu64 else MOVSX_OFFSETS[:2]

    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        d, s = regs[dst], regs[src]
        if d is None or s is None:
            return None
        if off == 0:
            return f"{d} = {s}", None
        if off in sign_offsets:
            return f"{d} = (s{off}){s}", None
        if alu64 and off == ADDR_SPACE_CAST_OFF:
            dst_as, src_as = (imm >> 16) & 0xFFFF, imm & 0xFFFF
            return f"{d} = addr_space_cast({s}, {dst_as:#x}, {src_as:#x})", None
        return None

    return handler


def _end(name: str) -> _Handler:
    """le/be (ALU) and bswap (ALU64): imm must be exactly 16, 32 or 64; r registers."""

    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        d = _R[dst]
        if d is None or imm not in END_WIDTHS:
            return None
        return f"{d} = {name}{imm} {d}", None

    return handler


def _jcc(op: JmpOp, source: Source, regs: tuple[str | None, ...]) -> _Handler:
    symbol = _JMP_SYMBOLS[op]

    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        d = regs[dst]
        if d is None:
            return None
        if source == Source.K:
            rhs = _hex(imm)
        else:
            s = regs[src]
            if s is None:
                return None
            rhs = s
        return f"if {d} {symbol} {rhs} goto {_branch(off)}", off

    return handler


def _goto(dst: int, src: int, off: int, imm: int) -> _Decoded:
    return f"goto {_branch(off)}", off


def _gotol(dst: int, src: int, off: int, imm: int) -> _Decoded:
    return f"gotol {_branch(imm)}", imm


def _may_goto(dst: int, src: int, off: int, imm: int) -> _Decoded:
    return f"may_goto {_branch(off)}", off


def _call(dst: int, src: int, off: int, imm: int) -> _Decoded:
    # src_reg (helper/pseudo/kfunc) is not part of LLVM's encoding of `call`
    return f"call {_hex(imm)}", None


def _callx(dst: int, src: int, off: int, imm: int) -> _Decoded:
    d = _R[dst]
    return None if d is None else (f"callx {d}", None)


def _exit(dst: int, src: int, off: int, imm: int) -> _Decoded:
    return ("exit", None) if imm == 0 else None


def _ld_abs(width: str) -> _Handler:
    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        return f"r0 = *(u{width} *)skb[{_hex(imm)}]", None

    return handler


def _ld_ind(width: str) -> _Handler:
    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        s = _R[src]
        return None if s is None else (f"r0 = *(u{width} *)skb[{s}]", None)

    return handler


def _ldx(sign: str, width: str) -> _Handler:
    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        d, s = _R[dst], _R[src]
        if d is None or s is None:
            return None
        return f"{d} = *({sign}{width} *)({_mem(s, off)})", None

    return handler


def _st(width: str) -> _Handler:
    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        d = _R[dst]
        return None if d is None else (f"*(u{width} *)({_mem(d, off)}) = {_hex(imm)}", None)

    return handler


def _stx(width: str) -> _Handler:
    def handler(dst: int, src: int, off: int, imm: int) -> _Decoded:
        d, s = _R[dst], _R[src]
        if d is None or s is None:
            return None
        return f"*(u{width} *)({_mem(d, off)}) = {s}", None

    return handler


def _atomic32(dst: int, src: int, off: int, imm: int) -> _Decoded:
    # Without alu32 only XADDW exists, and it matches on imm bits 7-4 alone (FETCH ignored).
    d, s = _R[dst], _R[src]
    if d is None or s is None or (imm >> 4) & 0xF != AtomicOp.ADD >> 4:
        return None
    return f"lock *(u32 *)({_mem(d, off)}) += {s}", None


def _atomic64(dst: int, src: int, off: int, imm: int) -> _Decoded:
    d, s = _R[dst], _R[src]
    if d is None or s is None:
        return None
    op, low = imm & 0xF0, imm & 0x0F  # bits above 7 are not looked at
    addr = _mem(d, off)
    if low == 1:
        if op in _FETCH_NAMES:
            return f"{s} = atomic_fetch_{_FETCH_NAMES[AtomicOp(op)]}((u64 *)({addr}), {s})", None
        if op | 1 == AtomicOp.XCHG:
            return f"{s} = xchg_64({addr}, {s})", None
        if op | 1 == AtomicOp.CMPXCHG:
            return f"r0 = cmpxchg_64({addr}, r0, {s})", None
        return None
    if op in _NOFETCH_SYMBOLS:
        return f"lock *(u64 *)({addr}) {_NOFETCH_SYMBOLS[AtomicOp(op)]} {s}", None
    return None


def _build_table() -> list[_Handler]:
    table: list[_Handler] = [_unknown] * 256
    for cls, regs in ((InsnClass.ALU, _W), (InsnClass.ALU64, _R)):
        alu64 = cls == InsnClass.ALU64
        for op in _ALU_SYMBOLS:
            for source in Source:
                table[cls | op | source] = _alu(op, source, regs)
        table[cls | AluOp.NEG | Source.K] = _neg(regs)
        table[cls | AluOp.MOV | Source.K] = _mov_k(regs)
        table[cls | AluOp.MOV | Source.X] = _mov_x(regs, alu64)
    table[InsnClass.ALU | AluOp.END | Endian.TO_LE] = _end("le")
    table[InsnClass.ALU | AluOp.END | Endian.TO_BE] = _end("be")
    table[InsnClass.ALU64 | AluOp.END | Source.K] = _end("bswap")
    for cls, regs in ((InsnClass.JMP, _R), (InsnClass.JMP32, _W)):
        for jop in _JMP_SYMBOLS:
            for source in Source:
                table[cls | jop | source] = _jcc(jop, source, regs)
    table[JA] = _goto
    table[JA32] = _gotol
    table[MAY_GOTO] = _may_goto
    table[CALL] = _call
    table[CALLX] = _callx
    table[EXIT] = _exit
    for size in (Size.W, Size.H, Size.B):
        width = _SIZE_NAMES[size]
        table[InsnClass.LD | Mode.ABS | size] = _ld_abs(width)
        table[InsnClass.LD | Mode.IND | size] = _ld_ind(width)
        table[InsnClass.LDX | Mode.MEMSX | size] = _ldx("s", width)
    for size in Size:
        width = _SIZE_NAMES[size]
        table[InsnClass.LDX | Mode.MEM | size] = _ldx("u", width)
        table[InsnClass.ST | Mode.MEM | size] = _st(width)
        table[InsnClass.STX | Mode.MEM | size] = _stx(width)
    table[InsnClass.STX | Mode.ATOMIC | Size.W] = _atomic32
    table[InsnClass.STX | Mode.ATOMIC | Size.DW] = _atomic64
    return table


_TABLE = _build_table()


def _decode_at(data: bytes, pos: int, little: bool) -> tuple[int, str | None, int | None]:
    """LLVM's getInstruction + printInst for the bytes at `pos`.

    Returns (size, text, branch displacement in instructions); text None is ``<unknown>``;
    size 0 means LLVM could not even read the instruction (too few bytes left), for which
    llvm-objdump skips a single byte.
    """
    if len(data) - pos < INSN_SIZE:
        return 0, None, None
    code = data[pos]
    order: ByteOrder = "little" if little else "big"
    regs = data[pos + 1]
    dst, src = (regs & 0xF, regs >> 4) if little else (regs >> 4, regs & 0xF)
    off = int.from_bytes(data[pos + 2 : pos + 4], order, signed=True)
    imm = int.from_bytes(data[pos + 4 : pos + 8], order, signed=True)
    if code == LD_IMM64:
        d = _R[dst]
        if d is None or off:
            return INSN_SIZE, None, None
        if len(data) - pos < 2 * INSN_SIZE:
            return 0, None, None
        # the second slot's code, registers and off are not looked at
        if src:
            return 2 * INSN_SIZE, f"ld_pseudo\t{d}, {src:#x}, {imm & 0xFFFF_FFFF:#x}", None
        hi = int.from_bytes(data[pos + 12 : pos + 16], order, signed=True)
        value = (hi << 32) | (imm & 0xFFFF_FFFF)
        return 2 * INSN_SIZE, f"{d} = {_hex(value)} ll", None
    decoded = _TABLE[code](dst, src, off, imm)
    if decoded is None:
        return INSN_SIZE, None, None
    return INSN_SIZE, decoded[0], decoded[1]


def _check_order(byteorder: ByteOrder) -> bool:
    if byteorder not in ("little", "big"):
        raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
    return byteorder == "little"


# -- symbols ------------------------------------------------------------------------------------


def _normalize(symbols: Iterable[SymbolLike | Symbol]) -> list[Symbol]:
    """Symbols as llvm-objdump keeps them: named, not SECTION/FILE, sorted stably by
    (offset, name, type) as SymbolInfoTy's operator< orders them."""
    out: list[Symbol] = []
    for sym in symbols:
        offset, name = sym[0], sym[1]
        stype: int | str = sym[2] if len(sym) > 2 else STT_FUNC
        if isinstance(stype, str):
            if stype not in _STT_BY_NAME:
                raise ValueError(f"unknown symbol type {stype!r} for {name!r}")
            stype = _STT_BY_NAME[stype]
        if not name or stype in (STT_SECTION, STT_FILE):
            continue
        out.append(Symbol(offset, name, stype))
    out.sort(key=lambda s: (s.offset, s.name.encode("utf-8", "surrogateescape"), s.type))
    return out


class _Labels:
    """Branch-target naming: the last symbol at or before the target, plus ``+0x<disp>``."""

    def __init__(self, symbols: Sequence[Symbol]) -> None:
        self.symbols = symbols
        self.offsets = [s.offset for s in symbols]

    def __call__(self, target: int) -> str:
        # llvm-objdump would fall back to absolute (undefined/ABS) symbols here, but a
        # section always has a symbol at offset 0 (a dummy one if need be), so it never does.
        i = bisect_right(self.offsets, target) - 1
        if i < 0:
            return ""
        sym = self.symbols[i]
        disp = (target - sym.offset) % _U64
        return f" <{sym.name}>" if disp == 0 else f" <{sym.name}+{disp:#x}>"


def _with_dummy(symbols: list[Symbol], section_name: str) -> list[Symbol]:
    """llvm-objdump adds a symbol named after the section when none starts at offset 0."""
    if any(s.offset == 0 for s in symbols):
        return symbols
    return [Symbol(0, section_name, STT_FUNC), *symbols]


# -- public API ---------------------------------------------------------------------------------


def format_insn(
    insns: Sequence[Instruction],
    index: int,
    byteorder: ByteOrder,
    *,
    symbols: Iterable[SymbolLike | Symbol] | None = None,
    section_name: str | None = None,
) -> str:
    """The text llvm-objdump prints for the instruction at `index`.

    An ld_imm64 uses ``insns[index + 1]`` too (``r1 = 0x5 ll``, or ``ld_pseudo\\tr1, 0x2,
    0x5`` when src_reg is set); asked for its second slot alone, the answer is what llvm
    would print for those 8 bytes (``<unknown>``). Branches get llvm-objdump's
    `` <sym+0xoff>`` target only when `symbols` (of the section, offsets relative to
    ``insns[0]``) are given; `section_name` names the dummy symbol llvm adds at offset 0
    when no symbol starts there.
    """
    little = _check_order(byteorder)
    insn = insns[index]
    pair = [insn]
    if insn.code == LD_IMM64 and index + 1 < len(insns):
        pair.append(insns[index + 1])
    size, text, delta = _decode_at(encode(pair, byteorder), 0, little)
    if size == 0 or text is None:
        return "<unknown>"
    if symbols is not None and delta is not None:
        syms = _normalize(symbols)
        if section_name is not None:
            syms = _with_dummy(syms, section_name)
        addr = index * INSN_SIZE
        text += _Labels(syms)((addr + INSN_SIZE + delta * INSN_SIZE) % _U64)
    return text


def _dump_data(data: bytes, start: int, end: int, out: list[str]) -> None:
    """llvm-objdump's dumpELFData: 8 bytes a line, hex then printable ASCII."""
    for line_start in range(start, end, 8):
        chunk = data[line_start : min(line_start + 8, end)]
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        hexes = "".join(f" {b:02x}" for b in chunk)
        pad = " " * (3 * (8 - len(chunk)))
        out.append(f"{line_start:8x}:{hexes}{pad}         {text}\n")


def _zero_run(data: bytes, index: int, end: int) -> int:
    """countSkippableZeroBytes: a run of at least 8 zero bytes, rounded down to 4."""
    if data[index]:
        return 0
    window = data[index:end]
    run = len(window) - len(window.lstrip(b"\0"))
    return run & ~3 if run >= 8 else 0


def disassemble_section(
    section_name: str,
    data: bytes | bytearray | memoryview,
    byteorder: ByteOrder,
    symbols: Iterable[SymbolLike | Symbol],
) -> str:
    """Exactly the block ``llvm-objdump-19 -d`` prints for one executable section.

    That is ``"\\nDisassembly of section NAME:\\n"``, then for each run of code between
    symbols ``"\\n%016x <sym>:\\n"`` and its lines (``"%8d:\\t<hex bytes>\\t<text>\\n"``,
    numbered by byte offset / 8); "" for an empty section.

    `symbols` are the symbols defined in this section, as ``(offset, name)`` (taken as FUNC)
    or ``(offset, name, type)`` with type an ELF ``STT_*`` number or pyelftools name
    (``"STT_FUNC"``). To match llvm-objdump pass every .symtab entry whose st_shndx is this
    section, whatever its type: NOTYPE labels name branch targets, and a symbol group made
    only of OBJECT/COMMON symbols is dumped as data. Unnamed, SECTION and FILE symbols are
    ignored, like llvm-objdump does. Several symbols at one offset print once, under the
    last non-data one in (offset, name, type) order.
    """
    little = _check_order(byteorder)
    raw = bytes(data)
    size = len(raw)
    if not size:
        return ""
    syms = _with_dummy(_normalize(symbols), section_name)
    label = _Labels(syms)
    out: list[str] = [f"\nDisassembly of section {section_name}:\n"]
    count = len(syms)
    i = 0
    while i < count:
        start = syms[i].offset
        first = i
        while i < count and syms[i].offset == start:
            i += 1
        group = syms[first:i]
        shown = len(group) - 1
        as_data = True
        for k, sym in enumerate(group):
            if sym.type not in _DATA_TYPES:
                as_data = False
                shown = k
        end = size if i >= count else min(size, syms[i].offset)
        if start >= end:
            continue
        out.append(f"\n{start:016x} <{group[shown].name}>:\n")
        if as_data:
            _dump_data(raw, start, end, out)
            continue
        index = start
        while index < end:
            skip = _zero_run(raw, index, end)
            if skip:
                out.append("\t\t...\n")
                index += skip
                continue
            length, text, delta = _decode_at(raw, index, little)
            if length == 0:
                length = 1  # llvm-objdump: suggestBytesToSkip() is 1 byte
            line = f"{index // INSN_SIZE:8d}:\t{raw[index : index + length].hex(' ')}\t"
            if text is None:
                line += "<unknown>"
            else:
                line += text
                if delta is not None:
                    line += label((index + INSN_SIZE + delta * INSN_SIZE) % _U64)
            out.append(line + "\n")
            index += length
    return "".join(out) if len(out) > 1 else ""


def disassemble_insns(
    insns: Sequence[Instruction],
    byteorder: ByteOrder,
    *,
    section_name: str = ".text",
    symbols: Iterable[SymbolLike | Symbol] = (),
) -> str:
    """`disassemble_section` of already decoded (or rewritten) instructions."""
    return disassemble_section(section_name, encode(insns, byteorder), byteorder, symbols)
