"""Loaded maps: `Map` (an fd plus its spec) and `Globals` (a data section's variables).

    counts = obj.maps["counts"]
    counts[1234] = 5                     # key and value encoded through the object's BTF
    counts[1234]                         # -> 5; structs come back as dicts, char[] as bytes
    counts.lookup_raw(b"\\xd2\\x04\\0\\0")  # the raw bytes API
    obj.bss.counter                       # a global, read through the mmap-ed .bss
    obj.rodata.target_uid = 5             # before load: becomes the initial value

Values are decoded with the object's BTF (the key/value type ids of the map definition):
integers as int (bool for _Bool), enums as int, pointers as int, floats as float, char
arrays as bytes (cut at the first NUL), other arrays as lists, structs and unions as dicts
(anonymous members merged in). Without BTF the value is bytes; ints are accepted as keys
and values of 1, 2, 4 or 8 bytes. Per-CPU maps give a list with one value per possible CPU
and take either such a list or one value for every CPU. Maps whose values are fds
(prog_array, map-in-map, perf_event_array, ...) take fds, `Map` or `Program` objects and
return the kernel's ids.
"""

from __future__ import annotations

import errno as _errno
import mmap as _mmap
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from bpfobj import records
from bpfobj.errors import BpfObjError, PhaseError, SpecError, SyscallError
from bpfobj.sys import attr
from bpfobj.sys.attr import BPF_ANY, BPF_EXIST, BPF_NOEXIST
from bpfobj.sys.syscall import Cmd, Fd, bpf
from bpfobj.uapi import BPF_F_MMAPABLE, BtfKind, MapType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf.reader import Btf
    from bpfobj.links import OwnedLinks
    from bpfobj.spec import MapSpec

PERCPU_TYPES = frozenset({
    MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH,
    MapType.PERCPU_CGROUP_STORAGE,
})
#: maps whose update value is a file descriptor (lookup gives an id or nothing)
FD_VALUE_TYPES = frozenset({
    MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY,
    MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.SOCKMAP, MapType.SOCKHASH,
    MapType.XSKMAP, MapType.REUSEPORT_SOCKARRAY,
})
#: maps without keys: push/pop/peek (queue, stack), push/contains (bloom filter)
KEYLESS_TYPES = frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER})
ARRAY_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY,
                         MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY,
                         MapType.ARRAY_OF_MAPS})


def _round8(n: int) -> int:
    return (n + 7) & ~7


def possible_cpus() -> int:
    """Number of possible CPUs (the per-CPU value count), libbpf_num_possible_cpus()."""
    from bpfobj.sys.perf import possible_cpus as cpus

    return len(cpus())


# --------------------------------------------------------------------------------------
# BTF value codec
# --------------------------------------------------------------------------------------


class Codec:
    """Encodes/decodes one C type (a BTF type id of `btf`, or raw bytes of `size`)."""

    def __init__(self, btf: Btf | None, type_id: int, size: int, *, fd_value: bool = False):
        self.btf = btf if type_id else None
        self.type_id = type_id
        self.size = size
        self.fd_value = fd_value

    def decode(self, data: bytes) -> Any:
        if self.fd_value and self.size == 4:
            return int.from_bytes(data[:4], "little")
        if self.btf is None:
            return bytes(data)
        return _decode(self.btf, self.type_id, memoryview(data)[: self.size], 0)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            if len(raw) > self.size:
                raise SpecError(f"value of {len(raw)} bytes is bigger than {self.size} bytes")
            return raw.ljust(self.size, b"\0")
        fd = getattr(value, "fd", None)
        if fd is not None and not isinstance(value, int):
            value = int(fd)
        if self.fd_value or self.btf is None:
            if isinstance(value, bool | int) and self.size in (1, 2, 4, 8):
                return int(value).to_bytes(self.size, "little", signed=int(value) < 0)
            if self.btf is None:
                raise SpecError(
                    f"cannot encode {type(value).__name__} into {self.size} bytes without BTF",
                    hint="pass bytes, or an int for 1/2/4/8-byte keys and values",
                )
        assert self.btf is not None
        buf = bytearray(self.size)
        _encode(self.btf, self.type_id, buf, 0, value)
        return bytes(buf)


def _int_value(raw: memoryview | bytes, signed: bool) -> int:
    return int.from_bytes(raw, "little", signed=signed)


