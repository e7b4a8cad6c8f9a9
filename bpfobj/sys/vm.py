"""mmap(2) at a chosen address, for BPF arenas (Python's `mmap` module cannot place a
mapping).

    region = vm.Region.map(fd, size, addr=0x100000000000)   # MAP_FIXED_NOREPLACE there
    region.write(0, b"...")
    region.read(0, 8)
    region.close()                                          # munmap

A BPF_MAP_TYPE_ARENA gets its user-space address when it is created (``map_extra``) or at
its first mmap: in the first case the mapping must be at exactly that address (the kernel's
arena_get_unmapped_area() refuses any other), which only mmap(2) with an address does.
A `Region` checks every access against its bounds and refuses any after `close()`: the
memory is never handed out as a raw buffer that could outlive the mapping.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import mmap as _mmap

from bpfobj.errors import PhaseError, SpecError, SyscallError
from bpfobj.sys.guard import check_online

MAP_FIXED_NOREPLACE = 0x100000  # linux/mman.h (Linux 4.17+)
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc = ctypes.CDLL(None, use_errno=True)
_mmap_fn = _libc["mmap"]
_mmap_fn.restype = ctypes.c_void_p
_mmap_fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                     ctypes.c_int, ctypes.c_long]
_munmap_fn = _libc["munmap"]
_munmap_fn.restype = ctypes.c_int
_munmap_fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


class Region:
    """A shared mapping of `size` bytes at `addr` (owned: `close()` unmaps it)."""

    __slots__ = ("addr", "size", "writable")

    def __init__(self, addr: int, size: int, writable: bool) -> None:
        self.addr = addr
        self.size = size
        self.writable = writable

    @classmethod
    def map(cls, fd: int, size: int, *, addr: int = 0, writable: bool = True,
            what: str = "mmap") -> Region:
        """mmap(addr, size, PROT_READ[|PROT_WRITE], MAP_SHARED, fd, 0); with an address,
        MAP_FIXED_NOREPLACE (EEXIST when something is mapped there already)."""
        check_online("mmap")
        prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
        flags = _mmap.MAP_SHARED | (MAP_FIXED_NOREPLACE if addr else 0)
        ret = _mmap_fn(addr or None, size, prot, flags, fd, 0)
        if ret is None or ret == _MAP_FAILED:
            raise SyscallError(what, errno=ctypes.get_errno(), command="mmap",
                               addr=hex(addr) if addr else None, size=size)
        got = int(ret)
        if addr and got != addr:  # a kernel before 4.17 takes the flag as a mere hint
            _munmap_fn(got, size)
            raise SyscallError(what, errno=_errno.EEXIST, command="mmap", addr=hex(addr), size=size,
                               hint="the kernel placed the mapping elsewhere (its address "
                                    "is in use, or MAP_FIXED_NOREPLACE is unknown)")
        return cls(got, size, writable)

    @property
    def closed(self) -> bool:
        return self.addr == 0

    def _check(self, off: int, n: int) -> int:
        if self.addr == 0:
            raise PhaseError("memory used after it was unmapped (close())")
        if off < 0 or n < 0 or off + n > self.size:
            raise SpecError(f"range [{off:#x}, {off + n:#x}) is outside the mapping of "
                            f"{self.size:#x} bytes")
        return self.addr + off

    def read(self, off: int, n: int) -> bytes:
        return ctypes.string_at(self._check(off, n), n)

    def write(self, off: int, data: bytes | bytearray | memoryview) -> None:
        if not self.writable:
            raise PhaseError("the mapping is read-only")
        raw = bytes(data)
        ctypes.memmove(self._check(off, len(raw)), raw, len(raw))

    def close(self) -> None:
        """munmap (once; later calls do nothing)."""
        if self.addr:
            addr, self.addr = self.addr, 0
            _munmap_fn(addr, self.size)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"at {self.addr:#x}"
        return f"<Region {self.size:#x} bytes {state}>"
