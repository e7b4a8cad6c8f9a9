"""Program section names -> program type, expected attach type and attach target.

A mirror of libbpf's ``section_defs[]`` table (tools/lib/bpf/libbpf.c of Linux 6.12, the same
table as libbpf v1.5) and of the functions that read it: ``sec_def_matches()``,
``find_sec_def()``, ``libbpf_prog_type_by_name()``, ``libbpf_attach_type_by_name()``, and the
part of ``bpf_object__init_prog()`` / ``bpf_object_init_progs()`` that turns an ELF section
name into a program's type, expected attach type and autoload flag.

    >>> s = parse_section("?tp/syscalls/sys_enter_execve")
    >>> s.prog_type.label, s.expected_attach_type, s.attach_target, s.autoload
    ('tracepoint', None, 'syscalls/sys_enter_execve', False)

Pure table and functions: no ELF parsing, no kernel access.
"""

from __future__ import annotations

import functools

from bpfobj import enums, records
from bpfobj.errors import SpecError
from bpfobj.uapi import AttachType, ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "SECTION_DEFS",
    "AttachKind",
    "ProgramSection",
    "SecDef",
    "SecFlag",
    "attach_type_by_name",
    "find_sec_def",
    "load_expected_attach_type",
    "parse_section",
    "prog_type_by_name",
    "sec_def_matches",
]


class SecFlag(enums.IntFlag):
    """libbpf's ``enum sec_def_flags`` (libbpf.c), stored in a sec_def's ``cookie``."""

    NONE = 0
    #: expected_attach_type is dropped at load when the kernel does not support it
    #: (libbpf_prepare_prog_load(): FEAT_EXP_ATTACH_TYPE, kernels before 4.17)
    EXP_ATTACH_OPT = 1
    #: legacy: only read by libbpf_attach_type_by_name() / libbpf_get_type_names()
    ATTACHABLE = 2
    ATTACHABLE_OPT = ATTACHABLE | EXP_ATTACH_OPT
    #: the attach target is a BTF ID (kernel or another BPF program), taken from "<pfx>/<name>"
    ATTACH_BTF = 4
    #: loaded with BPF_F_SLEEPABLE
    SLEEPABLE = 8
    #: XDP program loaded with BPF_F_XDP_HAS_FRAGS
    XDP_FRAGS = 16
    #: usdt: expected_attach_type becomes BPF_TRACE_UPROBE_MULTI at load when the kernel has
    #: uprobe_multi links (FEAT_UPROBE_MULTI_LINK)
    USDT = 32


class AttachKind(enums.StrEnum):
    """How a program of a section is attached: what a later attach layer dispatches on.

    The first group are libbpf's auto-attach handlers (``prog_attach_fn`` in ``SEC_DEF``:
    attach_kprobe, attach_uprobe, ...); see `SecDef.auto_attach`. The rest have no
    auto-attach in libbpf and name the API the user attaches them with.
    """

    # libbpf auto-attach handlers (libbpf.c: attach_*())
    KPROBE = "kprobe"  # attach_kprobe: "kprobe/<func>[+<offset>]", "kretprobe/<func>"
    UPROBE = "uprobe"  # attach_uprobe: "uprobe/<binary>:<func>[+<offset>]"
    KPROBE_MULTI = "kprobe_multi"  # attach_kprobe_multi: "kprobe.multi/<glob>"
    KPROBE_SESSION = "kprobe_session"  # attach_kprobe_session: "kprobe.session/<glob>"
    UPROBE_MULTI = "uprobe_multi"  # attach_uprobe_multi: "uprobe.multi/<binary>:<glob>"
    KSYSCALL = "ksyscall"  # attach_ksyscall: "ksyscall/<syscall>"
    USDT = "usdt"  # attach_usdt: "usdt/<path>:<provider>:<name>"
    TRACEPOINT = "tracepoint"  # attach_tp: "tp/<category>/<name>"
    RAW_TP = "raw_tp"  # attach_raw_tp: "raw_tp/<name>"
    TRACING = "tracing"  # attach_trace: fentry/fexit/fmod_ret/tp_btf/freplace (BTF target)
    LSM = "lsm"  # attach_lsm: "lsm/<hook>"
    ITER = "iter"  # attach_iter: "iter/<target>"
    # no auto-attach in libbpf
    SOCKET = "socket"  # setsockopt(SO_ATTACH_BPF)
    SK_REUSEPORT = "sk_reuseport"  # setsockopt(SO_ATTACH_REUSEPORT_EBPF) / reuseport sockarray
    TC = "tc"  # legacy cls_bpf / act_bpf via netlink (tc, classifier, action)
    TCX = "tcx"  # bpf_program__attach_tcx (tcx/*, tc/ingress, tc/egress)
    NETKIT = "netkit"  # bpf_program__attach_netkit
    XDP = "xdp"  # bpf_program__attach_xdp; devmap/cpumap programs go into a map
    PERF_EVENT = "perf_event"  # bpf_program__attach_perf_event
    LWT = "lwt"  # route with "encap bpf" (ip route)
    SOCKMAP = "sockmap"  # sockops/sk_skb/sk_msg: bpf_prog_attach to a sockmap/cgroup
    LIRC = "lirc"  # bpf_prog_attach to a lirc device
    FLOW_DISSECTOR = "flow_dissector"  # bpf_prog_attach to a netns
    CGROUP = "cgroup"  # bpf_program__attach_cgroup
    LSM_CGROUP = "lsm_cgroup"  # bpf_program__attach_cgroup with a BTF hook
    STRUCT_OPS = "struct_ops"  # attached through its struct_ops map
    SK_LOOKUP = "sk_lookup"  # bpf_program__attach_netns
    SYSCALL = "syscall"  # never attached: run with BPF_PROG_TEST_RUN
    NETFILTER = "netfilter"  # bpf_program__attach_netfilter