def _decode(btf: Btf, tid: int, mv: memoryview, depth: int) -> Any:
    from bpfobj.btf import types as T

    if depth > 64:
        return bytes(mv)
    t = btf.type(btf.resolve(tid)) if tid else None
    if t is None:
        return bytes(mv)
    if isinstance(t, T.Int):
        size = t.size
        if t.bit_offset or t.nr_bits != size * 8:
            v = _int_value(mv[:size], False) >> t.bit_offset
            v &= (1 << t.nr_bits) - 1
            if t.is_signed and v >> (t.nr_bits - 1):
                v -= 1 << t.nr_bits
            return v
        v = _int_value(mv[:size], t.is_signed)
        return bool(v) if t.is_bool else v
    if isinstance(t, T.Enum | T.Enum64):
        return _int_value(mv[: t.size], t.signed)
    if isinstance(t, T.Ptr):
        return _int_value(mv[: btf.pointer_size], False)
    if isinstance(t, T.Float):
        if t.size == 4:
            return struct.unpack("<f", mv[:4])[0]
        if t.size == 8:
            return struct.unpack("<d", mv[:8])[0]
        return bytes(mv[: t.size])
    if isinstance(t, T.Array):
        elem = btf.type(btf.resolve(t.type)) if t.type else None
        esize = btf.size_of(t.type)
        if isinstance(elem, T.Int) and esize == 1:
            raw = bytes(mv[: t.nelems])
            return raw.split(b"\0", 1)[0] if elem.is_char or elem.name == "char" else raw
        return [_decode(btf, t.type, mv[i * esize : (i + 1) * esize], depth + 1)
                for i in range(t.nelems)]
    if isinstance(t, T.Struct | T.Union):
        out: dict[str, Any] = {}
        for m in t.members:
            off = m.bit_offset // 8
            if m.bitfield_size:
                nbytes = (m.bit_offset % 8 + m.bitfield_size + 7) // 8
                word = _int_value(mv[off : off + nbytes], False)
                v = (word >> (m.bit_offset % 8)) & ((1 << m.bitfield_size) - 1)
                mt = btf.type(btf.resolve(m.type))
                signed = getattr(mt, "is_signed", False) or getattr(mt, "signed", False)
                if signed and v >> (m.bitfield_size - 1):
                    v -= 1 << m.bitfield_size
                value: Any = v
            else:
                try:
                    msize = btf.size_of(m.type)
                except BpfObjError:
                    msize = 0
                value = _decode(btf, m.type, mv[off : off + msize], depth + 1)
            if not m.name and isinstance(value, dict):
                out.update(value)
            else:
                out[m.name] = value
        return out
    if isinstance(t, T.Datasec):
        return {btf.name(v.type): _decode(btf, v.type, mv[v.offset : v.offset + v.size],
                                          depth + 1) for v in t.vars}
    if isinstance(t, T.Var):
        return _decode(btf, t.type, mv, depth + 1)
    return bytes(mv)


