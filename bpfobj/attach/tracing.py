"""Tracing attach: tracepoints, raw tracepoints, BTF-typed tracing (tp_btf, fentry, fexit,
fmod_ret, freplace), LSM hooks and iterators.

* ``tp/<category>/<name>``: a perf event of the tracefs event id, then a perf link or
  PERF_EVENT_IOC_SET_BPF (libbpf attach_tp(), bpf_program__attach_tracepoint_opts());
* ``raw_tp/<name>``: BPF_RAW_TRACEPOINT_OPEN with the name (libbpf attach_raw_tp());
* ``tp_btf/ fentry/ fexit/ fmod_ret/ lsm/``: the target was fixed at load (attach_btf_id),
  so BPF_LINK_CREATE with the program's expected attach type and target 0, falling back to
  BPF_RAW_TRACEPOINT_OPEN with a NULL name on kernels without tracing links (libbpf
  bpf_program__attach_btf_id(), bpf_link_create()'s fallback);
* ``iter/<target>``: BPF_LINK_CREATE with BPF_TRACE_ITER and an optional
  bpf_iter_link_info (map, task, cgroup); `Link.read_iter()` runs it (libbpf attach_iter()).
"""

from __future__ import annotations

import errno as _errno

from bpfobj.attach.common import (
    TRAMPOLINES,
    link_create,
    sec_name,
    sec_target,
    tracefs,
    unsupported,
)
from bpfobj.attach.perf_event import PerfMode, attach_perf_fd
from bpfobj.errors import NotSupportedError, SyscallError
from bpfobj.links import Link
from bpfobj.sys import attr, perf
from bpfobj.sys.syscall import Cmd, bpf_fd
from bpfobj.uapi import AttachType, ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.programs import Program

_RAW_TP_PREFIXES = ("raw_tp", "raw_tracepoint", "raw_tp.w", "raw_tracepoint.w")


# --------------------------------------------------------------------------------------
# tracepoints
# --------------------------------------------------------------------------------------


def parse_tracepoint_section(name: str) -> tuple[str, str] | None:
    """``tp/<category>/<name>`` or ``tracepoint/<category>/<name>`` -> (category, name);
    None for a bare ``tp`` (libbpf attach_tp(): no auto-attach)."""
    if name in ("tp", "tracepoint"):
        return None
    rest = name.split("/", 1)[1] if "/" in name else ""
    cat, sep, tp = rest.partition("/")
    if not sep or not cat or not tp:
        raise ValueError(f"section {name!r} is not tp/<category>/<name>")
    return cat, tp


def tracepoint_id(category: str, name: str) -> int:
    """The tracefs event id (libbpf determine_tracepoint_id()), tracefs mounted if needed."""
    return perf.tracepoint_id(category, name, tracefs())


def attach_tracepoint(program: Program, category: str | None = None, name: str | None = None,
                      *, cookie: int = 0, mode: PerfMode = None, **_: Any) -> Link:
    """Attach a tracepoint program (libbpf bpf_program__attach_tracepoint_opts()); the
    category and name default to the section's."""
    if category is None or name is None:
        parsed = sec_target(program, parse_tracepoint_section,
                            "SEC(\"tp\") names no tracepoint: pass category= and name=")
        category, name = parsed
    tp_id = tracepoint_id(category, name)
    # libbpf perf_event_open_tracepoint(): pid -1, cpu 0 (the program runs on every CPU)
    pfd = perf.open_event(perf.PERF_TYPE_TRACEPOINT, tp_id, pid=-1, cpu=0)
    return attach_perf_fd(program, pfd, kind="tracepoint", target=f"{category}/{name}",
                          cookie=cookie, mode=mode)


# --------------------------------------------------------------------------------------
# raw tracepoints
# --------------------------------------------------------------------------------------


def parse_raw_tp_section(name: str) -> str | None:
    """The tracepoint of ``raw_tp/<name>`` (and raw_tracepoint, .w variants); None for a
    bare prefix (libbpf attach_raw_tp())."""
    for pfx in _RAW_TP_PREFIXES:
        if not name.startswith(pfx):
            continue
        rest = name[len(pfx):]
        if not rest:
            return None
        if rest[0] == "/":
            return rest[1:]
    raise ValueError(f"section {name!r} is not raw_tp/<tracepoint>")


def attach_raw_tp(program: Program, name: str | None = None, *, cookie: int = 0,
                  **_: Any) -> Link:
    """BPF_RAW_TRACEPOINT_OPEN (libbpf bpf_program__attach_raw_tracepoint_opts())."""
    if name is None:
        name = sec_target(program, parse_raw_tp_section,
                          "SEC(\"raw_tp\") names no tracepoint: pass name=")
    try:
        fd = bpf_fd(Cmd.RAW_TRACEPOINT_OPEN, attr.raw_tracepoint_open(name, program.fd,
                                                                       cookie=cookie),
                    what=f"cannot attach to raw tracepoint {name!r}", program=program.name)
    except SyscallError as exc:
        if exc.errno == _errno.ENOENT:
            raise NotSupportedError(f"the kernel has no raw tracepoint {name!r}",
                                    program=program.name) from None
        raise
    return Link(fd, kind="raw_tp", target=name, program=program)


