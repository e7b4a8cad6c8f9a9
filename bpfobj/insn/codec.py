"""BPF instructions as values: decode 8-byte slots from bytes and encode them back.

One `Instruction` is one 8-byte slot, the unit the kernel, libbpf and .BTF.ext count in; an
ld_imm64 is two of them (the second has code 0 and carries the upper 32 bits in imm).

Byte order follows the object (ISA "Basic instruction encoding"): little-endian objects put
src_reg in the high nibble of the register byte, big-endian ones (clang -target bpfeb) put
dst_reg there, and off/imm are stored in the object's byte order.

`Instruction` is a tuple subclass (``code, dst, src, off, imm``) rather than an attrs class:
decoding builds it with C-level ``tuple.__new__``: 100k instructions decode in about 30 ms,
where running a frozen attrs/dataclass ``__init__`` per instruction alone costs about 80 ms. It is immutable,
slotted and hashable; use `Instruction.replace` or the ``with_*`` methods to change a field.
"""

from __future__ import annotations

import gc
import struct
import sys
from array import array
from collections import namedtuple
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import itemgetter

from bpfobj.arch import ByteOrder
from bpfobj.errors import InsnError
from bpfobj.uapi import PSEUDO_CALL, PSEUDO_FUNC, PSEUDO_KFUNC_CALL

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import NamedTuple

# The opcodes the codec builds and classifies by, as plain ints: `bpfobj.insn.opcodes` is
# their table, but importing it builds nine enum classes (~2 ms at every tool's start-up)
# that decoding, encoding and loading never need. tests/test_insn_codec.py checks each
# against it.
INSN_SIZE = 8
CLASS_MASK = 0x07  # BPF_CLASS()
OP_MASK = 0xF0  # BPF_OP()
_JMP, _JMP32 = 0x05, 0x06  # InsnClass.JMP, InsnClass.JMP32
_OP_CALL, _OP_EXIT = 0x80, 0x90  # JmpOp.CALL, JmpOp.EXIT
LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW
JA = 0x05  # BPF_JMP | BPF_JA | BPF_K
JA32 = 0x06  # BPF_JMP32 | BPF_JA | BPF_K
CALL = 0x85  # BPF_JMP | BPF_CALL | BPF_K
EXIT = 0x95  # BPF_JMP | BPF_EXIT | BPF_K
MOV_K64 = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K

_U32 = 1 << 32
_U64 = 1 << 64


def _array_code(itemsize: int) -> str:
    """The array typecode of a signed integer with `itemsize` bytes on this platform."""
    for code in "hilq":
        if array(code).itemsize == itemsize:
            return code
    raise RuntimeError(f"no {itemsize}-byte signed array type on this platform")  # pragma: no cover


_I16 = _array_code(2)
_I32 = _array_code(4)

# Register byte -> (dst, src) nibble, per byte order: a translate() table does it for all
# instructions at once.
_LOW_NIBBLE = bytes(b & 0x0F for b in range(256))
_HIGH_NIBBLE = bytes(b >> 4 for b in range(256))
_SHIFT_NIBBLE = bytes((b << 4) & 0xFF for b in range(256))

_STRUCTS = {"little": struct.Struct("<BBhi"), "big": struct.Struct(">BBhi")}
_tuple_new = tuple.__new__


# The functional form: with string annotations (``from __future__ import annotations``) the
# class form makes typing.NamedTuple compile() each one, and a process's first compile()
# builds the ast module's ~120 classes (~3.5 ms).
# At run time collections.namedtuple: the same class, without importing typing (~4 ms).
if TYPE_CHECKING:
    _Fields = NamedTuple(  # noqa: UP014 (see above)
        "_Fields", [("code", int), ("dst", int), ("src", int), ("off", int), ("imm", int)]
    )
else:
    _Fields = namedtuple("_Fields", ["code", "dst", "src", "off", "imm"])


