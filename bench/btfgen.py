#!/usr/bin/env python3
"""Benchmark `bpfobj gen min-btf` beside `bpftool gen min_core_btf`, same inputs, same run.

    python bench/btfgen.py [--runs N] [--object real_execsnoop.c] [--btf PATH]

Figures (medians of N runs, wall clock):

* bpftool: ``bpftool gen min_core_btf SRC OUT OBJ`` as a process;
* bpfobj first call: in a fresh Python process that has imported bpfobj.btfgen, read the
  object's .BTF/.BTF.ext, minimise against SRC, write OUT (the BTF index comes from the on-disk cache, as it does
  for any second use of a kernel's BTF);
* bpfobj again: the same call repeated in that process (a tool minimising many objects);
* bpfobj CLI: ``python -m bpfobj gen min-btf`` as a process (interpreter start and imports
  included).

Goal: the first call <= 1.0x bpftool's time. No assertion; also prints both output sizes.
A process also pays for the interpreter and the imports (printed apart), which bpftool, a
C binary, does not: the CLI row shows the whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import bpfbuild  # noqa: E402

WORKER = r"""
import json, sys, time
t0 = time.perf_counter()
from bpfobj.btfgen import minimize
t1 = time.perf_counter()
src, out, obj = sys.argv[1:4]
result = minimize(src, [obj])
result.write(out)
t2 = time.perf_counter()
again = []
for _ in range(5):
    a = time.perf_counter()
    minimize(src, [obj]).write(out)
    again.append((time.perf_counter() - a) * 1e3)
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "first_ms": (t2 - t1) * 1e3,
                  "again_ms": sorted(again)[2], "size": len(result.vmlinux)}))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=_env(), check=True, capture_output=True)
    return (time.perf_counter() - t) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--object", default="real_execsnoop.c",
                    help="a tests/progs source (built with vmlinux.h) or an object path")
    ap.add_argument("--btf", default="/sys/kernel/btf/vmlinux", help="source BTF")
    args = ap.parse_args()

    obj = Path(args.object)
    if obj.suffix == ".c":
        obj = bpfbuild.build(obj.name, vmlinux=True)
    bpftool = shutil.which("bpftool")
    with tempfile.TemporaryDirectory() as tmp:
        ours_out = os.path.join(tmp, "ours.btf")
        theirs_out = os.path.join(tmp, "bpftool.btf")
        # warm the page cache and the BTF index cache once
        subprocess.run([sys.executable, "-c", WORKER, args.btf, ours_out, str(obj)],
                       cwd=ROOT, env=_env(), check=True, capture_output=True)
        worker = []
        cli = []
        tool = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, "-c", WORKER, args.btf, ours_out, str(obj)],
                cwd=ROOT, env=_env(), check=True, capture_output=True, text=True,
            ).stdout
            worker.append(json.loads(out))
            cli.append(_wall([sys.executable, "-m", "bpfobj", "gen", "min-btf", "--btf",
                              args.btf, ours_out, str(obj)]))
            if bpftool:
                tool.append(_wall([bpftool, "gen", "min_core_btf", args.btf, theirs_out,
                                   str(obj)]))
        first = statistics.median(w["first_ms"] for w in worker)
        again = statistics.median(w["again_ms"] for w in worker)
        imp = statistics.median(w["import_ms"] for w in worker)
        size = worker[-1]["size"]
        print(f"object {obj.name}, source {args.btf}, {args.runs} runs (medians)")
        print(f"  bpfobj first call   {first:7.1f} ms   (import {imp:.0f} ms not included)")
        print(f"  bpfobj again        {again:7.1f} ms")
        print(f"  bpfobj CLI process  {statistics.median(cli):7.1f} ms")
        if tool:
            t = statistics.median(tool)
            theirs = os.path.getsize(theirs_out)
            print(f"  bpftool process     {t:7.1f} ms")
            print(f"  ratio first/bpftool {first / t:5.2f}x  (goal <= 1.0x); "
                  f"import+first/bpftool {(imp + first) / t:5.2f}x; again/bpftool "
                  f"{again / t:5.2f}x; CLI/bpftool {statistics.median(cli) / t:5.2f}x")
            same = Path(ours_out).read_bytes() == Path(theirs_out).read_bytes()
            print(f"  size bpfobj {size} B, bpftool {theirs} B"
                  + ("  (byte-identical)" if same else ""))
        else:
            print(f"  bpftool not installed; bpfobj size {size} B")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
