"""BPF_MAP_TYPE_PERF_EVENT_ARRAY consumer: libbpf's perf_buffer in pure Python.

    pb = PerfBuffer(obj.maps["events"], event_type="event", btf=obj.spec.btf, page_cnt=64)
    for event in pb:                       # blocks; one dict (or bytes) per sample
        ...
    pb.lost, pb.lost_by_cpu                # PERF_RECORD_LOST counts

    pb = PerfBuffer(obj.maps["events"], callback=on_sample, lost_callback=on_lost)
    pb.poll(0.1)                           # perf_buffer__poll(); on_sample(cpu, record)

What libbpf's perf_buffer__new() does, per online CPU below the map's size: a
PERF_COUNT_SW_BPF_OUTPUT software event (PERF_SAMPLE_RAW, sample_period 1, wakeup after
`wakeup_events` samples or `watermark` bytes), its ring mmap-ed read-write (1 + `page_cnt`
pages: the read-write mapping makes the kernel honour ``data_tail`` and report overflow as
PERF_RECORD_LOST instead of overwriting), PERF_EVENT_IOC_ENABLE, the fd written into the
map at the CPU's index, and the fd added to one epoll set.

Reading follows perf_event_read_simple(): ``data_head`` (acquire) to ``data_tail``; a record
that wraps the end of the ring is copied out; ``data_tail`` is published (release) after the
records are copied. Runs of PERF_RECORD_SAMPLE records of the record type's size are decoded
in one batch (see `bpfobj.ringbuf.RecordDecoder`).
"""

from __future__ import annotations

import mmap
import select
import struct
import sys
from collections.abc import Callable

from bpfobj.buffers import BufferConsumer
from bpfobj.errors import SpecError, SyscallError
from bpfobj.ringbuf import RecordDecoder, _fence, make_decoder, map_fd_and_info, unmap
from bpfobj.uapi import MapType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    from bpfobj.btf.reader import Btf
    from bpfobj.sys.syscall import Fd

__all__ = ["PERF_RECORD_LOST", "PERF_RECORD_SAMPLE", "CpuBuffer", "PerfBuffer"]

# linux/perf_event.h: enum perf_event_type
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
# struct perf_event_mmap_page: data_head, data_tail, data_offset, data_size (u64 indexes)
_DATA_HEAD = 1024 // 8
_DATA_TAIL = 1032 // 8
_DATA_OFFSET = 1040 // 8
_HDR = 8  # struct perf_event_header { u32 type; u16 misc; u16 size; }
_SAMPLE_HDR = _HDR + 4  # then u32 size; char data[size] (PERF_SAMPLE_RAW)
#: records decoded per batch before data_tail is published
CHUNK = 2048

Record: TypeAlias = "Any"
SampleCallback = Callable[[int, Record], object]
LostCallback = Callable[[int, int], object]


class CpuBuffer:
    """One CPU's perf event and ring (libbpf ``struct perf_cpu_buf``)."""

    def __init__(self, cpu: int, fd: Fd, page_cnt: int, decoder: RecordDecoder | None) -> None:
        page = mmap.PAGESIZE
        self.cpu = cpu
        self.fd = fd
        self.decoder = decoder
        self.lost = 0
        self.size = page * page_cnt
        self.mask = self.size - 1
        try:
            self._map = mmap.mmap(fd.fileno(), page + self.size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise SyscallError(f"cannot mmap the perf buffer of CPU {cpu}",
                               errno=exc.errno or 0, command="mmap", cpu=cpu) from None
        mv = memoryview(self._map)
        self._ctl = mv[:page].cast("Q")
        base = int(self._ctl[_DATA_OFFSET]) or page  # data_offset (Linux 4.1+), else 1 page
        self._data = mv[base : base + self.size]
        self._d32 = self._data.cast("I")
        self._d16 = self._data.cast("H")
        self._raw_batches: dict[int, Callable[[Any], list[Any]]] = {}
        # samples holding at least a record of the type are decoded in batches (runs of
        # one size); the raw size of a bpf_perf_event_output() of n bytes is padded so that
        # the u32 size and the data end 8-byte aligned: round8(4 + n) - 4
        self._min_size = _SAMPLE_HDR + decoder.size if decoder is not None else _SAMPLE_HDR

    @property
    def data_head(self) -> int:
        return int(self._ctl[_DATA_HEAD])

    @property
    def data_tail(self) -> int:
        return int(self._ctl[_DATA_TAIL])

    def _sample(self, buf: memoryview) -> Record:
        """A PERF_RECORD_SAMPLE (`buf` starts at its header): its raw data."""
        size = int.from_bytes(buf[_HDR : _SAMPLE_HDR], sys.byteorder)
        data = buf[_SAMPLE_HDR : _SAMPLE_HDR + size]
        return bytes(data) if self.decoder is None else self.decoder.decode(data)

    def drain(self, out: list[Record], lost: list[int]) -> None:
        """Append the samples to `out` and lost counts to `lost` (perf_event_read_simple()
        with perf_buffer__process_record())."""
        ctl, d32, d16, data, mask = self._ctl, self._d32, self._d16, self._data, self.mask
        head = ctl[_DATA_HEAD]  # ring_buffer_read_head(): smp_load_acquire
        _fence()
        tail = ctl[_DATA_TAIL]
        min_size = self._min_size
        while tail < head:
            off = tail & mask
            rtype = d32[off >> 2]
            size = d16[(off + 6) >> 1]
            if size < _HDR:
                raise SyscallError(f"corrupt perf ring on CPU {self.cpu}: record of {size} "
                                   "bytes", errno=0, command="perf ring", cpu=self.cpu)
            if rtype == PERF_RECORD_SAMPLE and size >= min_size and off + size <= self.size:
                tail += self._batch(off, size, head - tail, out)
            else:
                if off + size > self.size:  # wraps: copy the two parts (libbpf tmp buf)
                    rec = memoryview(bytes(data[off:]) + bytes(data[: off + size - self.size]))
                else:
                    rec = data[off : off + size]
                if rtype == PERF_RECORD_SAMPLE:
                    out.append(self._sample(rec))
                elif rtype == PERF_RECORD_LOST:  # { header; u64 id; u64 lost; }
                    n = int.from_bytes(rec[16:24], sys.byteorder)
                    self.lost += n
                    lost.append(n)
                # other records (throttle, ...) are skipped, like libbpf's warning path
                tail += size
            _fence()
            ctl[_DATA_TAIL] = tail  # ring_buffer_write_tail(): smp_store_release

    def _batch(self, off: int, size: int, avail: int, out: list[Record]) -> int:
        """The run of samples of `size` bytes from `off` that ends before the ring does."""
        n = min(avail // size, (self.size - off) // size, CHUNK)
        # types and sizes of every header of the run first, the payloads after
        types = self._d32[off >> 2 : (off + n * size) >> 2 : size >> 2].tolist()
        sizes = self._d16[(off + 6) >> 1 : (off + n * size) >> 1 : size >> 1].tolist()
        if types.count(PERF_RECORD_SAMPLE) != n or sizes.count(size) != n:
            n = next(i for i, (t, s) in enumerate(zip(types, sizes))
                     if t != PERF_RECORD_SAMPLE or s != size)
        buf = self._data[off : off + n * size]
        if self.decoder is not None:
            out.extend(self.decoder.decode_batch(buf, size, _SAMPLE_HDR))
        else:
            out.extend(self._raw_batch(size)(buf))
        return n * size

    def _raw_batch(self, size: int) -> Callable[[Any], list[Any]]:
        fn = self._raw_batches.get(size)
        if fn is None:
            it = struct.Struct(f"={_HDR}xI{size - _SAMPLE_HDR}s").iter_unpack

            def fn(buf: Any) -> list[Any]:
                return [data[:n] for n, data in it(buf)]

            self._raw_batches[size] = fn
        return fn

    def close(self) -> None:
        unmap((self._d16, self._d32, self._data, self._ctl), (self._map,))
        self.fd.close()


class PerfBuffer(BufferConsumer):
    """Per-CPU perf rings feeding one BPF_MAP_TYPE_PERF_EVENT_ARRAY (libbpf perf_buffer).

    `map_or_fd`: a loaded `Map` or a map fd. `page_cnt`: data pages per CPU, a power of 2.
    `callback(cpu, record)` per sample and `lost_callback(cpu, count)` per
    PERF_RECORD_LOST from `poll()`/`consume()`; without a callback, samples queue up for the
    iterator (`for r in pb`, `async for r in pb`) and `read()`. `event_type` (struct name or
    type id of `btf`) decodes samples into dicts, else they are bytes (the raw sample,
    padding included, as libbpf gives it). `wakeup_events` (samples) or `watermark` (bytes)
    set when the kernel wakes a poller up; samples below that threshold wait for
    `consume()` or later samples. `cpus`: the CPUs to open (default: every online CPU below
    the map's max_entries).

    `lost` counts the samples the kernel dropped because a ring was full (their sum over
    `lost_by_cpu`). `fileno()` is the epoll fd (libbpf perf_buffer__epoll_fd()). The
    iterators, `read()`, `read_async()` and closing come from `BufferConsumer`.
    """

    _what = "perf buffer"

    def __init__(self, map_or_fd: Any, callback: SampleCallback | None = None, *,
                 lost_callback: LostCallback | None = None, page_cnt: int = 64,
                 event_type: str | int | RecordDecoder | None = None,
                 btf: Btf | None = None, wakeup_events: int = 1,
                 watermark: int | None = None, cpus: list[int] | None = None) -> None:
        from bpfobj.sys import attr, perf
        from bpfobj.sys.syscall import Cmd, bpf

        if page_cnt <= 0 or page_cnt & (page_cnt - 1):
            raise SpecError(f"page_cnt {page_cnt} is not a power of 2",
                            hint="libbpf wants a power-of-2 number of data pages per CPU")
        fd, info, map_btf = map_fd_and_info(map_or_fd)
        self.name = getattr(map_or_fd, "name", None) or info["name"] or f"fd {fd}"
        if info["type"] != MapType.PERF_EVENT_ARRAY:
            raise SpecError(f"map {self.name!r} is not a perf event array "
                            f"(type {info['type']})",
                            hint="use bpfobj.ringbuf.RingBuffer for ring buffer maps")
        self.map_fd = fd
        self.callback = callback
        self.lost_callback = lost_callback
        self.page_cnt = page_cnt
        self.decoder = make_decoder(event_type, btf, map_btf)
        self._pending: list[Record] = []
        self._backlog: list[tuple[int, Record]] = []
        self._bufs: dict[int, CpuBuffer] = {}
        self._epoll: select.epoll | None = select.epoll()
        if cpus is None:
            online = set(perf.online_cpus())
            cpus = [c for c in perf.possible_cpus()
                    if c in online and c < int(info["max_entries"])]
        if watermark is not None:
            flags, wakeup = perf.FLAG_WATERMARK, watermark
        else:
            flags, wakeup = 0, wakeup_events
        try:
            for cpu in cpus:
                pfd = perf.open_event(perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_BPF_OUTPUT,
                                      cpu=cpu, sample_period=1,
                                      sample_type=perf.PERF_SAMPLE_RAW, flags=flags,
                                      wakeup_events=wakeup)
                try:
                    buf = CpuBuffer(cpu, pfd, page_cnt, self.decoder)
                except BaseException:
                    pfd.close()
                    raise
                self._bufs[pfd.fileno()] = buf
                perf.enable(pfd.fileno())
                key = cpu.to_bytes(4, sys.byteorder)
                value = pfd.fileno().to_bytes(4, sys.byteorder)
                bpf(Cmd.MAP_UPDATE_ELEM, attr.map_elem(fd, key, value),
                    what=f"cannot put CPU {cpu}'s perf event into map {self.name!r}",
                    map=self.name)
                self._epoll.register(pfd.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    @property
    def buffers(self) -> list[CpuBuffer]:
        return list(self._bufs.values())

    @property
    def lost(self) -> int:
        """Samples the kernel dropped (PERF_RECORD_LOST), on every CPU."""
        return sum(b.lost for b in self._bufs.values())

    @property
    def lost_by_cpu(self) -> dict[int, int]:
        return {b.cpu: b.lost for b in self._bufs.values()}

    # -- consuming -----------------------------------------------------------------------

    def _process(self, buf: CpuBuffer) -> int:
        out: list[Record] = []
        lost: list[int] = []
        buf.drain(out, lost)
        if self.lost_callback is not None:
            for n in lost:
                self.lost_callback(buf.cpu, n)
        cb = self.callback
        if cb is None:
            self._pending.extend(out)
            return len(out)
        cpu = buf.cpu
        rest = iter(out)
        try:
            for rec in rest:
                cb(cpu, rec)
        except BaseException:
            self._backlog.extend((cpu, r) for r in rest)  # after the one that raised
            raise
        return len(out)

    def _flush_backlog(self) -> int:
        backlog, self._backlog = self._backlog, []
        cb = self.callback
        assert cb is not None
        rest = iter(backlog)
        try:
            for cpu, rec in rest:
                cb(cpu, rec)
        except BaseException:
            self._backlog[:0] = rest
            raise
        return len(backlog)

    def poll(self, timeout: float | None = None) -> int:
        """Wait up to `timeout` seconds (None: forever) for a CPU's wake-up, then consume the
        rings that have data (perf_buffer__poll()). Returns the samples consumed."""
        epoll = self._live()
        count = self._flush_backlog() if self._backlog else 0
        if count:
            timeout = 0
        events = epoll.poll(-1 if timeout is None else timeout, len(self._bufs) or 1)
        bufs = self._bufs
        for fd, _ in events:
            buf = bufs.get(fd)
            if buf is not None:
                count += self._process(buf)
        return count

    def consume(self) -> int:
        """Consume every CPU's ring without waiting (perf_buffer__consume())."""
        self._live()
        count = self._flush_backlog() if self._backlog else 0
        return count + sum(self._process(b) for b in list(self._bufs.values()))

    # -- closing -------------------------------------------------------------------------

    def _close_rings(self) -> None:
        """Close every CPU's perf event and unmap its ring (the map keeps its now stale
        fds until it is closed; libbpf leaves them too)."""
        from bpfobj.sys import attr
        from bpfobj.sys.syscall import Cmd, bpf

        for buf in self._bufs.values():
            try:  # perf_buffer__free(): take the fd out of the map, then free the buffer
                bpf(Cmd.MAP_DELETE_ELEM,
                    attr.map_elem(self.map_fd, buf.cpu.to_bytes(4, sys.byteorder)))
            except (SyscallError, OSError):
                pass  # the map may be closed already
            buf.close()
        self._bufs.clear()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._bufs)} CPUs"
        return f"<PerfBuffer {self.name!r} {state}>"
