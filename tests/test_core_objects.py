"""CO-RE on objects compiled by clang-19 from tests/progs/core_*.c, checked against
expectations: decisions, patched instructions, big-endian objects, and the CoreEngine that
prepare uses (fed by the open phase's ObjectSpec)."""

from __future__ import annotations

from typing import Any

import pytest
from core_btf.objfile import BpfObj, CoreRun, run_core, targets_from

from bpfobj.core import resolve
from bpfobj.core.engine import CoreEngine
from bpfobj.insn import Instruction
from bpfobj.uapi import CORE_POISON_IMM

POISON = Instruction(0x85, 0, 0, 0, CORE_POISON_IMM)


@pytest.fixture(scope="module")
def fields(bpf_build: Any) -> tuple[BpfObj, BpfObj, BpfObj]:
    return (
        BpfObj.read(bpf_build("core_fields.c")),
        BpfObj.read(bpf_build("core_fields.c", defines=("TARGET=1",), tag="TARGET1")),
        BpfObj.read(bpf_build("core_fields.c", defines=("TARGET=2",), tag="TARGET2")),
    )


def _run(obj: BpfObj, target: BpfObj, *programs: str) -> CoreRun:
    return run_core(obj, targets_from(target.btf), programs or None)


def test_field_offsets(fields: tuple[BpfObj, BpfObj, BpfObj]) -> None:
    obj, tgt, _ = fields
    run = _run(obj, tgt, "fields_offsets")
    got = {(r.kind, r.access_str): (r.old, r.new, r.outcome) for r in run.records}
    assert got == {
        ("byte_off", "0:0"): (0, 8, "patched"),
        ("byte_off", "0:2:0"): (16, 36, "patched"),  # in.x, x moved inside cf_inner
        ("byte_off", "0:3:3"): (36, 52, "patched"),  # arr[3]
        ("byte_off", "0:4:1"): (40, 64, "patched"),  # u2 in the anonymous union
        ("byte_off", "0:5:1"): (50, 72, "patched"),  # s2, first in the target's anon struct
        ("byte_off", "0:12:5"): (120, 156, "patched"),  # tail[5], flexible
        ("byte_off", "0:11:1:1"): (96, None, "poisoned"),  # objs[1]: objs has 1 element now
        ("byte_sz", "0:9"): (8, 16, "patched"),  # name[8] -> name[16]
        ("byte_sz", "0:6"): (4, 8, "patched"),  # cnt
        ("field_exists", "0:10"): (1, 0, "patched"),  # gone
        ("field_exists", "0:0"): (1, 1, "patched"),
        ("signed", "0:7"): (1, 1, "patched"),
        ("signed", "0:6"): (0, 0, "patched"),
        ("byte_sz", "0:3:1"): (4, 4, "patched"),
        ("byte_off", "0:10"): (80, None, "poisoned"),
        ("byte_sz", "0:8"): (8, 8, "patched"),
    }
    insns = run.insns["fields_offsets"]
    assert insns[0] == Instruction(0xB7, 2, 0, 0, 8)
    poisoned = [r.insn for r in run.records if r.outcome == "poisoned"]
    assert all(insns[i] == POISON for i in poisoned)
    objs = run.one("fields_offsets", "byte_off", "objs")
    assert [(c.matched, c.reason) for c in objs.candidates] == [
        (False, "array index 1 out of bounds (nelems 1)")
    ]


def test_loads_and_stores(fields: tuple[BpfObj, BpfObj, BpfObj]) -> None:
    obj, tgt, _ = fields
    before = list(obj.programs["fields_access"].insns)
    run = _run(obj, tgt, "fields_access")
    insns = run.insns["fields_access"]
    by_access = {r.access_str: r for r in run.records}
    cnt = by_access["0:6"]  # unsigned int -> unsigned long: offset and load size change
    assert before[cnt.insn] == Instruction(0x61, 3, 2, 52, 0)
    assert insns[cnt.insn] == Instruction(0x79, 3, 2, 80, 0)
    assert "mem_sz 4 -> 8" in cnt.log[-1]
    b = by_access["0:1"]  # *(u64 *)(r2 + 8) = r3
    assert before[b.insn].code == 0x7B and insns[b.insn].off == 16
    assert all(r.outcome == "patched" for r in run.records)


def test_signed_resize_poisons_the_load(fields: tuple[BpfObj, BpfObj, BpfObj]) -> None:
    obj, tgt, _ = fields
    run = _run(obj, tgt, "fields_signed_resize")
    (rec,) = run.records
    assert rec.outcome == "poisoned"
    assert run.insns["fields_signed_resize"][rec.insn] == POISON


def test_no_candidates(fields: tuple[BpfObj, BpfObj, BpfObj]) -> None:
    obj, _, none = fields
    run = _run(obj, none, "fields_offsets", "fields_missing")
    for r in run.records:
        assert r.candidates == ()
        if r.kind == "field_exists":
            assert (r.new, r.outcome) == (0, "patched")
        else:
            assert (r.new, r.outcome) == (None, "poisoned"), r
        assert r.reason in ("no target candidates", "no target candidates")


