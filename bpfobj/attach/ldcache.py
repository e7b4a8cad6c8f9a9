"""Finding shared libraries: /etc/ld.so.cache, the search path, a process's mappings.

`parse_ld_so_cache` reads both formats glibc's ldconfig writes (glibc elf/dl-cache.h):

* old (libc5 / glibc < 2.2): ``"ld.so-1.7.0"``, ``nlibs``, then ``{int flags; u32 key,
  value}`` entries; string offsets count from the end of the entries;
* new (``"glibc-ld.so.cache1.1"``, alone since glibc 2.32 or hidden after the old table,
  aligned to 8): a 48-byte header (nlibs, len_strings, flags, extension_offset, unused)
  then ``{s32 flags; u32 key, value, osversion; u64 hwcap}`` entries; string offsets count
  from the start of the new header.

Entries carry the ABI in ``flags`` (FLAG_ELF_LIBC6 | FLAG_X8664_LIB64 ...): `lookup`
keeps only the ones the running architecture can load.

`resolve_binary` is libbpf's resolve_full_path() (libbpf.c) with the cache added in front
of its fixed directories for libraries, and `library_from_maps` finds a library a process
has mapped (``/proc/PID/maps``), for uprobes on what that process really uses.
"""

from __future__ import annotations

import os
import struct

from bpfobj import records
from bpfobj.arch import Arch, host
from bpfobj.errors import InputError

LD_SO_CACHE = "/etc/ld.so.cache"
_OLD_MAGIC = b"ld.so-1.7.0"
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_NEW_HEADER = struct.Struct("=20sIIB3xI12x")  # magic+version, nlibs, len_strings, flags, ext
_NEW_ENTRY = struct.Struct("=iIIIQ")
_OLD_ENTRY = struct.Struct("=iII")

# glibc sysdeps/generic/ldconfig.h
FLAG_ELF_LIBC6 = 0x0003
FLAG_TYPE_MASK = 0x00FF
FLAG_REQUIRED_MASK = 0xFF00
FLAG_X8664_LIB64 = 0x0300
FLAG_AARCH64_LIB64 = 0x0A00
#: the ld.so.cache flags of the libraries each architecture loads. A per-arch fact that
#: belongs in `bpfobj.arch.Arch` (kept here until the Arch record has a field for it).
LD_CACHE_FLAGS: dict[str, int] = {
    "x86_64": FLAG_ELF_LIBC6 | FLAG_X8664_LIB64,
    "arm64": FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64,
}
#: libbpf arch_specific_lib_paths(): the multiarch directories
MULTIARCH_DIRS: dict[str, str] = {
    "x86_64": "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu",
    "arm64": "/lib/aarch64-linux-gnu:/usr/lib/aarch64-linux-gnu",
}


@records.frozen
class LdCacheEntry:
    name: str  # the soname or link name: "libc.so.6"
    path: str  # "/lib/x86_64-linux-gnu/libc.so.6"
    flags: int
    hwcap: int = 0


def _cstr(data: bytes, off: int) -> str:
    if not 0 <= off < len(data):
        raise InputError(f"ld.so.cache string offset {off:#x} is past the end")
    end = data.find(b"\0", off)
    return data[off : end if end >= 0 else len(data)].decode(errors="replace")


def _parse_new(data: bytes, base: int) -> list[LdCacheEntry]:
    if len(data) < base + _NEW_HEADER.size:
        raise InputError("ld.so.cache: truncated header")
    _magic, nlibs, _len_strings, _flags, _ext = _NEW_HEADER.unpack_from(data, base)
    first = base + _NEW_HEADER.size
    if first + nlibs * _NEW_ENTRY.size > len(data):
        raise InputError(f"ld.so.cache: {nlibs} entries do not fit in {len(data)} bytes")
    out = []
    for i in range(nlibs):
        flags, key, value, _osv, hwcap = _NEW_ENTRY.unpack_from(data, first + i * _NEW_ENTRY.size)
        out.append(LdCacheEntry(_cstr(data, base + key), _cstr(data, base + value), flags, hwcap))
    return out