class Instruction(_Fields):
    """One 8-byte instruction slot: opcode, registers, signed 16-bit off, signed 32-bit imm.

    The constructor validates ranges; ``off`` and ``imm`` may also be given as their unsigned
    bit patterns (``imm=0xffffffff`` is stored as -1), so values read from C structs fit.
    """

    __slots__ = ()

    def __new__(
        cls, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0
    ) -> Instruction:
        if not 0 <= code <= 0xFF:
            raise ValueError(f"opcode {code:#x} does not fit in 8 bits")
        if not 0 <= dst <= 0xF or not 0 <= src <= 0xF:
            raise ValueError(f"register numbers dst={dst} src={src} do not fit in 4 bits")
        if not -0x8000 <= off <= 0xFFFF:
            raise ValueError(f"off {off} does not fit in 16 bits")
        if not -0x8000_0000 <= imm <= 0xFFFF_FFFF:
            raise ValueError(f"imm {imm} does not fit in 32 bits")
        if off > 0x7FFF:
            off -= 0x1_0000
        if imm > 0x7FFF_FFFF:
            imm -= _U32
        return _tuple_new(cls, (code, dst, src, off, imm))

    def __repr__(self) -> str:
        return (
            f"Instruction(code={self.code:#04x}, dst={self.dst}, src={self.src}, "
            f"off={self.off}, imm={self.imm})"
        )

    # -- bytes ----------------------------------------------------------------------------

    def to_bytes(self, byteorder: ByteOrder) -> bytes:
        """The 8 bytes of this slot in `byteorder`."""
        code, dst, src, off, imm = self
        regs = (src << 4 | dst) if byteorder == "little" else (dst << 4 | src)
        return _STRUCTS[byteorder].pack(code, regs, off, imm)

    @classmethod
    def from_bytes(cls, raw: bytes, byteorder: ByteOrder) -> Instruction:
        """Decode exactly one 8-byte slot."""
        if len(raw) != INSN_SIZE:
            raise InsnError(f"an instruction is 8 bytes, got {len(raw)}")
        code, regs, off, imm = _STRUCTS[byteorder].unpack(raw)
        if byteorder == "little":
            return _tuple_new(cls, (code, regs & 0x0F, regs >> 4, off, imm))
        return _tuple_new(cls, (code, regs >> 4, regs & 0x0F, off, imm))

    # -- changing fields --------------------------------------------------------------------

    def replace(self, **changes: int) -> Instruction:
        """A copy with some fields changed (validated like the constructor)."""
        fields = self._asdict()
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Instruction has no field(s) {', '.join(sorted(unknown))}")
        fields.update(changes)
        return Instruction(**fields)

    def with_code(self, code: int) -> Instruction:
        return self.replace(code=code)

    def with_dst(self, dst: int) -> Instruction:
        return self.replace(dst=dst)

    def with_src(self, src: int) -> Instruction:
        return self.replace(src=src)

    def with_off(self, off: int) -> Instruction:
        return self.replace(off=off)

    def with_imm(self, imm: int) -> Instruction:
        return self.replace(imm=imm)

    # -- classification -------------------------------------------------------------------

    @property
    def cls(self) -> int:
        """The instruction class (an `InsnClass` value)."""
        return self.code & CLASS_MASK

    @property
    def op(self) -> int:
        """BPF_OP(code): the operation of ALU/JMP classes (mode+size bits otherwise)."""
        return self.code & OP_MASK

    @property
    def is_ld_imm64(self) -> bool:
        """The first slot of a two-slot 64-bit immediate load."""
        return self.code == LD_IMM64

    @property
    def is_call(self) -> bool:
        """Any ``call imm`` (helper, subprogram or kfunc); not ``callx``."""
        return self.code == CALL

    @property
    def is_helper_call(self) -> bool:
        return self.code == CALL and self.src == 0

    @property
    def is_pseudo_call(self) -> bool:
        """A call of a subprogram: imm is the pc-relative target (src_reg PSEUDO_CALL)."""
        return self.code == CALL and self.src == PSEUDO_CALL

    @property
    def is_kfunc_call(self) -> bool:
        """A call of a kernel function by BTF id (src_reg PSEUDO_KFUNC_CALL)."""
        return self.code == CALL and self.src == PSEUDO_KFUNC_CALL

    @property
    def is_pseudo_func(self) -> bool:
        """ld_imm64 of a subprogram's address: imm is pc-relative (src_reg PSEUDO_FUNC)."""
        return self.code == LD_IMM64 and self.src == PSEUDO_FUNC

    @property
    def is_exit(self) -> bool:
        return self.code == EXIT

    @property
    def is_jump(self) -> bool:
        """A (conditional or not) jump of class JMP/JMP32: not call, not exit."""
        cls = self.code & CLASS_MASK
        if cls != _JMP and cls != _JMP32:
            return False
        op = self.code & OP_MASK
        return op != _OP_CALL and op != _OP_EXIT

    def jump_target(self, index: int) -> int:
        """The instruction index this jump at `index` goes to (gotol jumps by imm)."""
        if not self.is_jump:
            raise ValueError(f"{self!r} is not a jump")
        if self.code == JA32:
            return index + 1 + self.imm
        return index + 1 + self.off

    def call_target(self, index: int) -> int:
        """The instruction index a pseudo call or pseudo func at `index` refers to."""
        if not (self.is_pseudo_call or self.is_pseudo_func):
            raise ValueError(f"{self!r} is neither a pseudo call nor a pseudo func")
        return index + 1 + self.imm


# -- whole sections --------------------------------------------------------------------------