#: the kinds libbpf attaches by itself (bpf_object__attach_skeleton / bpf_program__attach)
_AUTO_ATTACH_KINDS = frozenset(
    {
        AttachKind.KPROBE,
        AttachKind.UPROBE,
        AttachKind.KPROBE_MULTI,
        AttachKind.KPROBE_SESSION,
        AttachKind.UPROBE_MULTI,
        AttachKind.KSYSCALL,
        AttachKind.USDT,
        AttachKind.TRACEPOINT,
        AttachKind.RAW_TP,
        AttachKind.TRACING,
        AttachKind.LSM,
        AttachKind.ITER,
    }
)


@records.frozen
class SecDef:
    """One entry of libbpf's ``section_defs[]`` (``struct bpf_sec_def``).

    ``prefix`` is the ``sec`` pattern with libbpf's suffix conventions: ending in ``+``
    ("exactly this, or this + '/' + anything"), ending in ``/`` ("this + anything"), or
    neither (exact name). ``expected_attach_type`` is None where the C table has ``0``
    (which would read as BPF_CGROUP_INET_INGRESS numerically; that value is used explicitly
    only by ``cgroup_skb/ingress``).
    """

    prefix: str
    prog_type: ProgType
    expected_attach_type: AttachType | None
    flags: SecFlag
    attach_kind: AttachKind

    @property
    def auto_attach(self) -> bool:
        """libbpf has a ``prog_attach_fn`` for this def (auto-attach by skeleton/attach())."""
        return self.attach_kind in _AUTO_ATTACH_KINDS

    @property
    def base(self) -> str:
        """The prefix without its trailing ``+`` (for ``/``-ending prefixes: unchanged)."""
        return self.prefix[:-1] if self.prefix.endswith("+") else self.prefix

    @property
    def attachable(self) -> bool:
        return bool(self.flags & SecFlag.ATTACHABLE)

    @property
    def exp_attach_opt(self) -> bool:
        return bool(self.flags & SecFlag.EXP_ATTACH_OPT)

    @property
    def attach_btf(self) -> bool:
        return bool(self.flags & SecFlag.ATTACH_BTF)

    @property
    def sleepable(self) -> bool:
        return bool(self.flags & SecFlag.SLEEPABLE)

    @property
    def xdp_frags(self) -> bool:
        return bool(self.flags & SecFlag.XDP_FRAGS)

    @property
    def usdt(self) -> bool:
        return bool(self.flags & SecFlag.USDT)

    def matches(self, sec_name: str) -> bool:
        """libbpf's sec_def_matches() for this def."""
        return sec_def_matches(self, sec_name)