def _encode(btf: Btf, tid: int, buf: bytearray, off: int, value: Any) -> None:
    from bpfobj.btf import types as T

    if isinstance(value, bytes | bytearray | memoryview):
        size = btf.size_of(tid) if tid else len(value)
        raw = bytes(value)
        if len(raw) > size:
            raise SpecError(f"{len(raw)} bytes do not fit in {size} bytes ({_what(btf, tid)})")
        buf[off : off + size] = raw.ljust(size, b"\0")
        return
    t = btf.type(btf.resolve(tid)) if tid else None
    if t is None:
        raise SpecError(f"cannot encode {value!r} as void")
    fd = getattr(value, "fd", None)
    if fd is not None and not isinstance(value, int):
        value = int(fd)
    if isinstance(t, T.Int | T.Enum | T.Enum64 | T.Ptr):
        if isinstance(value, str) and isinstance(t, T.Enum | T.Enum64):
            named = {v.name: v.value for v in t.values}
            if value not in named:
                raise SpecError(f"{value!r} is not a value of {_what(btf, tid)}")
            value = named[value]
        if not isinstance(value, int):
            raise SpecError(f"{_what(btf, tid)} wants an int, not {type(value).__name__}")
        size = btf.pointer_size if isinstance(t, T.Ptr) else t.size
        if isinstance(t, T.Int) and (t.bit_offset or t.nr_bits != size * 8):
            _set_bits(buf, off, size, t.bit_offset, t.nr_bits, value)
            return
        signed = value < 0
        try:
            buf[off : off + size] = value.to_bytes(size, "little", signed=signed)
        except OverflowError:
            raise SpecError(f"{value} does not fit in {_what(btf, tid)} ({size} bytes)") from None
        return
    if isinstance(t, T.Float):
        if not isinstance(value, int | float):
            raise SpecError(f"{_what(btf, tid)} wants a float")
        if t.size in (4, 8):
            buf[off : off + t.size] = struct.pack("<f" if t.size == 4 else "<d", value)
            return
        raise SpecError(f"cannot encode a float of {t.size} bytes")
    if isinstance(t, T.Array):
        esize = btf.size_of(t.type)
        if isinstance(value, str):
            value = value.encode()
            if len(value) >= t.nelems * esize:
                raise SpecError(f"string of {len(value)} bytes does not fit {_what(btf, tid)} "
                                "with its NUL")
            _encode(btf, tid, buf, off, value)
            return
        if not isinstance(value, Sequence):
            raise SpecError(f"{_what(btf, tid)} wants a list or bytes")
        if len(value) > t.nelems:
            raise SpecError(f"{len(value)} elements do not fit in {_what(btf, tid)}")
        for i, v in enumerate(value):
            _encode(btf, t.type, buf, off + i * esize, v)
        return
    if isinstance(t, T.Struct | T.Union):
        if not isinstance(value, Mapping):
            raise SpecError(f"{_what(btf, tid)} wants a dict, not {type(value).__name__}")
        remaining = dict(value)
        _encode_members(btf, t, buf, off, remaining)
        if remaining:
            raise SpecError(f"{_what(btf, tid)} has no member {next(iter(remaining))!r}",
                            hint="its members are " + ", ".join(_member_names(btf, t)))
        return
    if isinstance(t, T.Var):
        _encode(btf, t.type, buf, off, value)
        return
    raise SpecError(f"cannot encode {type(value).__name__} as {_what(btf, tid)}")


def _encode_members(btf: Btf, t: Any, buf: bytearray, off: int, remaining: dict[str, Any]) -> None:
    for m in t.members:
        moff = off + m.bit_offset // 8
        if not m.name:
            inner = btf.type(btf.resolve(m.type))
            if inner.kind in (BtfKind.STRUCT, BtfKind.UNION):
                _encode_members(btf, inner, buf, moff, remaining)
            continue
        if m.name not in remaining:
            continue
        v = remaining.pop(m.name)
        if m.bitfield_size:
            if not isinstance(v, int):
                raise SpecError(f"bitfield {m.name!r} wants an int")
            _set_bits(buf, moff, (m.bit_offset % 8 + m.bitfield_size + 7) // 8,
                      m.bit_offset % 8, m.bitfield_size, v)
        else:
            _encode(btf, m.type, buf, moff, v)


def _member_names(btf: Btf, t: Any) -> list[str]:
    """The names a mapping may use for `t`'s members: an anonymous struct's or union's
    members are reached directly, as in C."""
    names: list[str] = []
    for m in t.members:
        if m.name:
            names.append(m.name)
        else:
            inner = btf.type(btf.resolve(m.type))
            if inner.kind in (BtfKind.STRUCT, BtfKind.UNION):
                names += _member_names(btf, inner)
    return names


def _set_bits(buf: bytearray, off: int, size: int, shift: int, bits: int, value: int) -> None:
    mask = ((1 << bits) - 1) << shift
    word = int.from_bytes(buf[off : off + size], "little")
    word = (word & ~mask) | ((value << shift) & mask)
    buf[off : off + size] = word.to_bytes(size, "little")


def _what(btf: Btf, tid: int) -> str:
    try:
        return btf.type(tid).describe()
    except BpfObjError:
        return f"[{tid}]"


# --------------------------------------------------------------------------------------
# Map
# --------------------------------------------------------------------------------------