def parse_ld_so_cache(data: bytes) -> list[LdCacheEntry]:
    """Every entry of an ld.so.cache image, in file order (the new format when present)."""
    if data.startswith(_NEW_MAGIC):
        return _parse_new(data, 0)
    if not data.startswith(_OLD_MAGIC) or len(data) < 16:
        raise InputError("not an ld.so.cache file (no ld.so-1.7.0 or glibc-ld.so.cache1.1 "
                         "magic)")
    nlibs = struct.unpack_from("=I", data, 12)[0]
    strings = 16 + nlibs * _OLD_ENTRY.size
    if strings > len(data):
        raise InputError(f"ld.so.cache: {nlibs} entries do not fit in {len(data)} bytes")
    new = (strings + 7) & ~7  # ALIGN_CACHE: the new format hides in the string table
    if data[new : new + len(_NEW_MAGIC)] == _NEW_MAGIC:
        return _parse_new(data, new)
    out = []
    for i in range(nlibs):
        flags, key, value = _OLD_ENTRY.unpack_from(data, 16 + i * _OLD_ENTRY.size)
        out.append(LdCacheEntry(_cstr(data, strings + key), _cstr(data, strings + value),
                                flags))
    return out


def read_ld_so_cache(path: str = LD_SO_CACHE) -> list[LdCacheEntry]:
    """The entries of the cache file at `path` ([] when there is none: musl, no ldconfig)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    return parse_ld_so_cache(data)


def lookup(name: str, *, arch: Arch | None = None,
           entries: list[LdCacheEntry] | None = None) -> str | None:
    """The path ld.so.cache gives for library `name` (``libc.so.6``) on `arch`, or None.

    Like ld.so, the first entry of a matching ABI wins (ldconfig sorts them)."""
    arch = arch or host()
    want = LD_CACHE_FLAGS.get(arch.name)
    for entry in entries if entries is not None else read_ld_so_cache():
        if entry.name != name:
            continue
        if want is None or entry.flags == want:
            return entry.path
    return None


def _is_library(name: str) -> bool:
    return name.endswith(".so") or ".so." in name


def resolve_binary(name: str, *, arch: Arch | None = None, pid: int | None = None) -> str:
    """The full path of binary or library `name` (libbpf resolve_full_path()).

    A name with a ``/`` is used as it is. A library (``*.so``, ``*.so.*``): the one
    process `pid` has mapped, else ld.so.cache, else LD_LIBRARY_PATH, /usr/lib64:/usr/lib,
    the multiarch dirs, /lib64:/lib. An executable: PATH, then /usr/bin:/usr/sbin.
    """
    if "/" in name:
        return name
    arch = arch or host()
    if _is_library(name):
        if pid is not None:
            mapped = library_from_maps(pid, name)
            if mapped is not None:
                return mapped
        cached = lookup(name, arch=arch)
        if cached is not None and os.access(cached, os.R_OK):
            return cached
        search = [os.environ.get("LD_LIBRARY_PATH"), "/usr/lib64:/usr/lib",
                  MULTIARCH_DIRS.get(arch.name), "/lib64:/lib"]
        perm = os.R_OK
    else:
        search = [os.environ.get("PATH"), "/usr/bin:/usr/sbin"]
        perm = os.R_OK | os.X_OK
    for paths in search:
        for d in (paths or "").split(":"):
            if not d:
                continue
            cand = os.path.join(d, name)
            if os.path.isfile(cand) and os.access(cand, perm):
                return cand
    where = "ld.so.cache, LD_LIBRARY_PATH or the library dirs" if _is_library(name) else "PATH"
    raise InputError(f"cannot find {name!r} in {where}",
                     hint="give the binary's full path in the section or attach() call")


def library_from_maps(pid: int, name: str) -> str | None:
    """The path of library `name` as process `pid` maps it (``/proc/PID/maps``): an exact
    file name, or ``name`` followed by ``.`` or ``-`` (``libc`` or ``libc.so`` finds
    ``libc.so.6``, ``libc`` does not find ``libcrypto.so.3``)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best: str | None = None
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[5].startswith("/"):
            continue
        path = parts[5].removesuffix(" (deleted)")
        base = os.path.basename(path)
        if base == name:
            return path
        if best is None and base.startswith((name + ".", name + "-")) and _is_library(base):
            best = path
    return best
