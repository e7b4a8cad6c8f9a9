#!/usr/bin/env python3
"""opensnoop: print every openat() on the machine, read from per-CPU perf buffers.

    sudo examples/opensnoop.py [--pid PID] [--failed] [--duration S] [--json]

examples/opensnoop.bpf.c (built by examples/build.sh) remembers the path and flags at
syscalls:sys_enter_openat and, at sys_exit_openat, sends one `struct event` with the result
through the perf event array `events`; this script reads them with bpfobj.perfbuf
(PERF_COUNT_SW_BPF_OUTPUT per CPU) and reports samples the kernel dropped.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

OBJECT = os.path.join(HERE, "build", "opensnoop.bpf.o")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Trace openat() calls through BPF perf buffers.")
    ap.add_argument("--pid", type=int, help="only this process (thread group id)")
    ap.add_argument("--failed", action="store_true", help="only failed opens")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    ap.add_argument("--pages", type=int, default=64, help="perf ring pages per CPU (2^n)")
    ap.add_argument("--object", default=OBJECT, help="the compiled opensnoop.bpf.o")
    args = ap.parse_args(argv)

    from bpfobj import BpfObject
    from bpfobj.attach import attach_all
    from bpfobj.perfbuf import PerfBuffer

    if not os.path.exists(args.object):
        print(f"opensnoop: {args.object} is missing: run examples/build.sh", file=sys.stderr)
        return 1
    out = sys.stdout

    def lost(cpu: int, count: int) -> None:
        print(f"# lost {count} samples on CPU {cpu}", file=sys.stderr)

    with BpfObject.open(args.object) as obj:
        if args.pid is not None:
            obj.rodata.targ_tgid = args.pid
        obj.rodata.targ_failed = args.failed
        obj.load()
        links = attach_all(obj)
        pb = PerfBuffer(obj.maps["events"], event_type="event", btf=obj.spec.btf,
                        page_cnt=args.pages, lost_callback=lost)
        if args.json:
            print(json.dumps({"attached": True}), flush=True)
        else:
            print(f"{'PID':>7} {'COMM':<16} {'FD':>4} {'ERR':>3} FLAGS    PATH", flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        try:
            while deadline is None or time.monotonic() < deadline:
                wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
                for e in pb.read(wait):
                    ret = e["ret"]
                    fd, err = (ret, 0) if ret >= 0 else (-1, -ret)
                    path = e["fname"].decode(errors="replace")
                    comm = e["comm"].decode(errors="replace")
                    if args.json:
                        out.write(json.dumps({"pid": e["pid"], "uid": e["uid"], "comm": comm,
                                              "fd": fd, "errno": err, "flags": e["flags"],
                                              "path": path}) + "\n")
                    else:
                        errname = errno.errorcode.get(err, str(err)) if err else ""
                        out.write(f"{e['pid']:>7} {comm:<16} {fd:>4} {errname:>3} "
                                  f"{e['flags']:08o} {path}\n")
                out.flush()
        except KeyboardInterrupt:
            pass
        finally:
            total_lost = pb.lost
            pb.close()
            for link in links:
                link.close()
        if total_lost:
            print(f"# {total_lost} samples lost in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:
        raise SystemExit(0) from None
