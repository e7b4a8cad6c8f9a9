"""`Btf`: a lazy reader of raw BTF (a .BTF section, /sys/kernel/btf/*, a raw BTF file).

Parsing checks the header and the string section and splits the type section into records
(one pass; see `bpfobj.btf.index`). Types are decoded one by one when asked for, and every
check that needs a decoded type (string offsets, referenced ids, linkage, cycles) happens
then, so a corrupt record fails the call that touches it with a `BtfError` naming it.
`validate()` touches them all.

Type ids: 0 is void; a base BTF holds ids 1..N. Split BTF (kernel modules, btf.rst "split
BTF") continues the base's numbering: its own types start at ``len(base) + 1`` and its
string offsets start after the base's string section. ``len(btf)`` counts every type but
void, the base's included, so valid ids are ``0..len(btf)``.
"""

from __future__ import annotations

import os
import struct
import sys
from _thread import allocate_lock, start_new_thread
from array import array
from bisect import bisect_left
from collections import namedtuple
from collections.abc import Callable, Iterator
from itertools import pairwise

from bpfobj.btf import index as _index
from bpfobj.errors import BpfObjError, BtfError, NotSupportedError
from bpfobj.uapi import BtfFuncLinkage, BtfKind, BtfVarLinkage

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from mmap import mmap
    from typing import NamedTuple

    from bpfobj.btf.types import BtfType

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
# Bytes of struct btf_header: without and with the layout fields (layout_off/layout_len,
# added after 6.12 so newer BTF can describe kinds an older reader does not know).
HDR_MIN_LEN = 24
HDR_LAYOUT_LEN = 32
# Type sections at least this big use the on-disk index cache when `cache` is left None:
# hashing costs more than walking a small object's BTF.
AUTO_CACHE_MIN = 256 * 1024

KERNEL_BTF_DIR = "/sys/kernel/btf"
# Files at least this big are read into a pre-faulted mmap (see _read_file).
_MMAP_MIN = 1 << 20
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"

_HINT_CORRUPT = "the BTF is corrupt or truncated; rebuild the object or regenerate the BTF"
_HINT_NEWER = "this BTF uses a newer format than bpfobj knows; update bpfobj"
_HINT_SPLIT = ("this looks like split BTF (a kernel module's): give its base BTF "
               "(base=load_kernel_btf() or another Btf in Python; --base PATH on the "
               "command line)")

# BtfKind by number; kinds past ENUM64 (only reachable through a layout section) are UNKN.
_KINDS: tuple[BtfKind, ...] = tuple(BtfKind(k) for k in range(20)) + (BtfKind.UNKN,) * 12
_K_INT, _K_PTR, _K_ARRAY, _K_STRUCT, _K_UNION, _K_ENUM, _K_FWD = 1, 2, 3, 4, 5, 6, 7
_K_TYPEDEF, _K_VOLATILE, _K_CONST, _K_RESTRICT, _K_FUNC, _K_PROTO = 8, 9, 10, 11, 12, 13
_K_VAR, _K_DATASEC, _K_FLOAT, _K_DECL_TAG, _K_TYPE_TAG, _K_ENUM64 = 14, 15, 16, 17, 18, 19

# Names libbpf's determine_ptr_size() accepts for `long` (btf.c).
_LONG_NAMES = frozenset(
    {
        b"long",
        b"long int",
        b"int long",
        b"unsigned long",
        b"long unsigned",
        b"unsigned long int",
        b"unsigned int long",
        b"long unsigned int",
        b"long int unsigned",
        b"int unsigned long",
        b"int long unsigned",
    }
)
_U32_MAX = 0xFFFFFFFF


# struct btf_header as found (layout fields are 0 when hdr_len < 32). The functional form:
# a NamedTuple class statement makes the process's first compile() (~10M instructions
# building the ast module's classes, ~3.7 ms at start-up; see bpfobj.btf.types).
# At run time collections.namedtuple: the same class, without importing typing.
if TYPE_CHECKING:
    BtfHeader = NamedTuple(  # noqa: UP014
        "BtfHeader",
        [
            ("magic", int),
            ("version", int),
            ("flags", int),
            ("hdr_len", int),
            ("type_off", int),
            ("type_len", int),
            ("str_off", int),
            ("str_len", int),
            ("layout_off", int),
            ("layout_len", int),
        ],
    )
else:
    BtfHeader = namedtuple(
        "BtfHeader",
        ["magic", "version", "flags", "hdr_len", "type_off",
         "type_len", "str_off", "str_len", "layout_off", "layout_len"],
    )


