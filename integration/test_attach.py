"""Attaching programs for real: attach -> trigger -> read the counter back -> detach ->
check the counter stops, for every attach kind this kernel supports; pin and reopen links;
update links; attach_all.

The BPF side is tests/progs/attach_{trace,cookie,tramp,kprobe,net}.c (one program per kind, one
.bss counter per program, most filtered on the test process's tgid) and the uprobe target
tests/userprogs/uprobe_target.c (built with gcc). Network tests run on a veth pair
whose peer sits in a network namespace made here; cgroup tests in a cgroup v2 directory
made here. Kinds the kernel cannot do are skipped with the kernel feature or config
option they need.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bpfobj import BpfObject
from bpfobj.attach import attach, attach_all
from bpfobj.attach import cgroup as cgroup_mod
from bpfobj.attach.kprobe import has_kprobes
from bpfobj.errors import NotSupportedError, SyscallError
from bpfobj.links import Link, LinkType
from bpfobj.uapi import AttachType

ROOT = Path(__file__).resolve().parent.parent
PROGS = ROOT / "tests" / "progs"
PID = os.getpid()


def fd_count() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def nap(n: int = 3) -> None:
    """n clock_nanosleep calls (time.sleep)."""
    for _ in range(n):
        time.sleep(0.0005)


def stops(read: Callable[[], int], trigger: Callable[[], None]) -> bool:
    """The counter does not move when triggered again (after detach)."""
    before = read()
    trigger()
    return read() == before


def stops_soon(read: Callable[[], int], trigger: Callable[[], None],
               timeout: float = 5.0) -> bool:
    """`stops`, allowing the kernel to release the link asynchronously first: on some
    kernels (5.10) removing a pin drops the link from bpffs' free_inode, after an RCU
    grace period, and the link is freed later still from a workqueue (bpf_link_put in
    atomic context)."""
    deadline = time.monotonic() + timeout
    while not stops(read, trigger):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --------------------------------------------------------------------------------------
# objects
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trace_obj(bpf_build, bpf_arch_options) -> Iterator[BpfObject]:  # type: ignore[no-untyped-def]
    # the uprobe reads its argument through PT_REGS_PARM1: compiled for the kernel's arch
    obj = BpfObject.open(bpf_build("attach_trace.c", vmlinux=True, **bpf_arch_options))
    obj.rodata.target_tgid = PID
    obj.load()
    yield obj
    obj.close()


@pytest.fixture(scope="module")
def cookie_obj(bpf_build) -> Iterator[BpfObject]:  # type: ignore[no-untyped-def]
    # bpf_get_attach_cookie (5.15+): kept out of attach_trace.c (conftest OBJECT_NEEDS)
    obj = BpfObject.open(bpf_build("attach_cookie.c", vmlinux=True))
    obj.rodata.target_tgid = PID
    obj.load()
    yield obj
    obj.close()


def perf_link() -> bool:
    """The kernel has perf links (5.15+): tracepoints, kprobes and uprobes attached by
    BPF_LINK_CREATE, otherwise by PERF_EVENT_IOC_SET_BPF (no link fd to pin)."""
    from bpfobj.attach.common import features

    return features().perf_link


@pytest.fixture(scope="module")
def net_obj(bpf_build) -> Iterator[BpfObject]:  # type: ignore[no-untyped-def]
    path = bpf_build("attach_net.c", vmlinux=True)
    obj = BpfObject.open(path)
    obj.rodata.target_tgid = PID
    try:
        obj.load()
    except SyscallError as exc:
        # BPF_PROG_TYPE_NETFILTER came in Linux 6.4: older kernels load the rest without it
        if exc.program != "on_netfilter":
            raise
        obj.close()
        obj = BpfObject.open(path)
        obj.rodata.target_tgid = PID
        obj.spec.programs["on_netfilter"].autoload = False
        obj.load()
    yield obj
    obj.close()


def kernel_version() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


@pytest.fixture(scope="module")
def tramp_obj(bpf_build) -> Iterator[BpfObject]:  # type: ignore[no-untyped-def]
    path = bpf_build("attach_tramp.c", vmlinux=True)
    left_out: list[str] = []
    while True:
        obj = BpfObject.open(path)
        obj.rodata.target_tgid = PID
        for name in left_out:
            obj.spec.programs[name].autoload = False
        try:
            obj.load()
            break
        except SyscallError as exc:
            obj.close()
            # BPF_LSM_CGROUP came in Linux 6.0: older kernels load the rest without it
            if exc.program == "on_lsm_cgroup" and kernel_version() < (6, 0) and not left_out:
                left_out.append(exc.program)
                continue
            if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, 524, errno.EINVAL):  # 524: ENOTSUPP
                pytest.skip(f"this kernel refuses BPF trampoline programs (fentry/fexit/"
                            f"fmod_ret/lsm: BPF_PROG_LOAD "
                            f"{errno.errorcode.get(exc.errno, exc.errno)}); needs "
                            "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS and BPF trampolines "
                            "allowed by the kernel")
            raise
    yield obj
    obj.close()


@pytest.fixture(scope="module")
def target_bin(helper_program: Callable[[str], Path]) -> Path:
    """tests/userprogs/uprobe_target.c built with gcc (conftest's `helper_program`)."""
    return helper_program("uprobe_target")


def link_tracefs() -> str:
    from bpfobj.attach.common import tracefs

    return tracefs()


def run_target(target_bin: Path, n: int) -> None:
    subprocess.run([str(target_bin), str(n)], check=True, capture_output=True)


# --------------------------------------------------------------------------------------
# tracepoints, raw tracepoints, tp_btf, iterators, perf events
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [None, "ioctl"])
def test_tracepoint(trace_obj: BpfObject, mode: str | None) -> None:
    bss = trace_obj.bss
    link = attach(trace_obj.programs["on_tp"], mode=mode)
    assert link.kind == "tracepoint" and link.target == "syscalls/sys_enter_clock_nanosleep"
    assert link.perf_fd is not None
    assert link.is_bpf_link == (mode is None and perf_link())
    before = bss.tp_hits
    nap(3)
    assert bss.tp_hits == before + 3
    link.detach()
    assert link.closed
    assert stops(lambda: bss.tp_hits, nap)


