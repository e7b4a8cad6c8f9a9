"""What every attach module shares: the program's section, BPF_LINK_CREATE into a `Link`,
feature lookups, tracefs, and turning "the kernel cannot" errnos into `NotSupportedError`
naming the kernel feature or config option."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections.abc import Callable, Iterable

from bpfobj.errors import BpfObjError, NotSupportedError, SpecError, SyscallError
from bpfobj.links import Link
from bpfobj.sys import attr
from bpfobj.sys.syscall import Cmd, Fd, bpf, bpf_fd, libc_call

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, NoReturn, TypeVar

    from bpfobj.elf.secdefs import AttachKind, SecDef
    from bpfobj.kernel.features import Features
    from bpfobj.programs import Program

    _T = TypeVar("_T")

ENOTSUPP = 524  # the kernel's internal "not supported" (linux/errno.h)
#: errnos meaning "this kernel cannot do that" rather than "that is wrong"
UNSUPPORTED_ERRNOS = frozenset({_errno.EOPNOTSUPP, ENOTSUPP, _errno.ENOSYS})

TRAMPOLINES = ("BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS and CONFIG_BPF_JIT; "
               "on arm64 Linux 6.4+)")
"""What fentry / fexit / fmod_ret / lsm / lsm_cgroup programs attach through."""

TRACEFS = "/sys/kernel/tracing"
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"


def features() -> Features:
    """The running kernel's features (probed once per boot, bpfobj.kernel.features)."""
    from bpfobj.kernel.features import probe

    return probe()


def sec_def(program: Program) -> SecDef:
    sd = program.spec.sec_def
    if sd is None:
        raise SpecError(f"program {program.name!r}: section {program.spec.section!r} has no "
                        "known SEC() prefix, so bpfobj cannot tell how to attach it",
                        program=program.name, section=program.spec.section)
    return sd


def attach_kind(program: Program) -> AttachKind:
    return sec_def(program).attach_kind


def sec_name(program: Program) -> str:
    """The section name without libbpf's ``?`` (no-autoload) marker (prog->sec_name)."""
    return program.spec.section.removeprefix("?")


def fail(message: str, program: Program | None, **context: Any) -> NoReturn:
    raise SpecError(message, program=program.name if program is not None else None,
                    section=program.spec.section if program is not None else None, **context)


def sec_target(program: Program, parse: Callable[[str], _T | None], missing: str) -> _T:
    """The attach target the program's section names, read by `parse` (one of the
    ``parse_*_section`` functions of `bpfobj.elf.secdefs`): `fail` with its error when the
    name is malformed, or with `missing` when it names no target."""
    try:
        parsed = parse(sec_name(program))
    except ValueError as exc:
        fail(str(exc), program)
    if parsed is None:
        fail(missing, program)
    return parsed


def unsupported(exc: SyscallError, what: str, *, config: str, program: Program | None = None,
                since: str | None = None) -> BpfObjError:
    """`exc` as a `NotSupportedError` naming the kernel config / version needed, when its
    errno says the kernel cannot; otherwise `exc` with the program as context."""
    name = program.name if program is not None else None
    if exc.errno in UNSUPPORTED_ERRNOS:
        need = f"{config}" + (f" (Linux {since}+)" if since else "")
        return NotSupportedError(f"{what}: the kernel does not support it ({exc.strerror})",
                                 program=name, hint=f"needs {need}")
    return exc.with_context(program=name)


def require_feature(supported: bool, what: str, *, feature: str, since: str,
                    program: Program | None = None, config: str = "",
                    instead: str = "") -> None:
    """Raise `NotSupportedError` unless `supported` (a `Features` probe): `what` cannot be
    done because the running kernel lacks `feature`, which arrived in Linux `since` (and
    needs `config`); the hint says what to do (`instead`, or a newer kernel). Checked before
    the syscall, which on such a kernel fails with a bare EINVAL."""
    if supported:
        return
    feats = features()
    release = feats.kernel_release or os.uname().release
    need = f"Linux {since}+" + (f" built with {config}" if config else "")
    raise NotSupportedError(
        f"{what}: this kernel ({release}) has no {feature} (it needs {need})",
        program=program.name if program is not None else None,
        section=program.spec.section if program is not None else None,
        hint=(f"{instead}, or run on {need}" if instead else f"run on {need}"))


