"""Kernel probes: kprobe / kretprobe, ksyscall / kretsyscall, kprobe.multi / kprobe.session.

* kprobe/kretprobe (libbpf bpf_program__attach_kprobe_opts()): a perf event of the
  ``kprobe`` PMU (type from /sys/bus/event_source/devices/kprobe/type, the return-probe
  bit from its format/retprobe, ``config1`` = function name, ``config2`` = offset), or,
  when the PMU is missing, the legacy way: write ``p:kprobes/<event> <func>+<off>`` to
  tracefs kprobe_events and open the new tracepoint (removed again when the link closes);
  then `attach_perf_fd`. Section: ``kprobe/<func>[+<offset>]``, ``kretprobe/<func>``.
* ksyscall/kretsyscall (libbpf bpf_program__attach_ksyscall()): a kprobe on the syscall's
  kernel function: ``<arch prefix><name>`` (``__x64_sys_``, ``__arm64_sys_``, from
  `bpfobj.arch`) when the kernel has syscall wrappers (libbpf probe_kern_syscall_wrapper(),
  here: the wrapper of bpf(2) is in kallsyms), else ``sys_<name>``.
* kprobe.multi / kretprobe.multi / kprobe.session (libbpf
  bpf_program__attach_kprobe_multi_opts()): one BPF_LINK_CREATE over every function
  matching a glob in tracefs available_filter_functions (needs CONFIG_FPROBE).

Every path fails with `NotSupportedError` naming CONFIG_KPROBES (or CONFIG_FPROBE) when
the kernel has no kprobes at all.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import re
from collections.abc import Sequence

from bpfobj import records
from bpfobj.arch import Arch, host
from bpfobj.attach.common import (
    features,
    link_create_attr,
    read_int,
    require_feature,
    sec_target,
    tracefs,
)
from bpfobj.attach.elfsyms import glob_match
from bpfobj.attach.perf_event import PerfMode, attach_perf_fd
from bpfobj.errors import NotSupportedError, SyscallError
from bpfobj.links import Link
from bpfobj.sys import attach_attr, perf
from bpfobj.sys.syscall import Fd, perf_event_open
from bpfobj.uapi import AttachType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.programs import Program

PMU_DIR = "/sys/bus/event_source/devices"
KALLSYMS = "/proc/kallsyms"
KPROBES_HINT = "the kernel is built without CONFIG_KPROBES (kprobe/kretprobe/ksyscall)"
FPROBE_HINT = "kprobe.multi needs CONFIG_FPROBE (and CONFIG_KPROBES for kretprobes)"
_MULTI_PATTERN = re.compile(r"[a-zA-Z0-9_.*?]+")
_legacy_index = itertools.count()


@records.frozen
class KprobeTarget:
    """What a kprobe section names: ``kprobe/<func>[+<offset>]`` / ``kretprobe/<func>``."""

    func: str
    offset: int = 0
    retprobe: bool = False


def _parse_long(text: str) -> int:
    """C's strtol base 0 (``%li``): 0x.. hex, 0.. octal, else decimal."""
    if text.lower().startswith("0x"):
        return int(text, 16)
    if text.startswith("0") and len(text) > 1:
        return int(text, 8)
    return int(text)


def parse_kprobe_section(name: str) -> KprobeTarget | None:
    """libbpf attach_kprobe(): None for bare ``kprobe`` / ``kretprobe`` (no auto-attach);
    ``%m[a-zA-Z0-9_.]+%li`` for the function and offset. Raises ValueError like libbpf's
    -EINVAL (bad name, negative offset, an offset on a kretprobe)."""
    if name in ("kprobe", "kretprobe"):
        return None
    retprobe = name.startswith("kretprobe/")
    func = name.split("/", 1)[1] if "/" in name else ""
    m = re.match(r"[a-zA-Z0-9_.]+", func)
    if m is None:
        raise ValueError(f"kprobe name is invalid: {func!r}")
    offset = 0
    rest = func[m.end():]
    if rest.startswith("+"):  # "+%li": optional sign, then hex, octal or decimal
        off_m = re.match(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|[0-9]+)", rest[1:])
        if off_m is not None:
            offset = _parse_long(off_m.group(2)) * (-1 if off_m.group(1) == "-" else 1)
    if offset < 0:
        raise ValueError(f"kprobe offset must be a non-negative integer: {offset}")
    if retprobe and offset:
        raise ValueError("kretprobes do not support offset specification")
    return KprobeTarget(m.group(0), offset, retprobe)


