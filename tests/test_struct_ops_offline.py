"""struct_ops offline: maps and their program slots at open, the kernel layout at prepare
(against this kernel's BTF and against a stand-in kernel compiled from
tests/progs/struct_ops_kernel.c), and the errors libbpf gives for what it rejects."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bpfobj import BpfObject
from bpfobj.errors import LinkError, SpecError
from bpfobj.spec import MapKind
from bpfobj.uapi import BPF_F_LINK, BtfKind, MapType, ProgType

Build = Callable[..., Path]
SRC = "struct_ops_cc.c"
KERNEL = "struct_ops_kernel.c"
PROGS = ["cc_init", "cc_ssthresh", "cc_cong_avoid", "cc_undo_cwnd"]


def _kernel(bpf_build: Build, *defines: str) -> Path:
    return bpf_build(KERNEL, defines=defines, tag="-".join(d.replace("=", "") for d in defines))


def _cc(bpf_build: Build, *defines: str) -> Path:
    return bpf_build(SRC, defines=defines,
                     tag="-".join(d.replace("=", "").replace('"', "") for d in defines))


# -- open ---------------------------------------------------------------------------------


def test_open_struct_ops_maps(bpf_build: Build) -> None:
    spec = BpfObject.open(bpf_build(SRC)).spec
    assert list(spec.maps) == [".bss", "cc_link", "cc_plain"]  # after the data sections
    link, plain = spec.maps["cc_link"], spec.maps["cc_plain"]
    for m in (link, plain):
        assert m.kind is MapKind.STRUCT_OPS and m.type == MapType.STRUCT_OPS
        assert (m.key_size, m.max_entries, m.autocreate) == (4, 1, True)
        assert spec.btf is not None
        t = spec.btf.type(m.value_type_id)
        assert (t.kind, t.name) == (BtfKind.STRUCT, "tcp_congestion_ops")
        assert m.value_size == t.size == len(m.data or b"")  # type: ignore[attr-defined]
    assert (link.section, link.flags) == (".struct_ops.link", BPF_F_LINK)
    assert (plain.section, plain.flags) == (".struct_ops", 0)
    # member index in the local struct (name, ssthresh, cong_avoid, undo_cwnd, init)
    assert link.values == {1: "cc_ssthresh", 2: "cc_cong_avoid", 3: "cc_undo_cwnd", 4: "cc_init"}
    assert plain.values == {1: "cc_ssthresh", 2: "cc_cong_avoid", 3: "cc_undo_cwnd"}
    assert (link.data or b"")[:16].rstrip(b"\0") == b"bpfobj_cc"
    assert [p.type for p in spec.programs.values()] == [ProgType.STRUCT_OPS] * 4
    summary = spec.to_summary()
    assert {"name": "cc_link", "type": "struct_ops"}.items() <= summary["maps"][1].items()


def test_open_optional_section(bpf_build: Build) -> None:
    spec = BpfObject.open(_cc(bpf_build, "OPTIONAL_MAP")).spec
    m = spec.maps["cc_plain"]
    assert m.section == ".struct_ops" and not m.autocreate  # "?" read, then forgotten


@pytest.mark.parametrize(("define", "match"), [
    ("BAD_PROG_TYPE", r"member 'undo_cwnd' is set to program 'not_struct_ops' of section "
                      r"'xdp', not a struct_ops program"),
    ("BAD_MEMBER_PTR", r"member 'owner_data' is not a function pointer"),
])
def test_open_rejects(bpf_build: Build, define: str, match: str) -> None:
    with pytest.raises(SpecError, match=match) as err:
        BpfObject.open(_cc(bpf_build, define))
    assert err.value.section == ".struct_ops.link"
    assert err.value.extra.get("map") == "cc_link"


# -- prepare against the stand-in kernel -----------------------------------------------------


def test_prepare_against_standin_kernel(bpf_build: Build) -> None:
    obj = BpfObject.open(bpf_build(SRC))
    target = _kernel(bpf_build)
    prepared = obj.prepare(btf=target)
    kbtf = BpfObject.open(target).spec.btf
    assert kbtf is not None
    tid = kbtf.find("tcp_congestion_ops", BtfKind.STRUCT)[0]
    vid = kbtf.find("bpf_struct_ops_tcp_congestion_ops", BtfKind.STRUCT)[0]
    assert set(prepared.struct_ops) == {"cc_link", "cc_plain"}
    plan = prepared.struct_ops["cc_link"]
    # common (8 bytes), then ssthresh 0, cong_avoid 8, undo_cwnd 16, name 24, owner 40, init 48
    assert (plan.type_name, plan.kern_type_id, plan.kern_value_type_id) == (
        "tcp_congestion_ops", tid, vid)
    assert (plan.value_size, plan.data_offset, plan.module) == (64, 8, None)
    assert [(s.member, s.member_index, s.offset, s.program) for s in plan.slots] == [
        ("ssthresh", 0, 8, "cc_ssthresh"), ("cong_avoid", 1, 16, "cc_cong_avoid"),
        ("undo_cwnd", 2, 24, "cc_undo_cwnd"), ("init", 5, 56, "cc_init")]
    assert plan.data == bytes(32) + b"bpfobj_cc".ljust(16, b"\0") + bytes(16)
    value = plan.value({"cc_ssthresh": 3, "cc_cong_avoid": 4, "cc_undo_cwnd": 5, "cc_init": 6},
                       "little")
    assert [int.from_bytes(value[o:o + 8], "little") for o in (8, 16, 24, 56)] == [3, 4, 5, 6]
    assert value[32:] == plan.data[32:56] + (6).to_bytes(8, "little")
    # programs: attach_btf_id = the kernel struct, expected_attach_type = the member index
    got = {n: (p.struct_ops.attach_btf_id, p.struct_ops.member_index, p.struct_ops.maps)
           for n, p in prepared.programs.items() if p.struct_ops is not None}
    assert got == {"cc_init": (tid, 5, ("cc_link",)),
                   "cc_ssthresh": (tid, 0, ("cc_link", "cc_plain")),
                   "cc_cong_avoid": (tid, 1, ("cc_link", "cc_plain")),
                   "cc_undo_cwnd": (tid, 2, ("cc_link", "cc_plain"))}
    # the map the kernel creates takes the kernel's value size, raw bytes
    by_name = {m.name: m for m in prepared.maps}
    assert (by_name["cc_link"].value_size, by_name["cc_link"].value_type_id) == (64, 0)
    doc = prepared.to_json()
    assert [s["map"] for s in doc["struct_ops"]] == ["cc_link", "cc_plain"]
    assert doc["struct_ops"][0]["slots"][3] == {"member": "init", "member_index": 5,
                                                "offset": 56, "program": "cc_init"}
    row = next(p for p in doc["programs"] if p["name"] == "cc_init")
    assert (row["attach_btf_id"], row["expected_attach_type"]) == (tid, 5)


def test_zero_member_the_kernel_lacks_is_skipped(bpf_build: Build) -> None:
    prepared = BpfObject.open(_cc(bpf_build, "EXTRA_MEMBER=0")).prepare(btf=_kernel(bpf_build))
    assert prepared.struct_ops["cc_link"].skipped == ("bpfobj_not_in_kernel",)


@pytest.mark.parametrize(("src_defs", "kernel_defs", "match"), [
    ((), ("NO_WRAPPER",), r"the target kernel has no struct_ops type 'tcp_congestion_ops' "
                          r"\(no struct 'bpf_struct_ops_tcp_congestion_ops' in "),
    ((), ("NO_UNDO",), r"member 'undo_cwnd' is set to program 'cc_undo_cwnd', but the target "
                       r"kernel's struct tcp_congestion_ops has no such member"),
    (("EXTRA_MEMBER=5",), (), r"member 'bpfobj_not_in_kernel' is not zero, but the target "
                              r"kernel's struct tcp_congestion_ops has no such member"),
    ((), ("NAME_SIZE=32",), r"member 'name' is 16 bytes here but 32 in the target kernel"),
    ((), ("INIT_INT",), r"member 'init' is a ptr here but a int in the target kernel"),
    ((), ("INIT_DATA_PTR",), r"member 'init' is a function pointer here but not in the "
                             r"target kernel"),
])
def test_prepare_rejects(bpf_build: Build, src_defs: tuple[str, ...],
                         kernel_defs: tuple[str, ...], match: str) -> None:
    obj = BpfObject.open(_cc(bpf_build, *src_defs) if src_defs else bpf_build(SRC))
    with pytest.raises(LinkError, match=match) as err:
        obj.prepare(btf=_kernel(bpf_build, *kernel_defs))
    assert err.value.extra.get("map") == "cc_link"
    assert err.value.hint


def test_unreferenced_program_is_an_error(bpf_build: Build) -> None:
    obj = BpfObject.open(_cc(bpf_build, "UNREFERENCED"))
    with pytest.raises(SpecError, match=r"struct_ops program 'cc_unused' is not set in any "
                                        r"struct_ops map") as err:
        obj.prepare(btf=_kernel(bpf_build))
    assert err.value.program == "cc_unused"
    # the programs the maps use prepare alone
    prepared = obj.prepare(btf=_kernel(bpf_build), programs=["cc_init"])
    assert list(prepared.programs) == ["cc_init"]


def test_optional_map_leaves_its_programs_unloaded(bpf_build: Build) -> None:
    """libbpf bpf_object_adjust_struct_ops_autoload(): programs only a not-created map
    uses are not loaded; the map is not planned (nor created)."""
    prepared = BpfObject.open(_cc(bpf_build, "OPTIONAL_MAP", "NO_LINK")).prepare(
        btf=_kernel(bpf_build))
    assert prepared.struct_ops == {} and prepared.programs == {}
    assert not prepared.spec.programs["cc_ssthresh"].autoload


def test_prepare_needs_a_target(bpf_build: Build) -> None:
    from bpfobj.prepare import prepare

    spec = BpfObject.open(bpf_build(SRC)).spec
    with pytest.raises(LinkError, match="struct_ops maps need the target kernel's BTF"):
        prepare(spec, None)


# -- prepare against this kernel ------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="no kernel BTF")
def test_prepare_against_running_kernel(bpf_build: Build) -> None:
    from bpfobj.btf.target import TargetBtf

    prepared = BpfObject.open(bpf_build(SRC)).prepare()
    vmlinux = TargetBtf.running_kernel().vmlinux
    tid = vmlinux.find("tcp_congestion_ops", BtfKind.STRUCT)[0]
    vid = vmlinux.find("bpf_struct_ops_tcp_congestion_ops", BtfKind.STRUCT)[0]
    ktype = vmlinux.type(tid)
    members = {m.name: (i, m.bit_offset // 8) for i, m in enumerate(ktype.members)}  # type: ignore[attr-defined]
    data = next(m for m in vmlinux.type(vid).members  # type: ignore[attr-defined]
                if m.type == tid).bit_offset // 8
    plan = prepared.struct_ops["cc_link"]
    assert (plan.kern_type_id, plan.kern_value_type_id) == (tid, vid)
    assert plan.value_size == vmlinux.size_of(vid)
    for s in plan.slots:
        assert (s.member_index, s.offset) == (members[s.member][0], data + members[s.member][1])
    name_off = data + members["name"][1]
    assert plan.data[name_off:name_off + 16].rstrip(b"\0") == b"bpfobj_cc"
    assert not any(plan.data[:name_off]) and not any(plan.data[name_off + 16:])
    for name in PROGS:
        so = prepared.programs[name].struct_ops
        assert so is not None and so.attach_btf_id == tid
