"""BPF_MAP_TYPE_RINGBUF consumer: libbpf's ringbuf.c in pure Python, over mmap and epoll.

    rb = RingBuffer(obj.maps["events"], event_type="event", btf=obj.spec.btf)
    for event in rb:                       # blocks; one dict per record
        print(event["pid"], event["comm"])

    rb = RingBuffer(obj.maps["events"], callback=handle)    # handle(record) per record
    while running:
        rb.poll(0.1)                       # ring_buffer__poll(): wait, then drain

    async for event in rb: ...             # asyncio: add_reader on the epoll fd

Records are ``bytes`` (a copy of the sample), or, given a record type (`event_type`: a
struct name or type id of `btf`, usually ``obj.spec.btf``), dicts decoded exactly like
`bpfobj.maps` decodes map values (`RecordDecoder`). Decoding is batched: a run of committed
records of the record type's size is checked by its headers and unpacked with one
`struct.Struct.iter_unpack` call into dicts built by code generated once per type.

The memory layout is the kernel's (kernel/bpf/ringbuf.c), mapped by `RingPages` (here from
the consumer's side, in `bpfobj.user_ringbuf` from the producer's): page 0 is the consumer
page (``consumer_pos``, mapped read-write), page 1 the producer page (``producer_pos``),
then the data pages, mapped twice back to back so that a record wrapping the end of the
ring reads as one contiguous range; every record starts with an 8-byte header whose first u32 is
the length with BPF_RINGBUF_BUSY_BIT (reserved, not committed yet) and
BPF_RINGBUF_DISCARD_BIT (discarded: skip), and records are 8-byte aligned.
"""

from __future__ import annotations

import mmap
import select
import struct
from _thread import allocate_lock
from collections.abc import Callable, Iterable

from bpfobj.arch import host
from bpfobj.buffers import BufferConsumer
from bpfobj.buffers import wait_readable as wait_readable  # moved; still importable here
from bpfobj.errors import BpfObjError, SpecError, SyscallError
from bpfobj.uapi import BtfKind, MapType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    from bpfobj.btf.reader import Btf

__all__ = [
    "BPF_RINGBUF_BUSY_BIT",
    "BPF_RINGBUF_DISCARD_BIT",
    "BPF_RINGBUF_HDR_SZ",
    "RecordDecoder",
    "RingBuffer",
    "find_record_type",
]

# linux/bpf.h
BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8
_LEN_MASK = BPF_RINGBUF_DISCARD_BIT - 1  # libbpf roundup_len(): len <<= 2; len >>= 2

#: records decoded per batch before consumer_pos is published (frees space for producers)
CHUNK = 2048
#: records one drain of a ring hands over at most (the rest: at the next poll)
BATCH_LIMIT = 8192

Record: TypeAlias = "Any"
Callback = Callable[[Record], object]


# --------------------------------------------------------------------------------------
# Memory ordering
# --------------------------------------------------------------------------------------
# libbpf reads producer_pos and each length with smp_load_acquire() and publishes
# consumer_pos with smp_store_release(). CPython reads and writes an aligned u64/u32 of a
# memoryview with one memcpy of that size (one load or store), but has no barrier. x86-64
# is TSO (loads are not reordered with loads, stores not with earlier loads): nothing to do.
# Elsewhere (arm64) a release followed by an acquire of a lock is a full barrier (RCsc):
# two uncontended lock round trips.

if host().name == "x86_64":

    def _fence() -> None:
        """smp_load_acquire()/smp_store_release() ordering: free on TSO."""

else:
    _FENCE_LOCK = allocate_lock()  # threading.Lock (importing threading costs ~1 ms)

    def _fence() -> None:
        """Order earlier loads before later loads and stores (release; acquire)."""
        with _FENCE_LOCK:
            pass
        with _FENCE_LOCK:
            pass


def record_span(length: int) -> int:
    """Bytes a record of `length` bytes takes in the ring: its header, then the data padded
    to 8 (the kernel's ringbuf_round_up_hdr_len(); libbpf roundup_len())."""
    return (length + BPF_RINGBUF_HDR_SZ + 7) & ~7


# --------------------------------------------------------------------------------------
# Record decoding through BTF
# --------------------------------------------------------------------------------------


class _Unsupported(Exception):
    """The type has a part the compiled decoder does not handle: use maps.Codec."""


