"""Local storage maps in the running kernel: task, cgroup and socket storage written by
programs (tests/progs/load_storage.c) and read back, written and deleted from Python through
a pidfd (or `Pid`), a cgroup directory and a socket; inode storage by path and file fd
(tests/progs/load_storage_lsm.c; its BPF LSM program needs BPF trampolines)."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bpfobj import BpfObject
from bpfobj.attach import attach
from bpfobj.attach import cgroup as cgroup_mod
from bpfobj.errors import NotSupportedError, SpecError, SyscallError
from bpfobj.storage import LocalStorageMap, Pid
from bpfobj.uapi import MapType

PID = os.getpid()

# The child: moves itself into the test cgroup, calls getppid() 3 times (on_getppid counts
# them into its task and cgroup storage), creates a socket (on_sock_create fills its socket
# storage) and hands it over through the socketpair fd argv[2]; then one more getppid() per
# line read from stdin.
CHILD = r"""
import os, socket, sys
with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
    f.write(str(os.getpid()))
for _ in range(3):
    os.getppid()
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
socket.send_fds(socket.socket(fileno=int(sys.argv[2])), [b"s"], [s.fileno()])
print("ready", flush=True)
for line in sys.stdin:
    os.getppid()
    print("again", flush=True)
"""


@pytest.fixture
def storage_obj(bpf_build, test_cgroup: str) -> Iterator[BpfObject]:  # type: ignore[no-untyped-def]
    """load_storage.c loaded, on_getppid attached, on_sock_create on the test cgroup."""
    with BpfObject.open(bpf_build("load_storage.c", vmlinux=True)) as obj:
        obj.load()
        obj.bss.target_cgid = os.stat(test_cgroup).st_ino  # the cgroup id
        links = [attach(obj.programs["on_getppid"]),
                 attach(obj.programs["on_sock_create"], cgroup=test_cgroup)]
        try:
            yield obj
        finally:
            for link in links:
                link.detach()


class Child:
    """The CHILD script, running in `cgroup`; `sock` is the socket it created."""

    def __init__(self, cgroup: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, cgroup, str(theirs.fileno())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            pass_fds=[theirs.fileno()])
        theirs.close()
        with ours:
            _, fds, _, _ = socket.recv_fds(ours, 16, 1)
        self.sock = socket.socket(fileno=fds[0])
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def getppid(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self._line() == "again"

    def close(self) -> None:
        self.sock.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def child(storage_obj: BpfObject, test_cgroup: str) -> Iterator[Child]:
    c = Child(test_cgroup)
    try:
        yield c
    finally:
        c.close()


def test_storage_maps_are_created(storage_obj: BpfObject) -> None:
    for name, mtype in (("task_store", MapType.TASK_STORAGE),
                        ("cgrp_store", MapType.CGRP_STORAGE), ("sk_store", MapType.SK_STORAGE)):
        m = storage_obj.maps[name]
        assert isinstance(m, LocalStorageMap)
        info = m.info()
        assert info["type"] == mtype and info["max_entries"] == 0
        assert info["map_flags"] & 1  # BPF_F_NO_PREALLOC
        assert info["btf_value_type_id"] > 0


def test_task_storage_by_pidfd(storage_obj: BpfObject, child: Child) -> None:
    task = storage_obj.maps["task_store"]
    pid = child.proc.pid
    want = {"calls": 3, "pid": pid, "tag": 0, "seen_tag": 0, "pad": 0}
    assert task[Pid(pid)] == want  # written by on_getppid
    pidfd = os.pidfd_open(pid)
    try:
        assert task[pidfd] == want and pidfd in task
        # written here, read by the program at the child's next getppid()
        task.update(pidfd, {**want, "tag": 77}, task.EXIST)
        child.getppid()
        assert task[Pid(pid)] == {**want, "calls": 4, "tag": 77, "seen_tag": 77}
        with pytest.raises(SyscallError) as info:
            task.update(pidfd, want, task.NOEXIST)
        assert info.value.errno == errno.EEXIST
        del task[pidfd]
        assert task.lookup(Pid(pid)) is None and Pid(pid) not in task
        assert not task.delete(pidfd)
        child.getppid()  # the program creates it again
        assert task[pidfd]["calls"] == 1
    finally:
        os.close(pidfd)
    assert task.lookup(Pid(PID)) is None  # this process never called getppid in the cgroup


def test_cgroup_storage_by_directory(storage_obj: BpfObject, child: Child,
                                     test_cgroup: str) -> None:
    cgrp = storage_obj.maps["cgrp_store"]
    cgid = os.stat(test_cgroup).st_ino
    assert cgrp[test_cgroup] == {"calls": 3, "id": cgid}
    relative = os.path.relpath(test_cgroup, cgroup_mod.cgroup2_mount())
    assert cgrp[relative] == {"calls": 3, "id": cgid}  # relative to the cgroup2 mount
    fd = os.open(test_cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        cgrp[fd] = {"calls": 100, "id": 0}
        child.getppid()
        assert cgrp[fd] == {"calls": 101, "id": cgid}
        assert cgrp.delete(test_cgroup) and cgrp.lookup(fd) is None
    finally:
        os.close(fd)


def test_socket_storage(storage_obj: BpfObject, child: Child) -> None:
    sk = storage_obj.maps["sk_store"]
    want = {"family": socket.AF_INET6, "type": socket.SOCK_DGRAM,
            "protocol": socket.IPPROTO_UDP, "magic": 0x5EED}
    assert sk[child.sock] == want  # by socket object (set by on_sock_create)
    assert sk[child.sock.fileno()] == want  # by fd
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as mine:  # not in the cgroup
        assert mine not in sk
        sk[mine] = {"family": 1, "type": 2, "protocol": 3, "magic": 4}
        assert sk[mine] == {"family": 1, "type": 2, "protocol": 3, "magic": 4}
        sk.update(mine, {"magic": 5}, sk.EXIST)
        assert sk[mine]["magic"] == 5
        del sk[mine]
        with pytest.raises(KeyError):
            sk[mine]
    assert sk[child.sock] == want  # the other socket's storage is its own


def test_storage_key_errors(storage_obj: BpfObject) -> None:
    task, sk = storage_obj.maps["task_store"], storage_obj.maps["sk_store"]
    with open("/proc/self/stat") as f:
        with pytest.raises(SyscallError) as info:
            task[f]  # a file is not a pidfd
        assert info.value.errno == errno.EBADF and "pidfd" in (info.value.hint or "")
        with pytest.raises(SyscallError) as info:
            sk.update(f, {"magic": 1})
        assert info.value.errno == errno.ENOTSOCK and "socket" in (info.value.hint or "")
    with pytest.raises(SpecError, match="cannot take a key of type str"):
        task["/proc/self"]
    with pytest.raises(SpecError, match="cannot take a key of type Pid"):
        sk.lookup(Pid(PID))
    with pytest.raises(SyscallError, match="pidfd_open"):
        task.lookup(Pid(2**22 + 12345))  # above pid_max: no such process
    for op in (lambda: list(task), lambda: len(task), lambda: list(task.items()),
               task.lookup_batch, task.clear):
        with pytest.raises(NotSupportedError, match="cannot iterate local storage") as ns:
            op()
        assert "look values up by task" in (ns.value.hint or "")
    assert bool(task)


# -- inode storage --------------------------------------------------------------------------


def test_inode_storage_from_python(bpf_build, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with BpfObject.open(bpf_build("load_storage_lsm.c", vmlinux=True)) as obj:
        obj.create_maps()  # the maps only: the LSM program needs trampolines
        inode = obj.maps["inode_store"]
        assert isinstance(inode, LocalStorageMap) and inode.type == MapType.INODE_STORAGE
        path = tmp_path / "f"
        path.write_text("x")
        assert inode.lookup(path) is None
        inode[path] = {"opens": 0, "tag": 9, "pad": 0}  # by path (opened for the call)
        with open(path) as f:
            assert inode[f] == {"opens": 0, "tag": 9, "pad": 0}  # by file object
            assert inode[f.fileno()]["tag"] == 9  # by fd
        hardlink = tmp_path / "g"
        os.link(path, hardlink)
        assert inode[str(hardlink)]["tag"] == 9  # the inode's, not the name's
        assert inode.delete(str(path)) and hardlink not in inode
        with pytest.raises(SyscallError, match="cannot open") as info:
            inode[tmp_path / "missing"]
        assert info.value.errno == errno.ENOENT


def test_inode_storage_from_lsm(bpf_build, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with BpfObject.open(bpf_build("load_storage_lsm.c", vmlinux=True)) as obj:
        if "bpf" not in _lsm_list():
            pytest.skip("the BPF LSM is not active (CONFIG_BPF_LSM and lsm=...,bpf): inode "
                        "storage has helpers for BPF LSM programs only")
        obj.rodata.target_tgid = PID
        try:
            obj.load()
        except SyscallError as exc:
            if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, 524, errno.EINVAL):
                pytest.skip("this kernel refuses BPF LSM programs, which need BPF trampolines "
                            f"(BPF_PROG_LOAD {errno.errorcode.get(exc.errno, exc.errno)}); "
                            "inode storage has helpers for BPF LSM programs only")
            raise
        try:
            link = attach(obj.programs["on_file_open"])
        except NotSupportedError as exc:  # e.g. arm64 before 6.4: no BPF trampolines
            assert "trampoline" in str(exc).lower(), exc
            pytest.skip(str(exc))
        try:
            inode = obj.maps["inode_store"]
            path = tmp_path / "f"
            path.write_text("x")
            inode[path] = {"opens": 0, "tag": 1, "pad": 0}
            for _ in range(3):
                with open(path):
                    pass
            assert inode[path]["opens"] >= 3
        finally:
            link.detach()


def _lsm_list() -> str:
    with contextlib.suppress(OSError), open("/sys/kernel/security/lsm") as f:
        return f.read()
    return ""