def test_failures(fields: tuple[BpfObj, BpfObj, BpfObj]) -> None:
    obj, tgt, _ = fields
    for prog, reason in [
        ("fields_bad_bitfield", "bitfield 'v' can't be read with a 64-bit load"),
        ("fields_bad_array", "signed can't be applied to array access"),
        ("fields_anon", "relocation against anonymous type"),
    ]:
        run = _run(obj, tgt, prog)
        assert run.error is not None
        assert run.records[-1].outcome == "error"
        assert run.records[-1].reason.startswith(reason)


def _bitfield_values(obj: BpfObj, target: BpfObj) -> dict[str, dict[str, tuple[int, int, int]]]:
    """field access -> kind -> (imm clang emitted, orig_val bpfobj computes, new_val)."""
    out: dict[str, dict[str, tuple[int, int, int]]] = {}
    insns = obj.programs["fields_bits"].insns
    for sec, i, relo in obj.relos():
        prog = obj.owner(sec, relo.insn_off // 8)
        if prog is None or prog.name != "fields_bits":
            continue
        d = resolve(obj.btf, relo, targets_from(target.btf), relo_idx=i)
        assert d.outcome == "patched"
        imm = insns[relo.insn_off // 8 - prog.start].imm
        out.setdefault(relo.access_str, {})[d.kind_label] = (imm, d.orig_val, d.new_val)
    return out


def _extract(
    mem: bytes, byteorder: str, off: int, size: int, lshift: int, rshift: int, signed: int
) -> int:
    """What BPF_CORE_READ_BITFIELD computes with these relocated values."""
    val = int.from_bytes(mem[off : off + size], byteorder)  # type: ignore[arg-type]
    val = (val << lshift) & (2**64 - 1)
    if signed and val >> 63:
        val -= 1 << 64
    return (val >> rshift) & (2**64 - 1)


@pytest.mark.parametrize("arch", ["bpfel", "bpfeb"])
def test_bitfield_values_agree_with_clang(bpf_build: Any, arch: str) -> None:
    """libbpf does not validate bitfield offsets/sizes/shifts against the instruction:
    clang reads bitfields with 8-byte loads where libbpf picks the smallest load. Both
    must extract the same value; this checks bpfobj's local values (the big-endian LSHIFT
    formula included) against clang's for the object's byte order."""
    import random

    obj = BpfObj.read(bpf_build("core_fields.c", target=arch, tag=arch))
    tgt = BpfObj.read(
        bpf_build("core_fields.c", target=arch, defines=("TARGET=1",), tag=f"{arch}-T1")
    )
    byteorder = "big" if arch == "bpfeb" else "little"
    assert obj.byteorder == byteorder
    fields = _bitfield_values(obj, tgt)
    assert len(fields) == 5  # lo, mid, wide, flag, plain
    rng = random.Random(7)
    kinds = ("byte_off", "byte_sz", "lshift_u64", "rshift_u64", "signed")
    for access, vals in fields.items():
        assert set(vals) == set(kinds), access
        assert vals["signed"][0] == vals["signed"][1]  # validated kinds agree exactly
        assert vals["rshift_u64"][0] == vals["rshift_u64"][1]
        clang = [vals[k][0] for k in kinds]
        ours = [vals[k][1] for k in kinds]
        for _ in range(50):
            mem = bytes(rng.randrange(256) for _ in range(24))
            assert _extract(mem, byteorder, *clang) == _extract(mem, byteorder, *ours), (
                arch,
                access,
            )
    run = _run(obj, tgt, "fields_bits")
    assert all(r.outcome == "patched" for r in run.records)


def test_big_endian_lshift_differs(bpf_build: Any) -> None:
    el = BpfObj.read(bpf_build("core_fields.c", target="bpfel", tag="bpfel"))
    eb = BpfObj.read(bpf_build("core_fields.c", target="bpfeb", tag="bpfeb"))
    tel = BpfObj.read(
        bpf_build("core_fields.c", target="bpfel", defines=("TARGET=1",), tag="bpfel-T1")
    )
    teb = BpfObj.read(
        bpf_build("core_fields.c", target="bpfeb", defines=("TARGET=1",), tag="bpfeb-T1")
    )
    le = _bitfield_values(el, tel)
    be = _bitfield_values(eb, teb)
    assert {a: v["lshift_u64"][2] for a, v in le.items()} != {
        a: v["lshift_u64"][2] for a, v in be.items()
    }
    assert {a: v["rshift_u64"][2] for a, v in le.items()} == {
        a: v["rshift_u64"][2] for a, v in be.items()
    }


def test_types_and_enums(bpf_build: Any) -> None:
    obj = BpfObj.read(bpf_build("core_types.c"))
    tgt = BpfObj.read(bpf_build("core_types.c", defines=("TARGET=1",), tag="TARGET1"))
    run = _run(obj, tgt)
    got = [(r.program, r.kind, r.new, r.outcome) for r in run.records]
    # type ids depend on the compiler's numbering: check them against the BTF
    ids = {r.local_spec: (r.old, r.new) for r in run.records if r.kind.endswith("type_id")}
    for spec, (old, new) in ids.items():
        assert old == int(spec.split("[")[1].split("]")[0])
        if "ct_missing" in spec:
            assert new == 0
        elif "target" in spec:
            name = spec.rsplit(" ", 1)[1]
            assert tgt.btf.name(new) == name
    assert [g for g in got if g[0] == "types_exist"] == [
        ("types_exist", "type_exists", 1, "patched"),
        ("types_exist", "type_exists", 0, "patched"),
        ("types_exist", "type_size", 24, "patched"),
        ("types_exist", "type_size", 24, "patched"),
        ("types_exist", "type_size", 0, "patched"),
        ("types_exist", "type_exists", 1, "patched"),
        ("types_exist", "type_exists", 1, "patched"),
        ("types_exist", "type_exists", 0, "patched"),
        ("types_exist", "type_size", 4, "patched"),
        ("types_exist", "type_size", 4, "patched"),
    ]
    assert [g[2] for g in got if g[0] == "types_match"] == [0, 1, 0, 1, 0, 0, 0, 1]
    assert [
        (g[2], g[3]) for g in got if g[0] in ("enum_values", "enum_missing", "enum_negative")
    ] == [
        (1, "patched"),
        (0, "patched"),
        (7, "patched"),
        (2, "patched"),  # ENUM64 local, ENUM target
        (0xFFFF_FFFF_FFFF_FFF0, "patched"),  # unsigned 0xfffffff0 widened from __s32
        (0, "patched"),
        (9, "patched"),
        (0, "patched"),
        (None, "poisoned"),
        (None, "poisoned"),
        ((1 << 64) - 5, "patched"),  # signed ENUM64 target value -5
    ]
    # ld_imm64 relocations patch both halves; poisoning replaces both slots
    missing = [r for r in run.records if r.program == "enum_missing" and r.outcome == "poisoned"]
    for r in missing:
        assert run.insns["enum_missing"][r.insn : r.insn + 2] == [POISON, POISON]
    big = run.one("enum_values", "enumval_value", "CT_BIG_SMALL")
    lo, hi = run.insns["enum_values"][big.insn : big.insn + 2]
    assert (lo.imm & 0xFFFFFFFF, hi.imm & 0xFFFFFFFF) == (0xFFFFFFF0, 0xFFFFFFFF)


def test_ambiguity_and_pruning(bpf_build: Any) -> None:
    obj = BpfObj.read(bpf_build("core_ambig.c"))
    tgt = BpfObj.read(bpf_build("core_ambig.c", defines=("TARGET=1",), tag="TARGET1"))
    expect = {
        "amb_offset": "field offset ambiguity",
        "amb_size": "relocation decision ambiguity",
        "amb_type_id": "relocation decision ambiguity",
    }
    for prog, reason in expect.items():
        run = _run(obj, tgt, prog)
        assert run.records[-1].outcome == "error"
        assert run.records[-1].reason.startswith(reason)
        assert len(run.records[-1].candidates) == 2
    run = _run(obj, tgt, "prune_then_id", "same_flavors")
    assert all(r.outcome == "patched" for r in run.records)
    pid = run.one("prune_then_id", "target_type_id")
    assert tgt.btf.name(pid.new) == "ca_prune___2"
    same = run.by_prog("same_flavors")
    assert [(r.old, r.new) for r in same] == [(0, 8), (4, 4), (0, 8)]


def test_core_engine_on_open_spec(bpf_build: Any) -> None:
    """CoreEngine (what prepare uses) on the open phase's ObjectSpec takes the same
    decisions as the per-relocation walk above."""
    import bpfobj

    path = bpf_build("core_fields.c")
    tgt = BpfObj.read(bpf_build("core_fields.c", defines=("TARGET=1",), tag="TARGET1"))
    spec = bpfobj.BpfObject.open(str(path)).spec
    engine = CoreEngine(spec, tgt.btf)
    ok = [
        n
        for n in spec.programs
        if n not in ("fields_bad_bitfield", "fields_bad_array", "fields_anon")
    ]
    for name in ok:
        spec.programs[name].autoload = True
    for name in ("fields_bad_bitfield", "fields_bad_array", "fields_anon"):
        spec.programs[name].autoload = False
    engine = CoreEngine(spec, tgt.btf)
    obj = BpfObj.read(path)
    ref = run_core(obj, targets_from(tgt.btf), ok)
    for name in ok:
        prog = spec.programs[name]
        insns = list(prog.instructions)
        records = engine.apply(prog, insns)
        assert [r.to_json() for r in records] == [r.to_json() for r in ref.by_prog(name)]
        assert insns == ref.insns[name]
    # a program libbpf would not load is decided on demand, and stops at its failure
    bad = spec.programs["fields_bad_array"]
    records = engine.apply(bad, list(bad.instructions))
    assert records[-1].outcome == "error"
    with pytest.raises(bpfobj.errors.CoreError):
        raise records[-1].as_error(obj=spec.name)
