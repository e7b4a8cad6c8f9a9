#!/usr/bin/env python3
"""Ring buffer consumption: events/s decoded into Python by bpfobj, beside bcc and libbpf.

    python bench/ringbuf.py [--seconds 3] [--per-call 8]

One BPF program, three consumers. The program (BPF_SRC below; BCC_SRC is the same logic in
bcc's dialect, since bcc compiles its own C) runs on syscalls:sys_enter_getppid of one load
generator process (bench/harness/ringbuf_consume.c ``produce``: getppid() in a loop, pinned
to one CPU) and writes `--per-call` 40-byte records per call into a 4 MiB ring buffer,
counting the records it produced and those it dropped because the ring was full. Each
consumer runs in its own process on the other CPU and counts the records it gets during
`--seconds` from the first one:

* bpfobj, iterator: ``for event in RingBuffer(map, event_type="event")`` (dicts);
* bpfobj, read(): ``RingBuffer.read()`` batches of dicts;
* bpfobj, callback: ``RingBuffer(map, callback=f, event_type="event")`` + ``poll()``;
* bcc: ``b["events"].open_ring_buffer(cb)`` + ``ring_buffer_poll()``, the callback casting
  each record with ``b["events"].event(data)`` (a ctypes struct: bcc's decoding);
* libbpf (C): ring_buffer__poll() with a callback that reads one field.

The producer outruns every Python consumer, so the figure is the consumer's rate (the
dropped count shows the ring was full). One run each; it prints, never asserts. Goal:
bpfobj >= 1.5x bcc. bcc needs kernel headers: it gets them from BCC_KERNEL_SOURCE, else from
a tree prepared by bench/startup.py's ``bcc_kernel_source()`` (see there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

HARNESS = ROOT / "bench" / "harness" / "ringbuf_consume.c"
BUILD = ROOT / "build" / "bench"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, where python3-bpfcc installs bcc

BPF_SRC = r"""// SPDX-License-Identifier: GPL-2.0
// bench/ringbuf.py: `per_call` ring buffer records per getppid() of the load generator.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define MAX_PER_CALL 64

struct event {
	__u64 seq;
	__u64 ts;
	__u32 pid;
	__u32 cpu;
	char comm[16];
};
const struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct {  /* 0: target tgid, 1: records per call */
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} settings SEC(".maps");

