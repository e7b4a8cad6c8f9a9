"""The attach kinds left over: lirc_mode2 (BPF_PROG_ATTACH to a lirc device), and the kinds
that are never attached through a program: struct_ops (through its map), syscall (run with
BPF_PROG_TEST_RUN)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bpfobj.attach.common import fail, prog_attach, wrap_fd
from bpfobj.errors import NotSupportedError
from bpfobj.uapi import AttachType

if TYPE_CHECKING:
    from bpfobj.links import Link
    from bpfobj.programs import Program


def attach_lirc(program: Program, device: str | int | None = None, **_: Any) -> Link:
    """BPF_PROG_ATTACH of a lirc_mode2 program to a lirc device (``/dev/lirc0`` or an fd);
    undone with BPF_PROG_DETACH when the link closes."""
    import os

    from bpfobj.sys.syscall import Fd

    if device is None:
        fail("lirc attach needs a device: pass device= (/dev/lircN or an fd)", program)
    if isinstance(device, int):
        fd, where = wrap_fd(device), f"lirc fd {device}"
    else:
        try:
            fd, where = Fd(os.open(device, os.O_RDWR | os.O_CLOEXEC)), device
        except OSError as exc:
            raise NotSupportedError(f"cannot open {device}: {exc.strerror}",
                                    hint="needs CONFIG_BPF_LIRC_MODE2 and a lirc device") from None
    return prog_attach(program, fd, AttachType.LIRC_MODE2, kind="lirc", target_name=where,
                       config="CONFIG_BPF_LIRC_MODE2")


def attach_struct_ops(program: Program, **_: Any) -> Link:
    raise NotSupportedError(
        f"struct_ops program {program.name!r} is attached by registering its struct_ops map "
        "(bpf_map__attach_struct_ops), which bpfobj does not support yet",
        program=program.name)


def attach_syscall(program: Program, **_: Any) -> Link:
    raise NotSupportedError(
        f"SEC(\"syscall\") program {program.name!r} is never attached",
        program=program.name, hint="run it with program.test_run(ctx=...)")

