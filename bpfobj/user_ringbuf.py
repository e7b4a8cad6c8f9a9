"""BPF_MAP_TYPE_USER_RINGBUF producer (Linux 6.1+): user space writes records, a BPF
program drains them with bpf_user_ringbuf_drain(). libbpf's user_ring_buffer__* in Python.

    urb = UserRingBuffer(obj.maps["requests"], record_type="request")   # BTF-encoded dicts
    urb.write({"seq": 1, "value": 42})     # reserve + copy + submit; BufferFullError if full
    urb.write(b"raw bytes", timeout=1.0)   # wait up to 1 s for a program to drain space

    sample = urb.reserve(24)               # the two-step form, like libbpf's
    sample.buf[:8] = ...                   # a writable memoryview of the record
    urb.submit(sample)                     # or urb.discard(sample)

The layout is the kernel's (kernel/bpf/ringbuf.c), mapped by `bpfobj.ringbuf.RingPages`
from the other side than `bpfobj.ringbuf.Ring`: page 0 is the consumer page
(``consumer_pos``, advanced by the kernel: mapped read-only), page 1 the producer page
(``producer_pos``, advanced here), then the data pages mapped twice back to back,
read-write. A reserved record gets an 8-byte header whose
length carries BPF_RINGBUF_BUSY_BIT until it is submitted (or BPF_RINGBUF_DISCARD_BIT when
discarded); records are 8-byte aligned. The kernel drains records in order and stops at the
first busy one, so every reservation must be submitted or discarded (close() discards the
ones left).

One producer: the methods serialise on a lock, so threads may share a buffer, but two
`UserRingBuffer` objects (or processes) must not produce into the same map at once.
"""

from __future__ import annotations

import mmap
import select
import threading
import time

from bpfobj.closing import ClosingOnDel
from bpfobj.errors import BufferFullError, PhaseError, SpecError
from bpfobj.ringbuf import (
    BPF_RINGBUF_BUSY_BIT,
    BPF_RINGBUF_DISCARD_BIT,
    BPF_RINGBUF_HDR_SZ,
    RingPages,
    _fence,
    map_fd_and_info,
    record_span,
    record_type_id,
)
from bpfobj.uapi import MapType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf.reader import Btf
    from bpfobj.maps import Codec
    from bpfobj.spec import MapSpec

__all__ = ["Sample", "UserRingBuffer", "check_spec"]


def check_spec(m: MapSpec, *, obj: str | None = None) -> None:
    """Refuse a user ring buffer definition the kernel would refuse with EINVAL."""
    size, page = m.max_entries, mmap.PAGESIZE
    if size <= 0 or size & (size - 1) or size % page:
        raise SpecError(f"user ring buffer {m.name!r} has max_entries {size}: its size in "
                        f"bytes must be a power of 2 and a multiple of the page size ({page})",
                        obj=obj, map=m.name, hint="set __uint(max_entries, 256 * 1024); or so")
    if m.key_size or m.value_size:
        raise SpecError(f"user ring buffer {m.name!r} has a key or value type; it takes "
                        "neither", obj=obj, map=m.name,
                        hint="drop __type(key/value, ...) from its definition")


# libbpf uses smp_load_acquire()/smp_store_release() on the positions and an atomic
# exchange (acq_rel) on the header: `_fence` (bpfobj.ringbuf) gives that ordering.