def decode(
    data: bytes | bytearray | memoryview, byteorder: ByteOrder, *, section: str | None = None
) -> list[Instruction]:
    """Split instruction bytes into 8-byte slots (an ld_imm64 yields two).

    Raises InsnError naming `section` and the byte offset if ``len(data)`` is not a multiple
    of 8. Works column-wise (translate/array/zip) so no Python code runs per instruction;
    the cyclic garbage collector is paused while the list is built.
    """
    raw = bytes(data)
    size = len(raw)
    if size % INSN_SIZE:
        whole = size - size % INSN_SIZE
        raise InsnError(
            f"instruction bytes end with a partial instruction: {size % INSN_SIZE} byte(s) "
            f"at offset {whole:#x} (section size {size:#x} is not a multiple of 8)",
            section=section,
            insn=whole // INSN_SIZE,
            hint="the section is truncated or is not BPF code",
        )
    regs = raw[1::INSN_SIZE]
    if byteorder == "little":
        dsts, srcs = regs.translate(_LOW_NIBBLE), regs.translate(_HIGH_NIBBLE)
    elif byteorder == "big":
        dsts, srcs = regs.translate(_HIGH_NIBBLE), regs.translate(_LOW_NIBBLE)
    else:
        raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
    offs = array(_I16, raw)
    imms = array(_I32, raw)
    if byteorder != sys.byteorder:
        offs.byteswap()
        imms.byteswap()
    rows = zip(raw[0::INSN_SIZE], dsts, srcs, offs[1::4], imms[1::2])
    # Building 100k tuples would trigger a dozen cyclic-GC passes over them (half the time
    # of the whole decode); none of them can be garbage yet, so pause the collector.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return list(map(_tuple_new, repeat(Instruction), rows))
    finally:
        if gc_was_enabled:
            gc.enable()


def encode(insns: Iterable[Instruction], byteorder: ByteOrder) -> bytes:
    """The bytes of `insns` in `byteorder` (the inverse of `decode`)."""
    seq = insns if isinstance(insns, Sequence) else list(insns)
    count = len(seq)
    if not count:
        return b""
    try:
        codes = bytes(map(itemgetter(0), seq))
        dsts = bytes(map(itemgetter(1), seq))
        srcs = bytes(map(itemgetter(2), seq))
        offs = array(_I16, list(map(itemgetter(3), seq)))
        imms = array(_I32, list(map(itemgetter(4), seq)))
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"an instruction field is out of range: {exc}") from None
    if max(dsts) > 0xF or max(srcs) > 0xF:
        raise ValueError("a register number does not fit in 4 bits")
    if byteorder == "little":
        low, high = dsts, srcs
    elif byteorder == "big":
        low, high = srcs, dsts
    else:
        raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
    # the register byte of every instruction at once: low | high << 4, as one big integer
    regs = (
        int.from_bytes(low, "little") | int.from_bytes(high.translate(_SHIFT_NIBBLE), "little")
    ).to_bytes(count, "little")
    if byteorder != sys.byteorder:
        offs.byteswap()
        imms.byteswap()
    off_bytes, imm_bytes = offs.tobytes(), imms.tobytes()
    out = bytearray(count * INSN_SIZE)
    out[0::8] = codes
    out[1::8] = regs
    for i in range(2):
        out[2 + i :: 8] = off_bytes[i::2]
    for i in range(4):
        out[4 + i :: 8] = imm_bytes[i::4]
    return bytes(out)


# -- ld_imm64 ----------------------------------------------------------------------------------


def imm64(lo: Instruction, hi: Instruction) -> int:
    """The unsigned 64-bit value of an ld_imm64 pair: ``hi.imm << 32 | (u32) lo.imm``."""
    return ((hi.imm & 0xFFFF_FFFF) << 32) | (lo.imm & 0xFFFF_FFFF)


def ld_imm64(dst: int, src: int, value: int) -> tuple[Instruction, Instruction]:
    """The two slots of ``dst = value ll`` with src_reg `src` (0 or a PSEUDO_* value).

    `value` may be signed or unsigned 64-bit.
    """
    if not -(1 << 63) <= value < _U64:
        raise ValueError(f"ld_imm64 value {value} does not fit in 64 bits")
    value %= _U64
    return (
        Instruction(LD_IMM64, dst, src, 0, value & 0xFFFF_FFFF),
        Instruction(0, 0, 0, 0, value >> 32),
    )


# -- single instructions the loader synthesises -----------------------------------------------


def call_helper(helper_id: int) -> Instruction:
    """``call helper_id``."""
    return Instruction(CALL, 0, 0, 0, helper_id)


def pseudo_call(rel: int) -> Instruction:
    """A subprogram call `rel` instructions after the next one."""
    return Instruction(CALL, 0, PSEUDO_CALL, 0, rel)


def kfunc_call(btf_id: int, btf_fd_index: int = 0) -> Instruction:
    """A kfunc call: imm is the BTF id, off the index into the fd_array (0: vmlinux)."""
    return Instruction(CALL, 0, PSEUDO_KFUNC_CALL, btf_fd_index, btf_id)


def mov64_imm(dst: int, imm: int) -> Instruction:
    """``dst = imm`` (sign-extended to 64 bits)."""
    return Instruction(MOV_K64, dst, 0, 0, imm)


def ja(off: int) -> Instruction:
    """``goto +off``."""
    return Instruction(JA, 0, 0, off, 0)


def exit_insn() -> Instruction:
    """``exit``."""
    return Instruction(EXIT)
