"""The fields of a BPF instruction's opcode byte, as data: one table per fact.

Sources: include/uapi/linux/bpf_common.h and include/uapi/linux/bpf.h of Linux 6.12, and
Documentation/bpf/standardization/instruction-set.rst ("ISA" below). The opcode byte is
split two ways:

* arithmetic and jump classes (ALU, ALU64, JMP, JMP32): ``op:4 | source:1 | class:3``
* load and store classes (LD, LDX, ST, STX): ``mode:3 | size:2 | class:3``

Values are kept in their in-byte position (``AluOp.SUB == 0x10``, not 1), exactly like the C
macros, so an opcode is composed with ``|``: ``InsnClass.ALU64 | AluOp.ADD | Source.K``.
"""

from __future__ import annotations

from bpfobj import enums

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Final

# One instruction slot is 8 bytes; ld_imm64 takes two slots (ISA "Wide instruction encoding").
INSN_SIZE: Final = 8

# Field masks (bpf_common.h: BPF_CLASS, BPF_SIZE, BPF_MODE, BPF_OP, BPF_SRC).
CLASS_MASK: Final = 0x07
SIZE_MASK: Final = 0x18
MODE_MASK: Final = 0xE0
OP_MASK: Final = 0xF0
SOURCE_MASK: Final = 0x08


class InsnClass(enums.IntEnum):
    """The 3-bit instruction class (bpf_common.h BPF_LD..BPF_ALU, bpf.h BPF_JMP32/BPF_ALU64)."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


class Size(enums.IntEnum):
    """The size modifier of load/store classes (bpf_common.h BPF_W/H/B, bpf.h BPF_DW)."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18


# Bytes moved by each size modifier (ISA "Size modifier" table).
SIZE_BYTES: Final[dict[Size, int]] = {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}


class Mode(enums.IntEnum):
    """The mode modifier of load/store classes (bpf_common.h, bpf.h BPF_MEMSX/BPF_ATOMIC)."""

    IMM = 0x00
    ABS = 0x20  # legacy packet access, absolute offset
    IND = 0x40  # legacy packet access, offset in src_reg
    MEM = 0x60
    MEMSX = 0x80  # sign-extending load (cpu v4)
    ATOMIC = 0xC0  # the operation is in imm (AtomicOp)


class Source(enums.IntEnum):
    """The source bit of arithmetic/jump classes: imm (K) or src_reg (X)."""

    K = 0x00
    X = 0x08


class Endian(enums.IntEnum):
    """The source bit reused by BPF_END in the ALU class (bpf.h BPF_TO_LE/BPF_TO_BE)."""

    TO_LE = 0x00
    TO_BE = 0x08


class AluOp(enums.IntEnum):
    """The 4-bit operation of ALU/ALU64 (bpf_common.h, bpf.h; ISA "Arithmetic instructions")."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30  # off=1: SDIV (cpu v4)
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90  # off=1: SMOD (cpu v4)
    XOR = 0xA0
    MOV = 0xB0  # X with off=8/16/32: MOVSX (cpu v4); ALU64 X with off=1: addr_space_cast
    ARSH = 0xC0
    END = 0xD0  # imm = 16/32/64; in ALU64 (source K) an unconditional bswap (cpu v4)


class JmpOp(enums.IntEnum):
    """The 4-bit operation of JMP/JMP32 (bpf_common.h, bpf.h; ISA "Jump instructions")."""

    JA = 0x00  # JMP: PC += off; JMP32 (gotol, cpu v4): PC += imm
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80  # src_reg: 0 helper, PSEUDO_CALL (1) subprogram, PSEUDO_KFUNC_CALL (2) kfunc
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0  # conditional pseudo jumps; src_reg holds CondPseudoJmp


class CondPseudoJmp(enums.IntEnum):
    """enum bpf_cond_pseudo_jmp (bpf.h): the src_reg of a JCOND instruction."""

    MAY_GOTO = 0


# Atomic operations live in imm of {STX, ATOMIC, W|DW} (bpf.h BPF_FETCH/BPF_XCHG/BPF_CMPXCHG,
# ISA "Atomic operations"). FETCH is a modifier bit, XCHG and CMPXCHG always carry it.
FETCH: Final = 0x01


class AtomicOp(enums.IntEnum):
    """The imm of an atomic instruction (without FETCH, except XCHG/CMPXCHG which include it)."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    XCHG = 0xE0 | FETCH
    CMPXCHG = 0xF0 | FETCH


# The off field of arithmetic instructions that reuse it (ISA "Arithmetic instructions").
SIGNED_DIVMOD_OFF: Final = 1  # DIV/MOD with off=1 are SDIV/SMOD
MOVSX_OFFSETS: Final = (8, 16, 32)  # MOV X with these offsets sign-extends (32 only in ALU64)
ADDR_SPACE_CAST_OFF: Final = 1  # enum bpf_addr_space_cast: ALU64 MOV X off=1

# The widths BPF_END accepts in imm (ISA "Byte swap instructions").
END_WIDTHS: Final = (16, 32, 64)

# Registers (bpf.h enum BPF_REG_0..BPF_REG_10): r0 return value, r1-r5 arguments,
# r6-r9 callee-saved, r10 read-only frame pointer.
MAX_BPF_REG: Final = 11
FRAME_POINTER: Final = 10

# Whole opcodes the loader names often.
LD_IMM64: Final = InsnClass.LD | Mode.IMM | Size.DW  # 0x18, two slots
JA: Final = InsnClass.JMP | JmpOp.JA | Source.K  # 0x05 goto
JA32: Final = InsnClass.JMP32 | JmpOp.JA | Source.K  # 0x06 gotol
CALL: Final = InsnClass.JMP | JmpOp.CALL | Source.K  # 0x85
CALLX: Final = InsnClass.JMP | JmpOp.CALL | Source.X  # 0x8d, register call (LLVM only)
EXIT: Final = InsnClass.JMP | JmpOp.EXIT | Source.K  # 0x95
MAY_GOTO: Final = InsnClass.JMP | JmpOp.JCOND | Source.K  # 0xe5 with src_reg MAY_GOTO
MOV_K64: Final = InsnClass.ALU64 | AluOp.MOV | Source.K  # 0xb7 dst = imm


def insn_class(code: int) -> int:
    """BPF_CLASS(code)."""
    return code & CLASS_MASK


def insn_size(code: int) -> int:
    """BPF_SIZE(code)."""
    return code & SIZE_MASK


def insn_mode(code: int) -> int:
    """BPF_MODE(code)."""
    return code & MODE_MASK


def insn_op(code: int) -> int:
    """BPF_OP(code)."""
    return code & OP_MASK


def insn_source(code: int) -> int:
    """BPF_SRC(code)."""
    return code & SOURCE_MASK
