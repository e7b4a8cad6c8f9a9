"""The kernel boundary: the only package that makes system calls (and imports ctypes).

* `bpfobj.sys.syscall` -- the one ``bpf(2)`` chokepoint (`bpf`), the command table `Cmd`,
  owned file descriptors (`Fd`), errno -> `bpfobj.errors.SyscallError`;
* `bpfobj.sys.attr` -- one ``union bpf_attr`` builder per command (ctypes layouts citing
  linux/bpf.h) and the ``bpf_*_info`` structs;
* `bpfobj.sys.perf` -- ``perf_event_open(2)`` and its ioctls;
* `bpfobj.sys.bpffs` -- the BPF filesystem: mount, pin, get;
* `bpfobj.sys.guard` -- `offline()`: refuses every call while an offline phase runs.

Importing this package is cheap: the ctypes modules load when first used.
"""

from __future__ import annotations

from bpfobj.sys.guard import check_online, offline, offline_phase

__all__ = ["check_online", "offline", "offline_phase"]