def test_tracepoint_twice_is_refused_saying_why(trace_obj: BpfObject) -> None:
    with attach(trace_obj.programs["on_tp"]), \
            pytest.raises(SyscallError, match=r"program 'on_tp' is already attached to "
                          r"syscalls/sys_enter_clock_nanosleep.*once per trace event") as exc:
        attach(trace_obj.programs["on_tp"])
    assert exc.value.errno == errno.EEXIST


def test_tracepoint_explicit_target(trace_obj: BpfObject) -> None:
    bss = trace_obj.bss
    with attach(trace_obj.programs["on_tp"], category="syscalls",
                name="sys_enter_clock_nanosleep"):
        before = bss.tp_hits
        nap(2)
        assert bss.tp_hits == before + 2
    with pytest.raises(NotSupportedError, match="no tracepoint"):
        attach(trace_obj.programs["on_tp"], category="syscalls", name="sys_enter_no_such")


def test_tracepoint_cookie(cookie_obj: BpfObject) -> None:
    link = attach(cookie_obj.programs["on_tp_cookie"], category="syscalls",
                  name="sys_enter_clock_nanosleep", cookie=0xC0FFEE)
    with link:
        nap(1)
        assert cookie_obj.bss.tp_hits >= 1
        assert cookie_obj.bss.tp_cookie == 0xC0FFEE
        assert link.info()["type"] is LinkType.PERF_EVENT


def test_raw_tp(trace_obj: BpfObject) -> None:
    bss = trace_obj.bss
    link = attach(trace_obj.programs["on_raw_tp"])
    assert link.info()["type"] is LinkType.RAW_TRACEPOINT
    before = bss.raw_tp_hits
    nap(3)
    assert bss.raw_tp_hits >= before + 3  # every syscall of this process
    link.detach()
    assert stops(lambda: bss.raw_tp_hits, nap)


def test_tp_btf(trace_obj: BpfObject) -> None:
    bss = trace_obj.bss
    link = attach(trace_obj.programs["on_tp_btf"])
    assert link.kind == "tracing"
    # BPF_LINK_CREATE with BPF_TRACE_RAW_TP makes a raw tracepoint link
    assert link.info()["type"] is LinkType.RAW_TRACEPOINT
    before = bss.tp_btf_hits
    nap(3)
    assert bss.tp_btf_hits >= before + 3
    link.detach()
    assert stops(lambda: bss.tp_btf_hits, nap)


def test_iter_task(trace_obj: BpfObject) -> None:
    with attach(trace_obj.programs["on_iter"]) as link:
        assert link.info()["type"] is LinkType.ITER
        lines = link.read_iter().decode().splitlines()
        assert f"{PID} {Path('/proc/self/comm').read_text().strip()}" in lines
        assert len(lines) > 1  # every process, not only this one
        again = link.read_iter().decode().splitlines()  # a new session each time
        assert f"{PID} " in {ln[: len(str(PID)) + 1] for ln in again}


def test_iter_task_one_process(trace_obj: BpfObject) -> None:
    # one process only: bpf_iter_link_info.task.pid (conftest KERNEL_LIMITS: 6.1+)
    with attach(trace_obj.programs["on_iter"], task_pid=PID) as link:
        lines = link.read_iter().decode().splitlines()
        assert [ln.split()[0] for ln in lines] == [str(PID)]


def test_perf_event_cpu_clock(trace_obj: BpfObject) -> None:
    bss = trace_obj.bss
    link = attach(trace_obj.programs["on_perf"], sample_freq=1000)
    assert link.parts and all(p.perf_fd is not None for p in link.parts)
    with pytest.raises(NotSupportedError):
        link.pin("/sys/fs/bpf/never")
    before = bss.perf_hits
    busy(0.3)
    assert bss.perf_hits > before + 10
    link.detach()
    assert all(p.closed for p in link.parts)
    assert stops(lambda: bss.perf_hits, lambda: busy(0.1))


def test_perf_event_on_given_fd(trace_obj: BpfObject) -> None:
    from bpfobj.sys import perf

    pfd = perf.open_software(perf.PERF_COUNT_SW_CPU_CLOCK, cpu=0, sample_period=100000)
    with pfd, attach(trace_obj.programs["on_perf"], perf_fd=pfd.fileno()) as link:
        assert link.perf_fd is not None and link.perf_fd != pfd.fileno()  # a duplicate


# --------------------------------------------------------------------------------------
# uprobes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True])
def test_uprobe_in_binary(trace_obj: BpfObject, target_bin: Path, legacy: bool) -> None:
    """The uprobe PMU, and the legacy tracefs uprobe_events path (removed on detach)."""
    bss = trace_obj.bss
    link = attach(trace_obj.programs["on_uprobe"], binary=str(target_bin),
                  func="bpfobj_uprobe_target", legacy=legacy)
    assert link.kind == "uprobe"
    events = Path(link_tracefs(), "uprobe_events")
    if legacy:
        assert f"bpfobj_{PID}_" in events.read_text()
    assert link.target == f"{target_bin}:bpfobj_uprobe_target"
    hits, total = bss.uprobe_hits, bss.uprobe_arg_sum
    run_target(target_bin, 10)
    assert bss.uprobe_hits == hits + 10
    assert bss.uprobe_arg_sum == total + sum(range(1, 11))  # the argument, read from regs
    link.detach()
    assert f"bpfobj_{PID}_" not in events.read_text()
    assert stops(lambda: bss.uprobe_hits, lambda: run_target(target_bin, 5))


def test_uretprobe_libc_from_section(trace_obj: BpfObject) -> None:
    bss = trace_obj.bss
    libc = ctypes.CDLL("libc.so.6")
    link = attach(trace_obj.programs["on_uretprobe"])  # SEC("uretprobe/libc.so.6:getpid")
    assert link.kind == "uretprobe" and "libc.so.6:getpid" in link.target
    before = bss.uretprobe_hits
    for _ in range(4):
        assert libc.getpid() == PID
    assert bss.uretprobe_hits == before + 4
    link.detach()
    assert stops(lambda: bss.uretprobe_hits, lambda: libc.getpid() and None)


def test_uprobe_for_one_pid(trace_obj: BpfObject, target_bin: Path) -> None:
    """pid filtering: a uprobe on libc for another process does not fire here."""
    bss = trace_obj.bss
    libc = ctypes.CDLL("libc.so.6")
    with attach(trace_obj.programs["on_uretprobe"], pid=1):
        before = bss.uretprobe_hits
        libc.getpid()
        assert bss.uretprobe_hits == before
    with attach(trace_obj.programs["on_uretprobe"], pid=PID):
        libc.getpid()
        assert bss.uretprobe_hits == before + 1


def test_uprobe_multi(trace_obj: BpfObject, target_bin: Path) -> None:
    bss = trace_obj.bss
    try:
        link = attach(trace_obj.programs["on_uprobe_multi"], binary=str(target_bin),
                      pattern="bpfobj_multi_*")
    except NotSupportedError as exc:
        # a kernel before 6.6 (or without CONFIG_UPROBES): the error names the link type
        assert "uprobe_multi links" in str(exc) and "Linux 6.6+" in str(exc)
        pytest.skip(str(exc))
    assert link.info()["type"] is LinkType.UPROBE_MULTI
    before = bss.uprobe_multi_hits
    run_target(target_bin, 7)
    assert bss.uprobe_multi_hits == before + 14  # two functions match
    link.detach()
    assert stops(lambda: bss.uprobe_multi_hits, lambda: run_target(target_bin, 3))


# --------------------------------------------------------------------------------------
# attach_all, pins, fds
# --------------------------------------------------------------------------------------


def test_attach_all(trace_obj: BpfObject) -> None:
    bss = trace_obj.bss
    links = attach_all(trace_obj)
    try:
        # what the sections name: tp, raw_tp, tp_btf, iter, uretprobe; not the bare
        # SEC("uprobe") / SEC("uprobe.multi") nor perf_event (no auto-attach in libbpf)
        assert [lk.program.name for lk in links if lk.program] == [
            "on_tp", "on_raw_tp", "on_tp_btf", "on_iter", "on_uretprobe"]
        before = (bss.tp_hits, bss.raw_tp_hits, bss.tp_btf_hits)
        nap(2)
        after = (bss.tp_hits, bss.raw_tp_hits, bss.tp_btf_hits)
        assert all(a > b for a, b in zip(after, before))
    finally:
        for lk in links:
            lk.close()
    assert stops(lambda: bss.tp_hits + bss.raw_tp_hits + bss.tp_btf_hits, nap)
    links = attach_all(trace_obj, skip=["on_raw_tp", "on_iter"])
    assert [lk.program.name for lk in links if lk.program] == [
        "on_tp", "on_tp_btf", "on_uretprobe"]
    for lk in links:
        lk.close()


@pytest.mark.parametrize("program", ["on_tp", "on_raw_tp", "on_tp_btf"])
def test_pin_close_reopen_detach(trace_obj: BpfObject, pin_root: str, program: str) -> None:
    if program == "on_tp" and not perf_link():
        pytest.skip("a tracepoint attached without perf links (BPF_LINK_CREATE for perf "
                    "events, Linux 5.15+) has no link to pin")
    bss = trace_obj.bss
    counter = {"on_tp": "tp_hits", "on_raw_tp": "raw_tp_hits", "on_tp_btf": "tp_btf_hits"}[
        program]

    def read() -> int:
        return int(bss[counter])

    link = attach(trace_obj.programs[program])
    prog_id = trace_obj.programs[program].id
    path = os.path.join(pin_root, "sub", program)  # parent dirs are made on bpffs
    link.pin(path)
    assert link.pin_path == path and os.path.exists(path)
    with pytest.raises(Exception, match="already pinned"):
        link.pin(path + "2")
    link.close()  # the pin keeps the attachment
    before = read()
    nap(2)
    assert read() > before
    again = Link.from_pin(path)
    assert again.info()["prog_id"] == prog_id
    assert again.program is None and again.pin_path == path
    again.detach()  # ends it although pinned (BPF_LINK_DETACH, or unpin + close)
    assert stops_soon(read, nap)


