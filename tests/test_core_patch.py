"""Applying CO-RE decisions to instructions (relo_core.c bpf_core_patch_insn), poisoning,
the "unexpected insn" checks, and the CoreRecord each application produces."""

from __future__ import annotations

import json
import logging

import pytest

from bpfobj import records
from bpfobj.core import CoreDecision, CoreRecord, apply, patch
from bpfobj.errors import CoreError
from bpfobj.insn import Instruction, ld_imm64
from bpfobj.uapi import CORE_POISON_IMM
from bpfobj.uapi import CoreReloKind as K

POISON = Instruction(0x85, 0, 0, 0, CORE_POISON_IMM)
MOV64_K = 0xB7  # r = imm
MOV64_X = 0xBF  # r = r
ADD64_K = 0x07
LDXW = 0x61
LDXDW = 0x79
LDXSW = 0x81  # BPF_MEMSX | BPF_W | BPF_LDX (cpu v4)
STW = 0x62
STXDW = 0x7B
JEQ_K = 0x15


def dec(orig: int, new: int, **kw: object) -> CoreDecision:
    base: dict[str, object] = dict(
        kind=K.FIELD_BYTE_OFFSET, insn_off=0, local_type_id=7, access_str="0:1",
        local_spec="<byte_off> [7] struct s.b (0:1 @ offset 4)", orig_val=orig, new_val=new,
        program="p", relo_idx=3,
    )  # fmt: skip
    base.update(kw)
    return CoreDecision(**base)  # type: ignore[arg-type]


def test_alu_imm() -> None:
    insns = [Instruction(MOV64_K, 2, 0, 0, 4), Instruction(ADD64_K, 1, 0, 0, 4)]
    r = patch(insns, 1, dec(4, 12))
    assert insns == [Instruction(MOV64_K, 2, 0, 0, 4), Instruction(ADD64_K, 1, 0, 0, 12)]
    assert (r.outcome, r.old, r.new) == ("patched", 4, 12)
    assert r.log == ("prog 'p': relo #3: patched insn #1 (ALU/ALU64) imm 4 -> 12",)


def test_alu_imm_64bit_value_truncates() -> None:
    insns = [Instruction(MOV64_K, 2, 0, 0, 0)]
    patch(insns, 0, dec(0, (1 << 64) - 5, kind=K.ENUMVAL_VALUE))
    assert insns[0].imm == -5


def test_alu_unexpected_value() -> None:
    insns = [Instruction(MOV64_K, 2, 0, 0, -1)]
    with pytest.raises(CoreError) as exc:
        patch(insns, 0, dec(4, 12))
    assert "unexpected insn #0 (ALU/ALU64) value: got 4294967295, exp 4 -> 12" in str(exc.value)
    assert exc.value.log[-1] == "prog 'p': relo #3: failed to patch insn #0: -22"  # type: ignore[attr-defined]
    assert insns[0].imm == -1


def test_alu_without_validation() -> None:
    insns = [Instruction(MOV64_K, 2, 0, 0, 99)]
    patch(insns, 0, dec(4, 12, validate=False))
    assert insns[0].imm == 12


def test_alu_register_source_is_rejected_even_when_poisoned() -> None:
    insns = [Instruction(MOV64_X, 2, 3, 0, 0)]
    with pytest.raises(
        CoreError, match="trying to relocate unrecognized insn #0, code:0xbf, src:0x3, dst:0x2"
    ):
        patch(insns, 0, dec(4, 12, poison=True, outcome="poisoned"))


def test_poison_alu() -> None:
    insns = [Instruction(MOV64_K, 2, 0, 0, 4), Instruction(0x95)]
    r = patch(insns, 0, dec(4, 0, poison=True, outcome="poisoned", reason="field not found"))
    assert insns == [POISON, Instruction(0x95)]
    assert r.outcome == "poisoned"
    assert r.log == ("prog 'p': relo #3: substituting insn #0 w/ invalid insn",)