_Row = tuple[str, ProgType, AttachType | None, SecFlag, AttachKind]


def _d(
    prefix: str,
    prog_type: ProgType,
    attach: AttachType | None,
    flags: SecFlag,
    kind: AttachKind,
) -> _Row:
    return (prefix, prog_type, attach, flags, kind)


_P = ProgType
_A = AttachType
_F = SecFlag
_K = AttachKind

# fmt: off
#: libbpf.c ``section_defs[]`` of Linux 6.12 / libbpf v1.5, in the same order: the first
#: matching entry wins (find_sec_def()), so e.g. "sk_reuseport/migrate" precedes
#: "sk_reuseport", "xdp.frags/devmap" precedes "xdp.frags", and "cgroup/sock_create"
#: precedes "cgroup/sock". The rows become `SecDef` records when first needed (see
#: `SECTION_DEFS`): a tool opening one object matches a few names, and building all 107
#: records at import cost ~1 ms of its start-up.
_ROWS: tuple[_Row, ...] = (
    _d("socket", _P.SOCKET_FILTER, None, _F.NONE, _K.SOCKET),
    _d("sk_reuseport/migrate", _P.SK_REUSEPORT, _A.SK_REUSEPORT_SELECT_OR_MIGRATE, _F.ATTACHABLE, _K.SK_REUSEPORT),
    _d("sk_reuseport", _P.SK_REUSEPORT, _A.SK_REUSEPORT_SELECT, _F.ATTACHABLE, _K.SK_REUSEPORT),
    _d("kprobe+", _P.KPROBE, None, _F.NONE, _K.KPROBE),
    _d("uprobe+", _P.KPROBE, None, _F.NONE, _K.UPROBE),
    _d("uprobe.s+", _P.KPROBE, None, _F.SLEEPABLE, _K.UPROBE),
    _d("kretprobe+", _P.KPROBE, None, _F.NONE, _K.KPROBE),
    _d("uretprobe+", _P.KPROBE, None, _F.NONE, _K.UPROBE),
    _d("uretprobe.s+", _P.KPROBE, None, _F.SLEEPABLE, _K.UPROBE),
    _d("kprobe.multi+", _P.KPROBE, _A.TRACE_KPROBE_MULTI, _F.NONE, _K.KPROBE_MULTI),
    _d("kretprobe.multi+", _P.KPROBE, _A.TRACE_KPROBE_MULTI, _F.NONE, _K.KPROBE_MULTI),
    _d("kprobe.session+", _P.KPROBE, _A.TRACE_KPROBE_SESSION, _F.NONE, _K.KPROBE_SESSION),
    _d("uprobe.multi+", _P.KPROBE, _A.TRACE_UPROBE_MULTI, _F.NONE, _K.UPROBE_MULTI),
    _d("uretprobe.multi+", _P.KPROBE, _A.TRACE_UPROBE_MULTI, _F.NONE, _K.UPROBE_MULTI),
    _d("uprobe.multi.s+", _P.KPROBE, _A.TRACE_UPROBE_MULTI, _F.SLEEPABLE, _K.UPROBE_MULTI),
    _d("uretprobe.multi.s+", _P.KPROBE, _A.TRACE_UPROBE_MULTI, _F.SLEEPABLE, _K.UPROBE_MULTI),
    _d("ksyscall+", _P.KPROBE, None, _F.NONE, _K.KSYSCALL),
    _d("kretsyscall+", _P.KPROBE, None, _F.NONE, _K.KSYSCALL),
    _d("usdt+", _P.KPROBE, None, _F.USDT, _K.USDT),
    _d("usdt.s+", _P.KPROBE, None, _F.USDT | _F.SLEEPABLE, _K.USDT),
    _d("tc/ingress", _P.SCHED_CLS, _A.TCX_INGRESS, _F.NONE, _K.TCX),  # alias for tcx
    _d("tc/egress", _P.SCHED_CLS, _A.TCX_EGRESS, _F.NONE, _K.TCX),  # alias for tcx
    _d("tcx/ingress", _P.SCHED_CLS, _A.TCX_INGRESS, _F.NONE, _K.TCX),
    _d("tcx/egress", _P.SCHED_CLS, _A.TCX_EGRESS, _F.NONE, _K.TCX),
    _d("tc", _P.SCHED_CLS, None, _F.NONE, _K.TC),  # deprecated / legacy, use tcx
    _d("classifier", _P.SCHED_CLS, None, _F.NONE, _K.TC),  # deprecated / legacy, use tcx
    _d("action", _P.SCHED_ACT, None, _F.NONE, _K.TC),  # deprecated / legacy, use tcx
    _d("netkit/primary", _P.SCHED_CLS, _A.NETKIT_PRIMARY, _F.NONE, _K.NETKIT),
    _d("netkit/peer", _P.SCHED_CLS, _A.NETKIT_PEER, _F.NONE, _K.NETKIT),
    _d("tracepoint+", _P.TRACEPOINT, None, _F.NONE, _K.TRACEPOINT),
    _d("tp+", _P.TRACEPOINT, None, _F.NONE, _K.TRACEPOINT),
    _d("raw_tracepoint+", _P.RAW_TRACEPOINT, None, _F.NONE, _K.RAW_TP),
    _d("raw_tp+", _P.RAW_TRACEPOINT, None, _F.NONE, _K.RAW_TP),
    _d("raw_tracepoint.w+", _P.RAW_TRACEPOINT_WRITABLE, None, _F.NONE, _K.RAW_TP),
    _d("raw_tp.w+", _P.RAW_TRACEPOINT_WRITABLE, None, _F.NONE, _K.RAW_TP),
    _d("tp_btf+", _P.TRACING, _A.TRACE_RAW_TP, _F.ATTACH_BTF, _K.TRACING),
    _d("fentry+", _P.TRACING, _A.TRACE_FENTRY, _F.ATTACH_BTF, _K.TRACING),
    _d("fmod_ret+", _P.TRACING, _A.MODIFY_RETURN, _F.ATTACH_BTF, _K.TRACING),
    _d("fexit+", _P.TRACING, _A.TRACE_FEXIT, _F.ATTACH_BTF, _K.TRACING),
    _d("fentry.s+", _P.TRACING, _A.TRACE_FENTRY, _F.ATTACH_BTF | _F.SLEEPABLE, _K.TRACING),
    _d("fmod_ret.s+", _P.TRACING, _A.MODIFY_RETURN, _F.ATTACH_BTF | _F.SLEEPABLE, _K.TRACING),
    _d("fexit.s+", _P.TRACING, _A.TRACE_FEXIT, _F.ATTACH_BTF | _F.SLEEPABLE, _K.TRACING),
    _d("freplace+", _P.EXT, None, _F.ATTACH_BTF, _K.TRACING),
    _d("lsm+", _P.LSM, _A.LSM_MAC, _F.ATTACH_BTF, _K.LSM),
    _d("lsm.s+", _P.LSM, _A.LSM_MAC, _F.ATTACH_BTF | _F.SLEEPABLE, _K.LSM),
    _d("lsm_cgroup+", _P.LSM, _A.LSM_CGROUP, _F.ATTACH_BTF, _K.LSM_CGROUP),
    _d("iter+", _P.TRACING, _A.TRACE_ITER, _F.ATTACH_BTF, _K.ITER),
    _d("iter.s+", _P.TRACING, _A.TRACE_ITER, _F.ATTACH_BTF | _F.SLEEPABLE, _K.ITER),
    _d("syscall", _P.SYSCALL, None, _F.SLEEPABLE, _K.SYSCALL),
    _d("xdp.frags/devmap", _P.XDP, _A.XDP_DEVMAP, _F.XDP_FRAGS, _K.XDP),
    _d("xdp/devmap", _P.XDP, _A.XDP_DEVMAP, _F.ATTACHABLE, _K.XDP),
    _d("xdp.frags/cpumap", _P.XDP, _A.XDP_CPUMAP, _F.XDP_FRAGS, _K.XDP),
    _d("xdp/cpumap", _P.XDP, _A.XDP_CPUMAP, _F.ATTACHABLE, _K.XDP),
    _d("xdp.frags", _P.XDP, _A.XDP, _F.XDP_FRAGS, _K.XDP),
    _d("xdp", _P.XDP, _A.XDP, _F.ATTACHABLE_OPT, _K.XDP),
    _d("perf_event", _P.PERF_EVENT, None, _F.NONE, _K.PERF_EVENT),
    _d("lwt_in", _P.LWT_IN, None, _F.NONE, _K.LWT),
    _d("lwt_out", _P.LWT_OUT, None, _F.NONE, _K.LWT),
    _d("lwt_xmit", _P.LWT_XMIT, None, _F.NONE, _K.LWT),
    _d("lwt_seg6local", _P.LWT_SEG6LOCAL, None, _F.NONE, _K.LWT),
    _d("sockops", _P.SOCK_OPS, _A.CGROUP_SOCK_OPS, _F.ATTACHABLE_OPT, _K.CGROUP),
    _d("sk_skb/stream_parser", _P.SK_SKB, _A.SK_SKB_STREAM_PARSER, _F.ATTACHABLE_OPT, _K.SOCKMAP),
    _d("sk_skb/stream_verdict", _P.SK_SKB, _A.SK_SKB_STREAM_VERDICT, _F.ATTACHABLE_OPT, _K.SOCKMAP),
    _d("sk_skb/verdict", _P.SK_SKB, _A.SK_SKB_VERDICT, _F.ATTACHABLE_OPT, _K.SOCKMAP),
    _d("sk_skb", _P.SK_SKB, None, _F.NONE, _K.SOCKMAP),
    _d("sk_msg", _P.SK_MSG, _A.SK_MSG_VERDICT, _F.ATTACHABLE_OPT, _K.SOCKMAP),
    _d("lirc_mode2", _P.LIRC_MODE2, _A.LIRC_MODE2, _F.ATTACHABLE_OPT, _K.LIRC),
    _d("flow_dissector", _P.FLOW_DISSECTOR, _A.FLOW_DISSECTOR, _F.ATTACHABLE_OPT, _K.FLOW_DISSECTOR),
    _d("cgroup_skb/ingress", _P.CGROUP_SKB, _A.CGROUP_INET_INGRESS, _F.ATTACHABLE_OPT, _K.CGROUP),
    _d("cgroup_skb/egress", _P.CGROUP_SKB, _A.CGROUP_INET_EGRESS, _F.ATTACHABLE_OPT, _K.CGROUP),
    _d("cgroup/skb", _P.CGROUP_SKB, None, _F.NONE, _K.CGROUP),
    _d("cgroup/sock_create", _P.CGROUP_SOCK, _A.CGROUP_INET_SOCK_CREATE, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/sock_release", _P.CGROUP_SOCK, _A.CGROUP_INET_SOCK_RELEASE, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/sock", _P.CGROUP_SOCK, _A.CGROUP_INET_SOCK_CREATE, _F.ATTACHABLE_OPT, _K.CGROUP),
    _d("cgroup/post_bind4", _P.CGROUP_SOCK, _A.CGROUP_INET4_POST_BIND, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/post_bind6", _P.CGROUP_SOCK, _A.CGROUP_INET6_POST_BIND, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/bind4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_BIND, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/bind6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_BIND, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/connect4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_CONNECT, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/connect6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_CONNECT, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/connect_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_CONNECT, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/sendmsg4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP4_SENDMSG, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/sendmsg6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP6_SENDMSG, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/sendmsg_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_SENDMSG, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/recvmsg4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP4_RECVMSG, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/recvmsg6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP6_RECVMSG, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/recvmsg_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_RECVMSG, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/getpeername4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_GETPEERNAME, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/getpeername6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_GETPEERNAME, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/getpeername_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_GETPEERNAME, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/getsockname4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_GETSOCKNAME, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/getsockname6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_GETSOCKNAME, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/getsockname_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_GETSOCKNAME, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/sysctl", _P.CGROUP_SYSCTL, _A.CGROUP_SYSCTL, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/getsockopt", _P.CGROUP_SOCKOPT, _A.CGROUP_GETSOCKOPT, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/setsockopt", _P.CGROUP_SOCKOPT, _A.CGROUP_SETSOCKOPT, _F.ATTACHABLE, _K.CGROUP),
    _d("cgroup/dev", _P.CGROUP_DEVICE, _A.CGROUP_DEVICE, _F.ATTACHABLE_OPT, _K.CGROUP),
    _d("struct_ops+", _P.STRUCT_OPS, None, _F.NONE, _K.STRUCT_OPS),
    _d("struct_ops.s+", _P.STRUCT_OPS, None, _F.SLEEPABLE, _K.STRUCT_OPS),
    _d("sk_lookup", _P.SK_LOOKUP, _A.SK_LOOKUP, _F.ATTACHABLE, _K.SK_LOOKUP),
    _d("netfilter", _P.NETFILTER, _A.NETFILTER, _F.NONE, _K.NETFILTER),
)
# fmt: on

