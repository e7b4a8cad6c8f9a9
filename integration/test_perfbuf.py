"""PerfBuffer against the running kernel: a BPF program on syscalls:sys_enter_getppid calls
bpf_perf_event_output() for the test process (pinned to one CPU where it matters).

What is proven here:

* per-CPU BPF_OUTPUT perf events are opened, mmap-ed and written into the perf event array
  (and taken out again on close); samples come back decoded through BTF, in order;
* lost-sample accounting: with a deliberately tiny buffer (1 page per CPU) and no
  consumer, the kernel drops samples; the samples received equal the outputs the BPF side
  saw succeed, and the PERF_RECORD_LOST counts (`lost`, `lost_by_cpu`, `lost_callback`)
  equal the outputs it saw fail, exactly;
* variable-size samples through a 1-page ring wrap its end (the copy path) intact;
* `wakeup_events` and `watermark`: poll() is not woken below the threshold, is above it,
  and consume() reads without a wake-up;
* iterator, records(), read(), async for, callbacks, raw bytes, closing.
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bpfobj import BpfObject
from bpfobj.errors import PhaseError, SpecError
from bpfobj.perfbuf import PerfBuffer

BPF_SRC = r"""// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct prec {
	__u64 seq;
	__u32 pid;
	__u32 cpu;
	char comm[16];
	__u8 pad[32];
};
const struct prec *unused_prec __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[256]);
} scratch SEC(".maps");

__u32 target_pid;
__u32 mode;      /* 0 fixed records, 1 variable-size */
__u32 per_call;
__u64 seq;
__u64 ok;
__u64 failed;

SEC("tp/syscalls/sys_enter_getppid")
int produce(void *ctx)
{
	__u32 zero = 0, len;
	__u8 *buf;

	if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	buf = bpf_map_lookup_elem(&scratch, &zero);
	if (!buf)
		return 0;
	for (int i = 0; i < 64; i++) {
		if (i >= per_call)
			break;
		if (mode == 1) {
			len = 1 + (seq * 37) % 200;
			for (int j = 0; j < 256; j++)
				buf[j] = (seq + j) & 0xff;
			if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, buf, len & 0xff))
				failed++;
			else
				ok++;
			seq++;
			continue;
		}
		struct prec *r = (struct prec *)buf;
		r->seq = seq++;
		r->pid = target_pid;
		r->cpu = bpf_get_smp_processor_id();
		bpf_get_current_comm(r->comm, sizeof(r->comm));
		for (int j = 0; j < 32; j++)
			r->pad[j] = j;
		if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, r, sizeof(*r)))
			failed++;
		else
			ok++;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def obj(attached_source: Callable[[str, str], BpfObject]) -> BpfObject:
    return attached_source("perfbuf_test.bpf.c", BPF_SRC)


@contextmanager
def on_one_cpu() -> Iterator[int]:
    """Pin this thread to one CPU (samples go to that CPU's ring, in order)."""
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def trigger(n: int) -> None:
    for _ in range(n):
        os.getppid()


def start(obj: BpfObject, **settings: int) -> None:
    settings.setdefault("per_call", 1)
    for key, value in settings.items():
        setattr(obj.bss, key, value)
    obj.bss.target_pid = os.getpid()


def test_samples_decoded_through_btf(obj: BpfObject) -> None:
    pb = PerfBuffer(obj.maps["events"], event_type="prec", btf=obj.spec.btf, page_cnt=8)
    cpus = [b.cpu for b in pb.buffers]
    assert cpus and cpus == sorted(cpus)
    comm = Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_bytes().strip()
    with on_one_cpu() as cpu:
        start(obj)
        trigger(100)
        got = pb.read(1)
    assert [r["seq"] for r in got] == list(range(100))
    assert all(r["pid"] == os.getpid() and r["cpu"] == cpu and r["comm"] == comm for r in got)
    assert got[0]["pad"] == bytes(range(32))
    assert pb.lost == 0 and obj.bss.failed == 0
    pb.close()
    for c in cpus:  # taken out of the map on close (perf_buffer__free())
        assert not obj.maps["events"].delete_raw(c.to_bytes(4, "little"))


def test_lost_samples_are_counted_exactly(obj: BpfObject) -> None:
    lost_calls: list[tuple[int, int]] = []
    pb = PerfBuffer(obj.maps["events"], event_type="prec", btf=obj.spec.btf, page_cnt=1,
                    lost_callback=lambda cpu, n: lost_calls.append((cpu, n)))
    with on_one_cpu() as cpu:
        start(obj, per_call=20)
        trigger(100)  # 2000 samples of 80 bytes into 4 KiB: most are dropped
        assert obj.bss.failed > 1000
        got = pb.read(0)
        assert pb.lost == 0  # the kernel writes PERF_RECORD_LOST with the next sample
        obj.bss.per_call = 1
        trigger(1)
        got += pb.read(1)
    ok, failed = obj.bss.ok, obj.bss.failed
    assert len(got) == ok
    assert pb.lost == failed
    assert pb.lost_by_cpu[cpu] == failed
    assert lost_calls == [(cpu, failed)]
    seqs = [r["seq"] for r in got]
    assert seqs == sorted(seqs) and seqs[-1] == 2000
    pb.close()


