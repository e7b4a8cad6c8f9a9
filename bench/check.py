#!/usr/bin/env python3
"""Benchmark `bpfobj check` of one object against 100 kernel BTFs.

    python bench/check.py [--object real_execsnoop.c] [--jobs 2] [--kernels 100]

The 100 kernels: every kernel of build/btf-corpus/ (real distribution kernels, with their
module BTF) when it has some, then this machine's /sys/kernel/btf/vmlinux and copies of it
with perturbed layouts written with BtfBuilder (task_struct, cred and the tracepoint
contexts moved or resized; every 7th copy lacks task_struct.group_leader, so it has a
poisoned relocation), up to the count. The copies are kept in build/bench/check-btf/
(keyed by the source BTF's hash) so that later runs reuse them.

Figures: wall time of ``bpfobj check OBJ --btf-dir DIR -j N --json`` as a process, first
run (the BTF index cache may be cold for new copies) and a second run (warm: what CI sees
when it checks the same kernels again), plus -j 1 for reference. Goal: the warm run
<= 3 s with -j 2. No assertion.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bpfobj import records

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import bpfbuild  # noqa: E402

from bpfobj.btf import types as T  # noqa: E402
from bpfobj.btf.reader import Btf, load_raw_file  # noqa: E402
from bpfobj.btf.writer import BtfBuilder  # noqa: E402
from bpfobj.check import discover  # noqa: E402

VMLINUX = Path("/sys/kernel/btf/vmlinux")
CORPUS = ROOT / "build" / "btf-corpus"
STORE = ROOT / "build" / "bench" / "check-btf"

# struct -> the member after which every member moves (by 8 * variant bytes)
PERTURB = {
    "task_struct": "pid",
    "cred": "usage",
    "trace_event_raw_sys_enter": "ent",
    "trace_event_raw_sys_exit": "ent",
}


def _struct_id(btf: Btf, name: str) -> int | None:
    for tid in btf.find(name):
        if isinstance(btf.type(tid), T.Struct):
            return tid
    return None


def make_variant(src: Btf, i: int) -> bytes:
    """`src` with PERTURB's structs grown by 8*i bytes after their anchor member."""
    b = BtfBuilder.from_btf(src)
    for name, anchor in PERTURB.items():
        tid = _struct_id(src, name)
        if tid is None:
            continue
        t = src.type(tid)
        assert isinstance(t, T.Struct)
        shift = 64 * (i % 16 + 1)
        members, moved = [], False
        for m in t.members:
            if moved:
                m = records.evolve(m, bit_offset=m.bit_offset + shift)
            if m.name == anchor:
                moved = True
            if name == "task_struct" and m.name == "group_leader" and i % 7 == 0:
                continue
            members.append(m)
        b.set_type(tid, records.evolve(t, size=t.size + shift // 8, members=tuple(members)))
    return b.encode()


def variants(count: int) -> list[Path]:
    data = VMLINUX.read_bytes()
    store = STORE / hashlib.sha256(data).hexdigest()[:16]
    store.mkdir(parents=True, exist_ok=True)
    out = []
    src: Btf | None = None
    for i in range(1, count + 1):
        p = store / f"variant-{i:03d}.btf"
        if not p.exists():
            if src is None:
                src = load_raw_file(VMLINUX)
            tmp = p.with_suffix(".tmp")
            tmp.write_bytes(make_variant(src, i))
            tmp.rename(p)
        out.append(p)
    return out


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        os.symlink(src.resolve(), dst)


def build_dir(total: int) -> tuple[Path, int, int]:
    """A directory of symlinks: corpus kernels (with modules), this kernel, variants."""
    d = STORE / f"set-{total}"
    if d.exists():
        shutil.rmtree(d)
    corpus = discover(CORPUS) if CORPUS.is_dir() else []
    corpus = corpus[: total - 1] if total > 1 else []
    for k in corpus:
        _link(Path(k.path), d / "corpus" / k.rel)
        for name, path in k.modules:
            where = Path(os.path.dirname(k.rel)) / "modules" / name
            if k.module_layout != "dir":
                where = Path(f"{k.rel}.{name}")
            _link(Path(path), d / "corpus" / where)
    _link(VMLINUX, d / "host" / "vmlinux.btf")
    n_variants = total - 1 - len(corpus)
    for p in variants(n_variants):
        _link(p, d / "variants" / p.name)
    return d, len(corpus), n_variants


def run(obj: Path, d: Path, jobs: int) -> tuple[float, float, dict[str, object]]:
    """(wall seconds, CPU seconds of the process and its workers, the JSON document)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bpfobj", "check", str(obj), "--btf-dir", str(d), "--json",
         "-j", str(jobs)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):
        raise SystemExit(proc.stderr)
    doc: dict[str, object] = json.loads(proc.stdout)
    return wall, cpu, doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--object", default="real_execsnoop.c")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--kernels", type=int, default=100)
    args = ap.parse_args()
    obj = Path(args.object)
    if obj.suffix == ".c":
        obj = bpfbuild.build(obj.name, vmlinux=True)
    t = time.perf_counter()
    d, n_corpus, n_var = build_dir(args.kernels)
    setup = time.perf_counter() - t
    print(f"{args.kernels} kernels: {n_corpus} from build/btf-corpus, this kernel, "
          f"{n_var} perturbed copies (set-up {setup:.1f} s)")
    first, _, doc = run(obj, d, args.jobs)
    second, cpu, _ = run(obj, d, args.jobs)
    serial, serial_cpu, _ = run(obj, d, 1)
    summary = doc["summary"]
    print(f"object {obj.name}: {summary}")
    print(f"  bpfobj check -j {args.jobs}: first {first:.2f} s, again {second:.2f} s wall "
          f"({cpu:.2f} s CPU)   goal <= 3 s")
    print(f"  bpfobj check -j 1: {serial:.2f} s wall ({serial_cpu:.2f} s CPU, "
          f"{serial_cpu / args.kernels * 1e3:.1f} ms/kernel)")
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1):
        print(f"  note: load average {load:.1f} on {os.cpu_count()} CPUs: other work competes, "
              "wall times are inflated; CPU time is the steadier figure")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
