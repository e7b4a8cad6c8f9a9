"""The cold path of `Btf`: the type-offset index, the name index and their on-disk cache.

Kernel BTF holds ~126k types in ~800k u32 words. Decoding them into Python objects would
cost seconds and hundreds of MB, so `Btf` keeps the raw words and only these arrays:

* ``offsets``: the word offset of each type record, from one pass over the words. The loop
  body is one dict lookup keyed by the whole ``info`` word (there are only a few hundred
  distinct ones), so the per-type work is an index, a lookup, an add and an append.
* the name index: the named types sorted by the first `NAME_KEY` bytes of their name,
  searched with `bisect`; built on the first `find()`, at C speed (itemgetter/map/sorted).

Both are cached in ``<cache>/btf/<content key>.idx`` so that a second process only
checksums the blob and reads ~1 MB.

The running kernel's BTF also gets a per-boot snapshot (`KernelSnapshot`): reading
/sys/kernel/btf/vmlinux costs ~15 ms (sysfs hands it out 4 KiB per read(2), and all of it
must be read to checksum it), where mapping a copy in the cache costs nothing until a page
is touched, and its content key is stored beside it.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Sequence
from itertools import compress, repeat
from operator import itemgetter

# (fixed words, words per vlen element) per kind, from btf.rst section 2.2; index = kind.
# Kind 0 (UNKN) is invalid in a type section, so it has no entry.
KIND_WORDS: dict[int, tuple[int, int]] = {
    1: (4, 0),  # INT + u32 encoding
    2: (3, 0),  # PTR
    3: (6, 0),  # ARRAY + btf_array
    4: (3, 3),  # STRUCT + btf_member[vlen]
    5: (3, 3),  # UNION
    6: (3, 2),  # ENUM + btf_enum[vlen]
    7: (3, 0),  # FWD
    8: (3, 0),  # TYPEDEF
    9: (3, 0),  # VOLATILE
    10: (3, 0),  # CONST
    11: (3, 0),  # RESTRICT
    12: (3, 0),  # FUNC
    13: (3, 2),  # FUNC_PROTO + btf_param[vlen]
    14: (4, 0),  # VAR + btf_var
    15: (3, 3),  # DATASEC + btf_var_secinfo[vlen]
    16: (3, 0),  # FLOAT
    17: (4, 0),  # DECL_TAG + btf_decl_tag
    18: (3, 0),  # TYPE_TAG
    19: (3, 3),  # ENUM64 + btf_enum64[vlen]
}

# btf_type.info: bits 16-23 and 29-30 are unused in the 6.12 UAPI and the kernel rejects
# BTF that sets them (BTF_INFO_MASK). A newer format may use them: refuse rather than guess.
INFO_RESERVED = 0x60FF0000

# Bytes of a name that the name index sorts by; longer names are compared in full on lookup.
NAME_KEY = 32
KEY_STRUCT = struct.Struct(f"{NAME_KEY}s")

Words = Sequence[int]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from mmap import mmap

    Buffer = bytes | memoryview | mmap


class WalkError(Exception):
    """Internal: the type section does not split into records (reader turns it into BtfError)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index  # 0-based index of the offending record
        self.message = message


def record_words(info: int, layout: Sequence[tuple[int, int]] | None) -> int:
    """Words taken by a type record whose info word is `info`, or raise ValueError(why)."""
    if info & INFO_RESERVED:
        raise ValueError(
            f"info word 0x{info:08x} sets reserved bits (0x{info & INFO_RESERVED:08x}); "
            "this BTF may come from a newer format"
        )
    kind = (info >> 24) & 0x1F
    vlen = info & 0xFFFF
    known = KIND_WORDS.get(kind)
    if known is not None:
        return known[0] + vlen * known[1]
    if layout is not None and 0 < kind < len(layout):
        # A kind this code does not know, described by the layout section (newer BTF).
        info_sz, elem_sz = layout[kind]
        if info_sz % 4 or elem_sz % 4:
            raise ValueError(f"layout of kind {kind} is not a multiple of 4 bytes")
        return 3 + (info_sz + vlen * elem_sz) // 4
    raise ValueError(f"unknown kind {kind}")


def walk(
    words: Words,
    nwords: int,
    layout: Sequence[tuple[int, int]] | None,
    names: array[int] | None = None,
) -> array[int]:
    """The word offset of every type record in `words` (a u32 view of the type section).

    With `names`, also appends each record's name_off to it, in the same pass: the cold
    path's name lookups scan them (cheaper here than a gather over the offsets afterwards).
    Raises WalkError naming the record that is unknown, truncated or runs past the end.
    """
    # Look up info words through a view that starts at word 1, so the hot loop indexes with
    # `pos` itself; running off the end raises IndexError, which ends the loop for free.
    if isinstance(words, memoryview):
        info_at: Words = words[1:]
    else:
        info_at = memoryview(words)[1:]  # type: ignore[arg-type]
    sizes: dict[int, int] = {}
    # An array, not a list: no int object is kept per type (less memory, fewer page
    # faults in a fresh process, and no list -> array copy afterwards).
    offs = array("I")
    append = offs.append
    pos = 0
    while True:
        try:
            if names is None:
                while True:
                    append(pos)
                    pos += sizes[info_at[pos]]
            else:
                name_append = names.append
                while True:
                    append(pos)
                    name_append(words[pos])
                    pos += sizes[info_at[pos]]
        except KeyError as exc:
            # First time this info word is seen: compute its size and resume at `pos`.
            offs.pop()
            if names is not None:
                names.pop()
            info = exc.args[0]
            try:
                sizes[info] = record_words(info, layout)
            except ValueError as why:
                raise WalkError(len(offs), str(why)) from None
        except IndexError:
            break
    last = offs.pop()
    if names is not None and len(names) > len(offs):
        names.pop()  # the name_off of a record cut off at the end
    if last == nwords:
        return offs
    if last < nwords:
        raise WalkError(
            len(offs),
            f"type section ends inside a type record ({(nwords - last) * 4} bytes left, "
            "a record needs at least 12)",
        )
    start = offs[-1]
    raise WalkError(
        len(offs) - 1,
        f"record of {(last - start) * 4} bytes (info 0x{info_at[start]:08x}) runs "
        f"{(last - nwords) * 4} bytes past the end of the type section",
    )


# Types per step of the name index build: bounds the temporary Python objects.
_CHUNK = 16384


class BadNameOffset(Exception):
    """Internal: record `index` has a name offset past the string section."""

    def __init__(self, index: int, offset: int) -> None:
        super().__init__(index, offset)
        self.index = index
        self.offset = offset


def gather_name_offsets(offsets: Words, words: Words) -> array[int]:
    """The name_off of every type record (gathered at C speed)."""
    out = array("I")
    for c in range(0, len(offsets), _CHUNK):
        chunk = offsets[c : c + _CHUNK]
        out.extend(itemgetter(*chunk)(words) if len(chunk) > 1 else (words[chunk[0]],))
    return out


class NameOffsets:
    """The name_off of every own type, searched without a name index (the cold path).

    A lookup searches the low 16 bits of each name_off first: `bytes.find` skips fast
    through a 2-byte needle of two busy bytes, where a 4-byte one ending in the high byte
    of a name_off (0 for every string section under 16 MB) keeps stopping: ~0.3 ms
    against ~1.1 ms per lookup on 126k kernel types. Each hit is checked in full.
    """

    __slots__ = ("full", "low")

    def __init__(self, full: array[int]) -> None:
        self.full = full
        halves = array("H", full.tobytes())
        self.low = (halves[::2] if sys.byteorder == "little" else halves[1::2]).tobytes()

    def indexes(self, name_off: int) -> list[int]:
        """Indexes (ascending) of the types whose name_off is `name_off`."""
        needle = (name_off & 0xFFFF).to_bytes(2, sys.byteorder)
        low, full = self.low, self.full
        out = []
        q = low.find(needle)
        while q >= 0:
            if not q & 1 and full[q >> 1] == name_off:
                out.append(q >> 1)
            q = low.find(needle, q + 1)
        return out


