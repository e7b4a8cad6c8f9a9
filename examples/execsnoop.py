#!/usr/bin/env python3
"""execsnoop: print every exec() on the machine, read from a BPF ring buffer.

    sudo examples/execsnoop.py [--uid UID] [--duration S] [--json]

examples/execsnoop.bpf.c (built into examples/build/ by examples/build.sh) runs on the
sched:sched_process_exec tracepoint and writes one `struct event` per exec into the ring
buffer `events`; this script loads it with bpfobj, attaches it, and prints the events
decoded through the object's BTF. It prints the header once the program is attached
(bench/startup.py times spawn -> header).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

OBJECT = os.path.join(HERE, "build", "execsnoop.bpf.o")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Trace exec() calls through a BPF ring buffer.")
    ap.add_argument("--uid", type=int, help="only execs by this user id")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    ap.add_argument("--object", default=OBJECT, help="the compiled execsnoop.bpf.o")
    args = ap.parse_args(argv)

    from bpfobj import BpfObject
    from bpfobj.attach import attach_all
    from bpfobj.ringbuf import RingBuffer

    if not os.path.exists(args.object):
        print(f"execsnoop: {args.object} is missing: run examples/build.sh", file=sys.stderr)
        return 1
    with BpfObject.open(args.object) as obj:
        if args.uid is not None:
            obj.rodata.target_uid = args.uid
        obj.load()
        links = attach_all(obj)
        rb = RingBuffer(obj.maps["events"], event_type="event", btf=obj.spec.btf)
        if not args.json:
            print(f"{'PCOMM':<16} {'PID':>7} {'PPID':>7} {'UID':>6}  FILENAME", flush=True)
        else:
            print(json.dumps({"attached": True}), flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        out = sys.stdout
        try:
            while deadline is None or time.monotonic() < deadline:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                for e in rb.read(wait if wait is None else min(wait, 0.5)):
                    if args.json:
                        out.write(json.dumps({
                            "pid": e["pid"], "ppid": e["ppid"], "uid": e["uid"],
                            "comm": e["comm"].decode(errors="replace"),
                            "filename": e["filename"].decode(errors="replace"),
                        }) + "\n")
                    else:
                        out.write(f"{e['comm'].decode(errors='replace'):<16} {e['pid']:>7} "
                                  f"{e['ppid']:>7} {e['uid']:>6}  "
                                  f"{e['filename'].decode(errors='replace')}\n")
                out.flush()
        except KeyboardInterrupt:
            pass
        finally:
            rb.close()
            for link in links:
                link.close()
        print(f"# {obj.maps['exec_count'][0]} execs seen", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:
        raise SystemExit(0) from None
