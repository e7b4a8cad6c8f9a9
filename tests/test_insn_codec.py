"""bpfobj.insn.codec: 8-byte slots to `Instruction` values and back, in both byte orders."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from hypothesis import given
from hypothesis import strategies as st

from bpfobj.errors import InsnError
from bpfobj.insn import (
    ByteOrder,
    Instruction,
    call_helper,
    decode,
    encode,
    exit_insn,
    imm64,
    ja,
    kfunc_call,
    ld_imm64,
    mov64_imm,
    pseudo_call,
)
from bpfobj.insn import opcodes as op
from bpfobj.uapi import PSEUDO_CALL, PSEUDO_FUNC, PSEUDO_KFUNC_CALL, PSEUDO_MAP_VALUE

ORDERS: tuple[ByteOrder, ByteOrder] = ("little", "big")

instructions = st.builds(
    Instruction,
    code=st.integers(0, 0xFF),
    dst=st.integers(0, 0xF),
    src=st.integers(0, 0xF),
    off=st.integers(-0x8000, 0x7FFF),
    imm=st.integers(-0x8000_0000, 0x7FFF_FFFF),
)


# -- known encodings ---------------------------------------------------------------------------


def test_isa_example_little_and_big() -> None:
    # instruction-set.rst "Basic instruction encoding": r1 += 0x11223344
    insn = Instruction(0x07, dst=1, imm=0x11223344)
    little = bytes.fromhex("07 01 00 00 44 33 22 11")
    big = bytes.fromhex("07 10 00 00 11 22 33 44")
    assert insn.to_bytes("little") == little
    assert insn.to_bytes("big") == big
    assert Instruction.from_bytes(little, "little") == insn
    assert Instruction.from_bytes(big, "big") == insn
    assert decode(little + big[:0], "little") == [insn]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # {ADD, X, ALU64}: r1 += r2 (src in the high nibble of a little-endian register byte)
        ("0f 21 00 00 00 00 00 00", Instruction(0x0F, dst=1, src=2)),
        # r1 = *(u64 *)(r1 + 0x10)
        ("79 11 10 00 00 00 00 00", Instruction(0x79, dst=1, src=1, off=0x10)),
        # if r1 != 0x0 goto -0x3
        ("55 01 fd ff 00 00 00 00", Instruction(0x55, dst=1, off=-3)),
        # call 0x6 (bpf_trace_printk)
        ("85 00 00 00 06 00 00 00", Instruction(0x85, imm=6)),
        # subprogram call with imm -1 before relocation
        ("85 10 00 00 ff ff ff ff", Instruction(0x85, src=PSEUDO_CALL, imm=-1)),
        # sdiv: off 1 selects the signed flavour (cpu v4)
        ("3f 21 01 00 00 00 00 00", Instruction(0x3F, dst=1, src=2, off=1)),
        # movsx: r1 = (s16)r2
        ("bf 21 10 00 00 00 00 00", Instruction(0xBF, dst=1, src=2, off=16)),
        # bswap64 (END in ALU64)
        ("d7 03 00 00 40 00 00 00", Instruction(0xD7, dst=3, imm=64)),
        # gotol -0x80000000: JA in JMP32 jumps by imm
        ("06 00 00 00 00 00 00 80", Instruction(0x06, imm=-0x8000_0000)),
        # ldsx: r1 = *(s8 *)(r2 - 0x8000)
        ("91 21 00 80 00 00 00 00", Instruction(0x91, dst=1, src=2, off=-0x8000)),
        # cmpxchg: imm 0xf1
        ("db 21 00 00 f1 00 00 00", Instruction(0xDB, dst=1, src=2, imm=0xF1)),
        # legacy LD_ABS: r0 = *(u8 *)skb[0xe]
        ("30 00 00 00 0e 00 00 00", Instruction(0x30, imm=14)),
    ],
)
def test_known_little_endian_encodings(raw: str, expected: Instruction) -> None:
    data = bytes.fromhex(raw)
    assert decode(data, "little") == [expected]
    assert Instruction.from_bytes(data, "little") == expected
    assert encode([expected], "little") == data


def test_big_endian_swaps_nibbles_and_fields() -> None:
    insn = Instruction(0x79, dst=1, src=2, off=-2, imm=0x01020304)
    assert insn.to_bytes("little") == bytes.fromhex("79 21 fe ff 04 03 02 01")
    assert insn.to_bytes("big") == bytes.fromhex("79 12 ff fe 01 02 03 04")


def test_ld_imm64_is_two_slots() -> None:
    lo, hi = ld_imm64(1, 0, 0x1122334455667788)
    assert lo == Instruction(op.LD_IMM64, dst=1, imm=0x55667788)
    assert hi == Instruction(0, imm=0x11223344)
    data = encode([lo, hi], "little")
    assert data == bytes.fromhex("18 01 00 00 88 77 66 55 00 00 00 00 44 33 22 11")
    assert decode(data, "little") == [lo, hi]
    assert imm64(lo, hi) == 0x1122334455667788
    assert lo.is_ld_imm64 and not hi.is_ld_imm64


@pytest.mark.parametrize("src", range(7))
@pytest.mark.parametrize("value", [0, 1, -1, 0xFFFF_FFFF, 1 << 32, (1 << 63), (1 << 64) - 1])
def test_ld_imm64_values_and_pseudo_src(src: int, value: int) -> None:
    lo, hi = ld_imm64(3, src, value)
    assert lo.src == src and lo.dst == 3 and hi.code == 0
    assert imm64(lo, hi) == value % (1 << 64)
    for order in ORDERS:
        assert decode(encode([lo, hi], order), order) == [lo, hi]
    assert lo.is_pseudo_func == (src == PSEUDO_FUNC)


def test_ld_imm64_range() -> None:
    with pytest.raises(ValueError):
        ld_imm64(1, 0, 1 << 64)
    with pytest.raises(ValueError):
        ld_imm64(1, 0, -(1 << 63) - 1)


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@given(insn=instructions)
def test_single_round_trip(order: ByteOrder, insn: Instruction) -> None:
    raw = insn.to_bytes(order)
    assert len(raw) == 8
    assert Instruction.from_bytes(raw, order) == insn


@pytest.mark.parametrize("order", ORDERS)
@given(insns=st.lists(instructions, max_size=50))
def test_list_round_trip(order: ByteOrder, insns: list[Instruction]) -> None:
    data = encode(insns, order)
    assert data == b"".join(i.to_bytes(order) for i in insns)
    decoded = decode(data, order)
    assert decoded == insns
    assert all(type(i) is Instruction for i in decoded)


@pytest.mark.parametrize("order", ORDERS)
@given(data=st.binary(max_size=400).map(lambda b: b[: len(b) - len(b) % 8]))
def test_bytes_round_trip(order: ByteOrder, data: bytes) -> None:
    insns = decode(data, order)
    assert len(insns) == len(data) // 8
    assert encode(insns, order) == data
    assert encode(iter(insns), order) == data


@given(data=st.binary(min_size=8, max_size=8))
def test_byte_orders_agree_on_opcode_and_differ_on_layout(data: bytes) -> None:
    little = Instruction.from_bytes(data, "little")
    big = Instruction.from_bytes(data, "big")
    assert little.code == big.code == data[0]
    assert (little.dst, little.src) == (big.src, big.dst)
    assert little.off == struct.unpack("<h", data[2:4])[0]
    assert big.imm == struct.unpack(">i", data[4:8])[0]


# -- errors and validation ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 9, 15, 23])
def test_partial_instruction_is_an_insn_error(size: int) -> None:
    with pytest.raises(InsnError) as info:
        decode(bytes(size), "little", section="xdp")
    err = info.value
    whole = size - size % 8
    assert err.section == "xdp"
    assert err.insn == size // 8
    assert f"offset {whole:#x}" in str(err)
    assert "section xdp" in str(err)


def test_from_bytes_needs_exactly_eight() -> None:
    with pytest.raises(InsnError):
        Instruction.from_bytes(bytes(7), "little")
    with pytest.raises(InsnError):
        Instruction.from_bytes(bytes(16), "big")


def test_bad_byteorder() -> None:
    with pytest.raises(ValueError):
        decode(bytes(8), "middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode([exit_insn()], "middle")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"code": 0x100},
        {"code": -1},
        {"dst": 16},
        {"src": -1},
        {"off": 0x10000},
        {"off": -0x8001},
        {"imm": 1 << 32},
        {"imm": -(1 << 31) - 1},
    ],
)
def test_constructor_rejects_out_of_range(fields: dict[str, int]) -> None:
    args = {"code": 0x07, **fields}
    with pytest.raises(ValueError):
        Instruction(**args)


def test_unsigned_patterns_are_stored_signed() -> None:
    insn = Instruction(0x07, imm=0xFFFF_FFFF, off=0xFFFF)
    assert insn.imm == -1 and insn.off == -1
    assert insn == Instruction(0x07, imm=-1, off=-1)
    assert insn.with_imm(0x8000_0000).imm == -0x8000_0000


def test_immutable_and_hashable() -> None:
    insn = Instruction(0x95)
    with pytest.raises(AttributeError):
        insn.imm = 3  # type: ignore[misc]
    assert not hasattr(insn, "__dict__")
    assert len({insn, Instruction(0x95), Instruction(0x95, imm=1)}) == 2


def test_with_helpers() -> None:
    insn = Instruction(0x85, imm=-1)
    assert insn.with_src(PSEUDO_CALL) == Instruction(0x85, src=PSEUDO_CALL, imm=-1)
    assert insn.with_imm(12).imm == 12
    assert insn.with_off(3).off == 3
    assert insn.with_dst(2).dst == 2
    assert insn.with_code(0x95).is_exit
    assert insn.replace(src=2, imm=5) == Instruction(0x85, src=2, imm=5)
    assert insn.imm == -1  # unchanged
    with pytest.raises(TypeError):
        insn.replace(bogus=1)
    with pytest.raises(ValueError):
        insn.with_imm(1 << 40)


# -- classification ------------------------------------------------------------------------------


def test_call_kinds() -> None:
    helper, sub, kfunc = call_helper(6), pseudo_call(-5), kfunc_call(1234, 2)
    assert helper.is_call and helper.is_helper_call and not helper.is_pseudo_call
    assert sub.is_call and sub.is_pseudo_call and not sub.is_helper_call
    assert kfunc.is_call and kfunc.is_kfunc_call and kfunc.src == PSEUDO_KFUNC_CALL
    assert (kfunc.imm, kfunc.off) == (1234, 2)
    assert sub.call_target(10) == 6
    callx = Instruction(op.CALLX, dst=1)
    assert not callx.is_call and not callx.is_jump
    for insn in (helper, sub, kfunc):
        assert not insn.is_jump and not insn.is_exit
        assert insn.cls == op.InsnClass.JMP


def test_pseudo_func_and_target() -> None:
    lo, _hi = ld_imm64(2, PSEUDO_FUNC, 7)
    assert lo.is_pseudo_func and lo.call_target(3) == 11
    lo, _hi = ld_imm64(2, PSEUDO_MAP_VALUE, 7)
    assert not lo.is_pseudo_func
    with pytest.raises(ValueError):
        lo.call_target(0)


def test_jumps_and_targets() -> None:
    assert ja(3).jump_target(10) == 14
    assert ja(-1).jump_target(10) == 10
    cond = Instruction(op.InsnClass.JMP32 | op.JmpOp.JSGT | op.Source.X, dst=1, src=2, off=-4)
    assert cond.is_jump and cond.jump_target(4) == 1
    gotol = Instruction(op.JA32, off=99, imm=100_000)
    assert gotol.is_jump and gotol.jump_target(0) == 100_001
    may_goto = Instruction(op.MAY_GOTO, off=2)
    assert may_goto.is_jump and may_goto.jump_target(5) == 8
    assert exit_insn().is_exit and not exit_insn().is_jump
    for insn in (mov64_imm(1, 2), exit_insn(), call_helper(1)):
        with pytest.raises(ValueError):
            insn.jump_target(0)


def test_mov64_imm_and_repr() -> None:
    insn = mov64_imm(3, -7)
    assert insn == Instruction(0xB7, dst=3, imm=-7)
    assert insn.cls == op.InsnClass.ALU64 and insn.op == op.AluOp.MOV
    assert repr(insn) == "Instruction(code=0xb7, dst=3, src=0, off=0, imm=-7)"
    code, dst, src, off, imm = insn  # a tuple underneath
    assert (code, dst, src, off, imm) == (0xB7, 3, 0, 0, -7)


def test_opcode_tables_compose_like_the_uapi_macros() -> None:
    assert op.LD_IMM64 == 0x18
    assert op.InsnClass.ALU64 | op.AluOp.ADD | op.Source.X == 0x0F
    assert op.InsnClass.STX | op.Mode.ATOMIC | op.Size.DW == 0xDB
    assert op.InsnClass.LDX | op.Mode.MEMSX | op.Size.B == 0x91
    assert op.InsnClass.LD | op.Mode.ABS | op.Size.B == 0x30
    assert int(op.AtomicOp.XCHG) == 0xE1 and int(op.AtomicOp.CMPXCHG) == 0xF1
    assert op.CALL == 0x85 and op.EXIT == 0x95 and op.MAY_GOTO == 0xE5
    assert op.insn_class(0xDB) == op.InsnClass.STX
    assert op.insn_size(0xDB) == op.Size.DW and op.SIZE_BYTES[op.Size.DW] == 8
    assert op.insn_mode(0xDB) == op.Mode.ATOMIC
    assert op.insn_op(0x5D) == op.JmpOp.JNE and op.insn_source(0x5D) == op.Source.X



def test_codec_opcodes_match_the_opcode_tables() -> None:
    """bpfobj.insn.codec names its opcodes as plain ints (it does not import the tables'
    enums, for start-up time): each must equal the table's."""
    from bpfobj.insn import codec

    assert codec.INSN_SIZE == op.INSN_SIZE
    assert (codec.CLASS_MASK, codec.OP_MASK) == (op.CLASS_MASK, op.OP_MASK)
    assert (codec._JMP, codec._JMP32) == (op.InsnClass.JMP, op.InsnClass.JMP32)
    assert (codec._OP_CALL, codec._OP_EXIT) == (op.JmpOp.CALL, op.JmpOp.EXIT)
    for name in ("LD_IMM64", "JA", "JA32", "CALL", "EXIT", "MOV_K64"):
        assert getattr(codec, name) == getattr(op, name), name