class _Leaf:
    __slots__ = ("conv", "fmt", "idx", "nitems", "off", "size")

    def __init__(self, off: int, size: int, fmt: str, conv: str = "", nitems: int = 1) -> None:
        self.off = off
        self.size = size
        self.fmt = fmt
        self.conv = conv  # "" value as is, "cstr" cut at the first NUL, "list" n items
        self.nitems = nitems
        self.idx = -1


# ("leaf", _Leaf) | ("const", source) | ("dict", [(name, node)]) | ("list", [node])
_Node: TypeAlias = "tuple[str, Any]"

_INT_FMT = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
            (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}


class RecordDecoder:
    """Decodes records of one BTF type into Python values, the way `bpfobj.maps.Codec`
    decodes map values (ints, bools, bytes for char arrays cut at the first NUL, lists,
    dicts with anonymous members merged), compiled once into a `struct` format and a
    generated expression.

    `decode(buf)` decodes one record (the first `size` bytes; a shorter record is returned
    as bytes); `decode_batch(buf, stride, skip)` decodes ``len(buf) // stride`` records laid
    out every `stride` bytes, each after a `skip`-byte header. Types the compiler does not
    handle (bitfields, unions of several members, odd int sizes) fall back to
    `bpfobj.maps.Codec`, record by record.
    """

    def __init__(self, btf: Btf, type_id: int) -> None:
        from bpfobj.maps import Codec

        self.btf = btf
        self.type_id = type_id
        self.size = btf.size_of(type_id)
        self.name = btf.name(type_id) or f"[{type_id}]"
        self._codec = Codec(btf, type_id, self.size)
        self._batches: dict[tuple[int, int], Callable[[Any], list[Any]]] = {}
        try:
            self.format, self._expr = self._compile()
            self.compiled = True
        except (_Unsupported, BpfObjError, RecursionError):
            self.format, self._expr = "", ""
            self.compiled = False
        if self.compiled:
            self._struct = struct.Struct("=" + self.format)
            ns: dict[str, Any] = {}
            exec(f"def _one(t):\n    return {self._expr}\n", ns)  # generated from BTF names
            self._one: Callable[[tuple[Any, ...]], Any] = ns["_one"]

    @classmethod
    def by_name(cls, btf: Btf, name: str) -> RecordDecoder:
        return cls(btf, find_record_type(btf, name))

    # -- decoding ------------------------------------------------------------------------

    def decode(self, buf: bytes | memoryview) -> Any:
        """One record: the value of its first `size` bytes (bytes when it is shorter)."""
        if len(buf) < self.size:
            return bytes(buf)
        if self.compiled:
            return self._one(self._struct.unpack_from(buf))
        return self._codec.decode(bytes(buf[: self.size]))

    def decode_batch(self, buf: bytes | memoryview, stride: int, skip: int) -> list[Any]:
        """Records every `stride` bytes of `buf` (a multiple of it), each after `skip`
        bytes of header; ``skip + size <= stride``."""
        fn = self._batches.get((stride, skip))
        if fn is None:
            fn = self._batches[(stride, skip)] = self._make_batch(stride, skip)
        return fn(buf)

    def _make_batch(self, stride: int, skip: int) -> Callable[[Any], list[Any]]:
        pad = stride - skip - self.size
        if pad < 0:
            raise SpecError(f"record type {self.name} ({self.size} bytes) does not fit "
                            f"{stride - skip} bytes")
        if not self.compiled:
            codec, size = self._codec, self.size

            def slow(buf: Any) -> list[Any]:
                mv = memoryview(buf)
                return [codec.decode(bytes(mv[o + skip : o + skip + size]))
                        for o in range(0, len(mv), stride)]

            return slow
        st = struct.Struct(f"={skip}x{self.format}{pad}x")
        ns: dict[str, Any] = {"_iter": st.iter_unpack}
        exec(f"def _batch(buf):\n    return [{self._expr} for t in _iter(buf)]\n", ns)
        fn: Callable[[Any], list[Any]] = ns["_batch"]
        return fn

    # -- compiling -----------------------------------------------------------------------

    def _compile(self) -> tuple[str, str]:
        node = self._node(self.type_id, 0, 0)
        leaves: list[_Leaf] = []
        self._leaves(node, leaves)
        leaves.sort(key=lambda leaf: leaf.off)
        fmt: list[str] = []
        pos = idx = 0
        for leaf in leaves:
            if leaf.off < pos:
                raise _Unsupported("overlapping members")
            if leaf.off > pos:
                fmt.append(f"{leaf.off - pos}x")
            fmt.append(leaf.fmt)
            leaf.idx = idx
            idx += leaf.nitems
            pos = leaf.off + leaf.size
        if pos > self.size:
            raise _Unsupported("members past the end")
        if pos < self.size:
            fmt.append(f"{self.size - pos}x")
        text = "".join(fmt)
        if struct.calcsize("=" + text) != self.size:
            raise _Unsupported("layout mismatch")
        return text, self._render(node)

    def _leaves(self, node: _Node, out: list[_Leaf]) -> None:
        kind, body = node
        if kind == "leaf":
            out.append(body)
        elif kind == "dict":
            for _, sub in body:
                self._leaves(sub, out)
        elif kind == "list":
            for sub in body:
                self._leaves(sub, out)

    def _render(self, node: _Node) -> str:
        kind, body = node
        if kind == "const":
            return str(body)
        if kind == "leaf":
            i = body.idx
            if body.conv == "cstr":
                return f"t[{i}].partition(b'\\x00')[0]"
            if body.conv == "list":
                return f"list(t[{i}:{i + body.nitems}])"
            return f"t[{i}]"
        if kind == "list":
            return "[" + ", ".join(self._render(sub) for sub in body) + "]"
        return "{" + ", ".join(f"{name!r}: {self._render(sub)}" for name, sub in body) + "}"

    def _node(self, tid: int, off: int, depth: int) -> _Node:
        """Mirror of bpfobj.maps._decode, producing a tree instead of a value."""
        from bpfobj.btf import types as T

        btf = self.btf
        if depth > 64 or not tid:
            raise _Unsupported("too deep or void")
        t = btf.type(btf.resolve(tid))
        if isinstance(t, T.Int):
            if t.bit_offset or t.nr_bits != t.size * 8:
                raise _Unsupported("int bitfield")
            if t.is_bool:
                if t.size != 1:
                    raise _Unsupported("wide bool")
                return ("leaf", _Leaf(off, 1, "?"))
            fmt = _INT_FMT.get((t.size, t.is_signed))
            if fmt is None:
                raise _Unsupported("int size")
            return ("leaf", _Leaf(off, t.size, fmt))
        if isinstance(t, T.Enum | T.Enum64):
            fmt = _INT_FMT.get((t.size, t.signed))
            if fmt is None:
                raise _Unsupported("enum size")
            return ("leaf", _Leaf(off, t.size, fmt))
        if isinstance(t, T.Ptr):
            size = btf.pointer_size
            return ("leaf", _Leaf(off, size, _INT_FMT[(size, False)]))
        if isinstance(t, T.Float):
            if t.size in (4, 8):
                return ("leaf", _Leaf(off, t.size, "f" if t.size == 4 else "d"))
            return ("leaf", _Leaf(off, t.size, f"{t.size}s"))
        if isinstance(t, T.Array):
            elem = btf.type(btf.resolve(t.type)) if t.type else None
            esize = btf.size_of(t.type)
            if isinstance(elem, T.Int) and esize == 1:
                cstr = elem.is_char or elem.name == "char"
                if t.nelems == 0:
                    return ("const", "b''")
                return ("leaf", _Leaf(off, t.nelems, f"{t.nelems}s", "cstr" if cstr else ""))
            if t.nelems == 0:
                return ("const", "[]")
            items = [self._node(t.type, off + i * esize, depth + 1) for i in range(t.nelems)]
            first = items[0]
            if first[0] == "leaf" and first[1].conv == "" and len(first[1].fmt) == 1 \
                    and first[1].size == esize:
                # an array of scalars: one "<n><c>" leaf
                return ("leaf", _Leaf(off, esize * t.nelems, f"{t.nelems}{first[1].fmt}",
                                      "list", t.nelems))
            return ("list", items)
        if isinstance(t, T.Struct | T.Union):
            if isinstance(t, T.Union) and len(t.members) > 1:
                raise _Unsupported("union")
            members: list[tuple[str, _Node]] = []
            for m in t.members:
                if m.bitfield_size or m.bit_offset % 8:
                    raise _Unsupported("bitfield member")
                sub = self._node(m.type, off + m.bit_offset // 8, depth + 1)
                if not m.name and sub[0] == "dict":
                    members.extend(sub[1])  # anonymous struct/union: merged (maps.py)
                else:
                    members.append((m.name, sub))
            return ("dict", members)
        raise _Unsupported(f"kind {t.kind.name}")


def find_record_type(btf: Btf, name: str) -> int:
    """The type id of the record type `name`: a struct (``event``, or ``struct event``),
    else a union or typedef of that name."""
    bare = name.split()[-1] if name.startswith(("struct ", "union ")) else name
    for kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.TYPEDEF):
        ids = btf.find(bare, kind)
        if ids:
            return ids[0]
    raise SpecError(
        f"the object's BTF has no struct, union or typedef named {bare!r}",
        hint=f"make clang emit it: a global such as `const struct {bare} *unused "
             "__attribute__((unused));` keeps an otherwise local type in BTF",
    )


