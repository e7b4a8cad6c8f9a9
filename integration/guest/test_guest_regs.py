"""kprobe, kretprobe, ksyscall and kretsyscall programs read arguments and return values
through the kernel's pt_regs of the arch they run on (integration/guest/progs/regs_args.c).

The object is compiled for the running kernel's arch (``bpf_arch_options``: x86's struct
pt_regs, or arm64's user_pt_regs and orig_x0 with an arm64 vmlinux.h); the test passes values
it chooses and compares them with what the programs recorded:

* kprobe/vfs_read reads its third argument (count) and kretprobe/vfs_read the return value:
  a read(2) of a chosen size from /dev/zero;
* ksyscall/kill attaches to the arch's syscall wrapper (``__x64_sys_kill``,
  ``__arm64_sys_kill``) and reads pid and sig from the inner pt_regs; kill(self, SIGWINCH),
  a signal ignored by default;
* kretsyscall/getpgid reads the syscall's return value: getpgid(0).

Kernels without CONFIG_KPROBES skip (the host of this project is one).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bpfobj import BpfObject
from bpfobj.attach import attach_all
from bpfobj.attach.kprobe import has_kprobes
from bpfobj.links import Link

if TYPE_CHECKING:
    from conftest import GuestKernel

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "integration" / "guest" / "progs" / "regs_args.c"
SYSCALL_PREFIX = {"x86_64": "__x64_sys_", "arm64": "__arm64_sys_"}
"""The syscall wrapper symbols of each arch (arch/x86/include/asm/syscall_wrapper.h,
arch/arm64/include/asm/syscall_wrapper.h)."""
COUNT = 43210  # within regs_args.c's COUNT_MIN..COUNT_MAX


@pytest.fixture(scope="module")
def links(
    bpf_build: Callable[..., Path], bpf_arch_options: dict[str, Any]
) -> Iterator[tuple[BpfObject, dict[str, Link]]]:
    if not has_kprobes():
        pytest.skip("the kernel is built without CONFIG_KPROBES (no kprobe PMU, no "
                    "kprobe_events): kprobe/kretprobe/ksyscall cannot attach")
    obj = BpfObject.open(bpf_build(SOURCE, vmlinux=True, **bpf_arch_options))
    obj.rodata.target_tgid = os.getpid()
    obj.load()
    attached = attach_all(obj)
    try:
        yield obj, {lk.program.name: lk for lk in attached if lk.program is not None}
    finally:
        for lk in attached:
            lk.close()
        obj.close()


def test_kprobe_reads_an_argument_and_kretprobe_the_return_value(
    links: tuple[BpfObject, dict[str, Link]],
) -> None:
    obj, _ = links
    before = obj.bss.read_hits
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        assert len(os.read(fd, COUNT)) == COUNT
    finally:
        os.close(fd)
    assert obj.bss.read_hits == before + 1
    assert obj.bss.read_count == COUNT  # PT_REGS_PARM3
    assert obj.bss.read_ret == COUNT  # PT_REGS_RC


def test_ksyscall_reads_the_syscall_arguments(
    links: tuple[BpfObject, dict[str, Link]], guest_kernel: GuestKernel
) -> None:
    obj, by_name = links
    assert by_name["on_kill"].target == f"{SYSCALL_PREFIX[guest_kernel.arch]}kill"
    before = obj.bss.kill_hits
    assert signal.getsignal(signal.SIGWINCH) == signal.SIG_DFL  # ignored
    os.kill(os.getpid(), signal.SIGWINCH)
    assert obj.bss.kill_hits == before + 1
    assert (obj.bss.kill_pid, obj.bss.kill_sig) == (os.getpid(), signal.SIGWINCH)


def test_kretsyscall_reads_the_return_value(
    links: tuple[BpfObject, dict[str, Link]], guest_kernel: GuestKernel
) -> None:
    obj, by_name = links
    assert by_name["on_getpgid_ret"].target == f"{SYSCALL_PREFIX[guest_kernel.arch]}getpgid"
    before = obj.bss.getpgid_hits
    pgid = os.getpgid(0)
    assert obj.bss.getpgid_hits == before + 1
    assert obj.bss.getpgid_ret == pgid