def test_variable_samples_wrap_a_one_page_ring(obj: BpfObject) -> None:
    pb = PerfBuffer(obj.maps["events"], page_cnt=1)
    got: list[bytes] = []
    with on_one_cpu():
        start(obj, mode=1)
        for _ in range(100):
            trigger(10)
            got.extend(pb.read(1))
    assert pb.lost == 0 and obj.bss.failed == 0
    assert len(got) == 1000
    for s, rec in enumerate(got):
        n = 1 + (s * 37) % 200
        # the raw sample is padded so that its u32 size and data end 8-byte aligned
        assert len(rec) == ((n + 4 + 7) & ~7) - 4, s
        assert rec[:n] == bytes((s + i) & 0xFF for i in range(n)), s
    assert sum(len(r) + 12 for r in got) > 20 * 4096  # around the ring many times
    pb.close()


def test_wakeup_events(obj: BpfObject) -> None:
    pb = PerfBuffer(obj.maps["events"], event_type="prec", btf=obj.spec.btf, page_cnt=4,
                    wakeup_events=10)
    with on_one_cpu():
        start(obj)
        trigger(3)
        assert pb.poll(0.2) == 0  # below wakeup_events: no wake-up
        trigger(7)
        assert pb.poll(2) == 10
        trigger(4)
        assert pb.poll(0.2) == 0
        assert pb.consume() == 4  # read without a wake-up
    assert [r["seq"] for r in pb.read(0)] == list(range(14))
    pb.close()


def test_watermark(obj: BpfObject) -> None:
    pb = PerfBuffer(obj.maps["events"], event_type="prec", btf=obj.spec.btf, page_cnt=4,
                    watermark=2048)
    with on_one_cpu():
        start(obj)
        trigger(10)  # 800 bytes
        assert pb.poll(0.2) == 0
        trigger(20)  # 2400 bytes: above the watermark
        assert pb.poll(2) == 30
    pb.close()


def test_callbacks_iterator_and_async(obj: BpfObject, alarm: None) -> None:
    seen: list[tuple[int, int]] = []
    pb = PerfBuffer(obj.maps["events"], lambda cpu, r: seen.append((cpu, r["seq"])),
                    event_type="prec", btf=obj.spec.btf)
    with on_one_cpu() as cpu:
        start(obj)
        trigger(5)
        assert pb.poll(1) == 5
    assert seen == [(cpu, s) for s in range(5)]
    pb.close()

    pb = PerfBuffer(obj.maps["events"], event_type="prec", btf=obj.spec.btf)
    timer = threading.Timer(0.1, trigger, (8,))
    timer.start()
    got = []
    for rec in pb:
        got.append(rec["seq"])
        if len(got) == 8:
            break
    timer.join()

    async def main() -> list[int]:
        asyncio.get_running_loop().call_later(0.1, trigger, 6)
        out: list[int] = []
        async with asyncio.timeout(10):
            async for rec in pb:
                out.append(rec["seq"])
                if len(out) == 6:
                    break
        return out

    got += asyncio.run(main())
    assert sorted(got) == list(range(5, 19))
    pb.close()


def test_raw_samples_and_errors(obj: BpfObject) -> None:
    with PerfBuffer(obj.maps["events"].fd, page_cnt=2) as pb, on_one_cpu():
        start(obj)
        trigger(3)
        got = list(pb.records(1))
    assert [struct.unpack_from("=QI", r) for r in got] == [(s, os.getpid()) for s in range(3)]
    assert all(len(r) == 68 for r in got)  # 64 bytes padded to 4 + 68 = 72
    with pytest.raises(SpecError, match="power of 2"):
        PerfBuffer(obj.maps["events"], page_cnt=3)
    with pytest.raises(SpecError, match="not a perf event array"):
        PerfBuffer(obj.maps["scratch"])
    pb = PerfBuffer(obj.maps["events"])
    pb.close()
    with pytest.raises(PhaseError):
        pb.poll(0)


def test_no_fd_leak(obj: BpfObject, count_fds: Callable[[], int]) -> None:
    fd_count = count_fds

    before = fd_count()
    for _ in range(3):
        with PerfBuffer(obj.maps["events"], page_cnt=1) as pb:
            pb.consume()
    assert fd_count() == before