# --------------------------------------------------------------------------------------
# the kprobe PMU
# --------------------------------------------------------------------------------------


def kprobe_pmu_type(pmu_dir: str = PMU_DIR) -> int | None:
    """libbpf determine_kprobe_perf_type(): the kprobe PMU's type, None without it."""
    return read_int(os.path.join(pmu_dir, "kprobe", "type"))


def retprobe_bit(pmu: str = "kprobe", pmu_dir: str = PMU_DIR) -> int:
    """libbpf determine_kprobe_retprobe_bit(): N of ``config:N`` in format/retprobe."""
    path = os.path.join(pmu_dir, pmu, "format", "retprobe")
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text.split(":", 1)[1])
    except (OSError, ValueError, IndexError):
        raise NotSupportedError(f"cannot read the {pmu} PMU's retprobe bit from {path}",
                                hint=KPROBES_HINT if pmu == "kprobe" else None) from None


def kprobe_perf_attr(func: str, offset: int = 0, *, retprobe: bool = False, pmu_type: int,
                     retprobe_bit: int = 0) -> perf.PerfEventAttr:
    """The perf_event_attr of a kprobe PMU event (libbpf perf_event_open_probe(false, ...)):
    ``config1`` points to the NUL-terminated function name (kept alive on the attr as
    ``_name``), ``config2`` is the offset."""
    name = ctypes.create_string_buffer(func.encode())
    a = perf.PerfEventAttr(type=pmu_type, size=ctypes.sizeof(perf.PerfEventAttr),
                           config=(1 << retprobe_bit) if retprobe else 0,
                           config1=ctypes.addressof(name), config2=offset)
    a._name = name
    return a


def legacy_event_name(func: str, offset: int, *, pid: int | None = None,
                      index: int | None = None) -> str:
    """libbpf gen_probe_legacy_event_name(): ``bpfobj_<pid>_<n>_<func>_0x<off>`` with every
    non-alphanumeric character turned into ``_``."""
    pid = os.getpid() if pid is None else pid
    index = next(_legacy_index) if index is None else index
    raw = f"bpfobj_{pid}_{index}_{func}_0x{offset:x}"
    return re.sub(r"[^A-Za-z0-9]", "_", raw)


def legacy_kprobe_definition(event: str, func: str, offset: int, retprobe: bool) -> str:
    """The kprobe_events line libbpf add_kprobe_event_legacy() writes."""
    group = "kretprobes" if retprobe else "kprobes"
    return f"{'r' if retprobe else 'p'}:{group}/{event} {func}+0x{offset:x}"


def _append(path: str, line: str) -> None:
    # libbpf append_to_file(): O_WRONLY | O_APPEND
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _kprobes_available() -> tuple[int | None, str | None]:
    """(PMU type or None, tracefs kprobe_events path or None)."""
    pmu = kprobe_pmu_type()
    events = None
    try:
        events_path = os.path.join(tracefs(), "kprobe_events")
        if os.path.exists(events_path):
            events = events_path
    except NotSupportedError:
        pass
    return pmu, events


def has_kprobes() -> bool:
    """Whether the kernel can do kprobes at all (PMU or tracefs kprobe_events)."""
    pmu, events = _kprobes_available()
    return pmu is not None or events is not None


