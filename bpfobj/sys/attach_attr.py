"""``union bpf_attr`` layouts and builders the attach layer needs beyond `bpfobj.sys.attr`.

Same style as `bpfobj.sys.attr`: one ctypes layout per ``union bpf_attr`` member (Linux
6.12 include/uapi/linux/bpf.h), one builder per use, buffers kept alive on the attr
(``attr.keep``), and every call goes through the one chokepoint `bpfobj.sys.syscall.bpf`.

* ``link_create`` variants whose per-kind union member `bpfobj.sys.attr.link_create` does
  not spell out: ``kprobe_multi`` (syms / addrs / cookies) and ``netfilter``
  (pf, hooknum, priority, flags);
* ``union bpf_iter_link_info`` for iterator links (map, cgroup, task);
* BPF_PROG_QUERY (``query``), to list what is attached to a cgroup, netns or device;
* BPF_TASK_FD_QUERY is not needed: a `Link` remembers what it attached.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Sequence

from bpfobj import enums
from bpfobj.sys.attr import Attr, LinkCreateAttr, cstr

# Flags (linux/bpf.h).
BPF_F_ALLOW_OVERRIDE = 1 << 0  # PROG_ATTACH (cgroup)
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2  # PROG_ATTACH, LINK_UPDATE
BPF_F_BEFORE = 1 << 3  # mprog (tcx, netkit): position relative to relative_fd/id
BPF_F_AFTER = 1 << 4
BPF_F_ID = 1 << 5  # relative_* is an id, not an fd
BPF_F_LINK = 1 << 13  # relative_* names a link
BPF_F_KPROBE_MULTI_RETURN = 1 << 0  # link_create.kprobe_multi.flags
BPF_F_UPROBE_MULTI_RETURN = 1 << 0  # link_create.uprobe_multi.flags
BPF_F_QUERY_EFFECTIVE = 1 << 0  # PROG_QUERY query_flags


class LinkType(enums.IntEnum):
    """enum bpf_link_type (linux/bpf.h): the kernel's kind of a link (bpf_link_info.type)."""

    UNSPEC = 0
    RAW_TRACEPOINT = 1
    TRACING = 2
    CGROUP = 3
    ITER = 4
    NETNS = 5
    XDP = 6
    PERF_EVENT = 7
    KPROBE_MULTI = 8
    STRUCT_OPS = 9
    NETFILTER = 10
    TCX = 11
    UPROBE_MULTI = 12
    NETKIT = 13
    SOCKMAP = 14


class LinkCreateKprobeMultiAttr(Attr):
    """BPF_LINK_CREATE with ``link_create.kprobe_multi`` (and kprobe.session)."""

    _c_prefix_ = "link_create."
    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("kprobe_multi_flags", ctypes.c_uint32),  # kprobe_multi.flags
        ("cnt", ctypes.c_uint32),  # kprobe_multi.cnt
        ("syms", ctypes.c_uint64),
        ("addrs", ctypes.c_uint64),
        ("cookies", ctypes.c_uint64),
        ("_tail", ctypes.c_uint64 * 2),  # up to sizeof(link_create) (uprobe_multi is larger)
    ]
    prog_fd: int
    target_fd: int
    attach_type: int
    flags: int
    kprobe_multi_flags: int
    cnt: int
    syms: int
    addrs: int
    cookies: int


class LinkCreateNetfilterAttr(Attr):
    """BPF_LINK_CREATE with ``link_create.netfilter``."""

    _c_prefix_ = "link_create."
    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("pf", ctypes.c_uint32),  # netfilter.pf
        ("hooknum", ctypes.c_uint32),
        ("priority", ctypes.c_int32),
        ("nf_flags", ctypes.c_uint32),  # netfilter.flags
        ("_tail", ctypes.c_uint64 * 4),
    ]
    prog_fd: int
    target_fd: int
    attach_type: int
    flags: int
    pf: int
    hooknum: int
    priority: int
    nf_flags: int


class ProgQueryAttr(Attr):
    """BPF_PROG_QUERY: the anonymous ``query`` struct."""

    _c_prefix_ = "query."
    _fields_ = [
        ("target_fd", ctypes.c_uint32),  # union with target_ifindex
        ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("prog_ids", ctypes.c_uint64),
        ("prog_cnt", ctypes.c_uint32),  # union with count
        ("_pad0", ctypes.c_uint32),
        ("prog_attach_flags", ctypes.c_uint64),
        ("link_ids", ctypes.c_uint64),
        ("link_attach_flags", ctypes.c_uint64),
        ("revision", ctypes.c_uint64),
    ]
    target_fd: int
    attach_type: int
    query_flags: int
    attach_flags: int
    prog_ids: int
    prog_cnt: int
    prog_attach_flags: int
    link_ids: int
    link_attach_flags: int
    revision: int


# link_create is 64 bytes in 6.12 (its largest member, uprobe_multi, ends at 60 + padding).
assert ctypes.sizeof(LinkCreateKprobeMultiAttr) == ctypes.sizeof(LinkCreateAttr)
assert ctypes.sizeof(LinkCreateNetfilterAttr) == ctypes.sizeof(LinkCreateAttr)


