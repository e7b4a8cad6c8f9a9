"""cgroup attach: cgroup_skb, cgroup/sock*, cgroup/connect*, sockops, cgroup/dev, sysctl,
sockopt ... and lsm_cgroup.

Two ways, as in libbpf:

* a cgroup link (BPF_LINK_CREATE with the cgroup fd; libbpf bpf_program__attach_cgroup()),
  which ends when the link's last fd or pin goes;
* BPF_PROG_ATTACH (libbpf bpf_prog_attach_opts(), ``mode="legacy"``) with
  BPF_F_ALLOW_MULTI by default, which the kernel keeps until BPF_PROG_DETACH (done when
  the `Link` closes, unless it is `disconnect()`-ed).

A cgroup is given as a path (``/sys/fs/cgroup/unified/my.slice``), a path relative to the
cgroup v2 mount (``my.slice``), or an open directory fd.
"""

from __future__ import annotations

import ctypes
import os

from bpfobj.attach.common import TRAMPOLINES, fail, link_create, prog_attach, wrap_fd
from bpfobj.errors import NotSupportedError
from bpfobj.sys import attach_attr
from bpfobj.sys.syscall import Cmd, Fd, bpf
from bpfobj.uapi import AttachType, ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, Literal

    from bpfobj.links import Link
    from bpfobj.programs import Program

CGROUP2_SUPER_MAGIC = 0x63677270  # linux/magic.h


def cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or
    /sys/fs/cgroup/unified on hybrid systems)."""
    try:
        with open(mountinfo) as f:
            for line in f:
                left, sep, right = line.partition(" - ")
                if sep and right.split(" ", 1)[0] == "cgroup2":
                    return left.split()[4]
    except OSError:
        pass
    raise NotSupportedError("cgroup v2 is not mounted",
                            hint="mount -t cgroup2 none /sys/fs/cgroup (needs CONFIG_CGROUPS)")


def cgroup_path(cgroup: str) -> str:
    """An absolute cgroup directory: `cgroup` itself, or relative to the cgroup2 mount."""
    if os.path.isabs(cgroup):
        return cgroup
    return os.path.join(cgroup2_mount(), cgroup)


def open_cgroup(cgroup: str | int) -> tuple[Fd, str]:
    """An owned fd of a cgroup directory (path, relative path, or a caller's fd, duplicated)."""
    if isinstance(cgroup, int):
        return wrap_fd(cgroup), f"cgroup fd {cgroup}"
    path = cgroup_path(cgroup)
    try:
        return Fd(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)), path
    except OSError as exc:
        raise NotSupportedError(f"cannot open cgroup {path}: {exc.strerror}",
                                hint="create it (mkdir) under the cgroup v2 mount") from None


def attach_cgroup(program: Program, cgroup: str | int | None = None, *,
                  attach_type: int | None = None,
                  mode: Literal["link", "legacy"] | None = None,
                  flags: int | None = None, replace: Program | None = None,
                  **_: Any) -> Link:
    """Attach a cgroup program (or lsm_cgroup) to `cgroup`.

    `attach_type` defaults to the program's expected attach type (``cgroup/skb`` has
    none: pass it). `mode` "legacy" uses BPF_PROG_ATTACH with `flags` (default
    BPF_F_ALLOW_MULTI; BPF_F_ALLOW_OVERRIDE, or 0 for exclusive) and `replace`.
    """
    if cgroup is None:
        fail("cgroup attach needs a cgroup: pass cgroup= (path or fd)", program)
    atype = attach_type if attach_type is not None else program.expected_attach_type
    if atype is None:
        fail(f"section {program.spec.section!r} has no attach type: pass attach_type= "
             "(e.g. AttachType.CGROUP_INET_INGRESS)", program)
    kind = "lsm_cgroup" if program.type == ProgType.LSM else "cgroup"
    fd, where = open_cgroup(cgroup)
    if mode == "legacy":
        if flags is None:
            flags = attach_attr.BPF_F_ALLOW_MULTI
        if replace is not None:
            flags |= attach_attr.BPF_F_REPLACE
        return prog_attach(program, fd, int(atype), kind=kind, target_name=where, flags=flags,
                           replace=replace, config="CONFIG_CGROUP_BPF")
    with fd:
        link = link_create(program, fd.fileno(), int(atype), kind=kind, target=where,
                           config="CONFIG_CGROUP_BPF" + (f", CONFIG_BPF_LSM and {TRAMPOLINES}"
                                                         if kind == "lsm_cgroup" else ""),
                           since="5.7" if kind == "cgroup" else "6.0")
    link.target = f"{where} {AttachType(int(atype)).name.lower()}"
    return link


def query(cgroup: str | int, attach_type: int, *, effective: bool = False,
          max_progs: int = 64) -> list[int]:
    """The ids of the programs attached to `cgroup` at `attach_type` (BPF_PROG_QUERY;
    `effective`: including those inherited from ancestors)."""
    fd, _where = open_cgroup(cgroup)
    with fd:
        ids = (ctypes.c_uint32 * max_progs)()
        a = attach_attr.prog_query(fd.fileno(), attach_type, prog_ids=ids,
                                   query_flags=attach_attr.BPF_F_QUERY_EFFECTIVE if effective
                                   else 0)
        bpf(Cmd.PROG_QUERY, a, what="cannot query the cgroup's programs")
        return [int(ids[i]) for i in range(min(int(a.prog_cnt), max_progs))]