del _P, _A, _F, _K

_DEFS: list[SecDef | None] = [None] * len(_ROWS)


def _sec_def(index: int) -> SecDef:
    """The `SecDef` of row `index` (one object per row, as in `SECTION_DEFS`)."""
    sec_def = _DEFS[index]
    if sec_def is None:
        sec_def = _DEFS[index] = SecDef(*_ROWS[index])
    return sec_def


if TYPE_CHECKING:
    #: The table as `SecDef` records, in libbpf's order.
    SECTION_DEFS: tuple[SecDef, ...]


@functools.cache
def _all_defs() -> tuple[SecDef, ...]:
    return tuple(_sec_def(i) for i in range(len(_ROWS)))


def __getattr__(name: str) -> Any:
    if name == "SECTION_DEFS":
        return _all_defs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sec_def_matches(sec_def: SecDef, sec_name: str) -> bool:
    """libbpf.c sec_def_matches(): does `sec_name` (no ``?``) select `sec_def`?"""
    return _prefix_matches(sec_def.prefix, sec_name)


def _prefix_matches(pfx: str, sec_name: str) -> bool:
    # "type/" always has to have proper SEC("type/extras") form
    if pfx.endswith("/"):
        return sec_name.startswith(pfx)
    # "type+" means it can be either exact SEC("type") or well-formed SEC("type/extras")
    # with proper '/' separator
    if pfx.endswith("+"):
        base = pfx[:-1]
        if not sec_name.startswith(base):
            return False
        return len(sec_name) == len(base) or sec_name[len(base)] == "/"
    return sec_name == pfx