# -- real objects ----------------------------------------------------------------------------------


def _text_sections(path: Path) -> tuple[ByteOrder, list[tuple[str, bytes]]]:
    with path.open("rb") as f:
        elf = ELFFile(f)
        order: ByteOrder = "little" if elf.little_endian else "big"
        secs = [
            (sec.name, sec.data())
            for sec in elf.iter_sections()
            if sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and sec["sh_type"] != "SHT_NOBITS"
        ]
    return order, secs


def _func_slices(path: Path) -> dict[str, bytes]:
    """name -> bytes of every FUNC symbol with a size."""
    out: dict[str, bytes] = {}
    with path.open("rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        for sym in symtab.iter_symbols():
            if sym["st_info"]["type"] != "STT_FUNC" or not sym["st_size"]:
                continue
            data = elf.get_section(sym["st_shndx"]).data()
            out[sym.name] = data[sym["st_value"] : sym["st_value"] + sym["st_size"]]
    return out


SOURCES = ("insn_alu.c", "insn_jmp.c", "insn_mem.c", "insn_ld64.c", "insn_edge.c")
DEFINES = ("INSN_ASM", "INSN_EDGE")


@pytest.mark.parametrize("cpu", ["v1", "v3", "v4"])
@pytest.mark.parametrize("target", ["bpf", "bpfeb"])
@pytest.mark.parametrize("source", SOURCES)
def test_real_objects_round_trip(bpf_build, source: str, target: str, cpu: str) -> None:  # type: ignore[no-untyped-def]
    path = bpf_build(source, target=target, cpu=cpu, defines=DEFINES, tag=f"{target}-{cpu}")
    order, sections = _text_sections(path)
    assert order == ("big" if target == "bpfeb" else "little")
    decoded_any = False
    for name, data in sections:
        if len(data) % 8:
            with pytest.raises(InsnError) as info:
                decode(data, order, section=name)
            assert info.value.section == name
            continue
        insns = decode(data, order, section=name)
        assert len(insns) == len(data) // 8
        assert encode(insns, order) == data
        decoded_any = True
        # every compiler-made ld_imm64 is followed by its code-0 second slot
        if not name.startswith("edge_"):
            for i, insn in enumerate(insns):
                if insn.is_ld_imm64:
                    assert insns[i + 1].code == 0
    assert decoded_any


@pytest.mark.parametrize("source", ["insn_alu.c", "insn_jmp.c", "insn_mem.c", "insn_ld64.c"])
def test_asm_blocks_decode_identically_in_both_orders(bpf_build, source: str) -> None:  # type: ignore[no-untyped-def]
    """The same assembler text gives the same instructions whatever the byte order."""
    little = bpf_build(source, target="bpfel", cpu="v4", defines=DEFINES, tag="el-v4")
    big = bpf_build(source, target="bpfeb", cpu="v4", defines=DEFINES, tag="eb-v4")
    le_funcs, be_funcs = _func_slices(little), _func_slices(big)
    asm_funcs = [name for name in le_funcs if name.endswith("_asm")]
    assert asm_funcs, "the INSN_ASM block is missing"
    for name in asm_funcs:
        le_insns = decode(le_funcs[name], "little")
        be_insns = decode(be_funcs[name], "big")
        assert le_insns == be_insns, name
        assert le_funcs[name] != be_funcs[name]


def test_decode_speed(bpf_build) -> None:  # type: ignore[no-untyped-def]
    """Decoding 100k instructions takes well under 100 ms."""
    path = bpf_build("insn_mem.c", cpu="v4", defines=DEFINES, tag="bpf-v4")
    _order, sections = _text_sections(path)
    sample = b"".join(data for _name, data in sections if len(data) % 8 == 0)
    data = (sample * (100_000 * 8 // len(sample) + 1))[: 100_000 * 8]
    best = min(_timed(lambda: decode(data, "little")) for _ in range(5))
    assert best < 0.1, f"decoding 100k instructions took {best * 1000:.1f} ms"
    insns = decode(data, "little")
    assert len(insns) == 100_000
    best = min(_timed(lambda: encode(insns, "little")) for _ in range(3))
    assert best < 0.2, f"encoding 100k instructions took {best * 1000:.1f} ms"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