def record_type_id(record_type: str | int, btf: Btf | None) -> tuple[Btf, int]:
    """`btf` and the id of `record_type` in it (a name for `find_record_type`, or an id);
    refuses a record type without BTF."""
    if btf is None:
        raise SpecError(f"record type {record_type!r} given without BTF",
                        hint="pass btf=obj.spec.btf")
    if isinstance(record_type, int):
        return btf, record_type
    return btf, find_record_type(btf, record_type)


def make_decoder(event_type: str | int | RecordDecoder | None, btf: Btf | None,
                 map_btf: Btf | None = None) -> RecordDecoder | None:
    """A decoder for `event_type` (a name or type id of `btf`, or a decoder), or None."""
    if event_type is None or isinstance(event_type, RecordDecoder):
        return event_type
    return RecordDecoder(*record_type_id(event_type, btf or map_btf))


def map_fd_and_info(map_or_fd: Any) -> tuple[int, dict[str, Any], Btf | None]:
    """The fd of a `Map` or an int fd, the kernel's bpf_map_info, and the map's BTF."""
    from bpfobj.maps import map_info

    fd = map_or_fd if isinstance(map_or_fd, int) else int(map_or_fd.fd)
    try:
        info = map_info(fd)
    except SyscallError as exc:
        raise exc.with_context(map=getattr(map_or_fd, "name", f"fd {fd}")) from None
    btf = getattr(map_or_fd, "btf", None)
    if btf is None:
        codec = getattr(map_or_fd, "value_codec", None)
        btf = getattr(codec, "btf", None)
    return fd, info, btf