def find_sec_def(sec_name: str) -> SecDef | None:
    """libbpf.c find_sec_def() over the built-in table: the first matching def, or None.

    (libbpf consults custom defs from libbpf_register_prog_handler() first; bpfobj has none.)
    """
    for index, row in enumerate(_ROWS):
        if _prefix_matches(row[0], sec_name):
            return _sec_def(index)
    return None


def _attach_target(sec_def: SecDef, sec_name: str) -> str | None:
    """The text after the def's prefix (and its '/' separator); None when there is none.

    ``tp/syscalls/sys_enter_execve`` -> ``syscalls/sys_enter_execve``; ``kprobe`` -> None;
    ``fentry/`` -> ``""`` (a separator with an empty target, which libbpf rejects later, at
    load or attach). Exact-name defs (``sk_skb/stream_parser``) have no target.
    """
    pfx = sec_def.prefix
    if pfx.endswith("/"):
        return sec_name[len(pfx) :]
    if pfx.endswith("+"):
        base = pfx[:-1]
        if len(sec_name) == len(base):
            return None
        return sec_name[len(base) + 1 :]
    return None


@records.frozen
class ProgramSection:
    """What libbpf derives from a program's ELF section name at open time.

    name:       the ELF section name as written, possibly with a leading ``?``
    sec_name:   the name libbpf keeps (``prog->sec_name``): `name` without the ``?``
    sec_def:    the matching `SecDef` (first match in `SECTION_DEFS`)
    prog_type, expected_attach_type: ``prog->type`` / ``prog->expected_attach_type`` after
                bpf_object_init_progs() (copied from the def; None = 0 in the C table). At
                load libbpf may change the latter: see `load_expected_attach_type()`.
    attach_target: text after the prefix and ``/`` (see `_attach_target`), or None
    autoload:   False for ``SEC("?...")`` (bpf_object__init_prog())
    sleepable:  loaded with BPF_F_SLEEPABLE (def has SEC_SLEEPABLE: ``.s`` variants, syscall)
    xdp_frags:  loaded with BPF_F_XDP_HAS_FRAGS (``xdp.frags...``)
    """

    name: str
    sec_name: str
    sec_def: SecDef
    prog_type: ProgType
    expected_attach_type: AttachType | None
    attach_target: str | None
    autoload: bool
    sleepable: bool
    xdp_frags: bool

    @property
    def attach_kind(self) -> AttachKind:
        return self.sec_def.attach_kind

    @property
    def attach_btf(self) -> bool:
        """The program needs a BTF attach target (fentry, lsm, iter, tp_btf, freplace ...)."""
        return self.sec_def.attach_btf