class Btf:
    """Raw BTF, indexed lazily. Build with `Btf.parse`, `load_kernel_btf`, `load_raw_file`."""

    __slots__ = (
        "__weakref__",
        "_buf",
        "_cache_dir",
        "_cache_key",
        "_cache_path",
        "_count",
        "_defer_index",
        "_key_of",
        "_layout",
        "_n",
        "_name_ids",
        "_name_offs",
        "_offs",
        "_ptr_size",
        "_raw_bytes",
        "_s0",
        "_scan_flavors",
        "_scan_noffs",
        "_scans",
        "_str_end",
        "_str_len",
        "_types",
        "_w",
        "_words_start",
        "base",
        "byteorder",
        "header",
        "label",
        "start_id",
        "start_str_off",
    )

    label: str  # the `name` given to parse(): labels errors and repr
    base: Btf | None
    byteorder: str
    header: BtfHeader
    start_id: int
    start_str_off: int
    _w: memoryview  # u32 words of the type section, in host order
    _offs: memoryview  # u32 word offset of each own type
    _n: int  # own types
    _count: int  # all types but void, the base's included
    _buf: bytes | mmap  # the blob: bytes, or a populated anonymous mmap for a file
    _raw_bytes: bytes | None
    _s0: int  # byte offset of the string section in `raw`
    _str_len: int
    _str_end: int  # first string offset past this blob's strings
    _words_start: int  # byte offset of the type section in `raw`
    _layout: tuple[tuple[int, int], ...] | None
    _types: dict[int, BtfType]
    _ptr_size: int | None
    _name_ids: memoryview | None  # the name index: ids sorted by name key ...
    _name_offs: memoryview | None  # ... and their name offsets
    _scan_noffs: _index.NameOffsets | None  # name_off of every own type, for scans
    _scan_flavors: tuple[bytes, list[int]] | None  # the last exact scan's NAME___* strings
    _scans: int  # lookups answered by scanning (no name index yet)
    _defer_index: bool  # scan first, build the name index at exit (the running kernel's)
    _cache_dir: str | None  # where this BTF's index is cached (None: not cached)
    _cache_key: bytes | None
    _cache_path: str | None
    _key_of: Callable[[int], bytes]

    def __init__(self) -> None:
        raise TypeError("use Btf.parse(), load_kernel_btf() or load_raw_file()")

    # ----------------------------------------------------------------------------------
    # Parsing
    # ----------------------------------------------------------------------------------

    @classmethod
    def parse(
        cls,
        data: bytes | bytearray | memoryview,
        *,
        base: Btf | None = None,
        name: str = "",
        cache: bool | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Btf:
        """Parse raw BTF in either byte order; `base` makes it split BTF on top of `base`.

        `name` labels errors (an object or module name). `cache`: True/False forces the
        on-disk index cache on/off; None uses it for big BTF only (kernel BTF). `cache_dir`
        overrides ``$BPFOBJ_CACHE_DIR`` / ``$XDG_CACHE_HOME``.

        Raises BtfError (and nothing else) for input that is not valid BTF.
        """
        buf = data if isinstance(data, bytes) else bytes(data)
        return cls._from_buffer(buf, base, name, cache, cache_dir)

    @classmethod
    def _from_buffer(
        cls,
        buf: bytes | mmap,
        base: Btf | None,
        name: str,
        cache: bool | None,
        cache_dir: str | os.PathLike[str] | None,
        content_key: bytes | None = None,
        defer_index: bool = False,
    ) -> Btf:
        self = object.__new__(cls)
        self.label = name
        try:
            self._parse(buf, base, cache, cache_dir, content_key, defer_index)
        except BtfError:
            raise
        except Exception as exc:  # a bug must still surface as the documented error type
            raise self._err(
                f"cannot parse BTF ({type(exc).__name__}: {exc})",
                hint="this is likely a bpfobj bug; please report it",
            ) from exc
        return self

    def _parse(
        self,
        raw: bytes | mmap,
        base: Btf | None,
        cache: bool | None,
        cache_dir: str | os.PathLike[str] | None,
        content_key: bytes | None = None,
        defer_index: bool = False,
    ) -> None:
        self._buf = raw
        self._raw_bytes = raw if isinstance(raw, bytes) else None
        self.base = base
        self._types = {}
        self._ptr_size = None
        self._name_ids = None
        self._name_offs = None
        self._scan_noffs = None
        self._scan_flavors = None
        self._scans = 0
        self._defer_index = defer_index
        self._cache_dir = None
        self._cache_key = None
        self._cache_path = None
        size = len(raw)

        # --- header -------------------------------------------------------------------
        if size < 8:
            raise self._err(f"truncated header: {size} bytes, a BTF header needs {HDR_MIN_LEN}")
        if raw[0] == 0x9F and raw[1] == 0xEB:
            self.byteorder, fmt = "little", "<"
        elif raw[0] == 0xEB and raw[1] == 0x9F:
            self.byteorder, fmt = "big", ">"
        else:
            raise self._err(
                f"bad magic 0x{raw[0]:02x}{raw[1]:02x}: not BTF (expected 0xeb9f)",
                hint="pass the contents of a .BTF section or of a raw BTF file",
            )
        version, flags, hdr_len = struct.unpack_from(fmt + "BBI", raw, 2)
        if version != BTF_VERSION:
            raise self._err(f"unsupported BTF version {version} (only 1 exists)", hint=_HINT_NEWER)
        if hdr_len < HDR_MIN_LEN:
            raise self._err(
                f"header length {hdr_len} is shorter than {HDR_MIN_LEN}", hint=_HINT_CORRUPT
            )
        if hdr_len > size:
            raise self._err(
                f"truncated header: hdr_len {hdr_len} but only {size} bytes", hint=_HINT_CORRUPT
            )
        type_off, type_len, str_off, str_len = struct.unpack_from(fmt + "4I", raw, 8)
        layout_off = layout_len = 0
        if hdr_len >= HDR_LAYOUT_LEN:
            layout_off, layout_len = struct.unpack_from(fmt + "2I", raw, 24)
        # Header bytes past the fields known here are accepted (and ignored), as libbpf does.
        self.header = BtfHeader(
            BTF_MAGIC,
            version,
            flags,
            hdr_len,
            type_off,
            type_len,
            str_off,
            str_len,
            layout_off,
            layout_len,
        )

        body = size - hdr_len
        sections = [("type", type_off, type_len), ("string", str_off, str_len)]
        if layout_len:
            sections.append(("layout", layout_off, layout_len))
        for what, off, length in sections:
            if off + length > body:
                raise self._err(
                    f"{what} section (offset {off}, {length} bytes) runs past the end of the "
                    f"data ({body} bytes after the header)",
                    hint=_HINT_CORRUPT,
                )
        present = sorted((off, off + length, what) for what, off, length in sections if length)
        for (_, end, first), (nxt, _, second) in pairwise(present):
            if end > nxt:
                raise self._err(f"{first} and {second} sections overlap", hint=_HINT_CORRUPT)
        if type_off % 4 or type_len % 4:
            raise self._err(
                f"type section (offset {type_off}, {type_len} bytes) is not 4-byte aligned",
                hint=_HINT_CORRUPT,
            )

        # --- strings --------------------------------------------------------------------
        s0 = hdr_len + str_off
        if str_len == 0 and base is None:
            raise self._err('empty string section (it must at least hold "")', hint=_HINT_CORRUPT)
        if str_len and raw[s0 + str_len - 1] != 0:
            raise self._err("string section does not end with a NUL byte", hint=_HINT_CORRUPT)
        if str_len and base is None and raw[s0] != 0:
            raise self._err('string section does not start with ""', hint=_HINT_SPLIT)
        self._s0 = s0
        self._str_len = str_len
        self.start_str_off = 0 if base is None else base._str_end
        self._str_end = self.start_str_off + str_len

        # --- layout (newer BTF: how to skip kinds this reader does not know) -------------
        self._layout = None
        if layout_len:
            if layout_off % 4 or layout_len % 4:
                raise self._err("layout section is not 4-byte aligned", hint=_HINT_CORRUPT)
            l0 = hdr_len + layout_off
            self._layout = tuple((raw[p], raw[p + 1]) for p in range(l0, l0 + layout_len, 4))
        elif base is not None:
            self._layout = base._layout  # split BTF shares the base's layout (libbpf)

        # --- types ----------------------------------------------------------------------
        t0 = hdr_len + type_off
        self._words_start = t0
        view = memoryview(raw)[t0 : t0 + type_len]
        if self.byteorder == sys.byteorder:
            words = view.cast("I")
        else:
            swapped = array("I")
            swapped.frombytes(view)
            swapped.byteswap()
            words = memoryview(swapped)
        self._w = words
        nwords = len(words)
        self.start_id = 1 if base is None else len(base) + 1

        entry = None
        if cache if cache is not None else type_len >= AUTO_CACHE_MIN:
            directory = os.fspath(cache_dir) if cache_dir is not None else _index.cache_dir()
            self._cache_dir = directory or None
            # The running kernel's BTF with no cached index of its length was never seen
            # here: its key (a CRC of 5 MB) is left for the index store, at exit.
            never_seen = (
                defer_index
                and content_key is None
                and directory is not None
                and not _index.cache_may_hold(directory, len(raw))
            )
            if directory and not never_seen:
                self._cache_key = content_key or _index.content_key(
                    raw, base._content_key() if base is not None else None
                )
                self._cache_path = _index.cache_path(directory, self._cache_key)
                entry = _index.cache_load(self._cache_path, self._cache_key, nwords)
                if entry is not None and not self._plausible(entry, nwords):
                    entry = None
        if entry is not None:
            self._offs = entry.offsets
            self._name_ids, self._name_offs = entry.name_ids, entry.name_offs
        else:
            # A deferred index answers its first lookups by scanning the name_offs: the
            # walk collects them on its way.
            names = array("I") if defer_index and self._cache_dir is not None else None
            try:
                offs = _index.walk(words, nwords, self._layout, names)
            except _index.WalkError as exc:
                tid = self.start_id + exc.index
                hint = _HINT_NEWER if "newer" in exc.message else _HINT_CORRUPT
                raise self._err(exc.message, tid, hint=hint, describe=False) from None
            self._offs = memoryview(offs)
            if names is not None:
                self._scan_noffs = _index.NameOffsets(names)
            if self._cache_path is not None and self._cache_key is not None and not defer_index:
                # (A deferred index stores the offsets with the names, at exit.)
                _index.cache_store(
                    self._cache_path, self._cache_key, nwords, self._offs, None, None
                )
        if defer_index and self._cache_dir is not None and self._name_ids is None:
            _index_at_exit(self, offsets_cached=entry is not None)
        self._n = len(self._offs)
        self._count = self.start_id - 1 + self._n
        self._key_of = self._make_key_of()

    def _plausible(self, entry: _index.CacheEntry, nwords: int) -> bool:
        """Cheap checks that a cache entry (whose own CRC matched) fits this blob: the
        first record starts at 0, ~256 sampled records (the last one included) end where
        the next begins, and the last ends exactly at the end of the type section."""
        offs = entry.offsets
        n = len(offs)
        if not n:
            return nwords == 0
        if offs[0] != 0 or offs[-1] + 1 >= nwords:
            return False
        w, layout = self._w, self._layout
        try:
            for i in (*range(0, n - 1, max(1, n // 256)), n - 1):
                end = offs[i + 1] if i + 1 < n else nwords
                if offs[i] + _index.record_words(w[offs[i] + 1], layout) != end:
                    return False
        except (ValueError, IndexError):
            return False
        if entry.name_ids is not None and entry.name_offs is not None:
            return len(entry.name_ids) == len(entry.name_offs) <= n
        return True

    def _content_key(self) -> bytes:
        """The cache key of this BTF (hashing it now if the cache was not used)."""
        if self._cache_key is None:
            self._cache_key = _index.content_key(
                self._buf, self.base._content_key() if self.base is not None else None
            )
        return self._cache_key

    def _cache_file(self) -> str:
        """Path of this BTF's index in the cache (`_cache_dir` must be set)."""
        if self._cache_path is None:
            assert self._cache_dir is not None
            self._cache_path = _index.cache_path(self._cache_dir, self._content_key())
        return self._cache_path

    @property
    def raw(self) -> bytes:
        """The BTF blob as given (for a file read by `load_kernel_btf` / `load_raw_file`, a
        copy made on first access: those keep the data in a pre-faulted mmap)."""
        if self._raw_bytes is None:
            self._raw_bytes = bytes(self._buf)
        return self._raw_bytes

    # ----------------------------------------------------------------------------------
    # Errors
    # ----------------------------------------------------------------------------------

    def _err(
        self,
        message: str,
        type_id: int | None = None,
        *,
        hint: str | None = _HINT_CORRUPT,
        describe: bool = True,
    ) -> BtfError:
        where = None
        if type_id is not None:
            where = f"[{type_id}]"
            if describe:
                where = self._describe(type_id)
        return BtfError(message, obj=self.label or None, section=".BTF", type=where, hint=hint)

    def _describe(self, type_id: int) -> str:
        """``[id] KIND 'name'`` without raising (the record itself may be what is bad)."""
        try:
            i = type_id - self.start_id
            if i < 0 and self.base is not None:
                return self.base._describe(type_id)
            if not 0 <= i < self._n:
                return f"[{type_id}]"
            off = self._offs[i]
            info = self._w[off + 1]
            kind = (info >> 24) & 0x1F
            kname = _KINDS[kind].name if 0 < kind < 20 else f"kind {kind}"
            name_off = self._w[off]
            name = "(anon)"
            if name_off:
                raw = self._str_bytes_or_none(name_off)
                name = "<bad name offset>" if raw is None else raw.decode("utf-8", "replace")
            return f"[{type_id}] {kname} '{name}'"
        except Exception:
            return f"[{type_id}]"

    # ----------------------------------------------------------------------------------
    # Sizes and ids
    # ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of types excluding void, the base's included (valid ids: 0..len)."""
        return self._count

    @property
    def type_count(self) -> int:
        """Same as ``len(btf)``: types excluding void, the base's included."""
        return self._count

    @property
    def own_count(self) -> int:
        """Types defined in this blob (``len(btf)`` minus the base's)."""
        return self._n

    def own_ids(self) -> range:
        """The ids defined in this blob: ``start_id .. len(btf)``."""
        return range(self.start_id, self.start_id + self._n)

    def __iter__(self) -> Iterator[int]:
        """Every type id but void, the base's first (``1 .. len(btf)``)."""
        return iter(range(1, self._count + 1))

    def __contains__(self, type_id: object) -> bool:
        return isinstance(type_id, int) and 0 <= type_id <= self._count

    def __repr__(self) -> str:
        label = f" {self.label!r}" if self.label else ""
        split = f", split on {self.base!r}" if self.base is not None else ""
        return f"<Btf{label}: {self._count} types, {self.byteorder}-endian{split}>"

    def _local(self, type_id: int) -> int:
        """Index of `type_id` in this blob's records; raises for ids it does not hold."""
        i = type_id - self.start_id
        if 0 <= i < self._n:
            return i
        if isinstance(type_id, bool) or not isinstance(type_id, int):
            raise TypeError(f"type id must be an int, not {type(type_id).__name__}")
        raise self._err(
            f"type id {type_id} is out of range (valid ids: 0..{self._count})",
            describe=False,
            hint="use an id below len(btf); ids of split BTF continue the base's",
        )

    # ----------------------------------------------------------------------------------
    # Cheap accessors (no decoding)
    # ----------------------------------------------------------------------------------

    def kind(self, type_id: int) -> BtfKind:
        """The kind of `type_id` (UNKN for void and for kinds this reader does not know)."""
        if type_id < self.start_id:
            if type_id == 0:
                return BtfKind.UNKN
            if self.base is not None and type_id > 0:
                return self.base.kind(type_id)
        off = self._offs[self._local(type_id)]
        return _KINDS[(self._w[off + 1] >> 24) & 0x1F]

    def raw_kind(self, type_id: int) -> int:
        """The kind number as encoded (differs from `kind` only for unknown kinds)."""
        if type_id < self.start_id:
            if type_id == 0:
                return 0
            if self.base is not None and type_id > 0:
                return self.base.raw_kind(type_id)
        return (self._w[self._offs[self._local(type_id)] + 1] >> 24) & 0x1F

    def name(self, type_id: int) -> str:
        """The name of `type_id` ("" when anonymous) without decoding the type."""
        if type_id < self.start_id:
            if type_id == 0:
                return ""
            if self.base is not None and type_id > 0:
                return self.base.name(type_id)
        name_off = self._w[self._offs[self._local(type_id)]]
        if not name_off:
            return ""
        raw = self._str_bytes_or_none(name_off)
        if raw is None:
            raise self._bad_string(name_off, type_id, "name")
        return raw.decode("utf-8", "surrogateescape")

    def string(self, offset: int) -> str:
        """The string at `offset` of the string section (split BTF: base's come first)."""
        raw = self._str_bytes_or_none(offset)
        if raw is None:
            raise self._bad_string(offset, None, "string")
        return raw.decode("utf-8", "surrogateescape")

    def _str_bytes_or_none(self, offset: int) -> bytes | None:
        local = offset - self.start_str_off
        if local < 0:
            if self.base is not None and offset >= 0:
                return self.base._str_bytes_or_none(offset)
            return None
        if local >= self._str_len:
            return None
        a = self._s0 + local
        buf = self._buf
        return buf[a : buf.find(b"\0", a)]  # the section ends with a NUL: always found

    def _bad_string(self, offset: int, type_id: int | None, what: str) -> BtfError:
        msg = f"{what} offset 0x{offset:x} is past the string section (size 0x{self._str_end:x})"
        hint = _HINT_CORRUPT
        if self.base is None and type_id is not None:
            hint = f"{_HINT_CORRUPT} (or it is split BTF loaded without its base)"
        return self._err(msg, type_id, hint=hint, describe=False)

    # ----------------------------------------------------------------------------------
    # Decoding
    # ----------------------------------------------------------------------------------

    def type(self, type_id: int) -> BtfType:
        """The decoded type `type_id` (cached). Raises BtfError if its record is corrupt."""
        t = self._types.get(type_id)
        if t is not None:
            return t
        if type_id < self.start_id:
            if type_id == 0:
                return _void()
            if self.base is not None and type_id > 0:
                return self.base.type(type_id)
        i = self._local(type_id)
        try:
            t = self._decode(type_id, i)
        except BtfError:
            raise
        except Exception as exc:  # a bug must still surface as the documented error type
            raise self._err(
                f"cannot decode type ({type(exc).__name__}: {exc})",
                type_id,
                hint="this is likely a bpfobj bug; please report it",
            ) from exc
        self._types[type_id] = t
        return t

    __getitem__ = type

    def _decode(self, tid: int, i: int) -> BtfType:
        from bpfobj.btf import types as T  # imported on first decode

        w = self._w
        off = self._offs[i]
        name_off, info, st = w[off], w[off + 1], w[off + 2]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self._str_at(name_off, tid, "name")
        count = self._count

        def ref(x: int, what: str = "type") -> int:
            if x > count:
                raise self._err(
                    f"{what} id {x} is past the last type [{count}]",
                    tid,
                    hint=_HINT_CORRUPT
                    if self.base is not None or x > 0x7FFFFFFF
                    else f"{_HINT_CORRUPT} (or it is split BTF loaded without its base)",
                )
            return x

        if kind == _K_INT:
            v = w[off + 3]
            return T.Int(tid, name, st, (v >> 24) & 0x0F, (v >> 16) & 0xFF, v & 0xFF)
        if kind == _K_PTR:
            return T.Ptr(tid, name, ref(st))
        if kind == _K_ARRAY:
            return T.Array(tid, name, ref(w[off + 3]), ref(w[off + 4], "index type"), w[off + 5])
        if kind in (_K_STRUCT, _K_UNION):
            p = off + 3
            members = []
            for _ in range(vlen):
                bits = w[p + 2]
                if kflag:
                    bit_offset, bitfield_size = bits & 0xFFFFFF, bits >> 24
                else:
                    bit_offset, bitfield_size = bits, 0
                members.append(
                    T.Member(
                        self._str_at(w[p], tid, "member name"),
                        ref(w[p + 1], "member type"),
                        bit_offset,
                        bitfield_size,
                    )
                )
                p += 3
            cls = T.Struct if kind == _K_STRUCT else T.Union
            return cls(tid, name, st, tuple(members), kflag)
        if kind == _K_ENUM:
            values = []
            for p in range(off + 3, off + 3 + 2 * vlen, 2):
                val = w[p + 1]
                if kflag and val & 0x80000000:
                    val -= 1 << 32
                values.append(T.EnumValue(self._str_at(w[p], tid, "enumerator name"), val))
            return T.Enum(tid, name, st, tuple(values), kflag)
        if kind == _K_ENUM64:
            values = []
            for p in range(off + 3, off + 3 + 3 * vlen, 3):
                val = w[p + 1] | (w[p + 2] << 32)
                if kflag and val & (1 << 63):
                    val -= 1 << 64
                values.append(T.EnumValue(self._str_at(w[p], tid, "enumerator name"), val))
            return T.Enum64(tid, name, st, tuple(values), kflag)
        if kind == _K_FWD:
            return T.Fwd(tid, name, kflag)
        if kind == _K_TYPEDEF:
            return T.Typedef(tid, name, ref(st))
        if kind == _K_VOLATILE:
            return T.Volatile(tid, name, ref(st))
        if kind == _K_CONST:
            return T.Const(tid, name, ref(st))
        if kind == _K_RESTRICT:
            return T.Restrict(tid, name, ref(st))
        if kind == _K_TYPE_TAG:
            return T.TypeTag(tid, name, ref(st), kflag)
        if kind == _K_FUNC:
            if vlen > BtfFuncLinkage.EXTERN:
                raise self._err(f"unknown function linkage {vlen}", tid)
            proto = ref(st)
            if self.raw_kind(proto) != _K_PROTO:
                raise self._err(
                    f"function type [{proto}] is a {self.kind(proto).name}, not a FUNC_PROTO", tid
                )
            return T.Func(tid, name, proto, BtfFuncLinkage(vlen))
        if kind == _K_PROTO:
            params = []
            for p in range(off + 3, off + 3 + 2 * vlen, 2):
                params.append(
                    T.Param(
                        self._str_at(w[p], tid, "parameter name"), ref(w[p + 1], "parameter type")
                    )
                )
            return T.FuncProto(tid, name, ref(st, "return type"), tuple(params))
        if kind == _K_VAR:
            linkage = w[off + 3]
            if linkage > BtfVarLinkage.GLOBAL_EXTERN:
                raise self._err(f"unknown variable linkage {linkage}", tid)
            return T.Var(tid, name, ref(st), BtfVarLinkage(linkage))
        if kind == _K_DATASEC:
            secinfos = []
            for p in range(off + 3, off + 3 + 3 * vlen, 3):
                secinfos.append(T.VarSecinfo(ref(w[p], "variable"), w[p + 1], w[p + 2]))
            return T.Datasec(tid, name, st, tuple(secinfos))
        if kind == _K_FLOAT:
            return T.Float(tid, name, st)
        if kind == _K_DECL_TAG:
            idx = w[off + 3]
            if idx & 0x80000000:
                idx -= 1 << 32
            return T.DeclTag(tid, name, ref(st), idx, kflag)
        # A kind described only by the layout section: keep its bytes.
        end = self._offs[i + 1] if i + 1 < self._n else len(w)
        data = self._buf[self._words_start + 4 * (off + 3) : self._words_start + 4 * end]
        return T.Unknown(tid, name, kind, kflag, vlen, st, data)

    def _str_at(self, offset: int, type_id: int, what: str) -> str:
        if not offset:
            return ""
        raw = self._str_bytes_or_none(offset)
        if raw is None:
            raise self._bad_string(offset, type_id, what)
        return raw.decode("utf-8", "surrogateescape")

    def validate(self) -> None:
        """Decode every type of this blob, raising BtfError for the first corrupt one."""
        for tid in self.own_ids():
            self.type(tid)

    # ----------------------------------------------------------------------------------
    # Resolution
    # ----------------------------------------------------------------------------------

    def resolve(self, type_id: int) -> int:
        """Skip typedef/const/volatile/restrict/type_tag from `type_id`; returns an id."""
        from bpfobj.btf.types import MODIFIER_KINDS

        seen: set[int] = set()
        cur = type_id
        while cur:
            t = self.type(cur)
            if t.kind not in MODIFIER_KINDS:
                return cur
            if cur in seen:
                raise self._cycle(type_id, cur)
            seen.add(cur)
            cur = t.type  # type: ignore[attr-defined]
        return 0

    def resolve_type(self, type_id: int) -> BtfType:
        """`type(resolve(type_id))`."""
        return self.type(self.resolve(type_id))

    def size_of(self, type_id: int) -> int:
        """Size in bytes of `type_id`, like libbpf's btf__resolve_size: through modifiers,
        typedefs, vars and decl tags, multiplying array dimensions; pointers take
        `pointer_size`. Raises BtfError for unsized kinds (void, fwd, func, func_proto),
        cycles, and sizes that do not fit 32 bits."""
        from bpfobj.btf import types as T

        nelems = 1
        seen: set[int] = set()
        cur = type_id
        while True:
            if cur in seen:
                raise self._cycle(type_id, cur)
            seen.add(cur)
            t = self.type(cur)
            k = t.kind
            if k in T.SIZED_KINDS:
                size: int = t.size  # type: ignore[attr-defined]
                break
            if k == BtfKind.PTR:
                size = self.pointer_size
                break
            if isinstance(t, T.Array):
                nelems *= t.nelems
                if nelems > _U32_MAX:
                    raise self._err(f"array of {nelems} elements is too big for 32 bits", type_id)
                cur = t.type
                continue
            if isinstance(
                t, T.Typedef | T.Volatile | T.Const | T.Restrict | T.TypeTag | T.Var | T.DeclTag
            ):
                cur = t.type
                continue
            what = "void" if cur == 0 else t.describe()
            via = "" if cur == type_id else f" (reached from {self._describe(type_id)})"
            raise self._err(
                f"{what} has no size{via}",
                cur,
                hint="only int, float, pointer, array, struct, union, enum and datasec "
                "types have a size",
            )
        total = nelems * size
        if total > _U32_MAX:
            raise self._err(f"size {total} does not fit 32 bits", type_id)
        return total

    def _cycle(self, start: int, at: int) -> BtfError:
        return self._err(
            f"type reference cycle through {self._describe(at)}",
            start,
            hint="the BTF is corrupt: a type refers back to itself",
        )

    @property
    def pointer_size(self) -> int:
        """Pointer size of the BTF's target: the size of its `long` (as libbpf finds it),
        8 when it has none (BPF is a 64-bit target)."""
        if self._ptr_size is None:
            self._ptr_size = self._find_long_size()
        return self._ptr_size

    def _find_long_size(self) -> int:
        if self.base is not None:
            size = self.base._find_long_size_or_none()
            if size is not None:
                return size
        size = self._find_long_size_or_none()
        return 8 if size is None else size

    def _find_long_size_or_none(self) -> int | None:
        w, offs = self._w, self._offs
        for i in range(self._n):
            off = offs[i]
            if (w[off + 1] >> 24) & 0x1F != _K_INT or w[off + 2] not in (4, 8):
                continue
            raw = self._str_bytes_or_none(w[off])
            if raw in _LONG_NAMES:
                return int(w[off + 2])
        return None

    # ----------------------------------------------------------------------------------
    # Name lookup
    # ----------------------------------------------------------------------------------

    def find(self, name: str, kind: BtfKind | int | None = None) -> list[int]:
        """Ids (ascending, the base's first) of the types called exactly `name`, optionally
        only those of `kind`. The first call builds a name index (cached on disk with the
        offsets for big BTF)."""
        out = self.base.find(name, kind) if self.base is not None else []
        try:
            out += self._find_local(name.encode("utf-8", "surrogateescape"), kind)
        except BtfError:
            raise
        except Exception as exc:  # a bug must still surface as the documented error type
            raise self._err(
                f"name lookup failed ({type(exc).__name__}: {exc})",
                hint="this is likely a bpfobj bug; please report it",
            ) from exc
        return out

    def _find_local(self, nameb: bytes, kind: BtfKind | int | None) -> list[int]:
        if nameb:
            ids = self._lookup(nameb)
        else:  # anonymous types are not in the index: scan
            w, offs, start = self._w, self._offs, self.start_id
            ids = [t for t in self.own_ids() if self._str_bytes_or_none(w[offs[t - start]]) == b""]
        if kind is not None:
            k = int(kind)
            w, offs, start = self._w, self._offs, self.start_id
            ids = [t for t in ids if (w[offs[t - start] + 1] >> 24) & 0x1F == k]
        return ids

    def find_prefix(self, prefix: str) -> list[int]:
        """Ids (ascending, the base's first) of the types whose name starts with `prefix`
        (not empty): a range of the sorted name index, no scan. CO-RE uses it to find the
        ``name___flavor`` candidates of a type."""
        if not prefix:
            raise ValueError("find_prefix() needs a non-empty prefix")
        out = self.base.find_prefix(prefix) if self.base is not None else []
        nameb = prefix.encode("utf-8", "surrogateescape")
        if self._scan_first():
            return out + self._scan_names(nameb, exact=False)
        ids, noffs = self._name_index()
        target = nameb[: _index.NAME_KEY]
        key_of = self._key_of
        j = bisect_left(noffs, target, key=key_of)
        local = []
        while j < len(noffs):
            o = noffs[j]
            if not key_of(o).startswith(target):
                break
            name = self._str_bytes_or_none(o)
            if name is not None and name.startswith(nameb):
                local.append(ids[j])
            j += 1
        local.sort()
        return out + local

    def _scan_first(self) -> bool:
        """Whether to answer a lookup by scanning rather than with the name index.

        The running kernel's BTF, when its index is not cached yet (the first process on a
        new kernel), scans: building the index costs ~25 ms, a scan ~2 ms, and a tool makes
        a few lookups before its first result. The index is built after
        `_SCANS_BEFORE_INDEX` scans, or when the process exits, and cached then, so later
        processes get it from the cache. (Other BTF builds it on the first lookup: a
        `bpfobj check` worker ends without running exit handlers.)"""
        if not self._defer_index or self._name_ids is not None or self._cache_dir is None:
            return False
        if self._scans >= _SCANS_BEFORE_INDEX:
            return False
        self._scans += 1
        return True

    def _scan_names(self, nameb: bytes, *, exact: bool) -> list[int]:
        """Ids of own types named `nameb` (or, not `exact`, starting with it), found without
        the name index: each string starting with it (a search for NUL + name in the string
        sections, the base's too), then each type whose name_off is that string (a search
        in the name_offs of all own types, gathered once)."""
        flavors = self._scan_flavors
        if not exact and flavors is not None and nameb.startswith(flavors[0]):
            # CO-RE asks for NAME, then NAME___*: the first scan kept the second answer.
            strings = [o for o in flavors[1]
                       if (self._str_bytes_or_none(o) or b"").startswith(nameb)]
        else:
            strings = self._scan_strings(nameb, exact)
        if not strings:
            return []
        if self._scan_noffs is None:
            self._scan_noffs = _index.NameOffsets(
                _index.gather_name_offsets(self._offs, self._w)
            )
        noffs = self._scan_noffs
        start = self.start_id
        ids = [start + i for off in strings for i in noffs.indexes(off)]
        ids.sort()
        return ids

    def _scan_strings(self, nameb: bytes, exact: bool) -> list[int]:
        """Absolute offsets of the strings equal to `nameb` (`exact`) or starting with it.
        An exact scan also keeps the ``nameb___*`` strings it passes (`_scan_flavors`)."""
        n = len(nameb) + 1
        needle = b"\0" + nameb
        strings: list[int] = []
        flavored: list[int] = []
        blob: Btf | None = self
        while blob is not None:  # split BTF's names may be its base's strings
            buf, s0 = blob._buf, blob._s0
            end = s0 + blob._str_len
            # The section's first string has no NUL before it (split BTF's).
            p = s0 - 1 if buf[s0 : s0 + n - 1] == nameb else buf.find(needle, s0, end)
            while p >= 0:
                off = blob.start_str_off + p + 1 - s0  # name_offs are absolute
                if not exact:
                    strings.append(off)
                else:
                    tail = buf[p + n : p + n + 3]
                    if tail[:1] == b"\0":
                        strings.append(off)
                    elif tail == b"___":
                        flavored.append(off)
                p = buf.find(needle, p + 1, end)
            blob = blob.base
        if exact:
            self._scan_flavors = (nameb + b"___", flavored)
        return strings

    def _lookup(self, nameb: bytes) -> list[int]:
        if self._scan_first():
            return self._scan_names(nameb, exact=True)
        ids, noffs = self._name_index()
        key = _index.NAME_KEY
        target = (nameb + b"\x00")[:key]
        key_of = self._key_of
        j = bisect_left(noffs, target, key=key_of)
        out = []
        exact = len(nameb) + 1 > key  # the key holds only a prefix: compare the whole name
        while j < len(noffs):
            o = noffs[j]
            if not key_of(o).startswith(target):
                break
            if not exact or self._str_bytes_or_none(o) == nameb:
                out.append(ids[j])
            j += 1
        out.sort()
        return out

    def _make_key_of(self) -> Callable[[int], bytes]:
        """The name-index key of a string offset: the NAME_KEY bytes of the string section
        from there, zero-padded past the section's end. Names sort by it (a name is
        followed by its NUL, so prefixes sort first); longer names share a key only with
        names of the same first NAME_KEY bytes, and `_lookup` compares those in full."""
        raw, s0, k = self._buf, self._s0, _index.NAME_KEY
        s_end = s0 + self._str_len

        def local_key(off: int) -> bytes:
            a = s0 + off
            key = raw[a : min(a + k, s_end)]
            return key if len(key) == k else key.ljust(k, b"\0")

        if self.base is None:
            return local_key
        base_key = self.base._key_of
        start = self.start_str_off

        def key_of(off: int) -> bytes:
            return base_key(off) if off < start else local_key(off - start)

        return key_of

    def _name_index(self) -> tuple[memoryview, memoryview]:
        if self._name_ids is not None and self._name_offs is not None:
            return self._name_ids, self._name_offs
        import gc

        key_of: Callable[[int], bytes] | None = self._key_of
        strs = b""
        if self.base is None:
            # All names are local: their keys are read at C speed (struct.unpack_from) from
            # a copy of the string section zero-padded like `_key_of` pads it.
            key_of = None
            s0 = self._s0
            strs = b"".join(
                (memoryview(self._buf)[s0 : s0 + self._str_len], bytes(_index.NAME_KEY))
            )
        # The build makes ~100k small objects at once; pausing the collector spares
        # repeated collections over them (the result holds no cycles).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            ids, noffs = _index.build_name_index(
                self._offs, self._w, self.start_id, self._str_end, key_of, strs
            )
        except _index.BadNameOffset as exc:
            raise self._bad_string(exc.offset, self.start_id + exc.index, "name") from None
        finally:
            if was_enabled:
                gc.enable()
        self._name_ids, self._name_offs = memoryview(ids), memoryview(noffs)
        if self._cache_dir is not None:
            _index.cache_store(
                self._cache_file(),
                self._content_key(),
                len(self._w),
                self._offs,
                self._name_ids,
                self._name_offs,
            )
        return self._name_ids, self._name_offs


_VOID: BtfType | None = None

# Lookups a big BTF without a cached name index answers by scanning before building it.
_SCANS_BEFORE_INDEX = 16

# Cache writes a cold process leaves for its exit, off the path to its first result.
_AT_EXIT: list[Callable[[], None]] = []
_SNAPSHOTS_PENDING: set[str] = set()
_FLUSH_LOCK = allocate_lock()  # (threading would cost a tool's start-up ~1 ms to import)
_FLUSH_SCHEDULED = False


def _at_exit(work: Callable[[], None]) -> None:
    if not _AT_EXIT:
        import atexit

        atexit.register(flush_caches)
    _AT_EXIT.append(work)


def _index_at_exit(btf: Btf, *, offsets_cached: bool) -> None:
    """Cache `btf`'s index when the process exits (if it still lives and has not cached
    it by then): with the name index if the process looked a name up, so that later
    processes find it in the cache; only the offsets otherwise."""
    import weakref

    ref = weakref.ref(btf)

    def build() -> None:
        live = ref()
        if live is None or live._name_ids is not None or live._cache_dir is None:
            return
        if live._scans:
            live._name_index()
        elif not offsets_cached:
            _index.cache_store(
                live._cache_file(), live._content_key(), len(live._w), live._offs, None, None
            )

    _at_exit(build)


def flush_caches() -> None:
    """Write what cold loads left for the exit: kernel BTF snapshots and name indexes
    (run at exit; a benchmark calls it to time it). A failure only loses the cache."""
    with _FLUSH_LOCK:  # at exit, waits for a background flush under way
        while _AT_EXIT:
            work = _AT_EXIT.pop(0)
            try:
                work()
            except Exception:  # the cache only saves time; the lookups were answered
                pass


def flush_caches_soon(delay: float = 1.0) -> None:
    """Write the pending caches from a background thread `delay` seconds from now (nothing
    to do: no thread). The kernel layer calls it once programs are loaded: a tool stopped
    by a signal (SIGTERM from a service manager, SIGKILL) never runs its exit hooks, and
    without this every one of its starts would be cold. The delay keeps the work (the
    name index sort and the writes: ~50 ms of CPU and ~18 MB at peak for a 126k-type
    kernel, once per boot) out of a tool's first moments, when it attaches and meets its
    first events; a process that ends sooner writes them at exit, as before."""
    global _FLUSH_SCHEDULED
    if not _AT_EXIT or _FLUSH_SCHEDULED:
        return
    _FLUSH_SCHEDULED = True

    def run() -> None:
        global _FLUSH_SCHEDULED
        import time

        time.sleep(delay)
        try:
            flush_caches()
        finally:
            _FLUSH_SCHEDULED = False

    start_new_thread(run, ())


def _void() -> BtfType:
    global _VOID
    if _VOID is None:
        from bpfobj.btf.types import Void

        _VOID = Void()
    return _VOID


# --------------------------------------------------------------------------------------
# Loading from files
# --------------------------------------------------------------------------------------


def _read_file(path: str) -> bytes | mmap:
    """The contents of `path`. A big file (kernel BTF is ~5 MB) is read into an anonymous
    mmap made with MAP_POPULATE: the kernel maps all its pages at once, where a bytes
    object would take a page fault per 4 KiB while being filled (~2 ms of a fresh
    process's ~6 ms warm load on this VM). Raises OSError."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size < _MMAP_MIN:
            return f.read()
        import mmap as _mmap

        flags = _mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS | getattr(_mmap, "MAP_POPULATE", 0)
        buf = _mmap.mmap(-1, size, flags=flags)
        got = 0
        with memoryview(buf) as view:
            while got < size:
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
        more = f.read() if got == size else b""
        if got == size and not more:
            return buf
        data = buf[:got] + more  # the size changed under us: fall back to bytes
        buf.close()
        return data


def _map_kernel_btf(path: str) -> mmap | None:
    """The kernel's BTF mapped read-only, where the kernel allows it (Linux 6.16+: a
    private, read-only mapping of /sys/kernel/btf/vmlinux); None elsewhere. No 4 KiB
    read(2) loop, no copy: pages are shared with the kernel's own BTF."""
    import mmap as _mmap

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if not size:
            return None
        return _mmap.mmap(fd, size, flags=_mmap.MAP_PRIVATE, prot=_mmap.PROT_READ)
    except (OSError, ValueError):
        return None  # an older kernel: EINVAL/EPERM/ENODEV
    finally:
        os.close(fd)


def load_raw_file(
    path: str | os.PathLike[str],
    base: Btf | None = None,
    *,
    cache: bool | None = None,
    name: str | None = None,
) -> Btf:
    """Parse a raw BTF file (as written by ``bpftool btf dump ... format raw`` or pahole)."""
    p = os.fspath(path)
    try:
        data = _read_file(p)
    except OSError as exc:
        raise BtfError(
            f"cannot read BTF file {p}: {exc.strerror or exc}",
            obj=p,
            hint="check the path and its permissions",
        ) from exc
    return Btf._from_buffer(data, base, name or p, cache, None)


def load_kernel_btf(
    path: str | os.PathLike[str] = VMLINUX_BTF,
    *,
    base: Btf | None = None,
    cache: bool | None = True,
) -> Btf:
    """The running kernel's BTF (/sys/kernel/btf/vmlinux), or a module's: a path under
    /sys/kernel/btf other than vmlinux (or a bare module name) is split BTF and gets
    vmlinux as its base unless `base` is given. Uses the on-disk index cache by default."""
    p = os.fspath(path)
    if not os.path.isabs(p) and os.sep not in p:
        p = os.path.join(KERNEL_BTF_DIR, p)  # a bare module name
    is_module = os.path.dirname(p) == KERNEL_BTF_DIR and os.path.basename(p) != "vmlinux"
    snapshot = None
    if p == VMLINUX_BTF and cache is not False:
        snapshot = _index.KernelSnapshot.for_running_kernel(p)
        if snapshot is not None:
            found = snapshot.load()
            if found is not None:
                return Btf._from_buffer(
                    found[0], None, "vmlinux", cache, None, found[1], defer_index=True
                )
    try:
        mapped = _map_kernel_btf(p) if p == VMLINUX_BTF else None
        data = mapped if mapped is not None else _read_file(p)
    except FileNotFoundError as exc:
        if p == VMLINUX_BTF:
            raise NotSupportedError(
                f"{p} does not exist: the kernel has no BTF",
                hint="run a kernel built with CONFIG_DEBUG_INFO_BTF=y",
            ) from exc
        raise BtfError(
            f"cannot read kernel BTF {p}: {exc.strerror}",
            obj=p,
            hint="is the module loaded? see ls /sys/kernel/btf",
        ) from exc
    except OSError as exc:
        raise BtfError(
            f"cannot read kernel BTF {p}: {exc.strerror or exc}",
            obj=p,
            hint="check the permissions of /sys/kernel/btf",
        ) from exc
    if is_module and base is None:
        base = load_kernel_btf(cache=cache)
    btf = Btf._from_buffer(
        data, base, os.path.basename(p), cache, None, defer_index=p == VMLINUX_BTF
    )
    if snapshot is not None and snapshot.btf_path not in _SNAPSHOTS_PENDING:
        # Written at exit (5 MB: a few ms that the first result need not wait for). The
        # bytes stay alive until then: the running kernel's BTF, which
        # TargetBtf.running_kernel keeps for the whole process anyway; once per process.
        # Its key is the one the index store (registered first, so run first) computed.
        _SNAPSHOTS_PENDING.add(snapshot.btf_path)
        _at_exit(lambda: snapshot.store(data, btf._content_key()))
    return btf


__all__ = ["BpfObjError", "Btf", "BtfHeader", "load_kernel_btf", "load_raw_file"]
