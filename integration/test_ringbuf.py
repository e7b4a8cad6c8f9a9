"""RingBuffer against the running kernel: a BPF program on syscalls:sys_enter_getppid writes
records for the test process (or a child), the consumer reads them back.

What is proven here:

* records come back decoded through BTF exactly as written (ints, signed ints, enums, bools,
  char arrays cut at NUL, arrays, nested and anonymous structs), in order, none twice;
* discarded records (BPF_RINGBUF_DISCARD_BIT) are skipped; variable-size records through a
  16 KiB ring wrap around its end many times and keep every byte (the double mapping);
* no record is lost while the producer is the limit (a paced child process, 30,000 records,
  the BPF side counts zero failed reservations and the consumer sees every sequence number);
* the blocking iterator, `records()`, `read()`, callbacks (a raising callback loses nothing),
  `async for`, two rings in one RingBuffer, poll timeouts, closing;
* the consumer algorithm on synthetic memory: a busy (uncommitted) record stops it until
  committed, discard bits, a record wrapping the end;
* the compiled decoder gives what bpfobj.maps' codec gives, and falls back to it for
  bitfields and unions.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bpfobj import BpfObject
from bpfobj.errors import PhaseError, SpecError
from bpfobj.ringbuf import (
    BPF_RINGBUF_BUSY_BIT,
    BPF_RINGBUF_DISCARD_BIT,
    RecordDecoder,
    Ring,
    RingBuffer,
)

BPF_SRC = r"""// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum kind { KIND_A = 1, KIND_B = 2, KIND_NEG = -3 };

struct inner {
	__u16 a;
	__u8 raw[3];
};

struct rec {
	__u64 seq;
	__u32 pid;
	__s32 neg;
	enum kind kind;
	_Bool odd;
	char comm[16];
	__u32 arr[3];
	struct inner in;
	struct {
		__s16 x;
		__u16 y;
	};
	__u64 ptrish;
};

struct odd {  /* bitfields and a union: the decoder's fallback path */
	__u32 lo : 3, mid : 20, hi : 9;
	__s32 sbits : 5;
	union {
		__u32 u;
		float f;
	} un;
	double d;
};

const struct rec *unused_rec __attribute__((unused));
const struct odd *unused_odd __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024);
} rb2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} big SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[256]);
} scratch SEC(".maps");

__u32 target_pid;
__u32 mode;           /* 0 fixed records, 1 variable-size output, 2 alternate rb/rb2, 3 big */
__u32 per_call;       /* records per getppid() (start() sets 1) */
__u32 discard_every;  /* discard records whose seq is a multiple (0: none) */
__u64 seq;
__u64 produced;
__u64 dropped;

static __always_inline void fill(struct rec *r, __u64 s)
{
	r->seq = s;
	r->pid = target_pid;
	r->neg = -(__s32)s;
	r->kind = (s & 1) ? KIND_A : KIND_NEG;
	r->odd = s & 1;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	r->arr[0] = s;
	r->arr[1] = s * 2;
	r->arr[2] = s * 3;
	r->in.a = s & 0xffff;
	r->in.raw[0] = 1;
	r->in.raw[1] = 0;
	r->in.raw[2] = s & 0xff;
	r->x = -(__s16)(s & 0x7fff);
	r->y = 7;
	r->ptrish = 0xffff888000000000ULL | s;
}

static __always_inline int emit_fixed(void *ring)
{
	struct rec *r = bpf_ringbuf_reserve(ring, sizeof(*r), 0);
	__u64 s;

	if (!r) {
		dropped++;
		return 0;
	}
	s = seq++;
	fill(r, s);
	produced++;
	if (discard_every && s % discard_every == 0)
		bpf_ringbuf_discard(r, 0);
	else
		bpf_ringbuf_submit(r, 0);
	return 0;
}

