"""Attaching loaded programs: one `attach()` dispatching on the program's SEC() kind.

    from bpfobj.attach import attach, attach_all
    links = attach_all(obj)                                  # like a libbpf skeleton's attach
    link = attach(obj.programs["on_xdp"], dev="eth0", xdp_mode="skb")
    link = attach(obj.programs["count_egress"], cgroup="/sys/fs/cgroup/unified/test")

`ATTACHERS` is the one table from `bpfobj.elf.secdefs.AttachKind` to the function that
attaches that kind (libbpf's ``prog_attach_fn`` of each ``SEC_DEF``, plus the
``bpf_program__attach_*`` functions of the kinds libbpf does not auto-attach). Each
function takes the `Program` and keyword options, defaults its target from the section
name where the section names one, and returns a `bpfobj.links.Link`:

=================  ==========================================  ============================
kind               module / function                           options (besides the section)
=================  ==========================================  ============================
kprobe             kprobe.attach_kprobe                        func, offset, retprobe, legacy
ksyscall           kprobe.attach_ksyscall                      syscall, retprobe
kprobe_multi       kprobe.attach_kprobe_multi                  pattern, syms, addrs, cookies
kprobe_session     kprobe.attach_kprobe_multi                  pattern, syms, addrs
uprobe             uprobe.attach_uprobe                        binary, func, offset, pid
uprobe_multi       uprobe.attach_uprobe_multi                  binary, pattern, syms, offsets
usdt               usdt.attach_usdt                            binary, provider, name, pid
tracepoint         tracing.attach_tracepoint                   category, name
raw_tp             tracing.attach_raw_tp                       name
tracing            tracing.attach_trace                        cookie, target_prog_fd (freplace)
lsm                tracing.attach_lsm                          cookie
iter               tracing.attach_iter                         map, task_pid, cgroup_fd ...
perf_event         perf_event.attach_perf_event                perf_fd, cpus, sample_freq
xdp                net.attach_xdp                              dev, xdp_mode, mode=netlink
tc                 net.attach_tc                               dev, direction, handle
tcx                net.attach_tcx                              dev, direction, relative_*
netkit             net.attach_netkit                           dev
socket             net.attach_socket                           sock
sk_reuseport       net.attach_sk_reuseport                     sock
sk_lookup          net.attach_netns                            netns
flow_dissector     net.attach_netns                            netns, mode=legacy
netfilter          net.attach_netfilter                        pf, hook, priority
sockmap            net.attach_sockmap                          map, attach_type
lwt                net.attach_lwt                              dst, dev, gateway
cgroup             cgroup.attach_cgroup                        cgroup, attach_type, mode
lsm_cgroup         cgroup.attach_cgroup                        cgroup
lirc               misc.attach_lirc                            device
struct_ops         misc.attach_struct_ops                      (refused: register its map)
struct_ops map     misc.attach_struct_ops_map                  (a StructOpsMap, not a program)
syscall            misc.attach_syscall                         (never attached: test_run)
=================  ==========================================  ============================

struct_ops programs run when the map holding them is registered:
``obj.maps["my_ops"].attach_struct_ops()`` (libbpf bpf_map__attach_struct_ops()); `attach_all`
registers every struct_ops map after the programs, like libbpf's skeleton attach.
An freplace program attaches to the target given before load
(``obj.set_attach_target(name, target_program)``), or to ``target_prog_fd`` +
``target_btf_id``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from bpfobj.attach.common import attach_kind, sec_def, sec_name
from bpfobj.elf.secdefs import AttachKind
from bpfobj.errors import BpfObjError, SpecError
from bpfobj.links import Link

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.object import BpfObject
    from bpfobj.programs import Program

__all__ = ["ATTACHERS", "AUTO_TARGET", "Link", "attach", "attach_all", "auto_attachable"]

Attacher = Callable[..., Link]
_K = AttachKind


class _Lazy:
    """A function of one attach module, imported on first call: a tool attaching one
    tracepoint need not import the netlink, USDT and uprobe machinery."""

    __slots__ = ("_fn", "module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name
        self._fn: Callable[..., Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._fn is None:
            self._fn = getattr(importlib.import_module(f"bpfobj.attach.{self.module}"), self.name)
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<attach {self.module}.{self.name}>"

#: AttachKind -> the function attaching programs of that kind.
ATTACHERS: Mapping[AttachKind, Attacher] = MappingProxyType({
    _K.KPROBE: _Lazy("kprobe", "attach_kprobe"),
    _K.UPROBE: _Lazy("uprobe", "attach_uprobe"),
    _K.KPROBE_MULTI: _Lazy("kprobe", "attach_kprobe_multi"),
    _K.KPROBE_SESSION: _Lazy("kprobe", "attach_kprobe_multi"),
    _K.UPROBE_MULTI: _Lazy("uprobe", "attach_uprobe_multi"),
    _K.KSYSCALL: _Lazy("kprobe", "attach_ksyscall"),
    _K.USDT: _Lazy("usdt", "attach_usdt"),
    _K.TRACEPOINT: _Lazy("tracing", "attach_tracepoint"),
    _K.RAW_TP: _Lazy("tracing", "attach_raw_tp"),
    _K.TRACING: _Lazy("tracing", "attach_trace"),
    _K.LSM: _Lazy("tracing", "attach_lsm"),
    _K.ITER: _Lazy("tracing", "attach_iter"),
    _K.SOCKET: _Lazy("net", "attach_socket"),
    _K.SK_REUSEPORT: _Lazy("net", "attach_sk_reuseport"),
    _K.TC: _Lazy("net", "attach_tc"),
    _K.TCX: _Lazy("net", "attach_tcx"),
    _K.NETKIT: _Lazy("net", "attach_netkit"),
    _K.XDP: _Lazy("net", "attach_xdp"),
    _K.PERF_EVENT: _Lazy("perf_event", "attach_perf_event"),
    _K.LWT: _Lazy("net", "attach_lwt"),
    _K.SOCKMAP: _Lazy("net", "attach_sockmap"),
    _K.LIRC: _Lazy("misc", "attach_lirc"),
    _K.FLOW_DISSECTOR: _Lazy("net", "attach_netns"),
    _K.CGROUP: _Lazy("cgroup", "attach_cgroup"),
    _K.LSM_CGROUP: _Lazy("cgroup", "attach_cgroup"),
    _K.STRUCT_OPS: _Lazy("misc", "attach_struct_ops"),
    _K.SK_LOOKUP: _Lazy("net", "attach_netns"),
    _K.SYSCALL: _Lazy("misc", "attach_syscall"),
    _K.NETFILTER: _Lazy("net", "attach_netfilter"),
})


def _always(_: str) -> bool:
    return True


def _has_target(parse: Callable[[str], object]) -> Callable[[str], bool]:
    return lambda name: parse(name) is not None


#: For the kinds libbpf auto-attaches (SecDef.auto_attach): whether a section name says
#: where to attach (``kprobe/do_sys_open`` does, a bare ``kprobe`` does not: libbpf's
#: attach_*() return 0 without a link then). A malformed name raises ValueError.
AUTO_TARGET: Mapping[AttachKind, Callable[[str], bool]] = MappingProxyType({
    _K.KPROBE: _has_target(_Lazy("kprobe", "parse_kprobe_section")),
    _K.KSYSCALL: _has_target(_Lazy("kprobe", "parse_ksyscall_section")),
    _K.KPROBE_MULTI: _has_target(_Lazy("kprobe", "parse_kprobe_multi_section")),
    _K.KPROBE_SESSION: _has_target(_Lazy("kprobe", "parse_kprobe_multi_section")),
    _K.UPROBE: _has_target(_Lazy("uprobe", "parse_uprobe_section")),
    _K.UPROBE_MULTI: _has_target(_Lazy("uprobe", "parse_uprobe_multi_section")),
    _K.USDT: _has_target(_Lazy("usdt", "parse_usdt_section")),
    _K.TRACEPOINT: _has_target(_Lazy("tracing", "parse_tracepoint_section")),
    _K.RAW_TP: _has_target(_Lazy("tracing", "parse_raw_tp_section")),
    _K.TRACING: _always,
    _K.LSM: _always,
    _K.ITER: _always,
})


def attach(program: Program, **opts: Any) -> Link:
    """Attach `program` the way its section says (libbpf bpf_program__attach() for the
    auto-attach kinds, the matching bpf_program__attach_* for the others); `opts` go to
    the kind's function (see the module table)."""
    kind = attach_kind(program)
    try:
        return ATTACHERS[kind](program, **opts)
    except BpfObjError as exc:
        raise exc.with_context(program=program.name, section=program.spec.section) from None