def _open_kprobe(func: str, offset: int, retprobe: bool, legacy: bool | None,
                 pid: int = -1) -> tuple[Fd, list[Any]]:
    """The perf event of a kprobe, and the undo steps (legacy event removal)."""
    pmu, events = _kprobes_available()
    if pmu is None and events is None:
        raise NotSupportedError(f"cannot kprobe {func}: no kprobe PMU and no kprobe_events",
                                hint=KPROBES_HINT)
    use_legacy = legacy if legacy is not None else pmu is None
    what = f"{'kretprobe' if retprobe else 'kprobe'} {func}+{offset:#x}"
    if not use_legacy:
        if pmu is None:
            raise NotSupportedError(f"{what}: the kernel has no kprobe PMU", hint=KPROBES_HINT)
        a = kprobe_perf_attr(func, offset, retprobe=retprobe, pmu_type=pmu,
                             retprobe_bit=retprobe_bit("kprobe") if retprobe else 0)
        try:
            return perf_event_open(a, pid if pid >= 0 else -1, 0 if pid == -1 else -1, -1,
                                   perf.PERF_FLAG_FD_CLOEXEC), []
        except SyscallError as exc:
            exc.message = f"cannot create {what}"
            if exc.errno == 2:  # ENOENT: no such function / not probe-able
                exc.hint = "is the function in /proc/kallsyms and not blacklisted?"
            raise
    if events is None:
        raise NotSupportedError(f"{what}: tracefs has no kprobe_events", hint=KPROBES_HINT)
    # libbpf perf_event_kprobe_open_legacy()
    event = legacy_event_name(func, offset)
    group = "kretprobes" if retprobe else "kprobes"
    try:
        _append(events, legacy_kprobe_definition(event, func, offset, retprobe))
    except OSError as exc:
        raise SyscallError(f"cannot add legacy {what}", errno=exc.errno or 0,
                           command="write(kprobe_events)") from None

    def remove() -> None:
        try:
            _append(events, f"-:{group}/{event}")
        except OSError as exc:
            raise SyscallError(f"cannot remove legacy kprobe event {event}",
                               errno=exc.errno or 0, command="write(kprobe_events)") from None

    try:
        tp_id = read_int(os.path.join(tracefs(), "events", group, event, "id"))
        if tp_id is None:
            raise NotSupportedError(f"legacy {what}: no event id in tracefs")
        pfd = perf.open_event(perf.PERF_TYPE_TRACEPOINT, tp_id, pid=pid if pid >= 0 else -1,
                              cpu=0 if pid == -1 else -1)
    except BaseException:
        remove()
        raise
    return pfd, [remove]


def attach_kprobe(program: Program, func: str | None = None, *, offset: int = 0,
                  retprobe: bool | None = None, cookie: int = 0, mode: PerfMode = None,
                  legacy: bool | None = None, **_: Any) -> Link:
    """kprobe / kretprobe on kernel function `func` (default: the section's).

    `legacy` True forces tracefs kprobe_events (and the ioctl attach, like libbpf's
    PROBE_ATTACH_MODE_LEGACY), False forces the PMU; `mode` chooses link or ioctl.
    """
    if func is None:
        target = sec_target(program, parse_kprobe_section,
                            "SEC(\"kprobe\") names no function: pass func=")
        func, offset = target.func, target.offset
        if retprobe is None:
            retprobe = target.retprobe
    retprobe = bool(retprobe)
    if legacy:
        mode = "ioctl"
    pfd, undo = _open_kprobe(func, offset, retprobe, legacy)
    kind = "kretprobe" if retprobe else "kprobe"
    return attach_perf_fd(program, pfd, kind=kind,
                          target=f"{func}+{offset:#x}" if offset else func, cookie=cookie,
                          mode=mode, undo=undo)


# --------------------------------------------------------------------------------------
# ksyscall
# --------------------------------------------------------------------------------------


def syscall_function(syscall: str, *, arch: Arch | None = None,
                     wrappers: bool = True) -> str:
    """The kernel function a ksyscall probes (libbpf bpf_program__attach_ksyscall()):
    ``<arch syscall prefix><name>`` with syscall wrappers, else ``sys_<name>``."""
    arch = arch or host()
    return f"{arch.syscall_prefix}{syscall}" if wrappers else f"sys_{syscall}"


def kernel_has_syscall_wrapper() -> bool:
    """libbpf probe_kern_syscall_wrapper(), answered from kallsyms by the feature probe."""
    return features().syscall_wrapper


def parse_ksyscall_section(name: str) -> tuple[str, bool] | None:
    """(syscall, retprobe) of ``ksyscall/<name>`` / ``kretsyscall/<name>``; None for the
    bare prefixes (libbpf attach_ksyscall())."""
    if name in ("ksyscall", "kretsyscall"):
        return None
    retprobe = name.startswith("kretsyscall/")
    syscall = name.split("/", 1)[1] if "/" in name else ""
    if not syscall:
        raise ValueError(f"section {name!r} is not ksyscall/<syscall>")
    return syscall, retprobe


def attach_ksyscall(program: Program, syscall: str | None = None, *,
                    retprobe: bool | None = None, cookie: int = 0, mode: PerfMode = None,
                    **kw: Any) -> Link:
    """A kprobe on syscall `syscall`'s kernel entry (default: the section's)."""
    if syscall is None:
        parsed = sec_target(program, parse_ksyscall_section,
                            "SEC(\"ksyscall\") names no syscall: pass syscall=")
        syscall, sec_ret = parsed
        if retprobe is None:
            retprobe = sec_ret
    if not has_kprobes():
        raise NotSupportedError(f"cannot attach ksyscall {syscall}: no kprobes",
                                program=program.name, hint=KPROBES_HINT)
    func = syscall_function(syscall, wrappers=kernel_has_syscall_wrapper())
    link = attach_kprobe(program, func, retprobe=bool(retprobe), cookie=cookie, mode=mode,
                         legacy=kw.get("legacy"))
    link.kind = "kretsyscall" if retprobe else "ksyscall"
    return link


# --------------------------------------------------------------------------------------
# kprobe.multi / kprobe.session
# --------------------------------------------------------------------------------------


@records.frozen
class KprobeMultiTarget:
    pattern: str
    retprobe: bool = False
    session: bool = False


def parse_kprobe_multi_section(name: str) -> KprobeMultiTarget | None:
    """libbpf attach_kprobe_multi() / attach_kprobe_session(): the ``%m[a-zA-Z0-9_.*?]``
    pattern after the prefix; None for the bare prefixes."""
    if name in ("kprobe.multi", "kretprobe.multi", "kprobe.session"):
        return None
    prefix, _, spec = name.partition("/")
    m = _MULTI_PATTERN.match(spec)
    if m is None:
        raise ValueError(f"kprobe multi pattern is invalid: {spec!r}")
    return KprobeMultiTarget(m.group(0), retprobe=prefix == "kretprobe.multi",
                             session=prefix == "kprobe.session")


def available_functions(pattern: str, path: str | None = None) -> list[str]:
    """Sorted, distinct traceable kernel functions matching glob `pattern` (libbpf
    libbpf_available_kallsyms_parse(): tracefs available_filter_functions)."""
    names: set[str] = set()
    try:
        path = path or os.path.join(tracefs(), "available_filter_functions")
        with open(path) as f:
            names = {line.split(None, 1)[0] for line in f if line.strip()}
    except (OSError, NotSupportedError):
        # tracefs unreadable (lockdown, permissions): the text symbols of kallsyms, which
        # may include functions ftrace cannot attach to (the kernel then says which)
        try:
            with open(KALLSYMS) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1] in ("t", "T"):
                        names.add(parts[2])
        except OSError as exc:
            raise NotSupportedError(f"cannot read available_filter_functions nor {KALLSYMS}: "
                                    f"{exc.strerror}", hint="needs CONFIG_DYNAMIC_FTRACE") \
                from None
    out = sorted(n for n in names if glob_match(n, pattern))
    if not out:
        raise NotSupportedError(f"no traceable kernel function matches {pattern!r}")
    return out


def attach_kprobe_multi(program: Program, pattern: str | None = None, *,
                        syms: Sequence[str] | None = None, addrs: Sequence[int] | None = None,
                        cookies: Sequence[int] | None = None, retprobe: bool | None = None,
                        session: bool | None = None, **_: Any) -> Link:
    """One kprobe_multi link over `syms`, `addrs`, or the functions matching `pattern`
    (default: the section's glob)."""
    if pattern is None and syms is None and addrs is None:
        target = sec_target(program, parse_kprobe_multi_section,
                            "SEC(\"kprobe.multi\") names no functions: pass pattern= or syms=")
        pattern = target.pattern
        retprobe = target.retprobe if retprobe is None else retprobe
        session = target.session if session is None else session
    if session is None:
        session = program.expected_attach_type == AttachType.TRACE_KPROBE_SESSION
    require_feature(features().kprobe_multi_link, "kprobe_multi links",
                    feature="kprobe_multi links (BPF_TRACE_KPROBE_MULTI)", since="5.18",
                    config="CONFIG_FPROBE, on an arch whose fprobe supports it",
                    program=program,
                    instead="attach a kprobe per function (attach_kprobe, SEC(\"kprobe\"))")
    if pattern is not None:
        syms = available_functions(pattern)
    flags = attach_attr.BPF_F_KPROBE_MULTI_RETURN if retprobe else 0
    attach_type = AttachType.TRACE_KPROBE_SESSION if session else AttachType.TRACE_KPROBE_MULTI
    a = attach_attr.link_create_kprobe_multi(program.fd, attach_type,
                                             syms=syms if addrs is None else None,
                                             addrs=addrs, cookies=cookies, kprobe_flags=flags)
    what = pattern or f"{a.cnt} functions"
    kind = "kprobe_session" if session else "kprobe_multi"
    try:
        return link_create_attr(program, a, kind=kind, target=what, config="CONFIG_FPROBE",
                                since="5.18" if not session else "6.10")
    except NotSupportedError as exc:
        exc.hint = FPROBE_HINT
        raise