static __always_inline int emit_var(void)
{
	__u32 zero = 0, len;
	__u8 *buf = bpf_map_lookup_elem(&scratch, &zero);
	__u64 s = seq;

	if (!buf)
		return 0;
	len = 1 + (s * 37) % 200;
	for (int i = 0; i < 256; i++)
		buf[i] = (s + i) & 0xff;
	if (bpf_ringbuf_output(&rb, buf, len & 0xff, 0)) {
		dropped++;
		return 0;
	}
	seq++;
	produced++;
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int produce(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	for (int i = 0; i < 64; i++) {
		if (i >= per_call)
			break;
		if (mode == 1)
			emit_var();
		else if (mode == 2)
			emit_fixed((seq & 1) ? (void *)&rb2 : (void *)&rb);
		else if (mode == 3)
			emit_fixed(&big);
		else
			emit_fixed(&rb);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def obj(attached_source: Callable[[str, str], BpfObject]) -> BpfObject:
    return attached_source("ringbuf_test.bpf.c", BPF_SRC)


def trigger(n: int) -> None:
    for _ in range(n):
        os.getppid()


def my_comm() -> bytes:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_bytes().strip()


def expected(s: int, pid: int, comm: bytes) -> dict[str, Any]:
    return {
        "seq": s, "pid": pid, "neg": -s, "kind": 1 if s & 1 else -3, "odd": bool(s & 1),
        "comm": comm, "arr": [s & 0xFFFFFFFF, (2 * s) & 0xFFFFFFFF, (3 * s) & 0xFFFFFFFF],
        "in": {"a": s & 0xFFFF, "raw": bytes([1, 0, s & 0xFF])},
        "x": -(s & 0x7FFF), "y": 7, "ptrish": 0xFFFF888000000000 | s,
    }


def start(obj: BpfObject, *, pid: int | None = None, **settings: int) -> None:
    bss = obj.bss
    settings.setdefault("per_call", 1)
    for key, value in settings.items():
        setattr(bss, key, value)
    bss.target_pid = os.getpid() if pid is None else pid


# --------------------------------------------------------------------------------------
# Against the kernel
# --------------------------------------------------------------------------------------


def test_records_decoded_through_btf(obj: BpfObject) -> None:
    rb = RingBuffer(obj.maps["rb"], event_type="rec", btf=obj.spec.btf)
    assert rb.rings[0].decoder is not None and rb.rings[0].decoder.compiled
    start(obj)
    trigger(100)
    got = rb.read(1)
    comm = my_comm()
    assert got == [expected(s, os.getpid(), comm) for s in range(100)]
    assert rb.read(0) == []
    assert obj.bss.dropped == 0
    rb.close()


def test_raw_records_are_bytes(obj: BpfObject) -> None:
    with RingBuffer(obj.maps["rb"]) as rb:
        start(obj)
        trigger(5)
        got = rb.read(1)
    assert obj.spec.btf is not None
    size = RecordDecoder.by_name(obj.spec.btf, "rec").size
    assert [len(r) for r in got] == [size] * 5
    assert [struct.unpack_from("=QI", r) for r in got] == [(s, os.getpid()) for s in range(5)]


def test_discarded_records_are_skipped(obj: BpfObject) -> None:
    with RingBuffer(obj.maps["rb"], event_type="rec", btf=obj.spec.btf) as rb:
        start(obj, discard_every=3, per_call=4)
        trigger(25)
        got = [r["seq"] for r in rb.records(0.5)]
    assert got == [s for s in range(100) if s % 3]
    assert obj.bss.produced == 100


def test_variable_records_wrap_the_ring(obj: BpfObject) -> None:
    """1..200-byte records through a 16 KiB ring: 60 rounds of 50 wrap it ~15 times."""
    rb = RingBuffer(obj.maps["rb"])
    start(obj, mode=1)
    got: list[bytes] = []
    for _ in range(60):
        trigger(50)
        got.extend(rb.read(1))
    rb.close()
    assert obj.bss.dropped == 0
    assert len(got) == 3000
    for s, rec in enumerate(got):
        assert len(rec) == 1 + (s * 37) % 200, s
        assert rec == bytes((s + i) & 0xFF for i in range(len(rec))), s
    assert sum((len(r) + 15) & ~7 for r in got) > 15 * 16 * 1024  # wrapped many times


def test_no_loss_while_the_producer_is_the_limit(obj: BpfObject, alarm: None) -> None:
    """A child paced below the consumer's speed: every record arrives, none is dropped."""
    # at most ~100 records per ms; the 1 MiB ring holds ~21,800 records: the consumer may
    # stall for ~200 ms without a loss, and must keep up for 30,000 records
    total, burst = 30_000, 100
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, time\n"
         "sys.stdin.readline()\n"
         f"for _ in range({total // burst}):\n"
         f"    for _ in range({burst}): os.getppid()\n"
         "    time.sleep(0.001)\n"],
        stdin=subprocess.PIPE)
    try:
        rb = RingBuffer(obj.maps["big"], event_type="rec", btf=obj.spec.btf)
        start(obj, pid=child.pid, mode=3)
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.flush()
        seqs = []
        for rec in rb.records(10):  # ends after 10 s without a record: fails, not hangs
            seqs.append(rec["seq"])
            if len(seqs) == total:
                break
        assert child.wait(60) == 0
    finally:
        child.kill()
        child.wait()
    state = f"produced {obj.bss.produced}, dropped {obj.bss.dropped}, received {len(seqs)}"
    assert obj.bss.dropped == 0, state
    assert obj.bss.produced == total, state
    assert seqs == list(range(total)), state
    assert rb.read(0) == []
    rb.close()


def test_callback_exception_loses_nothing(obj: BpfObject) -> None:
    seen: list[int] = []

    def cb(rec: dict[str, Any]) -> None:
        if rec["seq"] == 4 and 4 not in seen:
            seen.append(4)
            raise RuntimeError("boom")
        seen.append(rec["seq"])

    rb = RingBuffer(obj.maps["rb"], cb, event_type="rec", btf=obj.spec.btf)
    start(obj)
    trigger(10)
    with pytest.raises(RuntimeError):
        rb.poll(1)
    assert seen == [0, 1, 2, 3, 4]
    assert rb.poll(0) == 5  # the backlog (5..9) first
    trigger(2)
    assert rb.poll(1) == 2
    assert seen == list(range(12))
    rb.close()


def test_blocking_iterator_and_early_stop(obj: BpfObject, alarm: None) -> None:
    rb = RingBuffer(obj.maps["rb"], event_type="rec", btf=obj.spec.btf)
    start(obj)
    timer = threading.Timer(0.2, trigger, (20,))
    timer.start()
    first = []
    for rec in rb:  # blocks until the timer fires
        first.append(rec["seq"])
        if len(first) == 7:
            break
    timer.join()
    rest = [r["seq"] for r in rb.records(0.3)]
    assert first + rest == list(range(20))
    rb.close()


def test_async_for(obj: BpfObject) -> None:
    rb = RingBuffer(obj.maps["rb"], event_type="rec", btf=obj.spec.btf)
    start(obj)

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, trigger, 30)
        got: list[int] = []
        async with asyncio.timeout(10):
            async for rec in rb:
                got.append(rec["seq"])
                if len(got) == 30:
                    break
        return got

    assert asyncio.run(main()) == list(range(30))

    async def batch() -> list[Any]:
        asyncio.get_running_loop().call_later(0.05, trigger, 3)
        async with asyncio.timeout(10):
            return await rb.read_async()

    assert [r["seq"] for r in asyncio.run(batch())] == [30, 31, 32]
    rb.close()