# --------------------------------------------------------------------------------------
# BTF-typed tracing and LSM
# --------------------------------------------------------------------------------------


def attach_trace(program: Program, *, cookie: int = 0, target_prog_fd: int = 0,
                 target_btf_id: int = 0, **_: Any) -> Link:
    """fentry / fexit / fmod_ret / tp_btf / lsm / freplace (libbpf
    bpf_program__attach_btf_id(), attach_trace(), attach_lsm()).

    The target was resolved at load (attach_btf_id); BPF_LINK_CREATE takes target 0 and
    the expected attach type. freplace with `target_prog_fd` + `target_btf_id` attaches
    to another program's function (libbpf bpf_program__attach_freplace()).
    """
    kind = "lsm" if program.type == ProgType.LSM else "tracing"
    target = program.spec.attach_target or sec_name(program)
    if program.type == ProgType.EXT and target_prog_fd:
        return link_create(program, target_prog_fd, 0, kind="freplace", target=target,
                           target_btf_id=target_btf_id, config="CONFIG_BPF_JIT",
                           since="5.10")
    expected = program.expected_attach_type
    if expected is None:
        expected = AttachType.TRACE_RAW_TP if program.type == ProgType.TRACING else None
    config = TRAMPOLINES
    if kind == "lsm":
        config = f"CONFIG_BPF_LSM, 'bpf' in the lsm= boot list and {TRAMPOLINES}"
    elif program.type == ProgType.EXT:
        # A BPF program's function is no ftrace site: no direct calls needed (arm64 6.0 runs
        # freplace, where fentry waits for 6.4).
        kind, config = "freplace", "BPF trampolines (CONFIG_BPF_JIT; on arm64 Linux 6.0+)"
    try:
        fd = bpf_fd(Cmd.LINK_CREATE,
                    attr.link_create(program.fd, 0, int(expected or 0),
                                     tracing_cookie=cookie),
                    what=f"cannot attach {kind} program to {target!r}", program=program.name)
    except SyscallError as exc:
        if exc.errno != _errno.EINVAL or cookie:
            raise unsupported(exc, f"{kind} attach to {target!r}", config=config,
                              program=program) from None
        # libbpf bpf_link_create(): kernels before tracing links (5.10) take
        # BPF_RAW_TRACEPOINT_OPEN with a NULL name instead
        try:
            fd = bpf_fd(Cmd.RAW_TRACEPOINT_OPEN, attr.raw_tracepoint_open(None, program.fd),
                        what=f"cannot attach {kind} program to {target!r}",
                        program=program.name)
        except SyscallError as exc2:
            raise unsupported(exc2, f"{kind} attach to {target!r}", config=config,
                              program=program) from None
    return Link(fd, kind=kind, target=target, program=program)


attach_lsm = attach_trace


# --------------------------------------------------------------------------------------
# iterators
# --------------------------------------------------------------------------------------


def attach_iter(program: Program, *, map: Any = None, map_fd: int | None = None,
                task_tid: int = 0, task_pid: int = 0, task_pid_fd: int = 0,
                cgroup_fd: int = 0, cgroup_id: int = 0, cgroup_order: int | None = None,
                link_info: bytes | None = None, **_: Any) -> Link:
    """BPF_LINK_CREATE with BPF_TRACE_ITER (libbpf bpf_program__attach_iter()).

    Parameters of the iterator (union bpf_iter_link_info): a `map` (a `bpfobj.maps.Map`
    or `map_fd`) for bpf_map_elem / sk storage iterators; `task_tid` / `task_pid` /
    `task_pid_fd` to walk one task or process; `cgroup_fd` / `cgroup_id` with
    `cgroup_order` for cgroup iterators; or raw `link_info` bytes.
    """
    if link_info is None:
        from bpfobj.sys import attach_attr  # (not imported by tools attaching tracepoints)

        if map is not None or map_fd is not None:
            link_info = attach_attr.iter_link_info_map(int(map.fd if map is not None
                                                           else map_fd or 0))
        elif task_tid or task_pid or task_pid_fd:
            link_info = attach_attr.iter_link_info_task(tid=task_tid, pid=task_pid,
                                                        pid_fd=task_pid_fd)
        elif cgroup_fd or cgroup_id or cgroup_order is not None:
            order = attach_attr.CgroupIterOrder.SELF_ONLY if cgroup_order is None else cgroup_order
            link_info = attach_attr.iter_link_info_cgroup(order, cgroup_fd=cgroup_fd,
                                                          cgroup_id=cgroup_id)
    target = program.spec.attach_target or "iter"
    return link_create(program, 0, AttachType.TRACE_ITER, kind="iter", target=target,
                       iter_info=link_info, config="CONFIG_BPF_SYSCALL", since="5.8")