def test_no_fd_leak(trace_obj: BpfObject, target_bin: Path) -> None:
    start = fd_count()
    for _ in range(3):
        for lk in attach_all(trace_obj):
            lk.detach()
        with attach(trace_obj.programs["on_uprobe"], binary=str(target_bin),
                    func="bpfobj_uprobe_target"):
            pass
        attach(trace_obj.programs["on_perf"]).close()
    assert fd_count() == start


def test_object_close_closes_the_links_of_its_programs(
        bpf_build, bpf_arch_options) -> None:  # type: ignore[no-untyped-def]
    """Links the user still holds (from Program.attach and from the attach_all function)
    are closed, so detached, with their object: no fd and no attachment outlive it."""
    from bpfobj.btf.target import TargetBtf

    TargetBtf.running_kernel()  # the kernel's BTF stays mapped for the process: not counted
    start = fd_count()
    obj = BpfObject.open(bpf_build("attach_trace.c", vmlinux=True, **bpf_arch_options))
    obj.rodata.target_tgid = PID
    obj.load()
    held = obj.programs["on_tp"].attach()
    more = attach_all(obj, skip=("on_tp",))  # (a program attaches once per tracepoint)
    dropped = attach(obj.programs["on_perf"])
    del dropped  # closed by the collector, as before: nothing left for the object to close
    bss = obj.bss
    before = bss.tp_hits
    nap(2)
    assert bss.tp_hits >= before + 2
    obj.close()
    assert held.closed and all(link.closed for link in more)
    assert fd_count() == start


# --------------------------------------------------------------------------------------
# kprobes (CONFIG_KPROBES)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kprobe_obj(bpf_build, bpf_arch_options) -> Iterator[BpfObject]:  # type: ignore[no-untyped-def]
    # BPF_KPROBE / BPF_KRETPROBE read pt_regs: compiled for the kernel's arch
    obj = BpfObject.open(bpf_build("attach_kprobe.c", vmlinux=True, **bpf_arch_options))
    obj.rodata.target_tgid = PID
    obj.load()
    yield obj
    obj.close()


def test_kprobe_refused_without_kprobes(kprobe_obj: BpfObject) -> None:
    """Without CONFIG_KPROBES every kprobe kind fails naming it (not some errno)."""
    if has_kprobes():
        pytest.skip("the kernel has kprobes (CONFIG_KPROBES=y): see the attach tests")
    for name in ("on_kprobe", "on_kretprobe", "on_ksyscall", "on_kretsyscall"):
        with pytest.raises(NotSupportedError, match="CONFIG_KPROBES"):
            attach(kprobe_obj.programs[name])
    with pytest.raises(NotSupportedError, match="CONFIG_KPROBES"):
        attach_all(kprobe_obj)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("program,counter", [
    ("on_kprobe", "kprobe_hits"), ("on_kretprobe", "kretprobe_hits"),
    ("on_ksyscall", "ksyscall_hits"), ("on_kretsyscall", "kretsyscall_hits")])
def test_kprobe(kprobe_obj: BpfObject, program: str, counter: str, legacy: bool) -> None:
    if not has_kprobes():
        pytest.skip("the kernel is built without CONFIG_KPROBES (no kprobe PMU, no "
                    "kprobe_events): kprobe/kretprobe/ksyscall cannot attach")
    bss = kprobe_obj.bss
    link = attach(kprobe_obj.programs[program], legacy=legacy)
    before = bss[counter]
    nap(3)
    assert bss[counter] >= before + 3
    link.detach()
    assert stops(lambda: int(bss[counter]), nap)


def test_kprobe_multi(kprobe_obj: BpfObject) -> None:
    if not has_kprobes():
        pytest.skip("the kernel is built without CONFIG_KPROBES (and CONFIG_FPROBE): "
                    "kprobe.multi cannot attach")
    bss = kprobe_obj.bss
    try:
        link = attach(kprobe_obj.programs["on_kprobe_multi"])
    except NotSupportedError as exc:
        # a kernel before 5.18, or without CONFIG_FPROBE (arm64 6.1): the error names them
        assert "kprobe_multi links" in str(exc) and "CONFIG_FPROBE" in str(exc)
        pytest.skip(str(exc))
    before = bss.kprobe_multi_hits
    nap(3)
    assert bss.kprobe_multi_hits >= before + 3
    link.detach()
    assert stops(lambda: int(bss.kprobe_multi_hits), nap)


# --------------------------------------------------------------------------------------
# BPF trampolines: fentry, fexit, fmod_ret, lsm, lsm_cgroup
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("program,counter,trigger", [
    ("on_fentry", "fentry_hits", "sleep"), ("on_fexit", "fexit_hits", "sleep"),
    ("on_fmod_ret", "fmod_ret_hits", "open"), ("on_lsm", "lsm_hits", "open")])