def _u64_array(values: Sequence[int] | None) -> tuple[int, object]:
    if not values:
        return 0, None
    arr = (ctypes.c_uint64 * len(values))(*values)
    return ctypes.addressof(arr), arr


def link_create_kprobe_multi(
    prog_fd: int, attach_type: int, *, syms: Sequence[str] | None = None,
    addrs: Sequence[int] | None = None, cookies: Sequence[int] | None = None,
    kprobe_flags: int = 0,
) -> LinkCreateKprobeMultiAttr:
    """BPF_LINK_CREATE for kprobe.multi / kprobe.session (libbpf
    bpf_program__attach_kprobe_multi_opts()): exactly one of `syms` (kernel function names)
    or `addrs`; `kprobe_flags` BPF_F_KPROBE_MULTI_RETURN for kretprobe.multi."""
    if (syms is None) == (addrs is None):
        raise ValueError("give exactly one of syms= or addrs=")
    cnt = len(syms) if syms is not None else len(addrs or ())
    attr = LinkCreateKprobeMultiAttr(prog_fd=prog_fd, target_fd=0, attach_type=attach_type,
                                     kprobe_multi_flags=kprobe_flags, cnt=cnt)
    keep: list[object] = []
    if syms is not None:
        names = [ctypes.create_string_buffer(cstr(s)) for s in syms]
        ptrs = (ctypes.c_void_p * len(names))(*(ctypes.addressof(n) for n in names))
        attr.syms = ctypes.addressof(ptrs)
        keep += [names, ptrs]
    else:
        attr.addrs, k = _u64_array(addrs)
        keep.append(k)
    attr.cookies, ck = _u64_array(cookies)
    attr.keep(*keep, ck)
    return attr


def link_create_netfilter(prog_fd: int, attach_type: int, *, pf: int, hooknum: int,
                          priority: int, nf_flags: int = 0) -> LinkCreateNetfilterAttr:
    """BPF_LINK_CREATE for a netfilter hook (libbpf bpf_program__attach_netfilter())."""
    return LinkCreateNetfilterAttr(prog_fd=prog_fd, target_fd=0, attach_type=attach_type,
                                   pf=pf, hooknum=hooknum, priority=priority,
                                   nf_flags=nf_flags)


# union bpf_iter_link_info: 16 bytes (the cgroup member: u32 order, u32 cgroup_fd, u64 id).
ITER_LINK_INFO_SIZE = 16


class CgroupIterOrder(enums.IntEnum):
    """enum bpf_cgroup_iter_order (linux/bpf.h)."""

    UNSPEC = 0
    SELF_ONLY = 1
    DESCENDANTS_PRE = 2
    DESCENDANTS_POST = 3
    ANCESTORS_UP = 4


def iter_link_info_map(map_fd: int) -> bytes:
    """``bpf_iter_link_info.map``: iterate over one map's elements."""
    return struct.pack("=I12x", map_fd)


def iter_link_info_cgroup(order: int = CgroupIterOrder.SELF_ONLY, *, cgroup_fd: int = 0,
                          cgroup_id: int = 0) -> bytes:
    """``bpf_iter_link_info.cgroup``: walk from one cgroup (fd or id) in `order`."""
    return struct.pack("=IIQ", order, cgroup_fd, cgroup_id)


def iter_link_info_task(*, tid: int = 0, pid: int = 0, pid_fd: int = 0) -> bytes:
    """``bpf_iter_link_info.task``: one thread, one process, or a pidfd's process."""
    return struct.pack("=III4x", tid, pid, pid_fd)


def prog_query(target_fd: int, attach_type: int, *, prog_ids: ctypes.Array[ctypes.c_uint32]
               | None = None, link_ids: ctypes.Array[ctypes.c_uint32] | None = None,
               query_flags: int = 0) -> ProgQueryAttr:
    """BPF_PROG_QUERY (libbpf bpf_prog_query_opts()): ``prog_cnt`` in and out; the kernel
    fills `prog_ids` / `link_ids` (arrays of u32) up to their length."""
    cnt = len(prog_ids) if prog_ids is not None else 0
    attr = ProgQueryAttr(target_fd=target_fd, attach_type=attach_type, query_flags=query_flags,
                         prog_cnt=cnt)
    if prog_ids is not None:
        attr.prog_ids = ctypes.addressof(prog_ids)
    if link_ids is not None:
        attr.link_ids = ctypes.addressof(link_ids)
    attr.keep(prog_ids, link_ids)
    return attr


__all__ = [
    "BPF_F_AFTER",
    "BPF_F_ALLOW_MULTI",
    "BPF_F_ALLOW_OVERRIDE",
    "BPF_F_BEFORE",
    "BPF_F_ID",
    "BPF_F_KPROBE_MULTI_RETURN",
    "BPF_F_LINK",
    "BPF_F_QUERY_EFFECTIVE",
    "BPF_F_REPLACE",
    "BPF_F_UPROBE_MULTI_RETURN",
    "ITER_LINK_INFO_SIZE",
    "CgroupIterOrder",
    "LinkCreateKprobeMultiAttr",
    "LinkCreateNetfilterAttr",
    "LinkType",
    "ProgQueryAttr",
    "iter_link_info_cgroup",
    "iter_link_info_map",
    "iter_link_info_task",
    "link_create_kprobe_multi",
    "link_create_netfilter",
    "prog_query",
]