def build_name_index(
    offsets: Words,
    words: Words,
    start_id: int,
    str_end: int,
    key_of: Callable[[int], bytes] | None,
    strs: Buffer,
) -> tuple[array[int], array[int]]:
    """(ids, name_offs) of the named types, sorted by `NAME_KEY`-byte keys of their names.

    Without `key_of`, every name is local and its key is read from `strs` (the string
    section, followed by at least NAME_KEY bytes that the lookup side reads the same way)
    by `struct.unpack_from`, mapped at C speed. Split BTF passes `key_of` to reach the
    base's strings. Raises BadNameOffset for a name offset >= `str_end`.
    """
    n = len(offsets)
    ids: list[int] = []
    noffs: list[int] = []
    keys: list[bytes] = []
    for c in range(0, n, _CHUNK):
        chunk = offsets[c : c + _CHUNK]
        # name_off of each record: itemgetter gathers them at C speed.
        names = itemgetter(*chunk)(words) if len(chunk) > 1 else (words[chunk[0]],)
        if max(names) >= str_end:
            bad = next(i for i, v in enumerate(names) if v >= str_end)
            raise BadNameOffset(c + bad, names[bad])
        named = list(compress(names, names))
        ids += compress(range(start_id + c, start_id + c + len(chunk)), names)
        noffs += named
        if key_of is None:
            keys += map(_first, map(KEY_STRUCT.unpack_from, repeat(strs), named))
        else:
            keys += map(key_of, named)
        del names, named
    if not ids:
        return array("I"), array("I")
    # Bytes keys sort faster than the 1-tuples unpack_from returns, hence _first above.
    order = sorted(range(len(ids)), key=keys.__getitem__)
    del keys
    if len(order) == 1:
        return array("I", ids), array("I", noffs)
    gather = itemgetter(*order)
    return array("I", gather(ids)), array("I", gather(noffs))


_first = itemgetter(0)


# --------------------------------------------------------------------------------------
# On-disk cache
# --------------------------------------------------------------------------------------

_MAGIC = b"BPFOBJ-BTFIDX\x00\x00\x03"  # 16 bytes; the last byte is the format version
_HEAD = struct.Struct("=16s32sIIIIII")  # magic, key, ntypes, nwords, nnamed, key len, crc, bom
_BOM = 0x01020304  # written in native order: a cache from another byte order is ignored
_NO_NAMES = 0xFFFFFFFF


def cache_dir() -> str | None:
    """``$BPFOBJ_CACHE_DIR/btf``, else ``$XDG_CACHE_HOME/bpfobj/btf``, else
    ``~/.cache/bpfobj/btf``. ``BPFOBJ_CACHE_DIR=off`` (or ``none``, ``0``) disables it."""
    env = os.environ.get("BPFOBJ_CACHE_DIR")
    if env is not None:
        if env.strip().lower() in ("", "off", "none", "0", "no", "false"):
            return None
        return os.path.join(env, "btf")
    xdg = os.environ.get("XDG_CACHE_HOME")
    if not xdg or not os.path.isabs(xdg):
        home = os.path.expanduser("~")
        if home == "~":
            return None
        xdg = os.path.join(home, ".cache")
    return os.path.join(xdg, "bpfobj", "btf")


def content_key(raw: Buffer, base_key: bytes | None) -> bytes:
    """16 bytes naming the blob's content: its length and CRC-32 over all of it, and the
    CRC-32 of the base's key for split BTF.

    CRC-32 rather than sha256: it costs 1.4 ms on kernel BTF where sha256 costs 4 ms plus
    ~4 ms to import OpenSSL's hashlib in a fresh process, more than the whole warm load.
    A collision with the same length would have to pass `Btf`'s consistency check of the
    offsets as well; and the cache only ever holds what this user's processes wrote.
    """
    base = 0 if base_key is None else zlib.crc32(base_key) | 1 << 32
    return struct.pack("<QIQ", len(raw), zlib.crc32(raw), base)[:16]


class CacheEntry:
    """Arrays of u32 read from a cache file (memoryviews over the file's bytes)."""

    __slots__ = ("name_ids", "name_offs", "offsets")

    def __init__(
        self,
        offsets: memoryview,
        name_ids: memoryview | None,
        name_offs: memoryview | None,
    ) -> None:
        self.offsets = offsets
        self.name_ids = name_ids
        self.name_offs = name_offs


def cache_path(directory: str, key: bytes) -> str:
    return os.path.join(directory, key.hex() + ".idx")


def cache_may_hold(directory: str, size: int) -> bool:
    """Whether `directory` may hold the index of a blob of `size` bytes: a file name starts
    with the content key, whose first 8 bytes are the size. False means never seen, with
    no need to checksum the blob first."""
    prefix = struct.pack("<Q", size).hex()
    return any(name.startswith(prefix) for name in _listdir(directory))