def test_trampoline(tramp_obj: BpfObject, program: str, counter: str, trigger: str) -> None:
    if program == "on_lsm" and "bpf" not in _lsm_list():
        pytest.skip("the BPF LSM is not active (CONFIG_BPF_LSM and lsm=...,bpf)")

    def fire() -> None:
        if trigger == "sleep":
            nap(3)
        else:
            for _ in range(3):
                with open("/proc/self/stat"):
                    pass

    bss = tramp_obj.bss
    try:
        link = attach(tramp_obj.programs[program])
    except NotSupportedError as exc:
        # loaded but not attachable: e.g. arm64 before 6.4 (no ftrace direct calls)
        assert "BPF trampolines" in str(exc), exc
        pytest.skip(str(exc))
    before = bss[counter]
    fire()
    assert bss[counter] >= before + 3
    link.detach()
    assert stops(lambda: int(bss[counter]), fire)


def _lsm_list() -> str:
    with contextlib.suppress(OSError):
        return Path("/sys/kernel/security/lsm").read_text()
    return ""


# --------------------------------------------------------------------------------------
# networking: a veth pair, one end in a netns
# --------------------------------------------------------------------------------------

NS = f"bpfobj_at{PID}"
VETH = f"bpa{PID % 100000}"
PEER = f"bpb{PID % 100000}"
HOST_IP, PEER_IP = "10.211.0.1", "10.211.0.2"