class Map:
    """A created map: its fd, its spec and the operations on it.

    Closed with its object; `close()` closes it alone. Raw methods (``*_raw``) take and
    return bytes; the others encode/decode through the object's BTF (see module doc).
    """

    _owned_links: OwnedLinks | None = None  # struct_ops links (bpfobj.links.owner_links)

    ANY = BPF_ANY
    NOEXIST = BPF_NOEXIST
    EXIST = BPF_EXIST

    def __init__(
        self, spec: MapSpec, fd: Fd, *, btf: Btf | None = None, max_entries: int | None = None,
        pin_path: str | None = None, reused: bool = False, obj: str | None = None,
    ) -> None:
        self.spec = spec
        self._fd = fd
        self.btf = btf  # the object's BTF (record types of ring buffers, arenas)
        self.name = spec.name
        self.type = spec.type
        self.key_size = spec.key_size
        self.value_size = spec.value_size
        self.max_entries = max_entries if max_entries is not None else spec.max_entries
        self.flags = spec.flags
        self.pin_path = pin_path
        self.reused = reused  # an existing pinned map was reused instead of created
        self.frozen = False
        self.obj = obj
        self.mmap: _mmap.mmap | None = None
        fd_value = spec.type in FD_VALUE_TYPES
        self._ncpus = possible_cpus() if spec.type in PERCPU_TYPES else 0
        self.key_codec = Codec(btf, spec.key_type_id, spec.key_size)
        self.value_codec = Codec(btf, 0 if fd_value else spec.value_type_id, spec.value_size,
                                 fd_value=fd_value)

    # -- basics ---------------------------------------------------------------------------

    @property
    def fd(self) -> int:
        """The map's file descriptor (PhaseError once closed)."""
        if self._fd.closed:
            raise PhaseError(f"map {self.name!r} is closed", obj=self.obj)
        return self._fd.fileno()

    @property
    def closed(self) -> bool:
        return self._fd.closed

    @property
    def percpu(self) -> bool:
        return self.type in PERCPU_TYPES

    @property
    def ncpus(self) -> int:
        return self._ncpus

    @property
    def raw_value_size(self) -> int:
        """Bytes of one lookup/update value buffer (per-CPU: rounded to 8, times CPUs)."""
        if self.percpu:
            return _round8(self.value_size) * self._ncpus
        return self.value_size

    def close(self) -> None:
        if self.mmap is not None:
            try:
                self.mmap.close()
            except BufferError:  # a memoryview into it is still alive: leave it to GC
                pass
            self.mmap = None
        self._fd.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd {self._fd.fileno()}"
        return f"<Map {self.name!r} {self.type.label} {state}>"

    def _err(self, exc: SyscallError, op: str) -> SyscallError:
        exc.message = f"{op} on map {self.name!r} failed"
        return exc.with_context(obj=self.obj)  # type: ignore[return-value]

    def _call(self, cmd: Cmd, a: attr.Attr, op: str) -> int:
        try:
            return bpf(cmd, a)
        except SyscallError as exc:
            raise self._err(exc, op) from None

    # -- raw bytes API ---------------------------------------------------------------------

    def _key(self, key: bytes | None) -> bytes | None:
        if key is not None and len(key) != self.key_size:
            raise SpecError(f"map {self.name!r}: key of {len(key)} bytes, want {self.key_size}")
        return key

    def _lookup_cmd(self, cmd: Cmd, key: bytes | None, flags: int, op: str) -> bytes | None:
        out = bytearray(self.raw_value_size)
        try:
            bpf(cmd, attr.map_elem(self.fd, self._key(key), out, flags, out=True))
        except SyscallError as exc:
            if exc.errno == _errno.ENOENT:
                return None
            raise self._err(exc, op) from None
        return bytes(out)

    def lookup_raw(self, key: bytes | None, flags: int = 0) -> bytes | None:
        """BPF_MAP_LOOKUP_ELEM: the value bytes, or None when there is no such key."""
        return self._lookup_cmd(Cmd.MAP_LOOKUP_ELEM, key, flags, "lookup")

    def update_raw(self, key: bytes | None, value: bytes, flags: int = BPF_ANY) -> None:
        """BPF_MAP_UPDATE_ELEM."""
        if len(value) != self.raw_value_size:
            raise SpecError(f"map {self.name!r}: value of {len(value)} bytes, want "
                            f"{self.raw_value_size}")
        self._call(Cmd.MAP_UPDATE_ELEM, attr.map_elem(self.fd, self._key(key), value, flags),
                   "update")

    def delete_raw(self, key: bytes | None) -> bool:
        """BPF_MAP_DELETE_ELEM: False when the key was not there."""
        try:
            bpf(Cmd.MAP_DELETE_ELEM, attr.map_elem(self.fd, self._key(key)))
            return True
        except SyscallError as exc:
            if exc.errno == _errno.ENOENT:
                return False
            raise self._err(exc, "delete") from None

    def next_key_raw(self, key: bytes | None = None) -> bytes | None:
        """BPF_MAP_GET_NEXT_KEY: the key after `key` (the first with None), or None."""
        out = bytearray(self.key_size)
        try:
            bpf(Cmd.MAP_GET_NEXT_KEY,
                attr.map_elem(self.fd, self._key(key), out, out=True))
        except SyscallError as exc:
            if exc.errno == _errno.ENOENT:
                return None
            raise self._err(exc, "get_next_key") from None
        return bytes(out)

    def lookup_and_delete_raw(self, key: bytes | None = None) -> bytes | None:
        """BPF_MAP_LOOKUP_AND_DELETE_ELEM (queue/stack pop; hash maps since 5.14)."""
        return self._lookup_cmd(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, key, 0, "lookup_and_delete")

    def keys_raw(self) -> Iterator[bytes]:
        key = self.next_key_raw(None)
        while key is not None:
            yield key
            key = self.next_key_raw(key)

    # -- decoded API ----------------------------------------------------------------------

    def encode_key(self, key: Any) -> bytes:
        try:
            return self.key_codec.encode(key)
        except SpecError as exc:
            raise self._codec_error(exc, "key") from None

    def _codec_error(self, exc: SpecError, what: str) -> SpecError:
        """`exc` naming this map and whether its key or value was refused."""
        exc.message = f"map {self.name!r} {what}: {exc.message}"
        if not self.key_size and not self.value_size:
            exc.hint = (f"a {self.type.label} map has no keys or values to look up or "
                        "update: see bpfobj.ringbuf / bpfobj.user_ringbuf")
        exc.with_context(obj=self.obj, map=self.name)
        return exc

    def decode_key(self, raw: bytes) -> Any:
        return self.key_codec.decode(raw)

    def encode_value(self, value: Any) -> bytes:
        """One value; per-CPU maps take a list (one per CPU) or one value for all CPUs."""
        if not self.percpu:
            try:
                return self.value_codec.encode(value)
            except SpecError as exc:
                raise self._codec_error(exc, "value") from None
        stride = _round8(self.value_size)
        if isinstance(value, list | tuple) and not self._scalar_list(value):
            if len(value) != self._ncpus:
                raise SpecError(f"map {self.name!r}: per-CPU value needs {self._ncpus} "
                                f"entries, got {len(value)}")
            parts = [self.value_codec.encode(v).ljust(stride, b"\0") for v in value]
        else:
            parts = [self.value_codec.encode(value).ljust(stride, b"\0")] * self._ncpus
        return b"".join(parts)

    def _scalar_list(self, value: Sequence[Any]) -> bool:
        """Whether a list is one array value (the value type is an array) rather than a
        list of per-CPU values."""
        codec = self.value_codec
        if codec.btf is None:
            return False
        t = codec.btf.resolve_type(codec.type_id)
        return t.kind == BtfKind.ARRAY and len(value) != self._ncpus

    def decode_value(self, raw: bytes) -> Any:
        if not self.percpu:
            return self.value_codec.decode(raw)
        stride = _round8(self.value_size)
        return [self.value_codec.decode(raw[i * stride : i * stride + self.value_size])
                for i in range(self._ncpus)]

    def lookup(self, key: Any = None, default: Any = None) -> Any:
        """The decoded value of `key`, or `default`."""
        raw = self.lookup_raw(None if key is None and self.key_size == 0 else
                              self.encode_key(key))
        return default if raw is None else self.decode_value(raw)

    get = lookup  # dict.get's name: ``counts.get(pid, 0)``

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        """Set `key` to `value` (flags: Map.ANY, Map.NOEXIST, Map.EXIST)."""
        self.update_raw(self.encode_key(key), self.encode_value(value), flags)

    def delete(self, key: Any) -> bool:
        """Delete `key`; False when it was not there."""
        return self.delete_raw(self.encode_key(key))

    def __getitem__(self, key: Any) -> Any:
        raw = self.lookup_raw(self.encode_key(key))
        if raw is None:
            raise KeyError(key)
        return self.decode_value(raw)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return self.lookup_raw(self.encode_key(key)) is not None

    def keys(self) -> Iterator[Any]:
        for raw in self.keys_raw():
            yield self.decode_key(raw)

    __iter__ = keys

    def values(self) -> Iterator[Any]:
        for _, v in self.items():
            yield v

    def items(self) -> Iterator[tuple[Any, Any]]:
        for raw in self.keys_raw():
            value = self.lookup_raw(raw)
            if value is not None:  # deleted meanwhile
                yield self.decode_key(raw), self.decode_value(value)

    def __len__(self) -> int:
        return sum(1 for _ in self.keys_raw())

    def clear(self) -> None:
        """Delete every key (arrays cannot delete: their values are zeroed)."""
        if self.type in ARRAY_TYPES:
            if self.type in FD_VALUE_TYPES:
                for i in range(self.max_entries):
                    self.delete_raw(i.to_bytes(4, "little"))
                return
            zero = bytes(self.raw_value_size)
            for raw in list(self.keys_raw()):
                self.update_raw(raw, zero)
            return
        for raw in list(self.keys_raw()):
            self.delete_raw(raw)

    # -- batches ----------------------------------------------------------------------------

    def lookup_batch(self, batch_size: int = 256, *, delete: bool = False) -> list[tuple[Any, Any]]:
        """Every (key, value) via BPF_MAP_LOOKUP_BATCH (or LOOKUP_AND_DELETE_BATCH)."""
        return [(self.decode_key(k), self.decode_value(v))
                for k, v in self.lookup_batch_raw(batch_size, delete=delete)]

    def lookup_batch_raw(self, batch_size: int = 256, *,
                         delete: bool = False) -> list[tuple[bytes, bytes]]:
        cmd = Cmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else Cmd.MAP_LOOKUP_BATCH
        ks, vs = self.key_size, self.raw_value_size
        token_size = max(self.key_size, 8)
        out: list[tuple[bytes, bytes]] = []
        in_batch: bytes | None = None
        while True:
            keys = bytearray(ks * batch_size)
            values = bytearray(vs * batch_size)
            out_batch = bytearray(token_size)
            a = attr.map_batch(self.fd, keys=keys, values=values, count=batch_size,
                               in_batch=in_batch, out_batch=out_batch)
            done = False
            try:
                bpf(cmd, a)
            except SyscallError as exc:
                if exc.errno != _errno.ENOENT:
                    raise self._err(exc, "lookup_batch") from None
                done = True
            n = int(a.count)
            out.extend((bytes(keys[i * ks : (i + 1) * ks]), bytes(values[i * vs : (i + 1) * vs]))
                       for i in range(n))
            if done:
                return out
            in_batch = bytes(out_batch)

    def update_batch(self, items: Iterable[tuple[Any, Any]], flags: int = BPF_ANY) -> int:
        """BPF_MAP_UPDATE_BATCH; returns how many elements were written."""
        pairs = [(self.encode_key(k), self.encode_value(v)) for k, v in items]
        if not pairs:
            return 0
        a = attr.map_batch(self.fd, keys=b"".join(k for k, _ in pairs),
                           values=b"".join(v for _, v in pairs), count=len(pairs),
                           elem_flags=flags)
        self._call(Cmd.MAP_UPDATE_BATCH, a, "update_batch")
        return int(a.count)

    def delete_batch(self, keys: Iterable[Any]) -> int:
        """BPF_MAP_DELETE_BATCH; returns how many were deleted (stops at a missing key)."""
        raw = [self.encode_key(k) for k in keys]
        if not raw:
            return 0
        a = attr.map_batch(self.fd, keys=b"".join(raw), values=None, count=len(raw))
        try:
            bpf(Cmd.MAP_DELETE_BATCH, a)
        except SyscallError as exc:
            if exc.errno != _errno.ENOENT:
                raise self._err(exc, "delete_batch") from None
        return int(a.count)

    # -- queue, stack, bloom filter -------------------------------------------------------

    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        """Queue/stack push, bloom filter add (BPF_MAP_UPDATE_ELEM without a key)."""
        self.update_raw(None, self.encode_value(value), flags)

    def pop(self) -> Any:
        """Queue/stack pop (None when empty)."""
        raw = self.lookup_and_delete_raw(None)
        return None if raw is None else self.decode_value(raw)

    def peek(self) -> Any:
        """Queue/stack peek (None when empty)."""
        raw = self.lookup_raw(None)
        return None if raw is None else self.decode_value(raw)

    def contains(self, value: Any) -> bool:
        """Bloom filter membership (BPF_MAP_LOOKUP_ELEM with the value, no key)."""
        try:
            bpf(Cmd.MAP_LOOKUP_ELEM, attr.map_elem(self.fd, None, self.encode_value(value)))
            return True
        except SyscallError as exc:
            if exc.errno == _errno.ENOENT:
                return False
            raise self._err(exc, "lookup") from None

    # -- freeze, pin, info -------------------------------------------------------------------

    def freeze(self) -> None:
        """BPF_MAP_FREEZE: read-only from user space from now on."""
        self._call(Cmd.MAP_FREEZE, attr.map_freeze(self.fd), "freeze")
        self.frozen = True

    def pin(self, path: str) -> None:
        from bpfobj.sys import bpffs

        try:
            bpffs.pin(self.fd, path)
        except SyscallError as exc:
            raise self._err(exc, f"pin at {path}") from None
        self.pin_path = path

    def unpin(self) -> None:
        from bpfobj.sys import bpffs

        if self.pin_path:
            bpffs.unpin(self.pin_path)
            self.pin_path = None

    def info(self) -> dict[str, Any]:
        """BPF_OBJ_GET_INFO_BY_FD: the kernel's bpf_map_info."""
        return map_info(self.fd)

    @property
    def id(self) -> int:
        return int(self.info()["id"])

    # -- mmap ----------------------------------------------------------------------------

    def mmap_size(self) -> int:
        """libbpf bpf_map_mmap_sz(): value size rounded to 8, times max_entries, page-rounded."""
        page = _mmap.PAGESIZE
        size = _round8(self.value_size) * self.max_entries
        return (size + page - 1) // page * page

    def map_memory(self, *, writable: bool) -> _mmap.mmap:
        """mmap() a BPF_F_MMAPABLE map (kept in `self.mmap`, unmapped by close())."""
        if not self.flags & BPF_F_MMAPABLE:
            raise SpecError(f"map {self.name!r} is not mmapable (no BPF_F_MMAPABLE)")
        if self.mmap is None:
            prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
            try:
                self.mmap = _mmap.mmap(self.fd, self.mmap_size(), _mmap.MAP_SHARED, prot)
            except OSError as exc:
                raise SyscallError(f"cannot mmap map {self.name!r}", errno=exc.errno or 0,
                                   command="mmap", obj=self.obj) from None
        return self.mmap