def test_ldx_offset_and_size_adjust() -> None:
    insns = [Instruction(LDXW, 3, 2, 52, 0)]
    r = patch(insns, 0, dec(52, 80, orig_sz=4, new_sz=8))
    assert insns == [Instruction(LDXDW, 3, 2, 80, 0)]
    assert r.log == (
        "prog 'p': relo #3: patched insn #0 (LDX/ST/STX) off 52 -> 80",
        "prog 'p': relo #3: patched insn #0 (LDX/ST/STX) mem_sz 4 -> 8",
    )
    # the mode (sign-extending load) is kept
    insns = [Instruction(LDXSW, 3, 2, 0, 0)]
    patch(insns, 0, dec(0, 8, orig_sz=4, new_sz=2))
    assert insns == [Instruction(0x89, 3, 2, 8, 0)]


def test_ldx_size_adjust_refused_poisons() -> None:
    insns = [Instruction(LDXW, 3, 2, 56, 0)]
    r = patch(insns, 0, dec(56, 88, orig_sz=4, new_sz=8, fail_memsz_adjust=True))
    assert insns == [POISON]
    assert r.outcome == "poisoned"
    assert r.log[0].startswith(
        "prog 'p': relo #3: insn #0 (LDX/ST/STX) accesses field incorrectly."
    )


def test_ldx_errors() -> None:
    with pytest.raises(
        CoreError, match=r"unexpected insn #0 \(LDX/ST/STX\) value: got 8, exp 4 -> 12"
    ):
        patch([Instruction(LDXW, 3, 2, 8, 0)], 0, dec(4, 12))
    with pytest.raises(CoreError, match=r"insn #0 \(LDX/ST/STX\) value too big: 32768"):
        patch([Instruction(LDXW, 3, 2, 4, 0)], 0, dec(4, 32768))
    with pytest.raises(CoreError, match=r"unexpected mem size: got 8, exp 4"):
        patch([Instruction(LDXDW, 3, 2, 4, 0)], 0, dec(4, 8, orig_sz=4, new_sz=8))
    with pytest.raises(CoreError, match=r"invalid new mem size: 16"):
        patch([Instruction(LDXW, 3, 2, 4, 0)], 0, dec(4, 8, orig_sz=4, new_sz=16))


def test_st_and_stx() -> None:
    insns = [Instruction(STW, 1, 0, 16, 7), Instruction(STXDW, 2, 3, 8, 0)]
    patch(insns, 0, dec(16, 24))
    patch(insns, 1, dec(8, 16))
    assert insns == [Instruction(STW, 1, 0, 24, 7), Instruction(STXDW, 2, 3, 16, 0)]


def test_ld_imm64() -> None:
    insns = [*ld_imm64(1, 0, 5), Instruction(0x95)]
    r = patch(insns, 0, dec(5, (1 << 40) + 3, kind=K.ENUMVAL_VALUE))
    assert insns[:2] == list(ld_imm64(1, 0, (1 << 40) + 3))
    assert r.log == (f"prog 'p': relo #3: patched insn #0 (LDIMM64) imm64 5 -> {(1 << 40) + 3}",)
    with pytest.raises(
        CoreError, match=r"unexpected insn #0 \(LDIMM64\) value: got 1099511627779, exp 5 -> 6"
    ):
        patch(insns, 0, dec(5, 6))


def test_ld_imm64_poison_both_slots() -> None:
    insns = [*ld_imm64(1, 0, 5), Instruction(0x95)]
    r = patch(insns, 0, dec(5, 0, poison=True, outcome="poisoned"))
    assert insns == [POISON, POISON, Instruction(0x95)]
    assert r.log == (
        "prog 'p': relo #3: substituting insn #0 w/ invalid insn",
        "prog 'p': relo #3: substituting insn #1 w/ invalid insn",
    )