struct {  /* 0: records produced, 1: records dropped (ring full) */
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int produce(void *ctx)
{
	__u32 k0 = 0, k1 = 1, *pid, *per_call;
	__u64 *produced, *dropped;
	struct event *e;

	pid = bpf_map_lookup_elem(&settings, &k0);
	per_call = bpf_map_lookup_elem(&settings, &k1);
	produced = bpf_map_lookup_elem(&stats, &k0);
	dropped = bpf_map_lookup_elem(&stats, &k1);
	if (!pid || !per_call || !produced || !dropped)
		return 0;
	if ((bpf_get_current_pid_tgid() >> 32) != *pid)
		return 0;
	for (int i = 0; i < MAX_PER_CALL; i++) {
		if (i >= *per_call)
			break;
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			(*dropped)++;
			continue;
		}
		e->seq = (*produced)++;
		e->ts = bpf_ktime_get_ns();
		e->pid = *pid;
		e->cpu = bpf_get_smp_processor_id();
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

BCC_SRC = r"""
#define MAX_PER_CALL 64
struct event {
	u64 seq;
	u64 ts;
	u32 pid;
	u32 cpu;
	char comm[16];
};
BPF_RINGBUF_OUTPUT(events, 1024);  /* 1024 pages: 4 MiB, as BPF_SRC */
BPF_ARRAY(settings, u32, 2);
BPF_ARRAY(stats, u64, 2);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
	u32 k0 = 0, k1 = 1, *pid, *per_call;
	u64 *produced, *dropped;
	struct event *e;

	pid = settings.lookup(&k0);
	per_call = settings.lookup(&k1);
	produced = stats.lookup(&k0);
	dropped = stats.lookup(&k1);
	if (!pid || !per_call || !produced || !dropped)
		return 0;
	if ((bpf_get_current_pid_tgid() >> 32) != *pid)
		return 0;
	for (int i = 0; i < MAX_PER_CALL; i++) {
		if (i >= *per_call)
			break;
		e = events.ringbuf_reserve(sizeof(struct event));
		if (!e) {
			(*dropped)++;
			continue;
		}
		e->seq = (*produced)++;
		e->ts = bpf_ktime_get_ns();
		e->pid = *pid;
		e->cpu = bpf_get_smp_processor_id();
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		events.ringbuf_submit(e, 0);
	}
	return 0;
}
"""


# --------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------


def build_object() -> Path:
    import bpfbuild  # type: ignore[import-not-found]  # tests/bpfbuild.py

    src = BUILD / "ringbuf_bench.bpf.c"
    BUILD.mkdir(parents=True, exist_ok=True)
    if not src.exists() or src.read_text() != BPF_SRC:
        src.write_text(BPF_SRC)
    path: Path = bpfbuild.build(src, vmlinux=True)
    return path


def build_harness() -> Path | None:
    import harnessbuild  # type: ignore[import-not-found]  # tests/harnessbuild.py

    exe: Path | None = harnessbuild.build_or_none(HARNESS, BUILD)
    return exe


# --------------------------------------------------------------------------------------
# Consumers (each runs in its own process: `bench/ringbuf.py --worker KIND ...`)
# --------------------------------------------------------------------------------------


def _hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def worker_bpfobj(mode: str, obj_path: str, pid: int, per_call: int, seconds: float) -> dict[str, Any]:
    from bpfobj import BpfObject
    from bpfobj.attach import attach_all
    from bpfobj.ringbuf import RingBuffer

    obj = BpfObject.open(obj_path)
    obj.load()
    obj.maps["settings"][0] = pid
    obj.maps["settings"][1] = per_call
    links = attach_all(obj)
    count = 0

    def on_event(event: Any) -> None:
        nonlocal count
        count += 1

    cb = on_event if mode == "callback" else None
    rb = RingBuffer(obj.maps["events"], cb, event_type="event", btf=obj.spec.btf)
    print("ready", flush=True)
    while not rb.poll(0.1):  # the first records: the generator has started
        pass
    rb.read(0)
    count = 0
    start = time.perf_counter()
    cpu0 = time.process_time()
    end = start + seconds
    if mode == "iter":
        for _event in rb:
            count += 1
            if not count & 1023 and time.perf_counter() >= end:
                break
    elif mode == "read":
        while time.perf_counter() < end:
            count += len(rb.read(0.1))
    else:
        while time.perf_counter() < end:
            rb.poll(0.1)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    stats = obj.maps["stats"]
    out = {"events": count, "seconds": elapsed, "cpu_seconds": cpu, "produced": stats[0],
           "dropped": stats[1], "rss_mb": _hwm_mb()}
    rb.close()
    for link in links:
        link.close()
    obj.close()
    return out


def worker_bcc(pid: int, per_call: int, seconds: float) -> dict[str, Any]:
    import ctypes

    from bcc import BPF  # type: ignore[import-not-found]

    b = BPF(text=BCC_SRC)
    b["settings"][ctypes.c_int(0)] = ctypes.c_uint(pid)
    b["settings"][ctypes.c_int(1)] = ctypes.c_uint(per_call)
    table = b["events"]
    event = table.event
    count = 0
    end = 0.0  # warming up: stop at the first record

    def on_event(ctx: Any, data: Any, size: int) -> int:
        nonlocal count
        event(data)
        count += 1
        # libbpf's ring_buffer__poll() returns only when the ring is empty, never while the
        # producer outruns the consumer: a negative return stops it
        if not count & 1023 or not end:
            return -1 if time.perf_counter() >= end else 0
        return 0

    table.open_ring_buffer(on_event)
    print("ready", flush=True)
    while not count:
        b.ring_buffer_poll(100)
    count = 0
    start = time.perf_counter()
    cpu0 = time.process_time()
    end = start + seconds
    while time.perf_counter() < end:
        b.ring_buffer_poll(100)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    stats = b["stats"]
    return {"events": count, "seconds": elapsed, "cpu_seconds": cpu,
            "produced": stats[ctypes.c_int(0)].value,
            "dropped": stats[ctypes.c_int(1)].value, "rss_mb": _hwm_mb()}


# --------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------


def bcc_env() -> dict[str, str] | None:
    """The environment bcc needs to compile here, or None when it cannot run."""
    if not os.path.exists(SYSTEM_PYTHON):
        return None
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import bcc"], capture_output=True)
    if probe.returncode:
        return None
    env = dict(os.environ)
    if "BCC_KERNEL_SOURCE" not in env:
        from startup import bcc_kernel_source

        src = bcc_kernel_source()
        if src is not None:
            env["BCC_KERNEL_SOURCE"] = src
    return env


def run_one(cmd: list[str], generator: Path, *, env: dict[str, str] | None = None,
            timeout: float = 300) -> dict[str, Any] | str:
    """Start the generator (waiting), then the consumer with the generator's pid; start
    the generator when the consumer says ready; return the consumer's JSON (or why not)."""
    gen = subprocess.Popen([str(generator), "produce"], stdin=subprocess.PIPE,
                           preexec_fn=lambda: os.sched_setaffinity(0, {_cpus()[-1]}))
    try:
        full = [c.replace("{PID}", str(gen.pid)) for c in cmd]
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=ROOT,
                                preexec_fn=lambda: os.sched_setaffinity(0, {_cpus()[0]}))
        assert proc.stdout is not None and gen.stdin is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            _, err = proc.communicate(timeout=timeout)
            return f"consumer failed: {(line + err).strip()[-400:]}"
        gen.stdin.write(b"go\n")
        gen.stdin.flush()
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode:
            return f"consumer failed: {err.strip()[-400:]}"
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result
    finally:
        gen.kill()
        gen.wait()


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--per-call", type=int, default=8, help="records per getppid() (<= 64)")
    ap.add_argument("--only", action="append", default=[],
                    help="run only these consumers (iter, read, callback, bcc, libbpf)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--obj", help=argparse.SUPPRESS)
    ap.add_argument("--pid", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker == "bcc":
        print(json.dumps(worker_bcc(args.pid, args.per_call, args.seconds)))
        return 0
    if args.worker:
        print(json.dumps(worker_bpfobj(args.worker, args.obj, args.pid, args.per_call,
                                       args.seconds)))
        return 0

    if os.geteuid() != 0:
        print("bench/ringbuf.py needs root (it loads and attaches BPF programs)")
        return 1
    obj = build_object()
    exe = build_harness()
    if exe is None:
        print("the load generator (bench/harness/ringbuf_consume.c) did not build")
        return 1
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "bpfobj")], check=True)
    common = ["--pid", "{PID}", "--per-call", str(args.per_call), "--seconds", str(args.seconds)]
    me = str(Path(__file__).resolve())
    bpfobj_cmd = [sys.executable, me, "--worker", "{MODE}", "--obj", str(obj), *common]
    runs: list[tuple[str, str, list[str], dict[str, str] | None]] = [
        ("iter", "bpfobj, iterator (dicts)", bpfobj_cmd, None),
        ("read", "bpfobj, read() (dicts)", bpfobj_cmd, None),
        ("callback", "bpfobj, callback (dicts)", bpfobj_cmd, None),
    ]
    env = bcc_env()
    if env is not None:
        runs.append(("bcc", "bcc, callback (ctypes event)",
                     [SYSTEM_PYTHON, me, "--worker", "bcc", *common], env))
    runs.append(("libbpf", "libbpf C, callback",
                 [str(exe), "consume", str(obj), "{PID}", str(args.per_call),
                  str(args.seconds)], None))
    if args.only:
        runs = [r for r in runs if r[0] in args.only]

    print(f"records of 40 bytes, {args.per_call} per getppid() of a generator pinned to CPU "
          f"{_cpus()[-1]}; consumer on CPU {_cpus()[0]}; {args.seconds:g} s from the first "
          "record; one run each")
    print()
    print(f"{'consumer':<30}{'events/s':>11}{'per CPU-s':>11}{'vs bcc':>8}{'vs libbpf':>10}"
          f"{'dropped':>9}{'RSS MB':>8}")
    results: dict[str, dict[str, Any]] = {}
    for key, name, cmd, cenv in runs:
        res = run_one([c.replace("{MODE}", key) for c in cmd], exe, env=cenv)
        if isinstance(res, str):
            print(f"{name:<30}  ({res})")
            continue
        results[name] = res
    bcc = next((r for n, r in results.items() if n.startswith("bcc")), None)
    lib = next((r for n, r in results.items() if n.startswith("libbpf")), None)

    def rate(r: dict[str, Any]) -> float:
        return float(r["events"]) / float(r["seconds"])

    def cpu_rate(r: dict[str, Any]) -> float:
        return float(r["events"]) / max(float(r["cpu_seconds"]), 1e-9)

    for name, res in results.items():
        vs_bcc = f"{cpu_rate(res) / cpu_rate(bcc):.2f}x" if bcc else "-"
        vs_lib = f"{cpu_rate(res) / cpu_rate(lib):.2f}x" if lib else "-"
        dropped = res["dropped"] / max(res["produced"] + res["dropped"], 1)
        print(f"{name:<30}{rate(res):>11,.0f}{cpu_rate(res):>11,.0f}{vs_bcc:>8}{vs_lib:>10}"
              f"{dropped:>9.0%}{res['rss_mb']:>8.1f}")
    if env is None:
        print("(bcc not measured: python3-bpfcc is not installed for /usr/bin/python3)")
    print()
    print("events/s: records consumed per wall-clock second; per CPU-s: per second of the "
          "consumer's own CPU time\n(user + system), which other load on the machine does not "
          "skew; the ratios use it.\n'dropped': share of records the producer could not "
          "reserve (the ring was full: the consumer is the limit).\ngoal: bpfobj >= 1.5x bcc")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
