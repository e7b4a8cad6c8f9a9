"""perf_event_open(2) and its ioctls (linux/perf_event.h), for attaching BPF programs.

    fd = perf.open_tracepoint("syscalls", "sys_enter_execve")
    perf.set_bpf(fd, prog_fd); perf.enable(fd)

The perf_event_attr layout is PERF_ATTR_SIZE_VER7 (128 bytes: up to sig_data, Linux 5.13+;
older kernels accept it as long as the fields they do not know are zero).
"""

from __future__ import annotations

import ctypes
import fcntl
import os

from bpfobj.errors import NotSupportedError, SyscallError
from bpfobj.sys.syscall import Fd, perf_event_open

# enum perf_type_id
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
# enum perf_sw_ids
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_COUNT_SW_BPF_OUTPUT = 10
# perf_event_attr sample_type
PERF_SAMPLE_RAW = 1 << 10
# perf_event_attr flag bits (the u64 bitfield after read_format)
FLAG_DISABLED = 1 << 0
FLAG_INHERIT = 1 << 1
FLAG_FREQ = 1 << 10
FLAG_WATERMARK = 1 << 14
# perf_event_open flags
PERF_FLAG_FD_CLOEXEC = 1 << 3
# ioctls: _IO('$', n) / _IOW('$', 8, __u32)
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_RESET = 0x2403
PERF_EVENT_IOC_SET_BPF = 0x40042408

PERF_ATTR_SIZE_VER7 = 128
TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
PMU_DIR = "/sys/bus/event_source/devices"


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr (unions named by their first member)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),  # union with sample_freq
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),  # the disabled:1, inherit:1, ... bitfield word
        ("wakeup_events", ctypes.c_uint32),  # union with wakeup_watermark
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),  # union: bp_addr, kprobe_func, uprobe_path
        ("config2", ctypes.c_uint64),  # union: bp_len, kprobe_addr, probe_offset
        ("branch_sample_type", ctypes.c_uint64),
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64),
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("_reserved_2", ctypes.c_uint16),
        ("aux_sample_size", ctypes.c_uint32),
        ("_reserved_3", ctypes.c_uint32),
        ("sig_data", ctypes.c_uint64),
    ]


assert ctypes.sizeof(PerfEventAttr) == PERF_ATTR_SIZE_VER7


def open_event(
    type: int, config: int, *, pid: int = -1, cpu: int = 0, sample_period: int = 0,
    sample_type: int = 0, flags: int = 0, wakeup_events: int = 0, config1: int = 0,
    config2: int = 0, keep: object = None,
) -> Fd:
    """perf_event_open() with a filled perf_event_attr (close-on-exec, like libbpf)."""
    attr = PerfEventAttr(type=type, size=ctypes.sizeof(PerfEventAttr), config=config,
                         sample_period=sample_period, sample_type=sample_type, flags=flags,
                         wakeup_events=wakeup_events, config1=config1, config2=config2)
    _ = keep  # buffers whose address is in config1 stay alive through the call
    return perf_event_open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)


def tracefs() -> str:
    """The mounted tracefs directory."""
    for d in TRACEFS_DIRS:
        if os.path.isdir(os.path.join(d, "events")):
            return d
    raise NotSupportedError(
        "tracefs is not mounted",
        hint="mount -t tracefs nodev /sys/kernel/tracing",
    )


def tracepoint_id(category: str, name: str, tracefs_dir: str | None = None) -> int:
    """The id of tracepoint category/name: events/<category>/<name>/id under `tracefs_dir`
    (default: the mounted tracefs) (libbpf determine_tracepoint_id())."""
    path = os.path.join(tracefs_dir or tracefs(), "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        hint = "see available_events in tracefs"
        if category == "syscalls":
            hint = "syscall tracepoints need CONFIG_FTRACE_SYSCALLS"
        raise NotSupportedError(f"no tracepoint {category}/{name}", hint=hint) from None
    except (OSError, ValueError) as exc:
        raise NotSupportedError(f"cannot read {path}: {exc}") from None


def pmu_type(pmu: str) -> int:
    """The dynamic PMU type of `pmu` (``uprobe``, ``kprobe``)."""
    try:
        with open(os.path.join(PMU_DIR, pmu, "type")) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        raise NotSupportedError(f"the kernel has no {pmu} PMU",
                                hint=f"the kernel lacks CONFIG_{pmu.upper()}_EVENTS") from None


def pmu_retprobe_bit(pmu: str) -> int:
    """The config bit of ``format/retprobe`` (``config:0`` -> 0)."""
    with open(os.path.join(PMU_DIR, pmu, "format", "retprobe")) as f:
        text = f.read().strip()
    return int(text.split(":", 1)[1])


def open_tracepoint(category: str, name: str, *, pid: int = -1, cpu: int = 0) -> Fd:
    """A tracepoint perf event (libbpf perf_event_open_tracepoint())."""
    return open_event(PERF_TYPE_TRACEPOINT, tracepoint_id(category, name), pid=pid, cpu=cpu,
                      sample_period=1, wakeup_events=1)


def open_uprobe(path: str, offset: int, *, retprobe: bool = False, pid: int = -1,
                cpu: int = -1, ref_ctr_offset: int = 0) -> Fd:
    """A uprobe perf event on `path` + `offset` (libbpf perf_event_open_probe())."""
    ptype = pmu_type("uprobe")
    config = (1 << pmu_retprobe_bit("uprobe")) if retprobe else 0
    config |= ref_ctr_offset << 32
    p = ctypes.create_string_buffer(os.fsencode(path))
    if pid < 0 and cpu < 0:
        cpu = 0
    return open_event(ptype, config, pid=pid, cpu=cpu, sample_period=1,
                      config1=ctypes.addressof(p), config2=offset, keep=p)


def open_software(config: int = PERF_COUNT_SW_CPU_CLOCK, *, cpu: int = 0, pid: int = -1,
                  sample_period: int = 0, freq: int = 0) -> Fd:
    """A software perf event (e.g. the CPU clock, for perf_event programs)."""
    flags = FLAG_FREQ if freq else 0
    return open_event(PERF_TYPE_SOFTWARE, config, pid=pid, cpu=cpu,
                      sample_period=freq or sample_period, flags=flags)


def _ioctl(fd: int, request: int, arg: int, what: str) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise SyscallError(f"ioctl {what} failed", errno=exc.errno or 0,
                           command=f"ioctl({what})") from None


def set_bpf(fd: int, prog_fd: int) -> None:
    """PERF_EVENT_IOC_SET_BPF: run `prog_fd` on each event."""
    _ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd, "PERF_EVENT_IOC_SET_BPF")


def enable(fd: int) -> None:
    _ioctl(fd, PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE")


def disable(fd: int) -> None:
    _ioctl(fd, PERF_EVENT_IOC_DISABLE, 0, "PERF_EVENT_IOC_DISABLE")


def reset(fd: int) -> None:
    _ioctl(fd, PERF_EVENT_IOC_RESET, 0, "PERF_EVENT_IOC_RESET")


def possible_cpus() -> list[int]:
    """CPUs from /sys/devices/system/cpu/possible (libbpf libbpf_num_possible_cpus())."""
    return _cpu_list("/sys/devices/system/cpu/possible")


def online_cpus() -> list[int]:
    return _cpu_list("/sys/devices/system/cpu/online")


def _cpu_list(path: str) -> list[int]:
    with open(path) as f:
        text = f.read().strip()
    cpus: list[int] = []
    for part in text.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus
