"""The BPF filesystem: mount it, pin objects in it, get them back.

    bpffs.ensure_mounted()                       # /sys/fs/bpf
    bpffs.pin(map_fd, "/sys/fs/bpf/my_map")
    fd = bpffs.get("/sys/fs/bpf/my_map")         # an owned Fd
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from bpfobj.errors import NotSupportedError, SyscallError
from bpfobj.sys import attr
from bpfobj.sys.syscall import Cmd, Fd, bpf, bpf_fd, libc_call

DEFAULT_ROOT = "/sys/fs/bpf"  # libbpf's default pin root (BPF_FS_DEFAULT_PATH)
BPF_FS_MAGIC = 0xCAFE4A11  # linux/magic.h


class _Statfs(ctypes.Structure):
    # struct statfs (x86_64 and arm64 glibc): f_type first, then the rest (120 bytes).
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


def fs_type(path: str) -> int:
    """statfs(path).f_type."""
    buf = _Statfs()
    p = os.fsencode(path)
    libc_call("statfs", p, ctypes.byref(buf), argtypes=[ctypes.c_char_p, ctypes.c_void_p])
    return int(buf.f_type) & 0xFFFFFFFF


def is_bpffs(path: str) -> bool:
    """Whether `path` lives on a BPF filesystem (libbpf check_path())."""
    try:
        return fs_type(path) == BPF_FS_MAGIC
    except SyscallError:
        return False


def ensure_mounted(path: str = DEFAULT_ROOT) -> None:
    """Mount bpffs at `path` when it is not there yet (``mount -t bpf bpf <path>``)."""
    if is_bpffs(path):
        return
    os.makedirs(path, exist_ok=True)
    try:
        libc_call("mount", b"bpf", os.fsencode(path), b"bpf", 0, None,
                  argtypes=[ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                            ctypes.c_void_p])
    except SyscallError as exc:
        raise NotSupportedError(
            f"cannot mount the BPF filesystem at {path}: {exc.strerror}",
            hint="mount -t bpf bpf /sys/fs/bpf (as root)",
        ) from None


def check_pin_path(path: str) -> None:
    """The directory of `path` must be on bpffs (libbpf check_path())."""
    directory = os.path.dirname(os.path.abspath(path)) or "/"
    if not is_bpffs(directory):
        raise NotSupportedError(
            f"{directory} is not on a BPF filesystem, cannot pin {os.path.basename(path)}",
            hint=f"mount -t bpf bpf {DEFAULT_ROOT}, or pin under it",
        )


def pin(fd: int, path: str) -> None:
    """BPF_OBJ_PIN `fd` at `path` (the directory must be on bpffs)."""
    check_pin_path(path)
    bpf(Cmd.OBJ_PIN, attr.obj_pin(fd, path), what=f"cannot pin at {path}", path=path)


def get(path: str, *, flags: int = 0) -> Fd:
    """BPF_OBJ_GET: a new fd for the object pinned at `path`."""
    return bpf_fd(Cmd.OBJ_GET, attr.obj_get(path, file_flags=flags),
                  what=f"cannot open pinned object {path}", path=path)


def unpin(path: str) -> None:
    """Remove a pin (unlink); a missing pin is not an error."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SyscallError(f"cannot unpin {path}", errno=exc.errno or _errno.EIO,
                           command="unlink", path=path) from None