class Sample:
    """A reserved record: `buf` is a writable view of its `size` bytes until it is
    submitted or discarded."""

    __slots__ = ("_hdr", "buf", "size")

    def __init__(self, hdr: int, buf: memoryview, size: int) -> None:
        self._hdr = hdr  # the header's offset in the (first copy of the) data area
        self.buf = buf
        self.size = size

    @property
    def done(self) -> bool:
        return self._hdr < 0

    def write(self, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        if self.done:
            raise PhaseError("the sample was already submitted or discarded")
        if offset < 0 or offset + len(data) > self.size:
            raise SpecError(f"{len(data)} bytes at offset {offset} do not fit a sample of "
                            f"{self.size} bytes")
        self.buf[offset : offset + len(data)] = data


class UserRingBuffer(RingPages, ClosingOnDel):
    """A producer into one BPF_MAP_TYPE_USER_RINGBUF map (libbpf ``struct user_ring_buffer``).

    `map_or_fd`: a loaded `bpfobj.maps.Map` or a map fd. `record_type` (a struct, union or
    typedef name, or a type id of `btf`, by default the map's object's BTF) lets `write`
    take dicts, encoded as map values are; records are otherwise bytes.
    """

    def __init__(self, map_or_fd: Any, *, record_type: str | int | None = None,
                 btf: Btf | None = None) -> None:
        self.name = str(getattr(map_or_fd, "name", f"fd {map_or_fd}"))
        self.obj = getattr(map_or_fd, "obj", None)
        fd, info, map_btf = map_fd_and_info(map_or_fd)
        if info["type"] != MapType.USER_RINGBUF:
            raise SpecError(f"map {self.name!r} is not a user ring buffer "
                            f"({MapType(info['type']).label})", obj=self.obj,
                            hint="declare it with __uint(type, BPF_MAP_TYPE_USER_RINGBUF)")
        self._codec = self._record_codec(record_type, btf or map_btf)
        self._lock = threading.Lock()
        self._pending: dict[int, Sample] = {}
        # consumer page read-only; producer page + 2x data read-write
        RingPages.__init__(self, fd, int(info["max_entries"]), name=self.name, producer=True,
                           what="user ring buffer", obj=self.obj)
        # woken (EPOLLOUT) when a program drained records: edge triggered, so a ring that
        # has some room, but not enough, does not wake the waiter in a loop
        self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLOUT | select.EPOLLET)

    @staticmethod
    def _record_codec(record_type: str | int | None, btf: Btf | None) -> Codec | None:
        if record_type is None:
            return None
        from bpfobj.maps import Codec

        btf, tid = record_type_id(record_type, btf)
        return Codec(btf, tid, btf.size_of(tid))

    # -- positions -------------------------------------------------------------------------

    def avail_space(self) -> int:
        """Bytes free for records (headers and padding included)."""
        self._check_open()
        return self.size - (self.producer_pos - self.consumer_pos)

    def _check_open(self) -> None:
        if self._epoll.closed:
            raise PhaseError(f"user ring buffer {self.name!r} is closed", obj=self.obj)

    # -- producing ------------------------------------------------------------------------

    def reserve(self, size: int) -> Sample:
        """Reserve a record of `size` bytes (libbpf user_ring_buffer__reserve()); raises
        `BufferFullError` when the ring has no room for it now."""
        with self._lock:
            self._check_open()
            total = self._total(size)
            cons = self._cons[0]  # smp_load_acquire(consumer_pos)
            prod = self._prod[0]
            _fence()
            avail = self.size - (prod - cons)
            if avail < total:
                raise BufferFullError(
                    f"user ring buffer {self.name!r} is full: a record of {size} bytes needs "
                    f"{total} bytes, {avail} of {self.size} are free", needed=total,
                    available=avail, obj=self.obj,
                    hint="run the program that drains it (bpf_user_ringbuf_drain), or "
                         "write with a timeout to wait for it")
            off = prod & self.mask
            self._data32[off >> 2] = size | BPF_RINGBUF_BUSY_BIT
            self._data32[(off >> 2) + 1] = 0
            _fence()
            self._prod[0] = prod + total  # smp_store_release(producer_pos)
            start = off + BPF_RINGBUF_HDR_SZ  # the second copy makes a wrapped record whole
            sample = Sample(off, self._data[start : start + size], size)
            self._pending[off] = sample
            return sample

    def _total(self, size: int) -> int:
        if size < 0 or size & (BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT):
            raise SpecError(f"record size {size} is out of range")
        total = record_span(size)
        if total > self.size:
            raise SpecError(f"a record of {size} bytes ({total} with its header) can never "
                            f"fit user ring buffer {self.name!r} of {self.size} bytes",
                            obj=self.obj, hint="make the ring bigger (max_entries)")
        return total

    def reserve_blocking(self, size: int, timeout: float | None = None) -> Sample:
        """`reserve`, waiting up to `timeout` seconds (None: for ever) for a program to
        drain enough space (libbpf user_ring_buffer__reserve_blocking())."""
        self._total(size)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return self.reserve(size)
            except BufferFullError:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise
            # re-check at least every 100 ms: a drain between the failed reserve and the
            # wait is reported by the edge-triggered epoll anyway; this bounds the rest
            self._epoll.poll(0.1 if left is None else min(left, 0.1))

    def _commit(self, sample: Sample, discard: bool) -> None:
        with self._lock:
            self._check_open()
            off = sample._hdr
            if off < 0 or self._pending.get(off) is not sample:
                raise PhaseError("the sample was already submitted or discarded, or is not "
                                 f"from user ring buffer {self.name!r}", obj=self.obj)
            del self._pending[off]
            sample._hdr = -1
            sample.buf.release()
            length = sample.size | (BPF_RINGBUF_DISCARD_BIT if discard else 0)
            _fence()
            self._data32[off >> 2] = length  # the kernel may consume it from now on

    def submit(self, sample: Sample) -> None:
        """Hand a reserved record to the kernel (libbpf user_ring_buffer__submit())."""
        self._commit(sample, False)

    def discard(self, sample: Sample) -> None:
        """Give a reserved record up: the kernel skips it (user_ring_buffer__discard())."""
        self._commit(sample, True)

    def encode(self, record: Any) -> bytes:
        """A record's bytes: bytes as they are, anything else through the record type."""
        if isinstance(record, bytes | bytearray | memoryview):
            return bytes(record)
        if self._codec is None:
            raise SpecError(f"user ring buffer {self.name!r} takes bytes without a record "
                            f"type, not {type(record).__name__}", obj=self.obj,
                            hint="pass record_type= (a struct name) to UserRingBuffer")
        return self._codec.encode(record)

    def write(self, record: Any, *, timeout: float | None = 0.0) -> None:
        """Reserve, fill and submit one record (bytes, or a value of the record type).
        `timeout`: 0 raises `BufferFullError` at once when full, else wait that long for a
        program to drain space (None: for ever)."""
        data = self.encode(record)
        if timeout == 0.0:
            sample = self.reserve(len(data))
        else:
            sample = self.reserve_blocking(len(data), timeout)
        sample.buf[:] = data
        self.submit(sample)

    # -- lifetime -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._epoll.closed

    def fileno(self) -> int:
        """An epoll fd that is readable when a program drained records."""
        self._check_open()
        return self._epoll.fileno()

    def close(self) -> None:
        """Discard the records still reserved (so the kernel is not stuck at them) and
        unmap the ring."""
        with self._lock:
            if self._epoll.closed:
                return
            pending = list(self._pending.values())
        for sample in pending:
            self.discard(sample)
        with self._lock:
            self._epoll.close()
            self._unmap()  # a sample's view still alive keeps its mapping until collected

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.avail_space()} of {self.size} bytes free"
        return f"<UserRingBuffer {self.name!r} {state}>"