# --------------------------------------------------------------------------------------
# One ring
# --------------------------------------------------------------------------------------


def unmap(views: Iterable[memoryview], maps: Iterable[mmap.mmap]) -> None:
    """Release `views`, then close `maps`; a mapping a record or sample still holds a view
    of (a batch's, a reservation's) stays mapped until that view is collected."""
    for view in views:
        view.release()
    for mm in maps:
        try:
            mm.close()
        except BufferError:
            pass


class RingPages:
    """A BPF ring buffer map's pages, mapped as the kernel lays them out (kernel/bpf/ringbuf.c)
    from either side: `Ring` consumes a BPF_MAP_TYPE_RINGBUF, `bpfobj.user_ringbuf`
    produces into a BPF_MAP_TYPE_USER_RINGBUF.

    Page 0 holds ``consumer_pos`` (``_cons``, a u64 view), page 1 ``producer_pos``
    (``_prod``), then the `size` bytes of data pages, mapped twice back to back so that a
    record wrapping the end reads as one range (``_data``, ``_data32`` its u32 view of the
    record headers). The consumer's side maps the consumer page read-write and the rest
    read-only (libbpf ring_buffer__add()); the producer's side (`producer`) the consumer
    page read-only and the rest read-write (libbpf user_ringbuf_map()): the kernel refuses
    any other protection. `what` and `context` name the map in errors.
    """

    def __init__(self, fd: int, size: int, *, name: str, producer: bool = False,
                 what: str = "ring buffer", **context: Any) -> None:
        if size <= 0 or size & (size - 1):
            raise SpecError(f"{what} {name!r} size {size} is not a power of 2")
        page = mmap.PAGESIZE
        rw = mmap.PROT_READ | mmap.PROT_WRITE
        self.fd = fd
        self.name = name
        self.size = size
        self.mask = size - 1
        try:
            self._cons_map = mmap.mmap(fd, page, mmap.MAP_SHARED,
                                       mmap.PROT_READ if producer else rw, offset=0)
            try:
                self._data_map = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED,
                                           rw if producer else mmap.PROT_READ, offset=page)
            except BaseException:
                self._cons_map.close()
                raise
        except OSError as exc:
            raise SyscallError(f"cannot mmap {what} {name!r}", errno=exc.errno or 0,
                               command="mmap", **context) from None
        self._cons = memoryview(self._cons_map)[:8].cast("Q")
        dm = memoryview(self._data_map)
        self._prod = dm[:8].cast("Q")
        self._data = dm[page:]
        self._data32 = self._data.cast("I")

    @property
    def consumer_pos(self) -> int:
        return int(self._cons[0])

    @property
    def producer_pos(self) -> int:
        return int(self._prod[0])

    def _unmap(self) -> None:
        unmap((self._cons, self._prod, self._data32, self._data),
              (self._cons_map, self._data_map))


