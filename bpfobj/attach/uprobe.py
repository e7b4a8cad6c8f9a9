"""User-space probes: uprobe / uretprobe (and their sleepable ``.s`` variants) and
uprobe.multi / uretprobe.multi.

* uprobe (libbpf bpf_program__attach_uprobe_opts()): the binary is resolved to a full
  path (`bpfobj.attach.ldcache.resolve_binary`: ld.so.cache, the library dirs, PATH, or
  what process `pid` has mapped), the function to a file offset from its ELF symbols
  (`bpfobj.attach.elfsyms.find_func_offset`: .dynsym then .symtab, ``func@@VER``), then a
  perf event of the ``uprobe`` PMU (``config1`` = path, ``config2`` = offset, the
  retprobe bit from format/retprobe, the reference counter offset in config bits 32..63)
  or, without the PMU, a tracefs ``uprobe_events`` entry; then `attach_perf_fd`.
  Section: ``uprobe/<binary>:<function>[+<offset>]``, ``uretprobe/<binary>:<function>``
  (``uprobe//abs/path:func`` for absolute paths).
* uprobe.multi (libbpf bpf_program__attach_uprobe_multi()): one BPF_LINK_CREATE
  (BPF_TRACE_UPROBE_MULTI) over every function of the binary matching a glob, or given
  symbols / offsets. Section: ``uprobe.multi/<binary>:<glob>``.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Sequence

from bpfobj import records
from bpfobj.arch import host
from bpfobj.attach.common import (
    fail,
    features,
    link_create,
    read_int,
    require_feature,
    sec_target,
    tracefs,
)
from bpfobj.attach.elfsyms import (
    NativeElf,
    check_machine,
    find_func_offset,
    resolve_names,
    resolve_pattern,
)
from bpfobj.attach.kprobe import legacy_event_name, retprobe_bit
from bpfobj.attach.ldcache import resolve_binary
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
UPROBES_HINT = "the kernel is built without CONFIG_UPROBES / CONFIG_UPROBE_EVENTS"
#: libbpf PERF_UPROBE_REF_CTR_OFFSET_SHIFT / _BITS
REF_CTR_OFFSET_SHIFT = 32
REF_CTR_OFFSET_BITS = 32


@records.frozen
class UprobeTarget:
    """What a uprobe section names."""

    binary: str
    func: str
    offset: int = 0
    retprobe: bool = False


def parse_uprobe_section(name: str) -> UprobeTarget | None:
    """libbpf attach_uprobe(): ``%m[^/]/%m[^:]:%m[^\\n]`` then a trailing ``+<offset>``
    on the function. None for ``uprobe`` / ``uretprobe`` (no auto-attach); ValueError for
    a binary without ``:function`` or an offset on a uretprobe."""
    probe_type, slash, rest = name.partition("/")
    if not slash or not rest or rest.startswith(":"):
        return None  # sscanf matched only the probe type
    binary, colon, func = rest.partition(":")
    func = func.split("\n", 1)[0]
    if not colon or not func:
        raise ValueError(f"section {name!r} is missing the ':function[+offset]' part")
    offset = 0
    plus = func.rfind("+")
    if plus >= 0:
        m = re.fullmatch(r"\+\s*([+-]?)(0[xX][0-9a-fA-F]+|[0-9]+)", func[plus:])
        if m is not None:  # only a well-formed "+<number>" at the very end is an offset
            digits = m.group(2)
            base = 16 if digits.lower().startswith("0x") else 8 if (
                digits.startswith("0") and len(digits) > 1) else 10
            offset = int(digits, base) * (-1 if m.group(1) == "-" else 1)
            func = func[:plus]
    retprobe = probe_type in ("uretprobe", "uretprobe.s")
    if retprobe and offset:
        raise ValueError("uretprobes do not support offset specification")
    return UprobeTarget(binary, func, offset, retprobe)


def func_offset(binary: str, func: str) -> int:
    """The uprobe offset of `func` in `binary` (a full path)."""
    with NativeElf(binary) as elf:
        check_machine(elf, host().elf_machine)
        return find_func_offset(elf, func)


# --------------------------------------------------------------------------------------
# the uprobe PMU
# --------------------------------------------------------------------------------------


def uprobe_perf_attr(path: str, offset: int, *, retprobe: bool = False, pmu_type: int,
                     retprobe_bit: int = 0, ref_ctr_offset: int = 0) -> perf.PerfEventAttr:
    """The perf_event_attr of a uprobe PMU event (libbpf perf_event_open_probe(true, ...));
    the path buffer is kept alive on the attr (``_path``)."""
    if not 0 <= ref_ctr_offset < 1 << REF_CTR_OFFSET_BITS:
        raise ValueError(f"reference counter offset {ref_ctr_offset:#x} does not fit 32 bits")
    p = ctypes.create_string_buffer(os.fsencode(path))
    config = (1 << retprobe_bit) if retprobe else 0
    config |= ref_ctr_offset << REF_CTR_OFFSET_SHIFT
    a = perf.PerfEventAttr(type=pmu_type, size=ctypes.sizeof(perf.PerfEventAttr), config=config,
                           config1=ctypes.addressof(p), config2=offset)
    a._path = p
    return a


def legacy_uprobe_definition(event: str, path: str, offset: int, retprobe: bool) -> str:
    """The uprobe_events line libbpf add_uprobe_event_legacy() writes."""
    group = "uretprobes" if retprobe else "uprobes"
    return f"{'r' if retprobe else 'p'}:{group}/{event} {path}:0x{offset:x}"


def _open_uprobe(path: str, offset: int, retprobe: bool, pid: int, ref_ctr_offset: int,
                 legacy: bool | None) -> tuple[Fd, list[Any]]:
    pmu = read_int(os.path.join(PMU_DIR, "uprobe", "type"))
    use_legacy = legacy if legacy is not None else pmu is None
    what = f"{'uretprobe' if retprobe else 'uprobe'} {path}:{offset:#x}"
    pid_arg = -1 if pid < 0 else pid
    cpu_arg = 0 if pid == -1 else -1
    if not use_legacy:
        if pmu is None:
            raise NotSupportedError(f"{what}: the kernel has no uprobe PMU", hint=UPROBES_HINT)
        a = uprobe_perf_attr(path, offset, retprobe=retprobe, pmu_type=pmu,
                             retprobe_bit=retprobe_bit("uprobe") if retprobe else 0,
                             ref_ctr_offset=ref_ctr_offset)
        try:
            return perf_event_open(a, pid_arg, cpu_arg, -1, perf.PERF_FLAG_FD_CLOEXEC), []
        except SyscallError as exc:
            exc.message = f"cannot create {what}"
            raise
    if ref_ctr_offset:
        raise NotSupportedError(f"{what}: legacy uprobes take no reference counter offset")
    events = os.path.join(tracefs(), "uprobe_events")
    if not os.path.exists(events):
        raise NotSupportedError(f"{what}: tracefs has no uprobe_events", hint=UPROBES_HINT)
    event = legacy_event_name(os.path.basename(path), offset)
    group = "uretprobes" if retprobe else "uprobes"

    def append(line: str) -> None:
        fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            os.write(fd, line.encode())
        except OSError as exc:
            raise SyscallError(f"cannot write {line!r} to uprobe_events", errno=exc.errno or 0,
                               command="write(uprobe_events)") from None
        finally:
            os.close(fd)

    append(legacy_uprobe_definition(event, path, offset, retprobe))

    def remove() -> None:
        append(f"-:{group}/{event}")

    try:
        tp_id = read_int(os.path.join(tracefs(), "events", group, event, "id"))
        if tp_id is None:
            raise NotSupportedError(f"legacy {what}: no event id in tracefs")
        pfd = perf.open_event(perf.PERF_TYPE_TRACEPOINT, tp_id, pid=pid_arg, cpu=cpu_arg)
    except BaseException:
        remove()
        raise
    return pfd, [remove]


def attach_uprobe(program: Program, binary: str | None = None, func: str | None = None, *,
                  offset: int = 0, retprobe: bool | None = None, pid: int = -1,
                  ref_ctr_offset: int = 0, cookie: int = 0, mode: PerfMode = None,
                  legacy: bool | None = None, **_: Any) -> Link:
    """uprobe / uretprobe on `func` (+ `offset`) in `binary` (default: the section's),
    for process `pid` (-1: every process). Without `func`, `offset` is a file offset."""
    if binary is None:
        target = sec_target(program, parse_uprobe_section,
                            "SEC(\"uprobe\") names no binary and function: pass binary= and func=")
        binary, func, offset = target.binary, target.func, target.offset
        if retprobe is None:
            retprobe = target.retprobe
    retprobe = bool(retprobe)
    path = resolve_binary(binary, pid=pid if pid > 0 else None)
    where = path
    if func:
        offset += func_offset(path, func)
        where = f"{path}:{func}"
    if legacy:
        mode = "ioctl"
    pfd, undo = _open_uprobe(path, offset, retprobe, pid, ref_ctr_offset, legacy)
    return attach_perf_fd(program, pfd, kind="uretprobe" if retprobe else "uprobe",
                          target=where, cookie=cookie, mode=mode, undo=undo)


# --------------------------------------------------------------------------------------
# uprobe.multi
# --------------------------------------------------------------------------------------


def parse_uprobe_multi_section(name: str) -> tuple[str, str, bool] | None:
    """(binary, pattern, retprobe) of ``uprobe.multi/<binary>:<glob>`` (libbpf
    attach_uprobe_multi()); None for the bare prefixes."""
    probe_type, slash, rest = name.partition("/")
    if not slash or not rest or rest.startswith(":"):
        return None
    binary, colon, pattern = rest.partition(":")
    pattern = pattern.split("\n", 1)[0]
    if not colon or not pattern:
        raise ValueError(f"section {name!r} is not uprobe.multi/<binary>:<pattern>")
    return binary, pattern, probe_type.startswith("uretprobe.multi")


def attach_uprobe_multi(program: Program, binary: str | None = None,
                        pattern: str | None = None, *, syms: Sequence[str] | None = None,
                        offsets: Sequence[int] | None = None,
                        ref_ctr_offsets: Sequence[int] | None = None,
                        cookies: Sequence[int] | None = None, pid: int = -1,
                        retprobe: bool | None = None, **_: Any) -> Link:
    """One uprobe_multi link on the functions of `binary` matching `pattern`, or the
    given `syms` / `offsets` (libbpf bpf_program__attach_uprobe_multi())."""
    if binary is None:
        parsed = sec_target(program, parse_uprobe_multi_section,
                            "SEC(\"uprobe.multi\") names no binary: pass binary= and pattern=")
        binary, sec_pattern, sec_ret = parsed
        if pattern is None and syms is None and offsets is None:
            pattern = sec_pattern
        if retprobe is None:
            retprobe = sec_ret
    if sum(x is not None for x in (pattern, syms, offsets)) != 1:
        fail("give exactly one of pattern=, syms= or offsets=", program)
    require_feature(features().uprobe_multi_link, "uprobe_multi links",
                    feature="uprobe_multi links (BPF_TRACE_UPROBE_MULTI)", since="6.6",
                    config="CONFIG_UPROBES", program=program,
                    instead="attach a uprobe per function (attach_uprobe, SEC(\"uprobe\"))")
    path = resolve_binary(binary, pid=pid if pid > 0 else None)
    if offsets is None:
        with NativeElf(path) as elf:
            check_machine(elf, host().elf_machine)
            if pattern is not None:
                offsets = [off for _name, off in resolve_pattern(elf, pattern)]
            else:
                offsets = resolve_names(elf, list(syms or ()))
    if pid == 0:
        pid = os.getpid()
    flags = attach_attr.BPF_F_UPROBE_MULTI_RETURN if retprobe else 0
    return link_create(
        program, 0, AttachType.TRACE_UPROBE_MULTI, kind="uprobe_multi",
        target=f"{path}:{pattern or ','.join(syms or ()) or f'{len(offsets)} offsets'}",
        uprobe_multi=(path, list(offsets), list(ref_ctr_offsets) if ref_ctr_offsets else None,
                      list(cookies) if cookies else None, flags, max(pid, 0)),
        config="CONFIG_UPROBES and CONFIG_BPF_EVENTS", since="6.6")
