#!/usr/bin/env python3
"""Start-up: spawn -> attached for execsnoop, bpfobj beside bcc and libbpf.

    python bench/startup.py [--runs 5]

Each tool is spawned fresh and timed until it prints its first line, which each prints
once its programs are attached (and, for bpfobj and libbpf, its ring buffer opened); its
peak RSS (VmHWM) is read half a second later, then it is stopped:

* bpfobj: ``examples/execsnoop.py`` (open, prepare against the running kernel's BTF, create
  maps, load, attach, RingBuffer), interpreter start-up included; *cold*: an empty BTF index
  cache directory (BPFOBJ_CACHE_DIR), *warm*: the cache an earlier run filled;
* bcc: Debian's ``/usr/sbin/execsnoop-bpfcc`` (python3-bpfcc 0.26): compiles its C with
  LLVM at run time, then attaches kprobes to execve (PYTHONUNBUFFERED so the header shows
  when printed). On a kernel without kprobes (CONFIG_KPROBES unset, as here) it cannot
  attach; then the same tool is measured on the tracepoint execsnoop.bpf.c uses
  (BCC_EXECSNOOP_TP: bcc C, compiled at run time, a ring buffer, the same record);
* libbpf 1.1 (C): bench/harness/startup.c on the same execsnoop.bpf.o.
* python: the same interpreter importing argparse and json only (what execsnoop.py imports
  besides bpfobj), no BPF: the floor under any Python tool.

bcc needs kernel headers. This machine's kernel has none (no /lib/modules/$(uname -r)/build,
no CONFIG_IKHEADERS); `bcc_kernel_source()` then prepares the nearest source tree Debian
ships (/usr/src/linux-source-*.tar.xz, configured with this kernel's /proc/config.gz) under
build/bcc-kernel/ once, and bcc gets it through BCC_KERNEL_SOURCE. bcc's struct offsets then
come from that tree, not the running kernel: its compile and load times are real, its
output may not be (execsnoop reads task->real_parent->tgid).

The median of `--runs` runs is printed with the ratios; goals: >= 15x faster than bcc,
>= 5x less RSS, <= 1.0x libbpf (warm). It prints, never asserts.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "bench" / "harness" / "startup.c"
BUILD = ROOT / "build" / "bench"
EXECSNOOP = ROOT / "examples" / "execsnoop.py"
EXECSNOOP_OBJ = ROOT / "examples" / "build" / "execsnoop.bpf.o"
BCC_EXECSNOOP = "/usr/sbin/execsnoop-bpfcc"
SYSTEM_PYTHON = "/usr/bin/python3"
# The floor under any Python tool: the same interpreter starting and importing what
# examples/execsnoop.py imports besides bpfobj, then printing its first line.
PYTHON_FLOOR = "import argparse, json, sys; print('ready', flush=True); sys.stdin.read()"  # Debian's, where python3-bpfcc installs bcc
BCC_TREE = ROOT / "build" / "bcc-kernel"

# bcc's execsnoop, written for the tracepoint examples/execsnoop.bpf.c uses: Debian's
# execsnoop-bpfcc attaches kprobes to the execve syscall, and a kernel built without
# CONFIG_KPROBES (this one) cannot run it. Same record, same ring buffer size, same output.
BCC_EXECSNOOP_TP = r'''
import sys
from bcc import BPF

prog = r"""
#include <linux/sched.h>
struct event {
    u32 pid;
    u32 ppid;
    u32 uid;
    s32 retval;
    char comm[16];
    char filename[128];
};
BPF_RINGBUF_OUTPUT(events, 64);
BPF_ARRAY(exec_count, u64, 1);

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u32 zero = 0;
    u64 *count = exec_count.lookup(&zero);
    struct event *e;

    if (count)
        __sync_fetch_and_add(count, 1);
    e = events.ringbuf_reserve(sizeof(struct event));
    if (!e)
        return 0;
    e->pid = bpf_get_current_pid_tgid() >> 32;
    e->ppid = task->real_parent->tgid;
    e->uid = bpf_get_current_uid_gid();
    e->retval = 0;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    bpf_probe_read_kernel_str(&e->filename, sizeof(e->filename),
                              (char *)args + (args->data_loc_filename & 0xFFFF));
    events.ringbuf_submit(e, 0);
    return 0;
}
"""
b = BPF(text=prog)
events = b["events"]

def on_event(ctx, data, size):
    e = events.event(data)
    print("%-16s %7d %7d %6d  %s" % (e.comm.decode(errors="replace"), e.pid, e.ppid, e.uid,
                                      e.filename.decode(errors="replace")), flush=True)

events.open_ring_buffer(on_event)
print("%-16s %7s %7s %6s  FILENAME" % ("PCOMM", "PID", "PPID", "UID"), flush=True)
while True:
    b.ring_buffer_poll()
'''


def bcc_kernel_source(prepare: bool = True) -> str | None:
    """A kernel tree bcc can compile against: BCC_KERNEL_SOURCE, the running kernel's
    headers, or a tree prepared from Debian's linux-source tarball (done once, ~1 min)."""
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env:
        return env
    if os.path.isdir(f"/lib/modules/{os.uname().release}/build"):
        return None  # bcc finds them itself
    for tree in sorted(BCC_TREE.glob("linux-source-*")):
        if (tree / "include" / "generated" / "asm-offsets.h").exists():
            return str(tree)
    tarballs = sorted(glob.glob("/usr/src/linux-source-*.tar.xz"))
    if not prepare or not tarballs or not os.path.exists("/proc/config.gz"):
        return None
    tarball = tarballs[-1]
    name = Path(tarball).name.removesuffix(".tar.xz")
    print(f"(preparing {name} for bcc's headers under {BCC_TREE}: once)", flush=True)
    BCC_TREE.mkdir(parents=True, exist_ok=True)
    tree = BCC_TREE / name
    try:
        if not tree.exists():
            subprocess.run(["tar", "xJf", tarball, "-C", str(BCC_TREE)], check=True)
        subprocess.run(f"zcat /proc/config.gz > {tree}/.config", shell=True, check=True)
        for target in ("olddefconfig", "prepare"):
            subprocess.run(["make", "-C", str(tree), f"-j{os.cpu_count() or 1}", target],
                           check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"(could not prepare kernel headers for bcc: {exc})")
        return None
    return str(tree)