def auto_attachable(program: Program) -> bool:
    """Whether `attach_all` attaches `program`: its section kind is one libbpf
    auto-attaches and the section names the target (libbpf
    bpf_object__attach_skeleton(): no link for SEC("kprobe") is not an error)."""
    sd = sec_def(program)
    check = AUTO_TARGET.get(sd.attach_kind)
    if check is None or not sd.auto_attach:
        return False
    try:
        return check(sec_name(program))
    except ValueError as exc:
        raise SpecError(str(exc), program=program.name, section=program.spec.section) from None


def attach_all(obj: BpfObject, *, skip: Iterable[str] = ()) -> list[Link]:
    """Attach every loaded program whose section says how and where (libbpf's skeleton
    auto-attach), in the object's program order, then register every struct_ops map
    whose programs are loaded; programs and maps named in `skip` are left alone. On a
    failure the links made so far are closed and the error raised."""
    from bpfobj.uapi import MapType

    skipped = set(skip)
    links: list[Link] = []
    try:
        for name, program in obj.programs.items():
            if name in skipped or not program.spec.autoload or program.spec.sec_def is None:
                continue
            if auto_attachable(program):
                links.append(attach(program))
        for name, mp in obj.maps.items():
            if name in skipped or mp.type != MapType.STRUCT_OPS:
                continue
            if getattr(mp, "value", None) is not None:
                from bpfobj.attach.misc import attach_struct_ops_map

                links.append(attach_struct_ops_map(mp))
    except BaseException:
        for link in reversed(links):
            try:
                link.close()
            except BpfObjError:
                pass
        raise
    return links