def test_two_rings_in_one_consumer(obj: BpfObject) -> None:
    other: list[int] = []
    rb = RingBuffer(obj.maps["rb"], event_type="rec", btf=obj.spec.btf)
    rb.add(obj.maps["rb2"], lambda r: other.append(r["seq"]), event_type="rec")
    assert len(rb.rings) == 2
    with pytest.raises(SpecError):
        rb.add(obj.maps["rb2"])
    start(obj, mode=2)
    trigger(20)
    time.sleep(0.05)
    mine = [r["seq"] for r in rb.read(1)]
    rb.consume()
    assert mine == list(range(0, 20, 2))
    assert other == list(range(1, 20, 2))
    rb.close()


def test_poll_timeout_and_close(obj: BpfObject, count_fds: Callable[[], int]) -> None:
    fd_count = count_fds

    before = fd_count()
    rb = RingBuffer(obj.maps["rb"].fd)  # a bare fd works too
    assert rb.fileno() > 0
    t0 = time.monotonic()
    assert rb.poll(0.1) == 0
    assert 0.05 < time.monotonic() - t0 < 2
    assert rb.poll(0) == 0
    rb.close()
    rb.close()  # twice is fine
    assert rb.closed and fd_count() == before
    with pytest.raises(PhaseError):
        rb.poll(0)


def test_wrong_map_type(obj: BpfObject) -> None:
    with pytest.raises(SpecError, match="not a ring buffer"):
        RingBuffer(obj.maps["scratch"])
    with pytest.raises(SpecError, match="no struct"):
        RingBuffer(obj.maps["rb"], event_type="nope", btf=obj.spec.btf)


# --------------------------------------------------------------------------------------
# The consumer algorithm on synthetic memory (no kernel)
# --------------------------------------------------------------------------------------


