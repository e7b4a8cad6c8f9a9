"""CO-RE decisions on hand-built local and target BTF: every kind, candidate search, the
failure modes, and the bitfield arithmetic in both byte orders (expectations derived from
relo_core.c by hand; tests/test_core_libbpf.py checks compiled objects against libbpf)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from core_btf.builder import std_ints

from bpfobj.btf.ext import CoreRelo
from bpfobj.btf.writer import BtfBuilder
from bpfobj.core import CoreCache, CoreDecision, TargetBtf, resolve
from bpfobj.errors import CoreError
from bpfobj.uapi import CoreReloKind as K

# ------------------------------------------------------------------------------------------
# fixtures: a local object BTF and a target "vmlinux" BTF with another layout
# ------------------------------------------------------------------------------------------


def _local() -> tuple[BtfBuilder, dict[str, int]]:
    b = BtfBuilder()
    t = std_ints(b)
    anon = b.add_struct("", 8, [("a", t["int"], 0), ("b", t["int"], 32)])
    comm = b.add_array(t["char"], t["int"], 16)
    flex = b.add_array(t["int"], t["int"], 0)
    lst = b.add_struct("list", 8, [])
    plst = b.add_ptr(lst)
    task = b.add_struct(
        "task",
        56,
        [
            ("pid", t["int"], 0),
            ("state", t["long"], 64),
            ("", anon, 128),
            ("flags", t["uint"], 192, 3),
            ("prio", t["int"], 195, 5),
            ("comm", comm, 224),
            ("next", plst, 384),
            ("tail", flex, 448),
        ],
    )
    state = b.add_enum("state", values=[("RUNNING", 0), ("SLEEPING", 1)])
    big = b.add_enum64("big", values=[("HUGE", 1 << 40)])
    pid_t = b.add_typedef("pid_t", t["int"])
    flav = b.add_struct("task___old", 8, [("pid", t["int"], 32)])
    gone = b.add_struct("gone", 4, [("x", t["int"], 0)])
    anon_root = b.add_struct("", 4, [("x", t["int"], 0)])
    ids = dict(t, task=task, state=state, big=big, pid_t=pid_t, flav=flav, gone=gone,
               anon_root=anon_root, list=lst)  # fmt: skip
    return b, ids


def _target() -> tuple[BtfBuilder, dict[str, int]]:
    b = BtfBuilder()
    t = std_ints(b)
    anon = b.add_struct("", 8, [("b", t["int"], 0), ("a", t["int"], 32)])
    comm = b.add_array(t["char"], t["int"], 32)
    flex = b.add_array(t["int"], t["int"], 0)
    lst = b.add_struct("list", 16, [])
    plst = b.add_ptr(lst)
    task = b.add_struct(
        "task",
        80,
        [
            ("pad", t["long"], 0),
            ("pid", t["int"], 64),
            ("state", t["int"], 96),
            ("", anon, 128),
            ("prio", t["int"], 192, 6),
            ("flags", t["uint"], 198, 3),
            ("comm", comm, 224),
            ("next", plst, 512),
            ("tail", flex, 576),
        ],
    )
    state = b.add_enum64("state", values=[("SLEEPING", 2), ("RUNNING", 0), ("DEAD", 9)])
    big = b.add_enum("big", values=[("HUGE", 7)])
    pid_t = b.add_typedef("pid_t", t["int"])
    ids = dict(t, task=task, state=state, big=big, pid_t=pid_t, list=lst)
    return b, ids


LB, L = _local()
TB, T = _target()
LOCAL = LB.to_btf(name="prog.o")
TARGET = TB.to_btf(name="vmlinux")
TARGETS = [TargetBtf("vmlinux", TARGET)]


def decide(
    root: str | int,
    access: str,
    kind: K,
    targets: list[TargetBtf] | None = None,
    cache: CoreCache | None = None,
    local: Any = None,
    **kw: Any,
) -> CoreDecision:
    tid = L[root] if isinstance(root, str) else root
    relo = CoreRelo(insn_off=8, type_id=tid, access_str=access, kind=kind)
    return resolve(
        local or LOCAL, relo, TARGETS if targets is None else targets, cache, program="p", **kw
    )


def vals(d: CoreDecision) -> tuple[int, int, str]:
    return d.orig_val, d.new_val, d.outcome


# ------------------------------------------------------------------------------------------
# field relocations
# ------------------------------------------------------------------------------------------


def test_byte_offset_and_specs() -> None:
    d = decide("task", "0:0", K.FIELD_BYTE_OFFSET)
    assert vals(d) == (0, 8, "patched")
    assert d.local_spec == f"<byte_off> [{L['task']}] struct task.pid (0:0 @ offset 0)"
    assert d.target_spec == f"<byte_off> [{T['task']}] struct task.pid (0:1 @ offset 8)"
    assert (d.target_btf, d.target_type_id) == ("vmlinux", T["task"])
    assert (d.orig_sz, d.new_sz, d.validate, d.fail_memsz_adjust) == (4, 4, True, False)
    assert [(c.btf, c.type_id, c.name, c.matched) for c in d.candidates] == [
        ("vmlinux", T["task"], "task", True)
    ]
    assert d.log == (
        f"CO-RE relocating [{L['task']}] struct task: found target candidate [{T['task']}] struct task in [vmlinux]",
        f"prog 'p': relo #0: {d.local_spec}",
        f"prog 'p': relo #0: matching candidate #0 {d.target_spec}",
    )


def test_anonymous_members_are_searched() -> None:
    d = decide("task", "0:2:0", K.FIELD_BYTE_OFFSET)
    assert vals(d) == (16, 20, "patched")
    assert d.target_spec == f"<byte_off> [{T['task']}] struct task.a (0:3:1 @ offset 20)"


def test_signed_field_resized_fails_memsz_adjust() -> None:
    d = decide("task", "0:1", K.FIELD_BYTE_OFFSET)  # long -> int
    assert vals(d) == (8, 12, "patched")
    assert (d.orig_sz, d.new_sz, d.fail_memsz_adjust) == (8, 4, True)


def test_pointer_resize_is_fine() -> None:
    d = decide("task", "0:6", K.FIELD_BYTE_OFFSET)
    assert vals(d) == (48, 64, "patched")
    assert (d.orig_sz, d.new_sz, d.fail_memsz_adjust) == (8, 8, False)


def test_arrays() -> None:
    assert vals(decide("task", "0:5", K.FIELD_BYTE_SIZE)) == (16, 32, "patched")
    d = decide("task", "0:5:3", K.FIELD_BYTE_OFFSET)
    assert vals(d) == (31, 31, "patched")
    assert (d.orig_sz, d.new_sz) == (1, 1)
    assert d.local_spec.endswith("struct task.comm[3] (0:5:3 @ offset 31)")
    assert vals(decide("task", "0:5:3", K.FIELD_BYTE_SIZE)) == (1, 1, "patched")
    # index 20 is past the local array's 16 elements: invalid access spec
    assert decide("task", "0:5:20", K.FIELD_BYTE_OFFSET).outcome == "error"
    # flexible arrays may be indexed anywhere
    assert vals(decide("task", "0:7:100", K.FIELD_BYTE_OFFSET)) == (456, 472, "patched")
    # root pointer arithmetic: task[1].pid
    assert vals(decide("task", "1:0", K.FIELD_BYTE_OFFSET)) == (56, 88, "patched")


@pytest.mark.parametrize(
    ("kind", "local_val", "target_val"),
    [
        (K.FIELD_EXISTS, 1, 1),
        (K.FIELD_BYTE_OFFSET, 24, 24),
        (K.FIELD_BYTE_SIZE, 4, 4),
        (K.FIELD_SIGNED, 0, 0),
        (K.FIELD_LSHIFT_U64, 61, 55),
        (K.FIELD_RSHIFT_U64, 61, 61),
    ],
)
def test_bitfield_flags(kind: K, local_val: int, target_val: int) -> None:
    d = decide("task", "0:3", kind)
    assert vals(d) == (local_val, target_val, "patched")
    # bitfield offsets/sizes are not validated against the instruction, signs/rshift are
    assert d.validate is (kind in (K.FIELD_SIGNED, K.FIELD_RSHIFT_U64, K.FIELD_EXISTS))


@pytest.mark.parametrize(
    ("kind", "le", "be"),
    [
        (K.FIELD_LSHIFT_U64, (56, 58), (35, 32)),
        (K.FIELD_RSHIFT_U64, (59, 58), (59, 58)),
        (K.FIELD_SIGNED, (1, 1), (1, 1)),
        (K.FIELD_BYTE_OFFSET, (24, 24), (24, 24)),
    ],
)
def test_bitfield_prio_both_byte_orders(kind: K, le: tuple[int, int], be: tuple[int, int]) -> None:
    assert (decide("task", "0:4", kind).orig_val, decide("task", "0:4", kind).new_val) == le
    d = decide("task", "0:4", kind, byteorder="big")
    assert (d.orig_val, d.new_val) == be


def test_field_signed_of_non_int() -> None:
    # 6.12 (and bpfobj) say 0 for a pointer; libbpf 1.1 read garbage here
    assert vals(decide("task", "0:6", K.FIELD_SIGNED)) == (0, 0, "patched")


def test_array_access_rejects_other_kinds() -> None:
    d = decide("task", "0:5:1", K.FIELD_SIGNED)
    assert d.outcome == "error"
    assert d.errno == 22
    assert "can't be applied to array access" in d.log[-2]


def test_missing_field() -> None:
    b = BtfBuilder()
    t = std_ints(b)
    task = b.add_struct("task", 4, [("pid", t["int"], 0)])
    target = [TargetBtf("vmlinux", b.to_btf())]
    for kind, expected in [
        (K.FIELD_EXISTS, (1, 0, "patched")),
        (K.FIELD_BYTE_OFFSET, (8, 0, "poisoned")),
        (K.FIELD_BYTE_SIZE, (8, 0, "poisoned")),
        (K.FIELD_SIGNED, (1, 0, "poisoned")),
        (K.FIELD_LSHIFT_U64, (0, 0, "poisoned")),
        (K.FIELD_RSHIFT_U64, (0, 0, "poisoned")),
    ]:
        d = decide("task", "0:1", kind, targets=target)
        assert vals(d) == expected, kind
        assert d.poison is (expected[2] == "poisoned")
        assert d.candidates[0].matched is False
        assert d.candidates[0].reason == "field 'state' not found in struct task"
        assert d.target_spec is None and d.target_type_id is None
        assert d.log[-1] == "prog 'p': relo #0: no matching targets found"
    assert task


def test_incompatible_field_type() -> None:
    b = BtfBuilder()
    t = std_ints(b)
    inner = b.add_struct("inner", 4, [])
    b.add_struct("task", 4, [("pid", inner, 0)])
    d = decide("task", "0:0", K.FIELD_BYTE_OFFSET, targets=[TargetBtf("vmlinux", b.to_btf())])
    assert d.outcome == "poisoned"
    assert d.candidates[0].reason == (
        "field 'pid': incompatible field types: local int int, target struct inner"
    )
    assert t


# ------------------------------------------------------------------------------------------
# type relocations
# ------------------------------------------------------------------------------------------


def test_type_kinds() -> None:
    assert vals(decide("task", "0", K.TYPE_EXISTS)) == (1, 1, "patched")
    assert vals(decide("task", "0", K.TYPE_SIZE)) == (56, 80, "patched")
    assert vals(decide("task", "0", K.TYPE_MATCHES)) == (1, 0, "patched")  # members differ
    d = decide("task", "0", K.TYPE_ID_TARGET)
    assert vals(d) == (L["task"], T["task"], "patched")
    assert d.validate is False
    assert vals(decide("pid_t", "0", K.TYPE_SIZE)) == (4, 4, "patched")
    assert vals(decide("pid_t", "0", K.TYPE_MATCHES)) == (1, 1, "patched")
    assert (
        decide("task", "0", K.TYPE_EXISTS).local_spec == f"<type_exists> [{L['task']}] struct task"
    )


@pytest.mark.parametrize("kind", [K.TYPE_EXISTS, K.TYPE_SIZE, K.TYPE_MATCHES, K.TYPE_ID_TARGET])
def test_type_kinds_without_candidates_give_zero(kind: K) -> None:
    d = decide("gone", "0", kind)
    assert d.new_val == 0
    assert d.outcome == "patched"
    assert d.reason == "no target candidates"
    assert d.candidates == ()


def test_type_id_local_needs_no_target() -> None:
    d = decide("task", "0", K.TYPE_ID_LOCAL, targets=[])
    assert vals(d) == (L["task"], L["task"], "patched")
    assert d.validate is False
    assert d.candidates == ()
    # even for anonymous types
    assert decide("anon_root", "0", K.TYPE_ID_LOCAL, targets=[]).outcome == "patched"


# ------------------------------------------------------------------------------------------
# enum value relocations (ENUM and ENUM64 mix)
# ------------------------------------------------------------------------------------------


def test_enum_values() -> None:
    d = decide("state", "1", K.ENUMVAL_VALUE)  # ENUM local, ENUM64 target
    assert vals(d) == (1, 2, "patched")
    assert d.local_spec == f"<enumval_value> [{L['state']}] enum state::SLEEPING = 1"
    assert d.target_spec == f"<enumval_value> [{T['state']}] enum64 state::SLEEPING = 2"
    assert vals(decide("state", "0", K.ENUMVAL_EXISTS)) == (1, 1, "patched")
    d = decide("big", "0", K.ENUMVAL_VALUE)  # ENUM64 local, ENUM target
    assert vals(d) == (1 << 40, 7, "patched")


def test_enum_value_missing() -> None:
    b = BtfBuilder()
    b.add_enum("state", values=[("RUNNING", 0)])
    targets = [TargetBtf("vmlinux", b.to_btf())]
    assert vals(decide("state", "1", K.ENUMVAL_EXISTS, targets=targets)) == (1, 0, "patched")
    d = decide("state", "1", K.ENUMVAL_VALUE, targets=targets)
    assert vals(d) == (1, 0, "poisoned")
    assert d.candidates[0].reason == "enumerator 'SLEEPING' not found"


def test_negative_enum32_values_are_sign_extended() -> None:
    b = BtfBuilder()
    # an unsigned ENUM whose M1 is -1 as the __s32 libbpf reads: 0xFFFFFFFF
    e = b.add_enum("neg", values=[("M1", 0xFFFFFFFF), ("U", 0xFFFFFFF0)], signed=False)
    local = b.to_btf()
    tb = BtfBuilder()
    tb.add_enum64("neg", values=[("U", 5), ("M1", -2)], signed=True)
    targets = [TargetBtf("vmlinux", tb.to_btf())]
    relo = CoreRelo(insn_off=0, type_id=e, access_str="0", kind=K.ENUMVAL_VALUE)
    d = resolve(local, relo, targets)
    assert (d.orig_val, d.new_val) == ((1 << 64) - 1, (1 << 64) - 2)
    relo = CoreRelo(insn_off=0, type_id=e, access_str="1", kind=K.ENUMVAL_VALUE)
    d = resolve(local, relo, targets)
    # an unsigned ENUM's value is widened from __s32 as libbpf does
    assert (d.orig_val, d.new_val) == (0xFFFF_FFFF_FFFF_FFF0, 5)


# ------------------------------------------------------------------------------------------
# candidates: flavors, modules, caching and pruning, ambiguity
# ------------------------------------------------------------------------------------------


def test_local_flavor_matches_target() -> None:
    d = decide("flav", "0:0", K.FIELD_BYTE_OFFSET)
    assert vals(d) == (4, 8, "patched")
    assert d.local_spec.startswith(f"<byte_off> [{L['flav']}] struct task___old.pid")


def test_target_flavors_and_kind_filter() -> None:
    b = BtfBuilder()
    t = std_ints(b)
    b.add_struct("task___a", 8, [("pid", t["int"], 32)])
    b.add_union("task", 4, [("pid", t["int"], 0)])  # a union is no candidate for a struct
    b.add_struct("task___b___c", 4, [("pid", t["int"], 0)])  # essential name task___b
    b.add_struct("taskx", 4, [("pid", t["int"], 0)])
    b.add_struct("task___b", 4, [("pid", t["long"], 0)])
    targets = [TargetBtf("vmlinux", b.to_btf())]
    d = decide("task", "0:0", K.FIELD_BYTE_OFFSET, targets=targets)
    assert [c.name for c in d.candidates] == ["task___a", "task___b"]
    # both flavors match; offsets differ: libbpf refuses
    assert d.outcome == "error"
    assert d.reason.startswith("field offset ambiguity: 0 != 32")  # candidate #1 first


def test_decision_ambiguity() -> None:
    b = BtfBuilder()
    t = std_ints(b)
    b.add_struct("task___a", 8, [("pid", t["int"], 0)])
    b.add_struct("task___b", 8, [("pid", t["long"], 0)])
    targets = [TargetBtf("vmlinux", b.to_btf())]
    assert vals(decide("task", "0:0", K.FIELD_BYTE_OFFSET, targets=targets)) == (0, 0, "patched")
    d = decide("task", "0:0", K.FIELD_BYTE_SIZE, targets=targets)
    assert d.outcome == "error"
    assert d.log[-2] == "prog 'p': relo #0: relocation decision ambiguity: success 8 != success 4"
    with pytest.raises(CoreError, match="relocation decision ambiguity"):
        d.raise_error()


def test_cache_prunes_candidates_like_libbpf() -> None:
    b = BtfBuilder()
    t = std_ints(b)
    a = b.add_struct("task___a", 4, [("pid", t["int"], 0)])
    c = b.add_struct("task___b", 8, [("pid", t["int"], 0), ("state", t["long"], 32)])
    targets = [TargetBtf("vmlinux", b.to_btf())]
    cache = CoreCache()
    # no candidate matches: the list is kept whole
    assert decide("task", "0:2:0", K.FIELD_BYTE_OFFSET, targets, cache).outcome == "poisoned"
    assert [x.type_id for x in cache.cands[L["task"]]] == [a, c]
    # only task___b has `state`: the cached list shrinks to it
    assert decide("task", "0:1", K.FIELD_BYTE_OFFSET, targets, cache).new_val == 4
    assert [x.type_id for x in cache.cands[L["task"]]] == [c]
    d = decide("task", "0", K.TYPE_ID_TARGET, targets, cache)
    assert vals(d) == (L["task"], c, "patched")
    # a fresh cache would see both flavors and fail
    assert decide("task", "0", K.TYPE_ID_TARGET, targets).outcome == "error"
    # the search ran once: later decisions do not log "found target candidate"
    assert not any("found target candidate" in line for line in d.log)


def test_modules_only_without_vmlinux_candidates() -> None:
    vb = BtfBuilder()
    t = std_ints(vb)
    vb.add_struct("other", 4, [("x", t["int"], 0)])
    vmlinux = vb.to_btf(name="vmlinux")
    mb = BtfBuilder(base=vmlinux)
    mb.add_struct("list", 4, [])  # a type vmlinux also lacks
    mod_task = mb.add_struct("task", 12, [("x", t["int"], 0), ("pid", t["int"], 64)])
    mod = mb.to_btf(name="mod_a")
    targets = [TargetBtf("vmlinux", vmlinux), TargetBtf("mod_a", mod)]
    d = decide("task", "0:0", K.FIELD_BYTE_OFFSET, targets=targets)
    assert vals(d) == (0, 8, "patched")
    assert (d.target_btf, d.target_type_id) == ("mod_a", mod_task)
    assert d.log[0].endswith(f"found target candidate [{mod_task}] struct task in [mod_a]")
    # vmlinux has the type: modules are not searched
    vb2 = BtfBuilder()
    t2 = std_ints(vb2)
    v_task = vb2.add_struct("task", 4, [("pid", t2["int"], 0)])
    vmlinux2 = vb2.to_btf()
    mb2 = BtfBuilder(base=vmlinux2)
    mb2.add_struct("task", 12, [("pid", t2["int"], 64)])
    targets2 = [TargetBtf("vmlinux", vmlinux2), TargetBtf("mod_a", mb2.to_btf())]
    d = decide("task", "0:0", K.FIELD_BYTE_OFFSET, targets=targets2)
    assert [(c.btf, c.type_id) for c in d.candidates] == [("vmlinux", v_task)]
    # an overridden main BTF (btf_custom_path) never looks at modules
    targets3 = [TargetBtf("vmlinux", vmlinux, override=True), TargetBtf("mod_a", mod)]
    d = decide("task", "0:0", K.FIELD_BYTE_OFFSET, targets=targets3)
    assert d.outcome == "poisoned" and d.candidates == ()


# ------------------------------------------------------------------------------------------
# failures
# ------------------------------------------------------------------------------------------


def test_anonymous_local_type_fails_candidate_search() -> None:
    d = decide("anon_root", "0:0", K.FIELD_BYTE_OFFSET)
    assert d.outcome == "error"
    assert d.errno == 22
    assert d.log == (
        f"prog 'p': relo #0: target candidate search failed for [{L['anon_root']}] struct : -22",
        "prog 'p': relo #0: failed to relocate: -22",
    )


@pytest.mark.parametrize("access", ["", ":1", "0:9", "0:x", "1:"])
def test_invalid_access_string(access: str) -> None:
    d = decide("task", access, K.FIELD_BYTE_OFFSET)
    assert d.outcome == "error"
    assert d.local_spec is None
    assert d.log[-2] == (
        f"prog 'p': relo #0: parsing [{L['task']}] struct task + {access} failed: -22"
    )


def test_missing_local_type() -> None:
    d = decide(10_000, "0", K.TYPE_EXISTS)
    assert d.outcome == "error"
    assert "does not exist" in d.reason


def test_candidate_match_error() -> None:
    # the target's typedef names a func_proto: sizing it fails inside the match
    b = BtfBuilder()
    t = std_ints(b)
    s = b.add_struct("thing", 4, [("x", t["int"], 0)])
    td = b.add_typedef("thing_t", s)
    local = b.to_btf()
    tb = BtfBuilder()
    ti = std_ints(tb)
    tb.add_typedef("thing_t", tb.add_func_proto(ti["int"], []))
    relo = CoreRelo(insn_off=0, type_id=td, access_str="0:0", kind=K.FIELD_BYTE_OFFSET)
    d = resolve(local, relo, [TargetBtf("vmlinux", tb.to_btf())], program="p")
    assert d.outcome == "error"
    assert d.log[-2].startswith("prog 'p': relo #0: error matching candidate #0 <byte_off>")
    assert d.log[-2].endswith(": -22")


def test_unsatisfiable_bitfield() -> None:
    b = BtfBuilder()
    t = std_ints(b)
    b.add_struct("task", 10, [("pad", t["ulong"], 0, 10), ("flags", t["ulong"], 10, 60)])
    lb = BtfBuilder()
    lt = std_ints(lb)
    task = lb.add_struct("task", 8, [("flags", lt["ulong"], 0, 60)])
    relo = CoreRelo(insn_off=16, type_id=task, access_str="0:0", kind=K.FIELD_BYTE_SIZE)
    d = resolve(lb.to_btf(), relo, [TargetBtf("vmlinux", b.to_btf())], program="p")
    assert d.outcome == "error"
    assert d.errno == 7
    assert "prog 'p': relo 1 at insn #2 can't be satisfied for bitfield" in d.log


# ------------------------------------------------------------------------------------------
# bitfield semantics: what BPF_CORE_READ_BITFIELD computes with the relocated values is the
# field's value, in both byte orders, for random layouts
# ------------------------------------------------------------------------------------------


def _layout(rng: random.Random) -> list[tuple[int, int, int, bool]]:
    """Random non-packed bitfields: (storage bytes, bit offset, bits, signed) per field."""
    fields = []
    pos = rng.randrange(0, 24)
    for _ in range(rng.randrange(1, 6)):
        size = rng.choice([1, 2, 4, 8])
        bits = rng.randrange(1, size * 8 + 1)
        if pos // (size * 8) != (pos + bits - 1) // (size * 8):  # would straddle its unit
            pos = (pos + size * 8 - 1) // (size * 8) * (size * 8)
        fields.append((size, pos, bits, rng.random() < 0.5))
        pos += bits + rng.randrange(0, 5)
    return fields


def _btf(fields: list[tuple[int, int, int, bool]], byteorder: str) -> tuple[Any, int]:
    b = BtfBuilder(byteorder)
    ints = {}
    for size in (1, 2, 4, 8):
        for signed in (False, True):
            ints[size, signed] = b.add_int(f"{'' if signed else 'u'}int{size * 8}", size, signed=signed)
    b.add_int("long", 8, signed=True)
    total = (max(p + n for _, p, n, _ in fields) + 63) // 64 * 8
    members = [(f"f{i}", ints[sz, sg], p, n) for i, (sz, p, n, sg) in enumerate(fields)]
    s = b.add_struct("bits", total, members)
    return b.to_btf(), s


def _relocated(local: Any, lid: int, target: Any, i: int, kind: K, byteorder: str) -> int:
    relo = CoreRelo(insn_off=0, type_id=lid, access_str=f"0:{i}", kind=kind)
    d = resolve(local, relo, [TargetBtf("vmlinux", target)], byteorder=byteorder)  # type: ignore[arg-type]
    assert d.outcome == "patched", d.reason
    return d.new_val


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_bitfield_reads_give_the_field(byteorder: str) -> None:
    rng = random.Random(1234 + len(byteorder))
    for _ in range(150):
        fields = _layout(rng)
        target, tid = _btf(fields, byteorder)
        local, lid = _btf(fields[:1] + fields[1:], byteorder)
        size = target.type(tid).size
        mem = bytes(rng.randrange(256) for _ in range(size))
        whole_le = int.from_bytes(mem, "little")
        whole_be = int.from_bytes(mem, "big")
        for i, (_, pos, bits, signed) in enumerate(fields):
            args = (local, lid, target, i)
            off = _relocated(*args, K.FIELD_BYTE_OFFSET, byteorder)
            sz = _relocated(*args, K.FIELD_BYTE_SIZE, byteorder)
            lshift = _relocated(*args, K.FIELD_LSHIFT_U64, byteorder)
            rshift = _relocated(*args, K.FIELD_RSHIFT_U64, byteorder)
            assert _relocated(*args, K.FIELD_SIGNED, byteorder) == int(signed)
            # BPF_CORE_READ_BITFIELD: load `sz` bytes at `off`, shift left, shift right
            val = int.from_bytes(mem[off : off + sz], byteorder)  # type: ignore[arg-type]
            val = (val << lshift) & (2**64 - 1)
            if signed and val >> 63:
                val -= 1 << 64
            got = (val >> rshift) & (2**64 - 1)
            # the field by its definition: bit `pos` counts from the first byte's LSB
            # (little-endian) or MSB (big-endian)
            if byteorder == "little":
                want = (whole_le >> pos) & ((1 << bits) - 1)
            else:
                want = (whole_be >> (size * 8 - pos - bits)) & ((1 << bits) - 1)
            if signed and want >> (bits - 1):
                want -= 1 << bits
            assert got == want & (2**64 - 1), (byteorder, fields, i)


# ------------------------------------------------------------------------------------------
# robustness: any relocation record gives a decision, never a stray exception
# ------------------------------------------------------------------------------------------


def test_random_relocations_never_crash() -> None:
    from bpfobj.core import patch
    from bpfobj.insn import Instruction, ld_imm64

    rng = random.Random(99)
    n_types = len(LOCAL)
    outcomes: set[str] = set()
    for _ in range(3000):
        tid = rng.choice([0, n_types + 5, *range(1, n_types + 1)])
        access = rng.choice(
            [
                "0",
                "1",
                "0:0",
                "0:1",
                "0:2:1",
                "0:5:3",
                "0:7:9",
                "0:3",
                "0:4",
                "2",
                "0:9",
                "",
                ":",
                "0:0:0",
            ]
        )
        kind = rng.randrange(0, 14)
        relo = CoreRelo(insn_off=rng.randrange(0, 4) * 8, type_id=tid, access_str=access, kind=kind)  # type: ignore[arg-type]
        d = resolve(LOCAL, relo, rng.choice([TARGETS, []]), byteorder=rng.choice(["little", "big"]))
        outcomes.add(d.outcome)
        assert isinstance(d, CoreDecision)
        insns = [
            Instruction(0xB7, 1, 0, 0, d.orig_val & 0x7FFFFFFF),
            Instruction(0x61, 1, 2, d.orig_val & 0x7FFF, 0),
            *ld_imm64(1, 0, d.orig_val),
        ]
        try:
            patch(insns, rng.randrange(0, 3), d)
        except CoreError:
            pass
    assert outcomes == {"patched", "poisoned", "error"}