def map_info(fd: int) -> dict[str, Any]:
    info = attr.MapInfo()
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr.obj_get_info_by_fd(fd, info))
    return {
        "type": int(info.type), "id": int(info.id), "key_size": int(info.key_size),
        "value_size": int(info.value_size), "max_entries": int(info.max_entries),
        "map_flags": int(info.map_flags), "name": bytes(info.name).split(b"\0", 1)[0].decode(),
        "btf_id": int(info.btf_id), "btf_key_type_id": int(info.btf_key_type_id),
        "btf_value_type_id": int(info.btf_value_type_id), "map_extra": int(info.map_extra),
    }


# --------------------------------------------------------------------------------------
# Globals: a data section's variables
# --------------------------------------------------------------------------------------


@records.frozen
class GlobalVar:
    """A variable of a data section: where it is and its BTF type (in the object's BTF)."""

    name: str
    offset: int
    size: int
    type_id: int


class Backing:
    """Where a data section's bytes live: read and write ranges; `readonly` says why not
    writable (None when it is)."""

    readonly: str | None = None

    def read(self, off: int, size: int) -> bytes:
        raise NotImplementedError

    def write(self, off: int, data: bytes) -> None:
        raise NotImplementedError


class BufferBacking(Backing):
    """The initial image, before the map exists."""

    def __init__(self, buf: bytearray) -> None:
        self.buf = buf

    def read(self, off: int, size: int) -> bytes:
        return bytes(self.buf[off : off + size])

    def write(self, off: int, data: bytes) -> None:
        self.buf[off : off + len(data)] = data