class Ring(RingPages):
    """One ring buffer map's mappings and consumer state (libbpf ``struct ring``)."""

    def __init__(self, fd: int, size: int, *, name: str, decoder: RecordDecoder | None,
                 callback: Callback | None) -> None:
        super().__init__(fd, size, name=name, map=name)
        self.decoder = decoder
        self.callback = callback
        self.backlog: list[Record] = []  # records a raising callback did not see yet
        self._raw_batches: dict[int, Callable[[Any], list[Any]]] = {}
        # committed records at least this long are decoded in batches (shorter ones are
        # returned as bytes, one by one)
        self._min_len = decoder.size if decoder is not None else 0

    def avail_data_size(self) -> int:
        """Bytes written but not consumed (libbpf ring__avail_data_size())."""
        return self.producer_pos - self.consumer_pos

    def _decode_one(self, off: int, length: int) -> Record:
        buf = self._data[off + BPF_RINGBUF_HDR_SZ : off + BPF_RINGBUF_HDR_SZ + length]
        if self.decoder is None:
            return bytes(buf)
        return self.decoder.decode(buf)

    def _raw_batch(self, length: int) -> Callable[[Any], list[Any]]:
        fn = self._raw_batches.get(length)
        if fn is None:
            stride = record_span(length)
            pad = stride - BPF_RINGBUF_HDR_SZ - length
            it = struct.Struct(f"={BPF_RINGBUF_HDR_SZ}x{length}s{pad}x").iter_unpack

            def fn(buf: Any) -> list[Any]:
                return [t[0] for t in it(buf)]

            self._raw_batches[length] = fn
        return fn

    def drain(self, out: list[Record], limit: int = BATCH_LIMIT) -> None:
        """Append the committed records up to the producer position read on entry to `out`
        (at most about `limit`) and release their space (libbpf ringbuf_process_ring();
        libbpf keeps going while producers keep producing, which in Python would grow
        `out` without bound: what is left is reported by the next epoll_wait, level
        triggered, since consumer_pos != producer_pos)."""
        cons_mv, data32, mask = self._cons, self._data32, self.mask
        cons = cons_mv[0]
        prod = self._prod[0]  # smp_load_acquire(r->producer_pos)
        _fence()
        stop = len(out) + limit
        while cons < prod and len(out) < stop:
            off = cons & mask
            hdr = data32[off >> 2]  # smp_load_acquire(len_ptr)
            _fence()
            if hdr & BPF_RINGBUF_BUSY_BIT:
                break  # not committed yet: its commit wakes us up (cons == its position)
            length = hdr & _LEN_MASK
            if hdr == length and length >= self._min_len:  # committed, not discarded
                cons += self._batch(off, length, prod - cons, out)
            else:
                if not hdr & BPF_RINGBUF_DISCARD_BIT:
                    out.append(self._decode_one(off, length))
                cons += record_span(length)
            _fence()
            cons_mv[0] = cons  # smp_store_release(r->consumer_pos, cons_pos)

    def _batch(self, off: int, length: int, avail: int, out: list[Record]) -> int:
        """Decode the run of committed records of `length` bytes starting at `off` (the
        first one is known committed; a record longer than the type decodes its first
        bytes, as `RecordDecoder.decode` does); returns the bytes consumed."""
        stride = record_span(length)
        n = min(avail // stride, CHUNK)
        step = stride >> 2
        # every header of the run, then the payloads: lengths are read before the data
        hdrs = self._data32[off >> 2 : (off >> 2) + n * step : step].tolist()
        _fence()
        if hdrs.count(length) != n:
            n = next(i for i, h in enumerate(hdrs) if h != length)
        buf = self._data[off : off + n * stride]
        if self.decoder is not None:
            out.extend(self.decoder.decode_batch(buf, stride, BPF_RINGBUF_HDR_SZ))
        else:
            out.extend(self._raw_batch(length)(buf))
        return n * stride

    def close(self) -> None:
        """Unmap the ring (the map stays open)."""
        self._unmap()


# --------------------------------------------------------------------------------------
# RingBuffer
# --------------------------------------------------------------------------------------


class RingBuffer(BufferConsumer):
    """A consumer of one or more BPF_MAP_TYPE_RINGBUF maps (libbpf ``struct ring_buffer``).

    `map_or_fd`: a loaded `bpfobj.maps.Map` or a map fd. `callback(record)` is called for
    each record of that ring by `poll()`/`consume()`; without one, records queue up for the
    iterator (`for r in rb`, `async for r in rb`) and `read()`. `event_type` (struct name
    or type id of `btf`) decodes records into dicts; otherwise they are bytes.

    A callback that raises stops the poll; the exception propagates and the records not
    handed to it yet are delivered first at the next poll (none is lost). The ring's space
    is released as records are copied out, before callbacks run (libbpf advances
    consumer_pos past a sample before looking at its callback's result too).

    `fileno()` is the epoll fd (libbpf ring_buffer__epoll_fd()): readable when a ring has
    data. The iterators, `read()`, `read_async()` and closing come from `BufferConsumer`.
    """

    _what = "ring buffer"

    def __init__(self, map_or_fd: Any = None, callback: Callback | None = None, *,
                 event_type: str | int | RecordDecoder | None = None,
                 btf: Btf | None = None) -> None:
        self._epoll: select.epoll | None = select.epoll()  # ring_buffer__new(): epoll_create1
        self._rings: dict[int, Ring] = {}
        self._pending: list[Record] = []
        self._btf = btf
        if map_or_fd is not None:
            self.add(map_or_fd, callback, event_type=event_type, btf=btf)

    def add(self, map_or_fd: Any, callback: Callback | None = None, *,
            event_type: str | int | RecordDecoder | None = None,
            btf: Btf | None = None) -> Ring:
        """Add a ring buffer map (libbpf ring_buffer__add())."""
        epoll = self._live()
        fd, info, map_btf = map_fd_and_info(map_or_fd)
        name = getattr(map_or_fd, "name", None) or info["name"] or f"fd {fd}"
        if info["type"] != MapType.RINGBUF:
            raise SpecError(f"map {name!r} is not a ring buffer (type {info['type']})",
                            hint="RingBuffer reads BPF_MAP_TYPE_RINGBUF maps; use "
                                 "bpfobj.perfbuf.PerfBuffer for perf event arrays")
        if fd in self._rings:
            raise SpecError(f"ring buffer {name!r} was added twice")
        decoder = make_decoder(event_type, btf or self._btf, map_btf)
        ring = Ring(fd, int(info["max_entries"]), name=name, decoder=decoder,
                    callback=callback)
        try:
            epoll.register(fd, select.EPOLLIN)
        except OSError as exc:
            ring.close()
            raise SyscallError("epoll_ctl failed", errno=exc.errno or 0, command="epoll_ctl",
                               map=name) from None
        self._rings[fd] = ring
        return ring

    @property
    def rings(self) -> list[Ring]:
        return list(self._rings.values())

    # -- consuming -----------------------------------------------------------------------

    def _process(self, ring: Ring) -> int:
        out: list[Record] = ring.backlog
        ring.backlog = []
        ring.drain(out)
        cb = ring.callback
        if cb is None:
            self._pending.extend(out)
            return len(out)
        rest = iter(out)
        try:
            for rec in rest:
                cb(rec)
        except BaseException:
            ring.backlog = list(rest)  # the records after the one that raised
            raise
        return len(out)

    def poll(self, timeout: float | None = None) -> int:
        """Wait up to `timeout` seconds (None: forever, 0: not at all) for data, then
        consume the rings that have some (ring_buffer__poll()). Returns the records
        consumed (delivered to callbacks or queued for the iterator)."""
        epoll = self._live()
        rings = self._rings
        count = 0
        for ring in list(rings.values()):
            if ring.backlog:  # records a raising callback left: first, without waiting
                count += self._process(ring)
        if count:
            timeout = 0
        events = epoll.poll(-1 if timeout is None else timeout, len(rings) or 1)
        for fd, _ in events:
            ready = rings.get(fd)
            if ready is not None:
                count += self._process(ready)
        return count

    def consume(self) -> int:
        """Consume every ring without waiting (ring_buffer__consume())."""
        self._live()
        return sum(self._process(ring) for ring in list(self._rings.values()))

    # -- closing -------------------------------------------------------------------------

    def _close_rings(self) -> None:
        """Unmap every ring (the maps stay open)."""
        for ring in self._rings.values():
            ring.close()
        self._rings.clear()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ", ".join(r.name for r in self._rings.values())
        return f"<RingBuffer {state}>"
