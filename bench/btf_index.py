#!/usr/bin/env python3
"""Benchmark bpfobj's BTF index on this machine's kernel BTF, beside libbpf's btf__parse.

    python bench/btf_index.py [--runs N] [--btf PATH]

Every "fresh" figure is the median over N new Python processes (what a command-line tool
pays); the "in-process" figures repeat the call inside one process (CPU caches warm, no
first-touch page faults). Measured:

* cold index: `load_kernel_btf()` with the cache disabled (read + header + one pass over
  the type words), and with an empty cache directory (plus sha256 + writing the cache);
* first find("task_struct") after a cold load: builds the name index (then cached);
* warm: `load_kernel_btf()` + find() with the cache filled by an earlier process;
* peak RSS (VmHWM) of a fresh process doing a warm and a cold load and a find;
* `python -c "import bpfobj"` (and bpfobj.btf's reader) minus `python -c pass`;
* libbpf 1.x `btf__parse()` of the same file through bench/harness/btf_parse.c, compiled
  by tests/harnessbuild.py into build/bench/ on first use.

No assertion: it prints a table against the goals (cold <= 35 ms, warm <= 7 ms,
RSS <= 40 MB, import <= 70 ms).
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

import harnessbuild  # noqa: E402

HARNESS_SRC = ROOT / "bench" / "harness" / "btf_parse.c"
BUILD = ROOT / "build" / "bench"
GOALS = {"cold": 35.0, "warm": 7.0, "rss": 40.0, "import": 70.0}

# Runs inside a fresh interpreter; prints one JSON object.
WORKER = r"""
import json, os, sys, time
mode, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
from bpfobj.btf.reader import load_kernel_btf
t1 = time.perf_counter()
out = {"import_ms": (t1 - t0) * 1e3}

def timed(**kw):
    a = time.perf_counter()
    btf = load_kernel_btf(path, **kw)
    b = time.perf_counter()
    ids = btf.find("task_struct")
    c = time.perf_counter()
    assert ids, "task_struct not found"
    return btf, (b - a) * 1e3, (c - b) * 1e3

if mode == "cold":
    btf, out["load_ms"], out["find_ms"] = timed(cache=False)
elif mode in ("cold-cache", "warm"):
    btf, out["load_ms"], out["find_ms"] = timed(cache=True)
elif mode == "rss":
    timed(cache=True)
    timed(cache=False)
out["types"] = len(load_kernel_btf(path, cache=False)) if mode == "rss" else len(btf)
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            out["vmhwm_kb"] = int(line.split()[1])
print(json.dumps(out))
"""

IN_PROCESS = r"""
import json, statistics, sys, time
from bpfobj.btf.reader import Btf, load_kernel_btf
path, runs, cache_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def med(fn):
    r = []
    for _ in range(runs):
        a = time.perf_counter(); fn(); r.append((time.perf_counter() - a) * 1e3)
    return statistics.median(r)
def name_index():
    btf = load_kernel_btf(path, cache=False)
    a = time.perf_counter(); btf.find("task_struct"); return (time.perf_counter() - a) * 1e3
