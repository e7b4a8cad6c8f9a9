"""The one ``bpf(2)`` chokepoint: every BPF command goes through `bpf()`.

    from bpfobj.sys import attr, syscall
    fd = syscall.bpf_fd(syscall.Cmd.MAP_CREATE, attr.map_create(MapType.HASH, 4, 8, 16))

* the syscall number comes from `bpfobj.arch.host()`;
* a failure raises `bpfobj.errors.SyscallError` (also an `OSError`) naming the command
  and carrying its errno; callers add context (map, program) with ``with_context``;
* inside `bpfobj.sys.offline()` every call is refused with `PhaseError`;
* `Fd` owns a file descriptor: closed by `close()`, or when garbage collected.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import weakref

from bpfobj import enums
from bpfobj.arch import host
from bpfobj.closing import Closing
from bpfobj.errors import PhaseError, SyscallError
from bpfobj.sys.guard import check_online

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

_ARCH = host()
_LIBC = ctypes.CDLL(None, use_errno=True)

# long syscall(long number, ...): one function object per argument signature.
_sys_bpf = _LIBC["syscall"]
_sys_bpf.restype = ctypes.c_long
_sys_bpf.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]

_sys_perf = _LIBC["syscall"]
_sys_perf.restype = ctypes.c_long
_sys_perf.argtypes = [
    ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ulong,
]

# libbpf bpf.c: PROG_LOAD_ATTEMPTS, retried while the kernel answers EAGAIN.
PROG_LOAD_ATTEMPTS = 5


class Cmd(enums.IntEnum):
    """enum bpf_cmd (linux/bpf.h)."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    TASK_FD_QUERY = 20
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    BTF_GET_NEXT_ID = 23
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    ENABLE_STATS = 32
    ITER_CREATE = 33
    LINK_DETACH = 34
    PROG_BIND_MAP = 35
    TOKEN_CREATE = 36

    @property
    def uapi_name(self) -> str:
        return f"BPF_{self.name}"


def bpf(cmd: Cmd, attr: ctypes.Structure, *, what: str | None = None, **context: Any) -> int:
    """Run bpf(`cmd`, `attr`, sizeof(attr)) and return its result (>= 0).

    Raises `SyscallError` with the errno; `what` replaces the default message
    ("BPF_MAP_CREATE failed") and `context` goes into the error's fields.
    """
    check_online(cmd.uapi_name)
    size = ctypes.sizeof(attr)
    attempts = PROG_LOAD_ATTEMPTS if cmd is Cmd.PROG_LOAD else 1
    while True:
        ret = _sys_bpf(_ARCH.nr_bpf, int(cmd), ctypes.addressof(attr), size)
        if ret >= 0:
            return int(ret)
        err = ctypes.get_errno()
        if err == _errno.EINTR:
            continue
        attempts -= 1
        if err == _errno.EAGAIN and attempts > 0:
            continue
        raise SyscallError(what or f"{cmd.uapi_name} failed", errno=err, command=cmd.uapi_name,
                           **context)


def bpf_fd(cmd: Cmd, attr: ctypes.Structure, *, what: str | None = None, **context: Any) -> Fd:
    """`bpf()` for a command that returns a new file descriptor, owned by the result."""
    return Fd(bpf(cmd, attr, what=what, **context))


def perf_event_open(attr: ctypes.Structure, pid: int, cpu: int, group_fd: int = -1,
                    flags: int = 0) -> Fd:
    """perf_event_open(2) (linux/perf_event.h); flags default to none (add
    PERF_FLAG_FD_CLOEXEC yourself to match libbpf)."""
    check_online("perf_event_open")
    while True:
        ret = _sys_perf(_ARCH.nr_perf_event_open, ctypes.addressof(attr), pid, cpu, group_fd,
                        flags)
        if ret >= 0:
            return Fd(int(ret))
        err = ctypes.get_errno()
        if err != _errno.EINTR:
            raise SyscallError("perf_event_open failed", errno=err, command="perf_event_open",
                               pid=pid, cpu=cpu)


def libc_call(name: str, *args: Any, argtypes: list[Any] | None = None) -> int:
    """Call a libc function returning int; -1 raises `SyscallError` named after it."""
    check_online(name)
    func = _LIBC[name]
    func.restype = ctypes.c_int
    if argtypes is not None:
        func.argtypes = argtypes
    ret = func(*args)
    if ret < 0:
        raise SyscallError(f"{name} failed", errno=ctypes.get_errno(), command=name)
    return int(ret)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class Fd(Closing):
    """An owned file descriptor.

    `close()` closes it once; an `Fd` that is garbage collected without being closed is
    closed then (so a forgotten object cannot leak descriptors forever). `int(fd)` or
    `fd.fileno()` gives the number; both refuse a closed descriptor.
    """

    __slots__ = ("__weakref__", "_fd", "_finalizer")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._finalizer = weakref.finalize(self, _close_quietly, fd)
        self._finalizer.atexit = False

    def fileno(self) -> int:
        if self._fd < 0:
            raise PhaseError("file descriptor used after close")
        return self._fd

    __int__ = fileno
    __index__ = fileno

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Close the descriptor (once; later calls do nothing)."""
        self._fd = -1
        self._finalizer()

    def detach(self) -> int:
        """Give up ownership: the caller closes the returned number."""
        fd = self.fileno()
        self._finalizer.detach()
        self._fd = -1
        return fd

    def dup(self) -> Fd:
        return Fd(os.dup(self.fileno()))

    def __repr__(self) -> str:
        return f"<Fd {self._fd}>" if self._fd >= 0 else "<Fd closed>"
