"""Per-architecture facts, as data. Nothing else in bpfobj branches on the architecture.

Every other layer asks an `Arch` record: syscall numbers for the kernel layer, the pt_regs
layout for kprobe argument access, the syscall-wrapper prefix for ksyscall attach, and the
byte order for the instruction codec.
"""

from __future__ import annotations

import os
import sys

from bpfobj import records

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Literal, TypeAlias

ByteOrder: TypeAlias = 'Literal["little", "big"]'


@records.frozen
class PtRegs:
    """Where the registers of struct pt_regs sit (byte offsets), for PT_REGS_* access."""

    size: int
    args: tuple[int, ...]  # function argument registers, in order
    ret: int  # return value register
    fp: int
    sp: int
    ip: int
    syscall_args: tuple[int, ...]  # syscall arguments as seen by the syscall wrapper's regs


@records.frozen
class Arch:
    name: str  # the kernel's name: x86_64, arm64
    machine: tuple[str, ...]  # uname -m spellings
    elf_machine: str  # pyelftools e_machine name of native (non-BPF) objects, for uprobes
    byteorder: ByteOrder
    pointer_size: int
    nr_bpf: int
    nr_perf_event_open: int
    syscall_prefix: str  # kernel symbol prefix of syscall wrappers
    pt_regs: PtRegs
    target_arch_macro: str = records.field(default="")  # -D__TARGET_ARCH_<x> for bpf_tracing.h


# arch/x86/include/uapi/asm/ptrace.h: struct pt_regs (r15 ... ss), 21 u64 slots.
_X86_REG = {
    name: i * 8
    for i, name in enumerate(
        ["r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss"]
    )
}

X86_64 = Arch(
    name="x86_64",
    machine=("x86_64", "amd64"),
    elf_machine="EM_X86_64",
    byteorder="little",
    pointer_size=8,
    nr_bpf=321,  # arch/x86/entry/syscalls/syscall_64.tbl
    nr_perf_event_open=298,
    syscall_prefix="__x64_sys_",
    pt_regs=PtRegs(
        size=21 * 8,
        args=tuple(_X86_REG[r] for r in ("di", "si", "dx", "cx", "r8", "r9")),
        ret=_X86_REG["ax"],
        fp=_X86_REG["bp"],
        sp=_X86_REG["sp"],
        ip=_X86_REG["ip"],
        # the syscall ABI passes the 4th argument in r10, not rcx
        syscall_args=tuple(_X86_REG[r] for r in ("di", "si", "dx", "r10", "r8", "r9")),
    ),
    target_arch_macro="x86",
)

# arch/arm64/include/asm/ptrace.h: struct user_pt_regs { u64 regs[31]; sp; pc; pstate; },
# struct pt_regs adds orig_x0 and more after it; only the user_pt_regs prefix is read.
ARM64 = Arch(
    name="arm64",
    machine=("aarch64", "arm64"),
    elf_machine="EM_AARCH64",
    byteorder="little",
    pointer_size=8,
    nr_bpf=280,  # include/uapi/asm-generic/unistd.h
    nr_perf_event_open=241,
    syscall_prefix="__arm64_sys_",
    pt_regs=PtRegs(
        size=34 * 8,
        args=tuple(i * 8 for i in range(8)),
        ret=0,
        fp=29 * 8,
        sp=31 * 8,
        ip=32 * 8,
        syscall_args=tuple(i * 8 for i in range(6)),
    ),
    target_arch_macro="arm64",
)

ARCHES: dict[str, Arch] = {a.name: a for a in (X86_64, ARM64)}


def by_name(name: str) -> Arch:
    """The `Arch` for a kernel or uname spelling (``x86_64``, ``amd64``, ``arm64``, ``aarch64``)."""
    for arch in ARCHES.values():
        if name == arch.name or name in arch.machine:
            return arch
    from bpfobj.errors import NotSupportedError

    raise NotSupportedError(
        f"architecture {name!r} is not supported",
        hint=f"bpfobj supports {', '.join(ARCHES)}",
    )


def host() -> Arch:
    """The `Arch` of the machine this Python runs on."""
    arch = by_name(os.uname().machine)
    assert arch.byteorder == sys.byteorder
    return arch