class MapBacking(Backing):
    """A created single-element array map: its mmap, else lookup/update of key 0."""

    def __init__(self, m: Map, readonly: str | None = None) -> None:
        self.map = m
        self.readonly = readonly

    def read(self, off: int, size: int) -> bytes:
        mm = self.map.mmap
        if mm is not None:
            return mm[off : off + size]
        raw = self.map.lookup_raw(b"\0\0\0\0") or bytes(self.map.value_size)
        return raw[off : off + size]

    def write(self, off: int, data: bytes) -> None:
        mm = self.map.mmap
        if mm is not None:
            mm[off : off + len(data)] = data
            return
        raw = bytearray(self.map.lookup_raw(b"\0\0\0\0") or bytes(self.map.value_size))
        raw[off : off + len(data)] = data
        self.map.update_raw(b"\0\0\0\0", bytes(raw))


class Globals:
    """Attribute access to the variables of one data section (.bss, .data, .rodata,
    .kconfig, .data.<name>...): ``obj.bss.counter``, ``obj.rodata.limit = 5``.

    Reads and writes go to the current backing: the initial image before the maps exist,
    the mmap-ed map (or the map through lookup/update) after. `obj.rodata` becomes
    read-only once its map is created and frozen, like in libbpf.
    """

    __slots__ = ("_backing", "_btf", "_section", "_vars")

    def __init__(self, section: str, variables: Mapping[str, GlobalVar], btf: Btf | None,
                 backing: Callable[[], Backing]) -> None:
        object.__setattr__(self, "_section", section)
        object.__setattr__(self, "_vars", dict(variables))
        object.__setattr__(self, "_btf", btf)
        object.__setattr__(self, "_backing", backing)

    @property
    def section(self) -> str:
        return self._section  # type: ignore[no-any-return]

    def _var(self, name: str) -> GlobalVar:
        try:
            return self._vars[name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(
                f"{self._section} has no variable {name!r}; it has: "
                f"{', '.join(self._vars) or '(none)'}"
            ) from None

    def _codec(self, var: GlobalVar) -> Codec:
        return Codec(self._btf, var.type_id, var.size)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Any:
        var = self._var(name)
        return self._codec(var).decode(self._backing().read(var.offset, var.size))

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __setitem__(self, name: str, value: Any) -> None:
        var = self._var(name)
        backing = self._backing()
        if backing.readonly:
            raise PhaseError(f"cannot set {self._section} variable {name!r}: {backing.readonly}",
                             section=self._section,
                             hint=f"set {self._section} variables before load()")
        if isinstance(value, bytes | bytearray) and var.type_id == 0:
            data = bytes(value).ljust(var.size, b"\0")
        else:
            try:
                data = self._codec(var).encode(value)
            except SpecError as exc:
                exc.message = f"cannot set {self._section} variable {name!r}: {exc.message}"
                raise exc.with_context(section=self._section) from None
        backing.write(var.offset, data[: var.size])

    def __dir__(self) -> list[str]:
        return list(self._vars)

    def __contains__(self, name: object) -> bool:
        return name in self._vars

    def variables(self) -> dict[str, GlobalVar]:
        return dict(self._vars)

    def to_dict(self) -> dict[str, Any]:
        return {name: self[name] for name in self._vars}

    def __repr__(self) -> str:
        return f"<Globals {self._section} {list(self._vars)}>"


def datasec_vars(btf: Btf | None, datasec_id: int,
                 symbols: Mapping[str, int] | None = None) -> dict[str, GlobalVar]:
    """The variables of a DATASEC; offsets from `symbols` (name -> ELF symbol value) where
    clang left them 0 (libbpf btf_fixup_datasec())."""
    if btf is None or not datasec_id:
        return {}
    from bpfobj.btf import types as T

    ds = btf.type(datasec_id)
    if not isinstance(ds, T.Datasec):
        return {}
    out: dict[str, GlobalVar] = {}
    for vi in ds.vars:
        var = btf.type(vi.type)
        if not isinstance(var, T.Var):
            continue
        offset = vi.offset
        if symbols is not None and var.name in symbols:
            offset = symbols[var.name]
        out[var.name] = GlobalVar(var.name, offset, vi.size, var.type)
    return out