load_kernel_btf(path, cache=True).find("task_struct")  # fill the cache
print(json.dumps({
    "cold_ms": med(lambda: load_kernel_btf(path, cache=False)),
    "warm_ms": med(lambda: load_kernel_btf(path, cache=True)),
    "name_index_ms": statistics.median(name_index() for _ in range(max(3, runs // 3))),
    "warm_find_ms": med(lambda: load_kernel_btf(path, cache=True).find("sk_buff")),
}))
"""


def python_env(cache_dir: str, pyc: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["BPFOBJ_CACHE_DIR"] = cache_dir
    if pyc:
        # Bytecode in build/ (as an installed package would have it), not next to the source.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(BUILD / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def worker(mode: str, btf: str, env: dict[str, str]) -> dict[str, float]:
    res = subprocess.run(
        [sys.executable, "-c", WORKER, mode, btf],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def wall(commands: list[tuple[list[str], dict[str, str]]], runs: int) -> list[float]:
    """Median wall time of each command; runs are interleaved so drift hits all alike."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for i, (args, env) in enumerate(commands):
            t = time.perf_counter()
            subprocess.run(args, env=env, check=True)
            times[i].append((time.perf_counter() - t) * 1e3)
    return [statistics.median(t) for t in times]


def harness() -> Path | None:
    """The libbpf harness, built (and cached by content) with the tests' harness builder."""
    return harnessbuild.build_or_none(HARNESS_SRC, BUILD)


def libbpf(btf: str, runs: int) -> dict[str, float] | None:
    exe = harness()
    if exe is None:
        return None
    firsts, hwm = [], []
    out: dict[str, float] = {}
    for i in range(runs):
        line = subprocess.run(
            [str(exe), btf, "15" if i == 0 else "1"], check=True, capture_output=True, text=True
        ).stdout
        vals = {k: float(v) for k, v in (kv.split("=") for kv in line.split())}
        if i == 0:
            out = vals
        firsts.append(vals["first_ms"])
        hwm.append(vals["vmhwm_kb"])
    out["first_ms"] = statistics.median(firsts)
    out["vmhwm_kb"] = statistics.median(hwm)
    return out


def med(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=11, help="processes per figure (median)")
    ap.add_argument("--btf", default="/sys/kernel/btf/vmlinux")
    args = ap.parse_args()
    if not os.path.exists(args.btf):
        print(f"{args.btf} does not exist: nothing to measure", file=sys.stderr)
        return 1
    runs = max(1, args.runs)
    tmp = Path(tempfile.mkdtemp(prefix="bpfobj-bench-"))
    try:
        warm_dir = str(tmp / "warm")
        env = python_env(warm_dir, pyc=True)
        # Fill the pyc cache and the warm index cache (offsets + name index).
        worker("warm", args.btf, env)
        worker("warm", args.btf, env)

        cold = [worker("cold", args.btf, env) for _ in range(runs)]
        cold_cache = []
        for i in range(runs):
            cold_cache.append(worker("cold-cache", args.btf, python_env(str(tmp / f"e{i}"), True)))
        warm = [worker("warm", args.btf, env) for _ in range(runs)]
        rss = [worker("rss", args.btf, python_env(str(tmp / f"r{i}"), True)) for i in range(3)]
        base_rss = []
        for _ in range(3):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "print([l.split()[1] for l in open('/proc/self/status') "
                    "if l.startswith('VmHWM')][0])",
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            base_rss.append(int(out) / 1024)

        inproc = json.loads(
            subprocess.run(
                [sys.executable, "-c", IN_PROCESS, args.btf, str(max(runs, 15)), str(tmp / "ip")],
                env=python_env(str(tmp / "ip"), True),
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )

        imp_runs = max(runs, 15)
        env_nopyc = python_env(warm_dir, pyc=False)
        start, imp, imp_btf, imp_btf_nopyc = wall(
            [
                ([sys.executable, "-c", "pass"], env),
                ([sys.executable, "-c", "import bpfobj"], env),
                ([sys.executable, "-c", "import bpfobj.btf.reader"], env),
                ([sys.executable, "-c", "import bpfobj.btf.reader"], env_nopyc),
            ],
            imp_runs,
        )
        lb = libbpf(args.btf, runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    types = int(cold[0]["types"])
    print(
        f"BTF: {args.btf} ({os.path.getsize(args.btf) / 1e6:.1f} MB, {types} types); "
        f"python {sys.version.split()[0]}; medians of {runs} fresh processes [minimum]; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print()
    rows: list[tuple[str, str, str, str]] = []

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} ms"

    def spread(rows: list[dict[str, float]], key: str) -> str:
        """Median, and the minimum (the least disturbed run) in brackets."""
        return f"{med(rows, key):.1f} ms [{min(r[key] for r in rows):.1f}]"

    def verdict(v: float, goal: float) -> str:
        return "ok" if v <= goal else "MISSED"

    c = med(cold, "load_ms")
    rows.append(
        (
            "cold index, cache off (fresh)",
            spread(cold, "load_ms"),
            ms(lb["first_ms"]) if lb else "-",
            f"<= 35 ms {verdict(c, GOALS['cold'])}",
        )
    )
    cc = med(cold_cache, "load_ms")
    rows.append(
        (
            "cold index + hash + cache write (fresh)",
            spread(cold_cache, "load_ms"),
            "",
            verdict(cc, GOALS["cold"]),
        )
    )
    rows.append(
        (
            "cold index, cache off (in-process)",
            ms(inproc["cold_ms"]),
            ms(lb["median_ms"]) if lb else "-",
            "",
        )
    )
    w = med(warm, "load_ms")
    rows.append(
        (
            "warm index from cache (fresh)",
            spread(warm, "load_ms"),
            "",
            f"<= 7 ms {verdict(w, GOALS['warm'])}",
        )
    )
    rows.append(("warm index from cache (in-process)", ms(inproc["warm_ms"]), "", ""))
    rows.append(
        (
            'first find("task_struct") after cold (fresh)',
            spread(cold, "find_ms"),
            ms(lb["find_ms"]) if lb else "-",
            "builds the name index",
        )
    )
    rows.append(("  name index build (in-process)", ms(inproc["name_index_ms"]), "", ""))
    rows.append(
        (
            'first find("task_struct") after warm (fresh)',
            ms(med(warm, "find_ms")),
            "",
            "name index from cache",
        )
    )
    rss_mb = statistics.median(r["vmhwm_kb"] for r in rss) / 1024
    rows.append(
        (
            "peak RSS, warm+cold load + find (fresh)",
            f"{rss_mb:.1f} MB",
            f"{lb['vmhwm_kb'] / 1024:.1f} MB" if lb else "-",
            f"<= 40 MB {verdict(rss_mb, GOALS['rss'])}",
        )
    )
    rows.append(("  python -c pass alone", f"{statistics.median(base_rss):.1f} MB", "", ""))
    rows.append(('python -c "pass"', ms(start), "", "interpreter + site"))
    rows.append(
        (
            'python -c "import bpfobj"',
            ms(imp),
            "",
            f"<= 70 ms {verdict(imp, GOALS['import'])}; net {imp - start:.1f} ms",
        )
    )
    rows.append(
        ('python -c "import bpfobj.btf.reader"', ms(imp_btf), "", f"net {imp_btf - start:.1f} ms")
    )
    rows.append(
        (
            "  same without bytecode cache",
            ms(imp_btf_nopyc),
            "",
            f"net {imp_btf_nopyc - start:.1f} ms",
        )
    )
    head = ("measure", "bpfobj", "libbpf", "goal")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, tuple("-" * n for n in widths), *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip())
    if lb is None:
        print("\n(libbpf column empty: gcc or libbpf-dev missing)")
    else:
        print(
            f"\nlibbpf: first_ms is the first btf__parse() in a fresh process (file read "
            f"included), median of {runs}; in-process is the median of 15 repeats; its "
            f"find is btf__find_by_name_kind() (a linear scan; task_struct is id "
            f"{int(lb['task_struct'])})."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