def cache_load(path: str, key: bytes, nwords: int) -> CacheEntry | None:
    """The entry stored at `path` for `key`, or None when absent, stale or corrupt."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    if len(blob) < _HEAD.size:
        return None
    magic, fkey, ntypes, fnwords, nnamed, keylen, crc, bom = _HEAD.unpack_from(blob)
    if magic != _MAGIC or fkey != key.ljust(32, b"\0") or bom != _BOM or fnwords != nwords:
        return None
    named = 0 if nnamed == _NO_NAMES else nnamed
    body = memoryview(blob)[_HEAD.size :]
    if len(body) != 4 * (ntypes + 2 * named) or zlib.crc32(body) != crc:
        return None
    words = body.cast("I")  # the header size is a multiple of 4: aligned
    offsets = words[:ntypes]
    if nnamed == _NO_NAMES or keylen != NAME_KEY:
        # No name index yet, or one sorted with another key length: rebuild it on demand.
        return CacheEntry(offsets, None, None)
    return CacheEntry(offsets, words[ntypes : ntypes + named], words[ntypes + named :])


def cache_store(
    path: str,
    key: bytes,
    nwords: int,
    offsets: memoryview,
    name_ids: memoryview | None,
    name_offs: memoryview | None,
) -> bool:
    """Write the entry atomically (temp file + rename). Any OS error is swallowed: the
    cache only saves time, so a read-only or full disk must never fail the load."""
    parts = [offsets.tobytes()]
    nnamed = _NO_NAMES
    if name_ids is not None and name_offs is not None:
        nnamed = len(name_ids)
        parts += [name_ids.tobytes(), name_offs.tobytes()]
    body = b"".join(parts)
    head = _HEAD.pack(
        _MAGIC,
        key.ljust(32, b"\0"),
        len(offsets),
        nwords,
        nnamed,
        NAME_KEY,
        zlib.crc32(body),
        _BOM,
    )
    return _write_atomic(path, head + body)


BOOT_ID = "/proc/sys/kernel/random/boot_id"


def boot_id() -> str:
    """This boot's id ("" when it cannot be read): what per-boot caches are keyed by."""
    try:
        with open(BOOT_ID, encoding="ascii", errors="replace") as f:
            return f.read(64).strip()
    except OSError:
        return ""


class KernelSnapshot:
    """A copy of the running kernel's BTF in the cache, valid until the next boot.

    ``vmlinux-<boot id>.btf`` holds the bytes and ``vmlinux-<boot id>.key`` their content
    key (written second: a snapshot without its key is ignored). Kernel BTF cannot change
    while the system runs, so the boot id and the size of the sysfs file identify it; a
    snapshot of another boot is deleted when a new one is written.
    """

    __slots__ = ("btf_path", "directory", "key_path", "size")

    def __init__(self, directory: str, boot: str, size: int) -> None:
        self.directory = directory
        self.btf_path = os.path.join(directory, f"vmlinux-{boot}.btf")
        self.key_path = os.path.join(directory, f"vmlinux-{boot}.key")
        self.size = size

    @classmethod
    def for_running_kernel(cls, sysfs_path: str) -> KernelSnapshot | None:
        directory = cache_dir()
        if directory is None:
            return None
        boot = boot_id()
        try:
            size = os.stat(sysfs_path).st_size
        except OSError:
            return None
        if not boot or not all(c.isalnum() or c == "-" for c in boot):
            return None
        return cls(directory, boot, size)

    def load(self) -> tuple[mmap, bytes] | None:
        """The snapshot mapped read-only, and its content key; None when absent or stale."""
        import mmap as _mmap

        try:
            with open(self.key_path, "rb") as f:
                key = f.read(17)
            with open(self.btf_path, "rb") as f:
                if len(key) != 16 or os.fstat(f.fileno()).st_size != self.size or not self.size:
                    return None
                return _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ), key
        except (OSError, ValueError):
            return None

    def store(self, data: Buffer, key: bytes) -> None:
        """Write the snapshot (atomically; errors are ignored: it only saves time)."""
        if len(data) != self.size or os.path.exists(self.key_path):
            return
        for name in _listdir(self.directory):
            if name.startswith("vmlinux-") and name.endswith((".btf", ".key")):
                _unlink(os.path.join(self.directory, name))  # another boot's
        if _write_atomic(self.btf_path, data):
            _write_atomic(self.key_path, key)


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _write_atomic(path: str, data: Buffer) -> bool:
    tmp = f"{path}.{os.getpid()}.{id(data):x}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        _unlink(tmp)
        return False
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
