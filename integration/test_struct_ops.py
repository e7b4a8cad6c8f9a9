"""struct_ops in the running kernel: a BPF TCP congestion control (tests/progs/struct_ops_cc.c)
registered through a struct_ops link and through a plain map update, used by a real TCP
connection over loopback, unregistered when its link closes; and compared with libbpf."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bpfobj import BpfObject
from bpfobj.errors import LinkError, NotSupportedError
from bpfobj.structops_map import StructOpsMap
from bpfobj.uapi import MapType

ROOT = Path(__file__).resolve().parent.parent
AVAILABLE = "/proc/sys/net/ipv4/tcp_available_congestion_control"
SRC = "struct_ops_cc.c"
INIT, SSTHRESH, CONG_AVOID, UNDO_CWND = range(4)


def _available() -> list[str]:
    with open(AVAILABLE) as f:
        return f.read().split()


@pytest.fixture(autouse=True)
def _needs_tcp_cc() -> None:
    if not os.path.exists(AVAILABLE):
        pytest.skip(f"no {AVAILABLE}: the kernel has no TCP congestion control sysctls")
    taken = {"bpfobj_cc", "bpfobj_cc_plain"} & set(_available())
    if taken:
        pytest.skip(f"a congestion control named {sorted(taken)} is already registered")


def _tcp_transfer(cc: str, nbytes: int = 8 << 20) -> str:
    """Send `nbytes` over a loopback TCP connection whose sender uses congestion control
    `cc`; returns the congestion control the socket reported."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got: list[int] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            total = 0
            while chunk := conn.recv(1 << 16):
                total += len(chunk)
            got.append(total)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with socket.socket() as cl:
            cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
            cl.connect(srv.getsockname())
            block = b"x" * (1 << 16)
            for _ in range(nbytes // len(block)):
                cl.sendall(block)
            used = cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
    finally:
        t.join(30)
        srv.close()
    assert got == [nbytes]
    return used.rstrip(b"\0").decode()


@contextmanager
def _loaded(path: Path) -> Iterator[BpfObject]:
    with BpfObject.open(path) as obj:
        obj.load()
        yield obj


def test_tcp_congestion_control_through_a_link(bpf_build: Callable[..., Path]) -> None:
    with _loaded(bpf_build(SRC)) as obj:
        mp = obj.maps["cc_link"]
        assert isinstance(mp, StructOpsMap) and mp.is_link and mp.value is not None
        assert mp.info()["value_size"] == mp.plan.value_size  # type: ignore[union-attr]
        assert "bpfobj_cc" not in _available()
        link = mp.attach_struct_ops()
        try:
            assert link.is_bpf_link and link.map is mp
            assert link.info()["type"].name == "STRUCT_OPS"
            assert "bpfobj_cc" in _available()
            assert _tcp_transfer("bpfobj_cc") == "bpfobj_cc"
            calls = list(obj.bss.calls)
            assert calls[INIT] >= 1, calls  # the connection took it up
            assert calls[CONG_AVOID] >= 1, calls  # ACKs of data went through it
        finally:
            link.close()
        assert "bpfobj_cc" not in _available()


def test_link_update_map_swaps_the_implementation(bpf_build: Callable[..., Path]) -> None:
    """bpf_link__update_map: the link's congestion control is replaced in place by a second
    map of the same name; new connections then run the second map's programs."""
    with _loaded(bpf_build(SRC, defines=("SWAP_MAP",), tag="swap")) as obj:
        first, second = obj.maps["cc_link"], obj.maps["cc_swapped"]
        assert isinstance(first, StructOpsMap) and isinstance(second, StructOpsMap)
        with first.attach_struct_ops() as link:
            assert _tcp_transfer("bpfobj_cc") == "bpfobj_cc"
            before = obj.bss.calls[CONG_AVOID]
            assert before >= 1 and obj.bss.swapped_calls == 0
            link.update_map(second)
            assert link.map is second
            assert link.info()["type"].name == "STRUCT_OPS"
            assert "bpfobj_cc" in _available()  # still registered, under the same name
            assert _tcp_transfer("bpfobj_cc") == "bpfobj_cc"
            assert obj.bss.swapped_calls >= 1
            assert obj.bss.calls[CONG_AVOID] == before  # the first map's program is out
            with pytest.raises(NotSupportedError, match="cannot swap map 'cc_plain'"):
                link.update_map(obj.maps["cc_plain"])  # not a .struct_ops.link map
        assert "bpfobj_cc" not in _available()


def test_plain_struct_ops_registers_by_map_update(bpf_build: Callable[..., Path]) -> None:
    with _loaded(bpf_build(SRC)) as obj:
        mp = obj.maps["cc_plain"]
        assert isinstance(mp, StructOpsMap) and not mp.is_link
        with mp.attach_struct_ops() as link:
            assert not link.is_bpf_link
            assert "bpfobj_cc_plain" in _available()
            # while registered, the kernel shows each slot's program by id
            value = mp.lookup_raw(b"\0" * 4)
            assert value is not None and mp.plan is not None
            for slot in mp.plan.slots:
                prog_id = int.from_bytes(value[slot.offset:slot.offset + 8], sys.byteorder)
                assert prog_id == obj.programs[slot.program].id
            assert _tcp_transfer("bpfobj_cc_plain") == "bpfobj_cc_plain"
            assert obj.bss.calls[CONG_AVOID] >= 1
        assert "bpfobj_cc_plain" not in _available()


def test_attach_all_registers_and_close_unregisters(bpf_build: Callable[..., Path]) -> None:
    with _loaded(bpf_build(SRC)) as obj:
        links = obj.attach_all()
        assert sorted(link.map.name for link in links if link.map is not None) == [
            "cc_link", "cc_plain"]
        assert {"bpfobj_cc", "bpfobj_cc_plain"} <= set(_available())
    assert not {"bpfobj_cc", "bpfobj_cc_plain"} & set(_available())


def test_program_attach_names_the_map(bpf_build: Callable[..., Path]) -> None:
    with _loaded(bpf_build(SRC)) as obj:
        prog = obj.programs["cc_init"]
        info = prog.info()
        assert info["attach_btf_id"] == prog.prepared.struct_ops.attach_btf_id  # type: ignore[union-attr]
        with pytest.raises(NotSupportedError, match=r"obj.maps\['cc_link'\].attach_struct_ops"):
            prog.attach()


def test_prepared_for_another_kernel_is_refused(bpf_build: Callable[..., Path]) -> None:
    standin = bpf_build("struct_ops_kernel.c")
    with BpfObject.open(bpf_build(SRC)) as obj:
        obj.prepare(btf=standin)
        with pytest.raises(LinkError, match=r"struct_ops map 'cc_link' was prepared against "):
            obj.load()


def test_matches_libbpf(bpf_build: Callable[..., Path]) -> None:
    """libbpf 1.1 (the system's; it has no .struct_ops.link, hence NO_LINK) loads and
    registers the same object: the programs' attach_btf_id and expected_attach_type, and the
    registered value (program ids in the slots) agree with bpfobj's."""
    if os.environ.get("BPFOBJ_VM") == "1":
        pytest.skip("the libbpf harness is built on the host only")
    sys.path.insert(0, str(ROOT / "tests"))
    import harnessbuild

    harness = harnessbuild.build_or_skip("libbpf_struct_ops")
    path = bpf_build(SRC, defines=("NO_LINK", 'CC_PLAIN_NAME="bpfobj_lbcc"'), tag="nolink")
    run = subprocess.run([str(harness), str(path)], capture_output=True, text=True, timeout=60)
    lb = json.loads(run.stdout)
    assert "error" not in lb, lb
    with _loaded(path) as obj:
        ours = {n: (p.type, p.prepared.struct_ops) for n, p in obj.programs.items()}
        for row in lb["programs"]:
            ptype, so = ours[row["name"]]
            assert so is not None
            assert (row["type"], row["attach_btf_id"], row["expected_attach_type"]) == (
                int(ptype), so.attach_btf_id, so.member_index), row["name"]
        (lmap,) = lb["maps"]
        mp = obj.maps[lmap["name"]]
        assert isinstance(mp, StructOpsMap) and mp.plan is not None
        assert lmap["type"] == MapType.STRUCT_OPS and lmap["flags"] == mp.flags
        assert (lmap["value_size"], lmap["btf_vmlinux_value_type_id"]) == (
            mp.plan.value_size, mp.plan.kern_value_type_id)
        with mp.attach_struct_ops():
            ours_value = mp.lookup_raw(b"\0" * 4)
        assert ours_value is not None
        theirs_value = bytes.fromhex(lmap["value"])
        lb_ids = {row["id"]: row["name"] for row in lb["programs"]}
        our_ids = {p.id: n for n, p in obj.programs.items()}
        slots = {s.offset for s in mp.plan.slots}
        for off in sorted(slots):  # each slot holds the same program
            lb_id = int.from_bytes(theirs_value[off:off + 8], sys.byteorder)
            our_id = int.from_bytes(ours_value[off:off + 8], sys.byteorder)
            assert lb_ids[lb_id] == our_ids[our_id]
        start = mp.plan.data_offset  # the kernel's refcnt/state header before it
        mask = bytearray(ours_value)
        other = bytearray(theirs_value)
        for off in slots:
            mask[off:off + 8] = other[off:off + 8] = bytes(8)
        assert mask[start:] == other[start:]
        assert bytes(mask[start:]) == mp.plan.data[start:]