def parse_section(name: str) -> ProgramSection | None:
    """Classify a program section name like libbpf's bpf_object__open does.

    A leading ``?`` (one) means autoload off and is stripped before matching
    (bpf_object__init_prog()); then the first matching def wins (find_sec_def()). Returns None
    for a name no def matches: libbpf keeps such a program with type UNSPEC
    (bpf_object_init_progs()) and fails only when it is loaded without a type set by hand.
    """
    autoload = True
    sec_name = name
    if sec_name.startswith("?"):
        autoload = False
        sec_name = sec_name[1:]
    sec_def = find_sec_def(sec_name)
    if sec_def is None:
        return None
    return ProgramSection(
        name=name,
        sec_name=sec_name,
        sec_def=sec_def,
        prog_type=sec_def.prog_type,
        expected_attach_type=sec_def.expected_attach_type,
        attach_target=_attach_target(sec_def, sec_name),
        autoload=autoload,
        sleepable=sec_def.sleepable,
        # libbpf_prepare_prog_load(): only for BPF_PROG_TYPE_XDP with SEC_XDP_FRAGS
        xdp_frags=sec_def.xdp_frags and sec_def.prog_type == ProgType.XDP,
    )


def _supported_names(attachable_only: bool = False) -> str:
    # libbpf_get_type_names(): the table's patterns, for the error hint
    return " ".join(d.prefix for d in _all_defs() if d.attachable or not attachable_only)