def _ip(*args: str, ns: bool = False) -> None:
    cmd = ["ip", "netns", "exec", NS, "ip", *args] if ns else ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def veth() -> Iterator[str]:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    try:
        _ip("netns", "add", NS)
        _ip("link", "add", VETH, "type", "veth", "peer", "name", PEER)
    except subprocess.CalledProcessError as exc:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        pytest.skip(f"cannot make a veth pair in a netns (CONFIG_VETH, CONFIG_NET_NS): "
                    f"{exc.stderr.decode().strip()}")
    try:
        _ip("link", "set", PEER, "netns", NS)
        _ip("addr", "add", f"{HOST_IP}/24", "dev", VETH)
        _ip("link", "set", VETH, "up")
        _ip("addr", "add", f"{PEER_IP}/24", "dev", PEER, ns=True)
        _ip("link", "set", PEER, "up", ns=True)
        _ip("link", "set", "lo", "up", ns=True)
        yield VETH
    finally:
        subprocess.run(["ip", "link", "del", VETH], capture_output=True)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def to_peer(n: int = 5) -> None:
    """n UDP datagrams from here out of the veth (egress)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(n):
            s.sendto(b"bpfobj", (PEER_IP, 9))


def from_peer(n: int = 5) -> None:
    """n UDP datagrams sent from inside the netns into the veth (ingress here)."""
    code = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for _ in range({n}): s.sendto(b'bpfobj', ('{HOST_IP}', 9))\n")
    subprocess.run(["ip", "netns", "exec", NS, sys.executable, "-c", code], check=True)
    time.sleep(0.05)


@pytest.mark.parametrize("mode", ["link", "netlink"])
@pytest.mark.parametrize("xdp_mode", ["skb", "drv"])
def test_xdp(net_obj: BpfObject, veth: str, mode: str, xdp_mode: str) -> None:
    bss = net_obj.bss
    link = attach(net_obj.programs["on_xdp"], dev=veth, mode=mode, xdp_mode=xdp_mode)
    shown = subprocess.run(["ip", "-d", "link", "show", veth], capture_output=True,
                           text=True).stdout
    assert ("xdpgeneric" if xdp_mode == "skb" else "xdp ") in shown or (
        xdp_mode == "drv" and "prog/xdp" in shown)
    assert link.is_bpf_link == (mode == "link")
    before = bss.xdp_hits
    from_peer(5)
    assert bss.xdp_hits >= before + 5
    link.detach()
    assert "xdp" not in subprocess.run(["ip", "link", "show", veth], capture_output=True,
                                       text=True).stdout
    assert stops(lambda: int(bss.xdp_hits), from_peer)


@pytest.mark.parametrize("mode", ["link", "netlink"])
def test_xdp_dropped_link_detaches_with_its_object(
        bpf_build, veth: str, mode: str) -> None:  # type: ignore[no-untyped-def]
    """A link the user dropped: a BPF link detaches when collected; a netlink attachment
    (no fd to close) when its object closes, which runs its undo step."""
    def shown() -> str:
        return subprocess.run(["ip", "link", "show", veth], capture_output=True,
                              text=True).stdout

    obj = BpfObject.open(bpf_build("attach_net.c", vmlinux=True))
    for name, spec in obj.spec.programs.items():
        spec.autoload = name == "on_xdp"  # (the others need newer kernels: see net_obj)
    obj.load()
    attach(obj.programs["on_xdp"], dev=veth, mode=mode, xdp_mode="skb")
    assert ("xdp" in shown()) == (mode == "netlink")  # the BPF link went with its object
    obj.close()
    assert "xdp" not in shown()


def test_xdp_link_update(net_obj: BpfObject, veth: str) -> None:
    bss = net_obj.bss
    with attach(net_obj.programs["on_xdp"], dev=veth) as link:
        assert link.info()["type"] is LinkType.XDP
        link.update(net_obj.programs["on_xdp2"])
        assert link.program is net_obj.programs["on_xdp2"]
        assert link.info()["prog_id"] == net_obj.programs["on_xdp2"].id
        one, two = bss.xdp_hits, bss.xdp2_hits
        from_peer(3)
        assert bss.xdp_hits == one and bss.xdp2_hits >= two + 3


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tc_clsact(net_obj: BpfObject, veth: str, direction: str) -> None:
    bss = net_obj.bss
    link = attach(net_obj.programs["on_tc"], dev=veth, direction=direction)
    shown = subprocess.run(["tc", "filter", "show", "dev", veth, direction],
                           capture_output=True, text=True).stdout
    assert "on_tc" in shown and "direct-action" in shown
    trigger = from_peer if direction == "ingress" else to_peer
    before = bss.tc_hits
    trigger(5)
    assert bss.tc_hits >= before + 5
    link.detach()
    assert "clsact" not in subprocess.run(["tc", "qdisc", "show", "dev", veth],
                                          capture_output=True, text=True).stdout
    assert stops(lambda: int(bss.tc_hits), lambda: trigger(5))


def test_tcx(net_obj: BpfObject, veth: str) -> None:
    from bpfobj.attach.common import features

    if not features().tcx_link:
        pytest.skip("the kernel has no tcx links (Linux 6.6+, CONFIG_NET_XGRESS)")
    bss = net_obj.bss
    ingress = attach(net_obj.programs["on_tcx_in"], dev=veth)
    egress = attach(net_obj.programs["on_tcx_out"], dev=veth)
    assert ingress.info()["type"] is LinkType.TCX
    i0, e0 = bss.tcx_in_hits, bss.tcx_out_hits
    from_peer(4)
    to_peer(4)
    assert bss.tcx_in_hits >= i0 + 4 and bss.tcx_out_hits >= e0 + 4
    ingress.detach()
    egress.detach()

    def both() -> None:
        from_peer(2)
        to_peer(2)

    assert stops(lambda: int(bss.tcx_in_hits + bss.tcx_out_hits), both)


def test_netkit_needs_config(net_obj: BpfObject) -> None:
    res = subprocess.run(["ip", "link", "add", f"nk{PID % 100000}", "type", "netkit"],
                         capture_output=True)
    if res.returncode != 0:
        pytest.skip("no netkit devices: the kernel is built without CONFIG_NETKIT")
    subprocess.run(["ip", "link", "del", f"nk{PID % 100000}"], capture_output=True)
    pytest.skip("netkit: attach_netkit is unit-tested; no netkit program in attach_net.c")


def test_lwt_route(net_obj: BpfObject, veth: str) -> None:
    bss = net_obj.bss
    link = attach(net_obj.programs["on_lwt"], dst="10.212.0.0/24", dev=veth)
    routes = subprocess.run(["ip", "route", "show", "10.212.0.0/24"], capture_output=True,
                            text=True).stdout

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(3):
                with contextlib.suppress(OSError):
                    s.sendto(b"x", ("10.212.0.5", 9))
        time.sleep(0.05)

    assert "encap bpf xmit" in routes
    before = bss.lwt_hits
    send()
    assert bss.lwt_hits >= before + 1
    link.close()
    assert not subprocess.run(["ip", "route", "show", "10.212.0.0/24"], capture_output=True,
                              text=True).stdout.strip()


# --------------------------------------------------------------------------------------
# cgroups
# --------------------------------------------------------------------------------------


def in_cgroup(path: str, code: str) -> None:
    """Run `code` in a child process moved into cgroup `path` first."""
    prologue = f"open({os.path.join(path, 'cgroup.procs')!r}, 'w').write(str(__import__('os').getpid()))\n"
    subprocess.run([sys.executable, "-c", prologue + code], check=True)


UDP5 = ("import socket\nfor _ in range(5):\n    s = socket.socket(socket.AF_INET, "
        "socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', 9)); s.close()\n")


@pytest.mark.parametrize("mode", ["link", "legacy"])
def test_cgroup_skb_and_sock(net_obj: BpfObject, test_cgroup: str, mode: str) -> None:
    bss = net_obj.bss
    skb = attach(net_obj.programs["on_cgroup_skb"], cgroup=test_cgroup, mode=mode)
    sock = attach(net_obj.programs["on_sock_create"], cgroup=test_cgroup, mode=mode)
    assert skb.is_bpf_link == (mode == "link")
    attached = cgroup_mod.query(test_cgroup, AttachType.CGROUP_INET_EGRESS)
    assert attached == [net_obj.programs["on_cgroup_skb"].id]
    s0, c0 = bss.cgroup_skb_hits, bss.sock_create_hits
    in_cgroup(test_cgroup, UDP5)
    assert bss.cgroup_skb_hits >= s0 + 5 and bss.sock_create_hits >= c0 + 5
    # this process is not in the cgroup
    s1 = bss.cgroup_skb_hits
    exec(UDP5)
    assert bss.cgroup_skb_hits == s1
    skb.detach()
    sock.detach()
    assert cgroup_mod.query(test_cgroup, AttachType.CGROUP_INET_EGRESS) == []
    assert stops(lambda: int(bss.cgroup_skb_hits + bss.sock_create_hits),
                 lambda: in_cgroup(test_cgroup, UDP5))


def test_cgroup_link_update_and_pin(net_obj: BpfObject, test_cgroup: str,
                                    pin_root: str) -> None:
    bss = net_obj.bss
    link = attach(net_obj.programs["on_cgroup_skb"], cgroup=test_cgroup)
    link.update(net_obj.programs["on_cgroup_skb2"])
    one, two = bss.cgroup_skb_hits, bss.cgroup_skb2_hits
    in_cgroup(test_cgroup, UDP5)
    assert bss.cgroup_skb_hits == one and bss.cgroup_skb2_hits >= two + 5
    path = os.path.join(pin_root, "cg")
    link.pin(path)
    link.close()
    assert cgroup_mod.query(test_cgroup, AttachType.CGROUP_INET_EGRESS) == [
        net_obj.programs["on_cgroup_skb2"].id]
    again = Link.from_pin(path)
    assert again.info()["type"] is LinkType.CGROUP
    again.detach()  # BPF_LINK_DETACH: gone although the pin is still there
    assert cgroup_mod.query(test_cgroup, AttachType.CGROUP_INET_EGRESS) == []
    os.unlink(path)


def test_lsm_cgroup(tramp_obj: BpfObject, test_cgroup: str) -> None:
    if "on_lsm_cgroup" not in tramp_obj.programs:
        pytest.skip("the kernel refused to load an lsm_cgroup program (BPF_LSM_CGROUP, "
                    "Linux 6.0+)")
    bss = tramp_obj.bss
    try:
        link = attach(tramp_obj.programs["on_lsm_cgroup"], cgroup=test_cgroup)
    except NotSupportedError as exc:
        # loaded but not attachable: e.g. arm64 before 6.4 (no ftrace direct calls)
        assert "BPF trampolines" in str(exc), exc
        pytest.skip(str(exc))
    bind = ("import socket\nfor _ in range(3):\n    s = socket.socket(); "
            "s.bind(('127.0.0.1', 0)); s.close()\n")
    before = bss.lsm_cgroup_hits
    in_cgroup(test_cgroup, bind)
    assert bss.lsm_cgroup_hits >= before + 3
    link.detach()
    assert stops(lambda: int(bss.lsm_cgroup_hits), lambda: in_cgroup(test_cgroup, bind))


# --------------------------------------------------------------------------------------
# sockets, netns hooks, netfilter, sockmap
# --------------------------------------------------------------------------------------


def test_socket_filter(net_obj: BpfObject) -> None:
    bss = net_obj.bss
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        link = attach(net_obj.programs["on_socket"], sock=rx)
        before = bss.socket_hits
        for _ in range(3):
            tx.sendto(b"hello", rx.getsockname())
            assert rx.recv(16) == b"hello"  # the filter accepts the whole packet
        assert bss.socket_hits == before + 3
        link.close()  # SO_DETACH_BPF
        tx.sendto(b"hello", rx.getsockname())
        rx.recv(16)
        assert bss.socket_hits == before + 3


def test_sk_reuseport(net_obj: BpfObject) -> None:
    bss = net_obj.bss
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        a.bind(("127.0.0.1", 0))
        b.bind(a.getsockname())
        link = attach(net_obj.programs["on_reuseport"], sock=a)
        before = bss.reuseport_hits
        for _ in range(3):
            tx.sendto(b"x", a.getsockname())
        assert bss.reuseport_hits == before + 3
        link.close()
        assert stops(lambda: int(bss.reuseport_hits),
                     lambda: tx.sendto(b"x", a.getsockname()) and None)


def _udp_to_self(n: int = 3) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        for _ in range(n):
            tx.sendto(b"x", rx.getsockname())


def test_sk_lookup(net_obj: BpfObject) -> None:
    bss = net_obj.bss
    link = attach(net_obj.programs["on_sk_lookup"])  # this netns
    assert link.info()["type"] is LinkType.NETNS
    before = bss.sk_lookup_hits
    _udp_to_self(3)
    assert bss.sk_lookup_hits >= before + 3
    link.detach()
    assert stops(lambda: int(bss.sk_lookup_hits), _udp_to_self)


def test_flow_dissector_netns(net_obj: BpfObject, veth: str) -> None:
    """Attached to the test netns (by ip-netns name) and detached; not triggered."""
    link = attach(net_obj.programs["on_flow_dissector"], netns=NS)
    info = link.info()
    assert info["type"] is LinkType.NETNS
    assert info["prog_id"] == net_obj.programs["on_flow_dissector"].id
    link.detach()
    assert link.closed


def test_netfilter(net_obj: BpfObject) -> None:
    if "on_netfilter" not in net_obj.programs:
        pytest.skip("the kernel refused to load a netfilter program (BPF_PROG_TYPE_NETFILTER, "
                    "Linux 6.4+)")
    bss = net_obj.bss
    try:
        link = attach(net_obj.programs["on_netfilter"], hook="output", priority=-128)
    except NotSupportedError as exc:
        pytest.skip(f"netfilter links: {exc} (CONFIG_NETFILTER_BPF_LINK, Linux 6.4+)")
    assert link.info()["type"] is LinkType.NETFILTER
    before = bss.netfilter_hits
    _udp_to_self(3)
    assert bss.netfilter_hits >= before + 3
    link.detach()
    assert stops(lambda: int(bss.netfilter_hits), _udp_to_self)


@pytest.mark.parametrize("mode", ["link", "legacy"])
def test_sk_msg_sockmap(net_obj: BpfObject, mode: str) -> None:
    bss = net_obj.bss
    smap = net_obj.maps["sock_map"]
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        try:
            link = attach(net_obj.programs["on_sk_msg"], map=smap, mode=mode)
        except NotSupportedError as exc:
            # mode="link" on a kernel before 6.10 (mode=None falls back to BPF_PROG_ATTACH)
            assert mode == "link" and "sockmap links" in str(exc) and "Linux 6.10+" in str(exc)
            pytest.skip(str(exc))
        with socket.create_connection(srv.getsockname()) as c, srv.accept()[0] as peer:
            smap.update_raw((0).to_bytes(4, sys.byteorder), c.fileno().to_bytes(8, sys.byteorder))
            before = bss.sk_msg_hits
            c.sendall(b"hello")
            assert peer.recv(16) == b"hello"
            assert bss.sk_msg_hits == before + 1
            smap.delete_raw((0).to_bytes(4, sys.byteorder))
        link.detach()
        # programs reach sockets when they enter the map: a new socket gets none now
        with socket.create_connection(srv.getsockname()) as c, srv.accept()[0] as peer:
            smap.update_raw((1).to_bytes(4, sys.byteorder), c.fileno().to_bytes(8, sys.byteorder))
            before = bss.sk_msg_hits
            c.sendall(b"again")
            assert peer.recv(16) == b"again"
            assert bss.sk_msg_hits == before
            smap.delete_raw((1).to_bytes(4, sys.byteorder))


# --------------------------------------------------------------------------------------
# kinds without a trigger here
# --------------------------------------------------------------------------------------


def test_lirc_needs_device(bpf_build) -> None:  # type: ignore[no-untyped-def]
    if not any(name.startswith("lirc") for name in os.listdir("/dev")):
        pytest.skip("no /dev/lirc* device (lirc_mode2 needs CONFIG_BPF_LIRC_MODE2 and an IR "
                    "receiver); attach_lirc is unit-tested")


# --------------------------------------------------------------------------------------
# USDT
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def usdt_bin(helper_program: Callable[[str], Path]) -> Path:
    """tests/userprogs/usdt_target.c built with gcc (conftest's `helper_program`): USDT
    probes bpfobj:hit."""
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("the USDT target's hand-written probes are for x86_64 and arm64")
    return helper_program("usdt_target")


@pytest.fixture(scope="module")
def usdt_obj(bpf_build, bpf_arch_options, usdt_bin: Path) -> Iterator[BpfObject]:  # type: ignore[no-untyped-def]
    # usdt.bpf.h reads PT_REGS_IP: compiled for the kernel's arch
    options = dict(bpf_arch_options)
    defines = (f'USDT_TARGET="{usdt_bin}"', *options.pop("defines", ()))
    path = bpf_build("attach_usdt.c", vmlinux=True, defines=defines, **options)
    obj = BpfObject.open(path)
    obj.load()
    yield obj
    obj.close()


def run_usdt(usdt_bin: Path, n: int) -> int:
    """Run the target; it prints how often the probes' semaphore was set."""
    out = subprocess.run([str(usdt_bin), str(n)], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def test_usdt_args_cookie_semaphore(usdt_obj: BpfObject, usdt_bin: Path) -> None:
    bss = usdt_obj.bss
    assert run_usdt(usdt_bin, 3) == 0  # semaphore clear: probes skipped
    link = attach(usdt_obj.programs["on_usdt"], binary=str(usdt_bin), provider="bpfobj",
                  name="hit", cookie=0xC0DE)
    assert link.kind == "usdt"
    hits, a, b, c = bss.usdt_hits, bss.usdt_sum_a, bss.usdt_sum_b, bss.usdt_sum_c
    # two probe sites per iteration, both guarded by the semaphore the uprobes raised
    assert run_usdt(usdt_bin, 4) == 8
    assert bss.usdt_hits == hits + 8
    assert bss.usdt_sum_a == a + 2 * sum(range(1, 5))  # -8@%rdi / -8@%rdx: registers
    assert bss.usdt_sum_b == b + 2 * 10 * sum(range(1, 5))
    assert bss.usdt_sum_c == c + 8 * 7  # -4@$7: a constant
    assert bss.usdt_arg_cnt == 3
    assert bss.usdt_cookie == 0xC0DE  # bpf_usdt_cookie()
    link.detach()
    assert run_usdt(usdt_bin, 2) == 0  # the semaphore went back to 0
    assert bss.usdt_hits == hits + 8


def test_usdt_from_section_with_attach_all(usdt_obj: BpfObject, usdt_bin: Path) -> None:
    links = attach_all(usdt_obj)  # on_usdt (bare SEC("usdt")) is left alone
    try:
        assert [lk.program.name for lk in links if lk.program] == ["on_usdt_sec"]
        before = usdt_obj.bss.usdt_sec_hits
        assert run_usdt(usdt_bin, 3) == 6
        assert usdt_obj.bss.usdt_sec_hits == before + 6
    finally:
        for lk in links:
            lk.close()
    assert run_usdt(usdt_bin, 1) == 0


def test_from_pin_refuses_a_pinned_program(trace_obj: BpfObject, pin_root: str) -> None:
    path = os.path.join(pin_root, "prog")
    trace_obj.programs["on_tp"].pin(path)
    try:
        with pytest.raises(NotSupportedError, match="not a pinned BPF link but a prog"):
            Link.from_pin(path)
    finally:
        trace_obj.programs["on_tp"].unpin()