def link_create(
    program: Program, target_fd: int, attach_type: int, *, kind: str, target: str,
    config: str = "", since: str | None = None, undo: Iterable[Callable[[], None]] = (),
    **kw: Any,
) -> Link:
    """BPF_LINK_CREATE (libbpf bpf_program_attach_fd() / bpf_link_create()) into a `Link`."""
    a = attr.link_create(program.fd, target_fd, attach_type, **kw)
    return link_create_attr(program, a, kind=kind, target=target, config=config, since=since,
                            undo=undo)


def link_create_attr(program: Program, a: attr.Attr, *, kind: str, target: str,
                     config: str = "", since: str | None = None,
                     undo: Iterable[Callable[[], None]] = ()) -> Link:
    """BPF_LINK_CREATE with a prepared attr (from `bpfobj.sys.attr` or `attach_attr`)."""
    try:
        fd = bpf_fd(Cmd.LINK_CREATE, a, what=f"cannot attach program {program.name!r} to "
                    f"{target}", program=program.name)
    except SyscallError as exc:
        raise unsupported(exc, f"{kind} links", config=config or "a newer kernel",
                          program=program, since=since) from None
    return Link(fd, kind=kind, target=target, program=program, undo=undo)


def wrap_fd(fd: int) -> Fd:
    """An owned duplicate of a caller's fd (the caller keeps and closes theirs)."""
    return Fd(os.dup(fd))


def tracefs(mount: bool = True) -> str:
    """The tracefs directory (libbpf tracefs_path()); mounted at /sys/kernel/tracing when
    missing and `mount` (``mount -t tracefs nodev /sys/kernel/tracing``)."""
    for d in (TRACEFS, DEBUGFS_TRACING):
        if os.path.isdir(os.path.join(d, "events")):
            return d
    if mount and os.path.isdir(TRACEFS):
        try:
            libc_call("mount", b"nodev", TRACEFS.encode(), b"tracefs", 0, None,
                      argtypes=[ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_ulong, ctypes.c_void_p])
        except SyscallError as exc:
            raise NotSupportedError(f"tracefs is not mounted and mounting it failed: "
                                    f"{exc.strerror}", hint="mount -t tracefs nodev "
                                    f"{TRACEFS} (as root); needs CONFIG_TRACING") from None
        if os.path.isdir(os.path.join(TRACEFS, "events")):
            return TRACEFS
    raise NotSupportedError("tracefs is not available",
                            hint=f"mount -t tracefs nodev {TRACEFS}; needs CONFIG_TRACING")


def read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def prog_attach(program: Program, target: Fd | None, attach_type: int, *, kind: str,
                target_name: str, flags: int = 0, replace: Program | None = None,
                config: str = "") -> Link:
    """BPF_PROG_ATTACH (libbpf bpf_prog_attach_opts()): the kernel keeps the attachment
    without a link fd, so the `Link` owns `target` (a cgroup, map or netns fd; None: 0)
    and a duplicate of the program fd, and undoes it with BPF_PROG_DETACH when closed."""
    tfd = target.fileno() if target is not None else 0
    a = attr.prog_attach(program.fd, tfd, attach_type, flags=flags,
                         replace_fd=replace.fd if replace is not None else 0)
    try:
        bpf(Cmd.PROG_ATTACH, a, what=f"cannot attach program {program.name!r} to {target_name}",
            program=program.name)
    except SyscallError as exc:
        if target is not None:
            target.close()
        raise unsupported(exc, f"{kind} attach", config=config or "a newer kernel",
                          program=program) from None
    prog_fd = wrap_fd(program.fd)  # detaching needs it even after the program is closed

    def detach() -> None:
        try:
            bpf(Cmd.PROG_DETACH, attr.prog_detach(prog_fd.fileno(), tfd, attach_type),
                what=f"cannot detach program {program.name!r} from {target_name}",
                program=program.name)
        except SyscallError as exc:
            if exc.errno not in (_errno.ENOENT, _errno.EBADF):
                raise
        finally:
            prog_fd.close()
            if target is not None:
                target.close()

    return Link(None, kind=kind, target=f"{target_name} (BPF_PROG_ATTACH)", program=program,
                undo=[detach])