def prog_type_by_name(name: str) -> tuple[ProgType, AttachType | None]:
    """libbpf_prog_type_by_name(): (prog_type, expected_attach_type) of a section name.

    Exactly libbpf's lookup: no ``?`` stripping. Raises `SpecError` (libbpf: -ESRCH) for a
    name no def matches.
    """
    sec_def = find_sec_def(name)
    if sec_def is None:
        raise SpecError(
            f"failed to guess program type from ELF section '{name}'",
            section=name,
            hint=f"supported section(type) names are: {_supported_names()}",
        )
    return sec_def.prog_type, sec_def.expected_attach_type


def attach_type_by_name(name: str) -> AttachType | None:
    """libbpf_attach_type_by_name(): the attach type of an *attachable* section name.

    Raises `SpecError` (libbpf: -EINVAL) when no def matches or the def lacks SEC_ATTACHABLE.
    None stands for the C table's ``0``; no attachable def has it.
    """
    sec_def = find_sec_def(name)
    if sec_def is None or not sec_def.attachable:
        raise SpecError(
            f"failed to guess attach type based on ELF section name '{name}'",
            section=name,
            hint=f"attachable section(type) names are: {_supported_names(True)}",
        )
    return sec_def.expected_attach_type


def load_expected_attach_type(
    section: ProgramSection | SecDef,
    *,
    kernel_has_exp_attach_type: bool = True,
    kernel_has_uprobe_multi_link: bool = False,
) -> AttachType | None:
    """The expected_attach_type libbpf passes to BPF_PROG_LOAD (libbpf_prepare_prog_load()).

    SEC_EXP_ATTACH_OPT defs drop it when the kernel cannot take one (FEAT_EXP_ATTACH_TYPE);
    SEC_USDT defs switch to BPF_TRACE_UPROBE_MULTI when the kernel has uprobe_multi links
    (FEAT_UPROBE_MULTI_LINK), and libbpf updates ``prog->expected_attach_type`` to match.
    """
    sec_def = section.sec_def if isinstance(section, ProgramSection) else section
    attach = sec_def.expected_attach_type
    if sec_def.exp_attach_opt and not kernel_has_exp_attach_type:
        attach = None
    if sec_def.usdt and kernel_has_uprobe_multi_link:
        attach = AttachType.TRACE_UPROBE_MULTI
    return attach
