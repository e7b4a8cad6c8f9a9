"""Programs on perf events: the shared path of tracepoints, kprobes and uprobes
(`attach_perf_fd`), and SEC("perf_event") programs on their own events (`attach_perf_event`,
e.g. a software CPU clock sampled on every CPU).

`attach_perf_fd` is libbpf's bpf_program__attach_perf_event_opts(): a BPF link
(BPF_LINK_CREATE, attach type BPF_PERF_EVENT, with an optional bpf_cookie) when the kernel
has perf links (FEAT_PERF_LINK, 5.15), else PERF_EVENT_IOC_SET_BPF on the event itself;
then PERF_EVENT_IOC_ENABLE. The `Link` owns the perf event fd either way.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable, Iterable, Sequence

from bpfobj.attach.common import features, unsupported, wrap_fd
from bpfobj.errors import BpfObjError, NotSupportedError, SyscallError
from bpfobj.links import Link
from bpfobj.sys import attr, perf
from bpfobj.sys.syscall import Cmd, Fd, bpf_fd
from bpfobj.uapi import AttachType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Literal, TypeAlias

    from bpfobj.programs import Program

#: how a perf-event based program is attached (libbpf enum probe_attach_mode):
#: "link" BPF_LINK_CREATE, "ioctl" PERF_EVENT_IOC_SET_BPF, None the best the kernel has
PerfMode: TypeAlias = 'Literal["link", "ioctl"] | None'


def _already_attached(exc: SyscallError, program: Program, target: str) -> SyscallError:
    """EEXIST from attaching to a tracepoint or k/uprobe event: the kernel keeps one list of
    programs per trace event and refuses a program already in it (bpf_prog_array_copy())."""
    exc.message = f"program {program.name!r} is already attached to {target}"
    exc.hint = ("the kernel runs a program once per trace event: close the other link "
                "first (or load the object a second time for a second copy)")
    exc.with_context(program=program.name)
    return exc


def attach_perf_fd(
    program: Program, pfd: Fd, *, kind: str, target: str, cookie: int = 0,
    mode: PerfMode = None, undo: Iterable[Callable[[], None]] = (),
) -> Link:
    """Attach `program` to perf event `pfd` (taking ownership of it, and of the `undo`
    steps: both are released on failure too)."""
    undo = list(undo)
    try:
        use_link = mode == "link" or (mode is None and features().perf_link)
        if use_link:
            try:
                lfd = bpf_fd(Cmd.LINK_CREATE,
                             attr.link_create(program.fd, pfd.fileno(), AttachType.PERF_EVENT,
                                              bpf_cookie=cookie),
                             what=f"cannot create a perf link for {target}",
                             program=program.name)
            except SyscallError as exc:
                if exc.errno == _errno.EEXIST:
                    raise _already_attached(exc, program, target) from None
                raise unsupported(exc, "perf event links", config="CONFIG_PERF_EVENTS",
                                  program=program, since="5.15") from None
            link = Link(lfd, kind=kind, target=target, program=program, perf_fd=pfd,
                        undo=undo)
        else:
            if cookie:
                raise NotSupportedError(
                    "a bpf_cookie needs a perf link (BPF_LINK_CREATE), which this kernel "
                    "lacks", program=program.name, hint="needs Linux 5.15+")
            try:
                perf.set_bpf(pfd.fileno(), program.fd)
            except SyscallError as exc:
                if exc.errno == _errno.EEXIST:
                    raise _already_attached(exc, program, target) from None
                hint = None
                if exc.errno == _errno.EPROTO:  # libbpf's hint
                    hint = "add PERF_SAMPLE_CALLCHAIN or drop exclude_callchain_* on the event"
                raise exc.with_context(program=program.name, hint=hint) from None
            link = Link(pfd, kind=kind, target=target, program=program, perf_attached=True,
                        undo=undo)
    except BaseException:
        pfd.close()
        for step in undo:
            try:
                step()
            except BpfObjError:
                pass
        raise
    try:
        perf.enable(pfd.fileno())
    except BaseException:
        link.close()
        raise
    return link


def attach_perf_event(
    program: Program, perf_fd: int | Fd | None = None, *, cpus: Sequence[int] | None = None,
    type: int = perf.PERF_TYPE_SOFTWARE, config: int = perf.PERF_COUNT_SW_CPU_CLOCK,
    sample_period: int = 0, sample_freq: int = 0, pid: int = -1, cookie: int = 0,
    mode: PerfMode = None,
) -> Link:
    """Attach a SEC("perf_event") program (libbpf bpf_program__attach_perf_event()).

    With `perf_fd`: to that event (an `int` is duplicated, an `Fd` is taken over).
    Without: open a sampling event of `type`/`config` (default the software CPU clock)
    on each of `cpus` (default: every online CPU), `sample_freq` Hz or every
    `sample_period` events (default 1000 Hz), for `pid` (-1: every process), and return
    one `Link` grouping the per-CPU links.
    """
    if perf_fd is not None:
        pfd = perf_fd if isinstance(perf_fd, Fd) else wrap_fd(perf_fd)
        return attach_perf_fd(program, pfd, kind="perf_event", target=f"perf fd {pfd.fileno()}",
                              cookie=cookie, mode=mode)
    if not sample_period and not sample_freq:
        sample_freq = 1000
    parts: list[Link] = []
    try:
        for cpu in cpus if cpus is not None else perf.online_cpus():
            flags = perf.FLAG_FREQ if sample_freq else 0
            pfd = perf.open_event(type, config, pid=pid, cpu=cpu,
                                  sample_period=sample_freq or sample_period, flags=flags)
            parts.append(attach_perf_fd(program, pfd, kind="perf_event", target=f"cpu {cpu}",
                                        cookie=cookie, mode=mode))
    except BaseException:
        for part in parts:
            part.close()
        raise
    what = f"type {type} config {config} on {len(parts)} CPUs"
    return Link.group(parts, kind="perf_event", target=what, program=program)