def build_harness() -> Path | None:
    sys.path.insert(0, str(ROOT / "tests"))
    import harnessbuild  # type: ignore[import-not-found]  # tests/harnessbuild.py

    exe: Path | None = harnessbuild.build_or_none(HARNESS, BUILD)
    return exe


def spawn_to_attached(cmd: list[str], env: dict[str, str] | None = None,
                      timeout: float = 120) -> tuple[float, float, float] | str:
    """Seconds from spawn to the first line on stdout; the CPU seconds (user + system) and
    peak RSS (MB, ru_maxrss) of the process, stopped half a second after that line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    if not line:
        _, err = proc.communicate(timeout=timeout)
        return f"failed: {err.decode(errors='replace').strip()[-300:]}"
    time.sleep(0.5)
    proc.kill()
    _, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = -9
    proc.stdout.close()
    proc.stderr.close()
    if proc.stdin is not None:
        proc.stdin.close()
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-bcc", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/startup.py needs root (it loads and attaches BPF programs)")
        return 1
    if not EXECSNOOP_OBJ.exists() or \
            EXECSNOOP_OBJ.stat().st_mtime < (ROOT / "examples" / "execsnoop.bpf.c").stat().st_mtime:
        subprocess.run(["bash", str(ROOT / "examples" / "build.sh")], check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "bpfobj")], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    results: dict[str, list[tuple[float, float, float]]] = {}
    notes: list[str] = []

    def measure(name: str, cmd: list[str], cenv: dict[str, str] | None = None,
                before: object = None) -> None:
        rows = []
        for _ in range(args.runs):
            if callable(before):
                before()
            res = spawn_to_attached(cmd, cenv)
            if isinstance(res, str):
                notes.append(f"{name}: {res}")
                return
            rows.append(res)
        results[name] = rows

    ours = [sys.executable, str(EXECSNOOP), "--duration", "30"]
    with tempfile.TemporaryDirectory() as cold_dir, tempfile.TemporaryDirectory() as warm_dir:
        cold_env = dict(env, BPFOBJ_CACHE_DIR=cold_dir)

        def empty_cache() -> None:
            for p in Path(cold_dir).iterdir():
                if p.is_dir():
                    import shutil

                    shutil.rmtree(p)
                else:
                    p.unlink()

        measure("bpfobj, cold BTF index", ours, cold_env, empty_cache)
        warm_env = dict(env, BPFOBJ_CACHE_DIR=warm_dir)
        # Fill the cache with a run that ends by itself: until this session the fill run
        # was killed like the measured ones, before its exit hook wrote the BTF index, and
        # the "warm" rows measured a cold index with warm feature probes.
        subprocess.run([sys.executable, str(EXECSNOOP), "--duration", "1"], env=warm_env,
                       cwd=ROOT, capture_output=True, check=True)
        measure("bpfobj, warm BTF index", ours, warm_env)

    measure("python: start + argparse, json", [sys.executable, "-c", PYTHON_FLOOR], env)
    exe = build_harness()
    if exe is not None:
        measure("libbpf 1.1 (C)", [str(exe), str(EXECSNOOP_OBJ)])
    if not args.no_bcc:
        benv = dict(env, PYTHONUNBUFFERED="1")
        src = bcc_kernel_source()
        if src:
            benv["BCC_KERNEL_SOURCE"] = src
            notes.append(f"bcc compiled against {src} (BCC_KERNEL_SOURCE)")
        if not os.path.exists(SYSTEM_PYTHON) or subprocess.run(
                [SYSTEM_PYTHON, "-c", "import bcc"], capture_output=True).returncode:
            notes.append("bcc: python3-bpfcc is not installed (apt-get install python3-bpfcc)")
        else:
            if os.path.exists(BCC_EXECSNOOP):
                measure("bcc execsnoop-bpfcc", [BCC_EXECSNOOP], benv)
                if notes and notes[-1].startswith("bcc execsnoop-bpfcc") and "kprobe" in notes[-1]:
                    kprobes = os.path.isdir("/sys/bus/event_source/devices/kprobe")
                    notes[-1] = ("bcc execsnoop-bpfcc could not attach its kprobe on execve"
                                 + ("" if kprobes else " (the kernel has no kprobes: "
                                    "CONFIG_KPROBES unset)")
                                 + "; measured the same tool on the tracepoint instead")
            if "bcc execsnoop-bpfcc" not in results:
                measure("bcc execsnoop (tracepoint)", [SYSTEM_PYTHON, "-c", BCC_EXECSNOOP_TP],
                        benv)

    def med(rows: list[tuple[float, float, float]], i: int) -> float:
        return statistics.median(r[i] for r in rows)

    print(f"spawn -> attached, median of {args.runs} fresh processes "
          f"(kernel {os.uname().release}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f})")
    print()
    print(f"{'tool':<32}{'wall ms':>9}{'CPU ms':>9}{'RSS MB':>9}   ratios (CPU time; RSS)")
    bcc = next((r for n, r in results.items() if n.startswith("bcc")), None)
    lib = results.get("libbpf 1.1 (C)")
    for name, rows in results.items():
        ms, cpu, rss = med(rows, 0) * 1e3, med(rows, 1) * 1e3, med(rows, 2)
        cmp: list[str] = []
        if bcc and not name.startswith("bcc"):
            cmp.append(f"{med(bcc, 1) * 1e3 / cpu:.1f}x faster than bcc "
                       f"(wall {med(bcc, 0) * 1e3 / ms:.1f}x), {med(bcc, 2) / rss:.1f}x less RSS")
        if lib and name.startswith(("bpfobj", "python")):
            cmp.append(f"{cpu / (med(lib, 1) * 1e3):.1f}x libbpf (wall "
                       f"{ms / (med(lib, 0) * 1e3):.1f}x), RSS {rss / med(lib, 2):.1f}x")
        print(f"{name:<32}{ms:>9.1f}{cpu:>9.1f}{rss:>9.1f}   {'; '.join(cmp)}")
    print()
    print("wall: spawn to the first line, the figure a user waits; CPU: user + system time "
          "of the process\n(it also runs for 0.5 s, idle, after that line), which other load "
          "on the machine does not skew.")
    print()
    print("python: no BPF at all, the interpreter and the example's other imports: no Python "
          "tool starts in less.")
    print()
    print("goals: >= 15x faster than bcc, >= 5x less RSS than bcc, <= 1.0x libbpf (warm)")
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