def test_ld_imm64_unexpected_forms() -> None:
    map_ref = list(ld_imm64(1, 1, 0))  # src_reg = BPF_PSEUDO_MAP_FD
    with pytest.raises(CoreError, match=r"insn #0 \(LDIMM64\) has unexpected form"):
        patch(map_ref, 0, dec(0, 1, poison=True, outcome="poisoned"))
    with pytest.raises(CoreError, match=r"insn #0 \(LDIMM64\) is truncated"):
        patch([ld_imm64(1, 0, 5)[0]], 0, dec(5, 6))
    with pytest.raises(CoreError, match=r"has unexpected form"):
        patch([Instruction(0x20, 0, 0, 0, 0)], 0, dec(0, 1))  # LD | ABS | W


def test_jump_is_not_relocatable() -> None:
    with pytest.raises(CoreError, match="trying to relocate unrecognized insn #0, code:0x15"):
        patch([Instruction(JEQ_K, 1, 0, 2, 4)], 0, dec(4, 8))


def test_error_decision_raises() -> None:
    d = dec(
        0,
        0,
        outcome="error",
        reason="relocation decision ambiguity: success 8 != success 4",
        errno=22,
    )
    with pytest.raises(CoreError, match="relocation decision ambiguity") as exc:
        patch([Instruction(MOV64_K, 1, 0, 0, 0)], 0, d)
    assert exc.value.program == "p"
    assert exc.value.insn == 0


def test_byteorder_must_agree_for_lshift() -> None:
    d = dec(61, 55, kind=K.FIELD_LSHIFT_U64, validate=False, byteorder="little")
    with pytest.raises(ValueError, match="little-endian"):
        patch([Instruction(0x67, 1, 0, 0, 61)], 0, d, "big")
    patch([Instruction(0x67, 1, 0, 0, 61)], 0, d, "little")


# ------------------------------------------------------------------------------------------
# CoreRecord
# ------------------------------------------------------------------------------------------


def test_apply_returns_record_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    insns = [Instruction(MOV64_K, 2, 0, 0, 4)]
    with caplog.at_level(logging.DEBUG, logger="bpfobj"):
        rec = apply(insns, 0, dec(4, 12, target_btf="vmlinux", target_type_id=99), insn=17)
    assert isinstance(rec, CoreRecord)
    doc = rec.to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert doc == {
        "program": "p",
        "insn": 17,
        "relo": 3,
        "kind": "byte_off",
        "local_type_id": 7,
        "access_str": "0:1",
        "local_spec": "<byte_off> [7] struct s.b (0:1 @ offset 4)",
        "candidates": [],
        "target_btf": "vmlinux",
        "target_type_id": 99,
        "target_spec": None,
        "old": 4,
        "new": 12,
        "outcome": "patched",
        "reason": "",
    }
    assert any(
        "core_relo" in r.getMessage() and "byte_off" in r.getMessage() for r in caplog.records
    )
    moved = rec.placed(program="main", insn=40)
    assert (moved.program, moved.insn, moved.new) == ("main", 40, 12)


def test_apply_poison_and_error_records() -> None:
    insns = [Instruction(MOV64_K, 2, 0, 0, 4)]
    rec = apply(
        insns, 0, dec(4, 0, poison=True, outcome="poisoned", reason="no matching target candidates")
    )
    assert (rec.outcome, rec.old, rec.new, rec.reason) == (
        "poisoned",
        4,
        None,
        "no matching target candidates",
    )
    with pytest.raises(CoreError) as exc:
        apply([Instruction(MOV64_K, 2, 0, 0, 5)], 0, dec(4, 12))
    rec = exc.value.record  # type: ignore[attr-defined]
    assert rec.outcome == "error"
    assert "unexpected insn #0 (ALU/ALU64) value: got 5, exp 4 -> 12" in rec.reason
    err = rec.as_error(obj="x.o")
    assert isinstance(err, CoreError)
    assert err.obj == "x.o" and err.program == "p"
    with pytest.raises(CoreError):
        apply(insns, 0, records.evolve(dec(0, 0), outcome="error", reason="boom"))