class FakeRing:
    """A ring's memory as the kernel lays it out: the data area mapped twice (written to
    both copies), a consumer and a producer position."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.cons = bytearray(8)
        self.prod = bytearray(8)
        self.data = bytearray(2 * size)
        self.pos = 0

    def write(self, off: int, raw: bytes) -> None:
        for i, b in enumerate(raw):
            p = (off + i) % self.size
            self.data[p] = b
            self.data[p + self.size] = b

    def reserve(self, payload: bytes, flags: int = 0) -> int:
        at = self.pos
        self.write(at, struct.pack("=II", len(payload) | flags, 0) + payload)
        self.pos += (len(payload) + 8 + 7) & ~7
        struct.pack_into("=Q", self.prod, 0, self.pos)
        return at

    def commit(self, at: int, length: int, flags: int = 0) -> None:
        self.write(at, struct.pack("=I", length | flags))

    def ring(self, decoder: RecordDecoder | None = None) -> Ring:
        r = Ring.__new__(Ring)
        r.size, r.mask, r.name, r.decoder, r.callback = self.size, self.size - 1, "fake", \
            decoder, None
        r.backlog = []
        r._cons = memoryview(self.cons).cast("Q")
        r._prod = memoryview(self.prod).cast("Q")
        r._data = memoryview(self.data)
        r._data32 = r._data.cast("I")
        r._raw_batches = {}
        r._min_len = decoder.size if decoder is not None else 0
        return r


def test_busy_record_stops_the_consumer_until_committed() -> None:
    fake = FakeRing()
    ring = fake.ring()
    fake.reserve(b"A" * 5)
    busy = fake.reserve(b"B" * 12, BPF_RINGBUF_BUSY_BIT)
    fake.reserve(b"C" * 3)
    out: list[bytes] = []
    ring.drain(out)
    assert out == [b"A" * 5]
    assert ring.consumer_pos == busy  # stops right at the uncommitted record
    ring.drain(out)
    assert out == [b"A" * 5]
    fake.commit(busy, 12)
    ring.drain(out)
    assert out == [b"A" * 5, b"B" * 12, b"C" * 3]
    assert ring.consumer_pos == ring.producer_pos


def test_discard_and_wrap_on_synthetic_memory() -> None:
    fake = FakeRing(256)
    ring = fake.ring()
    out: list[bytes] = []
    expect: list[bytes] = []
    for i in range(200):  # many laps of a 256-byte ring
        payload = bytes((i + j) & 0xFF for j in range(1 + (i * 13) % 40))
        discard = i % 5 == 0
        at = fake.reserve(payload, BPF_RINGBUF_BUSY_BIT)
        fake.commit(at, len(payload), BPF_RINGBUF_DISCARD_BIT if discard else 0)
        if not discard:
            expect.append(payload)
        if i % 3 == 2:
            ring.drain(out)
    ring.drain(out)
    assert out == expect


def test_batches_stop_at_a_different_header() -> None:
    """A run of same-size records is batched; an odd-size one in the middle ends the run."""
    fake = FakeRing(4096)
    ring = fake.ring()
    payloads = [bytes([i]) * (24 if i != 7 else 9) for i in range(40)]
    for p in payloads:
        fake.reserve(p)
    out: list[bytes] = []
    ring.drain(out)
    assert out == payloads


# --------------------------------------------------------------------------------------
# The decoder against bpfobj.maps' codec
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", ["rec", "odd", "inner"])
def test_decoder_matches_the_map_codec(bpf_build_text: Callable[[str, str], Path],
                                       type_name: str) -> None:
    from bpfobj.maps import Codec

    spec = BpfObject.open(bpf_build_text("ringbuf_test.bpf.c", BPF_SRC)).spec
    assert spec.btf is not None
    dec = RecordDecoder.by_name(spec.btf, type_name)
    assert dec.compiled == (type_name != "odd")
    codec = Codec(spec.btf, dec.type_id, dec.size)
    rnd = random.Random(7)
    blobs = [bytes(rnd.getrandbits(8) for _ in range(dec.size)) for _ in range(50)]
    for blob in blobs:
        assert dec.decode(blob) == codec.decode(blob)
    stride = (dec.size + 12 + 7) & ~7
    packed = b"".join(b"\xee" * 12 + b + b"\xee" * (stride - 12 - dec.size) for b in blobs)
    assert dec.decode_batch(packed, stride, 12) == [codec.decode(b) for b in blobs]
    assert dec.decode(blobs[0][:-1]) == blobs[0][:-1]  # short: bytes


def test_decoded_batches_of_longer_and_shorter_records(
        bpf_build_text: Callable[[str, str], Path]) -> None:
    """Records longer than the type decode their first bytes (in batches of one length);
    shorter ones come back as bytes; the order is kept."""
    spec = BpfObject.open(bpf_build_text("ringbuf_test.bpf.c", BPF_SRC)).spec
    assert spec.btf is not None
    dec = RecordDecoder.by_name(spec.btf, "inner")
    fake = FakeRing(4096)
    ring = fake.ring(dec)
    payloads = [bytes([i, 0, 1, 2, i, 0xEE]) + bytes(n) for i in range(6) for n in (0, 0, 9)]
    payloads += [b"\x01\x02", bytes(range(6))]
    for p in payloads:
        fake.reserve(p)
    out: list[Any] = []
    ring.drain(out)
    assert out == [dec.decode(p) if len(p) >= dec.size else p for p in payloads]
    assert out[0] == {"a": 0, "raw": b"\x01\x02\x00"} and out[-2] == b"\x01\x02"
