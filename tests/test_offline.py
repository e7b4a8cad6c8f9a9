"""open and prepare never call the kernel: proven under a seccomp filter.

The child process installs a classic-BPF seccomp filter that kills it on bpf(2) or
perf_event_open(2), then opens and prepares real objects. If any code path made either
call, the child would die with SIGSYS instead of printing its result.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import objects
import pytest

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    r"""
    import ctypes, json, struct, sys
    from bpfobj.arch import host

    arch = host()
    AUDIT_ARCH = {"x86_64": 0xC000003E, "arm64": 0xC00000B7}[arch.name]
    banned = [arch.nr_bpf, arch.nr_perf_event_open]

    def stmt(code, k):
        return struct.pack("HBBI", code, 0, 0, k)

    def jump(code, k, jt, jf):
        return struct.pack("HBBI", code, jt, jf, k)

    LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
    KILL_PROCESS, ALLOW = 0x80000000, 0x7FFF0000
    prog = [stmt(LD_W_ABS, 4), jump(JEQ_K, AUDIT_ARCH, 1, 0), stmt(RET_K, KILL_PROCESS),
            stmt(LD_W_ABS, 0)]
    for i, nr in enumerate(banned):
        prog.append(jump(JEQ_K, nr, len(banned) - i, 0))
    prog += [stmt(RET_K, ALLOW), stmt(RET_K, KILL_PROCESS)]
    filt = b"".join(prog)
    buf = ctypes.create_string_buffer(filt)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    fprog = SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()

    if sys.argv[1] == "selftest":
        libc.syscall(arch.nr_bpf, 0, 0, 0)  # must kill us
        print("survived")
        sys.exit(0)

    from bpfobj import BpfObject

    out = {}
    for path in sys.argv[1:]:
        obj = BpfObject.open(path)
        prepared = obj.prepare()
        out[path] = {name: len(p.insns) for name, p in prepared.programs.items()}
    print(json.dumps(out))
    """
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def _seccomp_works() -> None:
    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("seccomp filter written for x86_64 and arm64")
    proc = _run("selftest")
    if proc.returncode == 0 and "survived" in proc.stdout:
        pytest.fail("the seccomp filter did not stop bpf(2): the offline proof would be void")
    assert proc.returncode == -31, proc.stderr  # SIGSYS


@pytest.mark.usefixtures("_seccomp_works")
def test_open_and_prepare_make_no_bpf_or_perf_syscalls(bpf_build: objects.BuildFn) -> None:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("needs /sys/kernel/btf/vmlinux as target BTF (CONFIG_DEBUG_INFO_BTF)")
    paths = []
    for src in ("real_execsnoop.c", "real_subprogs.c", "real_biolatency.c"):
        paths.append(str(bpf_build(src, vmlinux=True)))
    proc = _run(*paths)
    assert proc.returncode == 0, f"child died ({proc.returncode}): {proc.stderr[-3000:]}"
    result = json.loads(proc.stdout)
    assert set(result) == set(paths)
    for progs in result.values():
        assert progs and all(n > 0 for n in progs.values())
