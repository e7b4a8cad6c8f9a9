"""Networking attach: XDP, tc (cls_bpf), tcx, netkit, sockets, netns hooks, netfilter,
sockmap programs and lightweight tunnels.

* XDP: a BPF link (BPF_LINK_CREATE with the ifindex, libbpf bpf_program__attach_xdp()),
  or netlink (IFLA_XDP on RTM_SETLINK, libbpf netlink.c bpf_xdp_attach()) through
  pyroute2; mode ``skb`` (generic), ``drv`` (native) or ``hw`` (offload) as XDP_FLAGS_*.
* tc: a clsact qdisc and a direct-action ``bpf`` filter on its ingress or egress hook,
  through pyroute2 (libbpf netlink.c bpf_tc_hook_create() / bpf_tc_attach()); the filter
  goes away when the link closes, and the qdisc too when bpfobj created it and it is empty.
* tcx / netkit: BPF_LINK_CREATE with the ifindex (Linux 6.6+ / 6.7+, libbpf
  bpf_program__attach_tcx() / _netkit()).
* socket filters and SO_REUSEPORT selectors: SO_ATTACH_BPF / SO_ATTACH_REUSEPORT_EBPF on a
  socket, undone with SO_DETACH_*.
* sk_lookup, flow_dissector: a netns link (libbpf bpf_program__attach_netns());
  flow_dissector also through BPF_PROG_ATTACH.
* netfilter: BPF_LINK_CREATE with pf / hooknum / priority (libbpf
  bpf_program__attach_netfilter()).
* sk_skb / sk_msg: a sockmap link on the map (libbpf bpf_program__attach_sockmap(), 6.10+)
  or BPF_PROG_ATTACH to the map.
* lwt_in / lwt_out / lwt_xmit / lwt_seg6local: a route with ``encap bpf`` through pyroute2.

pyroute2 is imported inside the functions that need it, so importing bpfobj stays cheap.
"""

from __future__ import annotations

import errno as _errno
import os
import socket

from bpfobj.attach.common import (
    fail,
    features,
    link_create,
    link_create_attr,
    prog_attach,
    require_feature,
    sec_name,
    wrap_fd,
)
from bpfobj.errors import BpfObjError, NotSupportedError, SyscallError
from bpfobj.links import Link
from bpfobj.sys import attach_attr
from bpfobj.sys.syscall import Fd
from bpfobj.uapi import AttachType, ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, Literal, TypeAlias

    from bpfobj.programs import Program

# linux/if_link.h
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4
XDP_MODES: dict[str, int] = {"skb": XDP_FLAGS_SKB_MODE, "generic": XDP_FLAGS_SKB_MODE,
                             "drv": XDP_FLAGS_DRV_MODE, "native": XDP_FLAGS_DRV_MODE,
                             "hw": XDP_FLAGS_HW_MODE, "offload": XDP_FLAGS_HW_MODE}
# linux/pkt_sched.h: TC_H_CLSACT parent handles of the clsact hooks
TC_H_CLSACT = 0xFFFFFFF1
TC_H_MIN_INGRESS = 0xFFF2
TC_H_MIN_EGRESS = 0xFFF3
TC_PARENT: dict[str, int] = {"ingress": 0xFFFF0000 | TC_H_MIN_INGRESS,
                             "egress": 0xFFFF0000 | TC_H_MIN_EGRESS}
ETH_P_ALL = 0x0003
# asm-generic/socket.h
SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27  # = SO_DETACH_FILTER
SO_ATTACH_REUSEPORT_EBPF = 52
SO_DETACH_REUSEPORT_BPF = 68
# linux/netfilter.h
NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10
NF_HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4}

XdpMode: TypeAlias = 'Literal["skb", "generic", "drv", "native", "hw", "offload"] | None'


def ifindex_of(dev: int | str) -> int:
    """An interface index from an index or a name (in this process's netns)."""
    if isinstance(dev, int):
        return dev
    try:
        return socket.if_nametoindex(dev)
    except OSError:
        raise NotSupportedError(f"no network interface {dev!r} in this network namespace",
                                hint="create it, or attach from inside its netns") from None


def _ipr() -> Any:
    try:
        from pyroute2 import IPRoute
    except ImportError:  # pragma: no cover - pyroute2 is a dependency
        raise NotSupportedError("netlink attach needs pyroute2",
                                hint="pip install pyroute2") from None
    return IPRoute()


def _netlink_error(exc: Exception, what: str, program: Program | None) -> BpfObjError:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None) or _errno.EIO
    err = SyscallError(f"{what}: {exc}", errno=int(code), command="netlink",
                       program=program.name if program is not None else None)
    if err.errno in (_errno.EOPNOTSUPP, 524):
        return NotSupportedError(f"{what}: the device or kernel does not support it",
                                 program=err.program, hint=str(exc))
    return err


# --------------------------------------------------------------------------------------
# XDP
# --------------------------------------------------------------------------------------


def attach_xdp(program: Program, dev: int | str | None = None, *, ifindex: int | None = None,
               xdp_mode: XdpMode = None, mode: Literal["link", "netlink"] | None = None,
               replace: bool = False, **_: Any) -> Link:
    """XDP on interface `dev` (index or name). `mode` "link" (default) makes a BPF link,
    "netlink" sets IFLA_XDP (what ``ip link set dev X xdp`` does; then `replace` allows
    replacing a program already there). `xdp_mode` picks skb / drv / hw."""
    if program.expected_attach_type in (AttachType.XDP_DEVMAP, AttachType.XDP_CPUMAP):
        raise NotSupportedError(
            f"{program.spec.section!r} programs run from a devmap / cpumap entry, not an "
            "interface", program=program.name,
            hint="store the program fd in the map value's bpf_prog.fd")
    if ifindex is None:
        if dev is None:
            fail("XDP attach needs an interface: pass dev= (name or index)", program)
        ifindex = ifindex_of(dev)
    if xdp_mode is not None and xdp_mode not in XDP_MODES:
        fail(f"unknown xdp_mode {xdp_mode!r}: use one of {', '.join(XDP_MODES)}", program)
    flags = XDP_MODES[xdp_mode] if xdp_mode else 0
    target = f"ifindex {ifindex}" + (f" ({dev})" if isinstance(dev, str) else "")
    if mode != "netlink":
        return link_create(program, ifindex, AttachType.XDP, kind="xdp", target=target,
                           flags=flags, config="CONFIG_BPF_SYSCALL", since="5.9")
    return _xdp_netlink(program, ifindex, flags, replace, target)


def _xdp_set(ifindex: int, fd: int, flags: int) -> None:
    with _ipr() as ipr:
        attrs: list[tuple[str, int]] = [("IFLA_XDP_FD", fd)]
        if flags:
            attrs.append(("IFLA_XDP_FLAGS", flags))
        ipr.link("set", index=ifindex, xdp={"attrs": attrs})


def _xdp_netlink(program: Program, ifindex: int, flags: int, replace: bool,
                 target: str) -> Link:
    """libbpf bpf_xdp_attach() / __bpf_set_link_xdp_fd_replace()."""
    set_flags = flags if replace else flags | XDP_FLAGS_UPDATE_IF_NOEXIST
    try:
        _xdp_set(ifindex, program.fd, set_flags)
    except Exception as exc:
        if isinstance(exc, BpfObjError):
            raise
        raise _netlink_error(exc, f"cannot attach XDP program to {target}", program) from None

    def detach() -> None:
        # libbpf bpf_xdp_detach(): fd -1 with the same mode flags
        try:
            _xdp_set(ifindex, -1, flags)
        except Exception as exc:
            if isinstance(exc, BpfObjError):
                raise
            if getattr(exc, "code", None) == _errno.ENODEV:
                return  # the device is gone, and the program with it
            raise _netlink_error(exc, f"cannot detach XDP from {target}", program) from None

    return Link(None, kind="xdp", target=f"{target} (netlink)", program=program, undo=[detach])


# --------------------------------------------------------------------------------------
# tc: clsact + cls_bpf
# --------------------------------------------------------------------------------------


def _tc_filters(ipr: Any, ifindex: int, parent: int) -> list[Any]:
    try:
        return list(ipr.get_filters(index=ifindex, parent=parent))
    except Exception:
        return []


def attach_tc(program: Program, dev: int | str | None = None, *, ifindex: int | None = None,
              direction: Literal["ingress", "egress"] | None = None, handle: int = 1,
              priority: int = 1, replace: bool = False, **_: Any) -> Link:
    """A direct-action cls_bpf filter on the clsact `direction` hook of `dev` (libbpf
    bpf_tc_hook_create() + bpf_tc_attach(); ``tc qdisc add dev X clsact; tc filter add dev
    X ingress bpf da fd N``). `direction` defaults to the section's (``tc/ingress`` ...)
    else ingress; `handle` / `priority` identify the filter (libbpf's usual 1 / 1)."""
    if program.type == ProgType.SCHED_ACT:
        fail("SEC(\"action\") programs are tc actions: add them to a filter with tc(8)",
             program)
    if ifindex is None:
        if dev is None:
            fail("tc attach needs an interface: pass dev= (name or index)", program)
        ifindex = ifindex_of(dev)
    if direction is None:
        direction = "egress" if sec_name(program).endswith("egress") else "ingress"
    parent = TC_PARENT[direction]
    target = f"ifindex {ifindex} {direction}" + (f" ({dev})" if isinstance(dev, str) else "")
    created_qdisc = False
    try:
        with _ipr() as ipr:
            try:
                ipr.tc("add", "clsact", ifindex)
                created_qdisc = True
            except Exception as exc:
                if getattr(exc, "code", None) != _errno.EEXIST:
                    raise
            ipr.tc("replace-filter" if replace else "add-filter", "bpf", ifindex, handle,
                   parent=parent, prio=priority, protocol=ETH_P_ALL, fd=program.fd,
                   name=program.name, classid=1, direct_action=True)
    except Exception as exc:
        if isinstance(exc, BpfObjError):
            raise
        err = _netlink_error(exc, f"cannot attach tc program to {target}", program)
        if getattr(exc, "code", None) == _errno.EEXIST:
            err.hint = (f"a filter with handle {handle} and priority {priority} exists: pass "
                        "replace=True, or another handle=/priority=")
        raise err from None

    def detach() -> None:
        try:
            with _ipr() as ipr:
                try:
                    ipr.tc("del-filter", "bpf", ifindex, handle, parent=parent, prio=priority,
                           protocol=ETH_P_ALL)
                except Exception as exc:
                    if getattr(exc, "code", None) not in (_errno.ENOENT, _errno.ENODEV,
                                                          _errno.EINVAL):
                        raise
                if created_qdisc and not any(
                        _tc_filters(ipr, ifindex, p) for p in TC_PARENT.values()):
                    try:
                        ipr.tc("del", "clsact", ifindex)
                    except Exception:
                        pass  # gone with the device, or removed by someone else
        except Exception as exc:
            if isinstance(exc, BpfObjError):
                raise
            raise _netlink_error(exc, f"cannot detach tc program from {target}",
                                 program) from None

    return Link(None, kind="tc", target=target, program=program, undo=[detach])


# --------------------------------------------------------------------------------------
# tcx and netkit links
# --------------------------------------------------------------------------------------


def _mprog_opts(relative_fd: int, relative_id: int, before: bool, after: bool,
                expected_revision: int) -> dict[str, Any]:
    if relative_fd and relative_id:
        raise ValueError("relative_fd and relative_id cannot be set at the same time")
    flags = 0
    if before:
        flags |= attach_attr.BPF_F_BEFORE
    if after:
        flags |= attach_attr.BPF_F_AFTER
    if relative_id:
        flags |= attach_attr.BPF_F_ID
    return {"flags": flags, "relative_fd": relative_fd or relative_id,
            "expected_revision": expected_revision}


def attach_tcx(program: Program, dev: int | str | None = None, *, ifindex: int | None = None,
               direction: Literal["ingress", "egress"] | None = None, relative_fd: int = 0,
               relative_id: int = 0, before: bool = False, after: bool = False,
               expected_revision: int = 0, **_: Any) -> Link:
    """A tcx link (BPF_LINK_CREATE, BPF_TCX_INGRESS / EGRESS from the section or
    `direction`; libbpf bpf_program__attach_tcx())."""
    if ifindex is None:
        if dev is None:
            fail("tcx attach needs an interface: pass dev= (name or index)", program)
        ifindex = ifindex_of(dev)
    if direction is not None:
        attach_type = AttachType.TCX_EGRESS if direction == "egress" else AttachType.TCX_INGRESS
    else:
        attach_type = program.expected_attach_type or AttachType.TCX_INGRESS
    if not features().tcx_link:
        raise NotSupportedError("the kernel has no tcx links", program=program.name,
                                hint="needs Linux 6.6+ (CONFIG_NET_XGRESS); use attach_tc()")
    where = "egress" if attach_type == AttachType.TCX_EGRESS else "ingress"
    return link_create(program, ifindex, attach_type, kind="tcx",
                       target=f"ifindex {ifindex} {where}",
                       config="CONFIG_NET_XGRESS", since="6.6",
                       **_mprog_opts(relative_fd, relative_id, before, after, expected_revision))


def attach_netkit(program: Program, dev: int | str | None = None, *,
                  ifindex: int | None = None, relative_fd: int = 0, relative_id: int = 0,
                  before: bool = False, after: bool = False, expected_revision: int = 0,
                  **_: Any) -> Link:
    """A netkit link on a netkit device (libbpf bpf_program__attach_netkit())."""
    if ifindex is None:
        if dev is None:
            fail("netkit attach needs a netkit device: pass dev= (name or index)", program)
        ifindex = ifindex_of(dev)
    attach_type = program.expected_attach_type or AttachType.NETKIT_PRIMARY
    return link_create(program, ifindex, attach_type, kind="netkit",
                       target=f"ifindex {ifindex} {AttachType(attach_type).name.lower()}",
                       config="CONFIG_NETKIT", since="6.7",
                       **_mprog_opts(relative_fd, relative_id, before, after, expected_revision))


# --------------------------------------------------------------------------------------
# sockets
# --------------------------------------------------------------------------------------


def _sockopt_link(program: Program, sock: socket.socket | int, attach_opt: int,
                  detach_opt: int, kind: str) -> Link:
    fd = sock if isinstance(sock, int) else sock.fileno()
    s = socket.socket(fileno=os.dup(fd))  # our own reference: the undo needs the socket

    try:
        s.setsockopt(socket.SOL_SOCKET, attach_opt, program.fd)
    except OSError as exc:
        s.close()
        raise SyscallError(f"cannot attach {kind} program to socket fd {fd}",
                           errno=exc.errno or 0, command="setsockopt",
                           program=program.name) from None

    def detach() -> None:
        try:
            s.setsockopt(socket.SOL_SOCKET, detach_opt, 0)
        except OSError as exc:
            if exc.errno not in (_errno.ENOENT, _errno.EBADF):
                raise SyscallError(f"cannot detach {kind} program", errno=exc.errno or 0,
                                   command="setsockopt") from None
        finally:
            s.close()

    return Link(None, kind=kind, target=f"socket fd {fd}", program=program, undo=[detach])


def attach_socket(program: Program, sock: socket.socket | int | None = None,
                  **_: Any) -> Link:
    """SO_ATTACH_BPF: a socket filter on `sock` (closing the link: SO_DETACH_BPF)."""
    if sock is None:
        fail("socket filter attach needs a socket: pass sock=", program)
    return _sockopt_link(program, sock, SO_ATTACH_BPF, SO_DETACH_BPF, "socket")


def attach_sk_reuseport(program: Program, sock: socket.socket | int | None = None,
                        **_: Any) -> Link:
    """SO_ATTACH_REUSEPORT_EBPF on one socket of a SO_REUSEPORT group."""
    if sock is None:
        fail("sk_reuseport attach needs a socket of the SO_REUSEPORT group: pass sock=",
             program)
    return _sockopt_link(program, sock, SO_ATTACH_REUSEPORT_EBPF, SO_DETACH_REUSEPORT_BPF,
                         "sk_reuseport")


# --------------------------------------------------------------------------------------
# network namespaces: sk_lookup, flow_dissector
# --------------------------------------------------------------------------------------


def _open_netns(netns: str | int | None) -> tuple[Fd, str]:
    if isinstance(netns, int):
        return wrap_fd(netns), f"netns fd {netns}"
    path = netns or "/proc/self/ns/net"
    if "/" not in path:
        path = f"/var/run/netns/{path}"  # a name as ip-netns(8) knows it
    try:
        return Fd(os.open(path, os.O_RDONLY | os.O_CLOEXEC)), path
    except OSError as exc:
        raise NotSupportedError(f"cannot open network namespace {path}: {exc.strerror}") \
            from None


def attach_netns(program: Program, netns: str | int | None = None, *,
                 mode: Literal["link", "legacy"] | None = None, **_: Any) -> Link:
    """sk_lookup / flow_dissector on a network namespace (a path, an ip-netns name, an fd;
    default this process's). `mode` "legacy" uses BPF_PROG_ATTACH (flow_dissector only)."""
    kind = "sk_lookup" if program.type == ProgType.SK_LOOKUP else "flow_dissector"
    attach_type = program.expected_attach_type or (
        AttachType.SK_LOOKUP if kind == "sk_lookup" else AttachType.FLOW_DISSECTOR)
    if mode == "legacy":
        # netns_bpf_prog_attach(): target_fd must be 0, the caller's netns is the target
        if netns is not None:
            fail("legacy (BPF_PROG_ATTACH) netns attach works on this process's netns only: "
                 "run it inside the target netns, or use a link", program)
        return prog_attach(program, None, attach_type, kind=kind, target_name="this netns")
    nsfd, where = _open_netns(netns)
    with nsfd:
        return link_create(program, nsfd.fileno(), attach_type, kind=kind, target=where,
                           config="CONFIG_NET", since="5.8" if kind != "sk_lookup" else "5.9")


# --------------------------------------------------------------------------------------
# netfilter
# --------------------------------------------------------------------------------------


def attach_netfilter(program: Program, *, pf: int | str = NFPROTO_IPV4,
                     hook: int | str = "output", priority: int = 0, defrag: bool = False,
                     **_: Any) -> Link:
    """A netfilter hook link (libbpf bpf_program__attach_netfilter()): `pf` NFPROTO_IPV4 /
    IPV6 (or "ipv4" / "ipv6"), `hook` NF_INET_* number or name (prerouting, input,
    forward, output, postrouting), `priority` (not 0 or INT_MIN on some kernels),
    `defrag` BPF_F_NETFILTER_IP_DEFRAG."""
    pfn = {"ipv4": NFPROTO_IPV4, "ipv6": NFPROTO_IPV6}[pf] if isinstance(pf, str) else pf
    hooknum = NF_HOOKS[hook] if isinstance(hook, str) else hook
    a = attach_attr.link_create_netfilter(program.fd, AttachType.NETFILTER, pf=pfn,
                                          hooknum=hooknum, priority=priority,
                                          nf_flags=1 if defrag else 0)
    return link_create_attr(program, a, kind="netfilter",
                            target=f"pf {pfn} hook {hook} priority {priority}",
                            config="CONFIG_NETFILTER_BPF_LINK", since="6.4")


# --------------------------------------------------------------------------------------
# sockmap programs
# --------------------------------------------------------------------------------------


def attach_sockmap(program: Program, map: Any = None, *, map_fd: int | None = None,
                   attach_type: int | None = None,
                   mode: Literal["link", "legacy"] | None = None, **_: Any) -> Link:
    """sk_skb / sk_msg on a sockmap or sockhash (`map`, a `bpfobj.maps.Map`, or `map_fd`):
    a sockmap link (libbpf bpf_program__attach_sockmap(), 6.10+), else BPF_PROG_ATTACH:
    on kernels without sockmap links (`Features.sockmap_link`) or with `mode` "legacy".
    `mode` "link" on such a kernel raises `NotSupportedError`."""
    if map is None and map_fd is None:
        fail("sockmap attach needs the map: pass map= or map_fd=", program)
    fd = int(map.fd if map is not None else map_fd or 0)
    atype = attach_type if attach_type is not None else program.expected_attach_type
    if atype is None:
        fail("SEC(\"sk_skb\") has no attach type: pass attach_type= (SK_SKB_STREAM_VERDICT, "
             "SK_SKB_STREAM_PARSER, SK_SKB_VERDICT)", program)
    name = getattr(map, "name", None) or f"map fd {fd}"
    if mode == "link":
        require_feature(features().sockmap_link, "sockmap links",
                        feature=f"links for {program.type.label} programs on a sockmap",
                        since="6.10", program=program,
                        instead="attach with mode=\"legacy\" (BPF_PROG_ATTACH)")
    if mode != "legacy" and features().sockmap_link:
        try:
            return link_create(program, fd, int(atype), kind="sockmap", target=name,
                               config="CONFIG_BPF_STREAM_PARSER", since="6.10")
        except NotSupportedError:
            if mode == "link":
                raise
    return prog_attach(program, wrap_fd(fd), int(atype), kind="sockmap", target_name=name)


# --------------------------------------------------------------------------------------
# lightweight tunnels
# --------------------------------------------------------------------------------------

def attach_lwt(program: Program, dst: str | None = None, *, dev: int | str | None = None,
               gateway: str | None = None, table: int | None = None,
               headroom: int = 0, **_: Any) -> Link:
    """A route to `dst` (``"10.1.0.0/24"``) whose packets run the program (``ip route add
    DST encap bpf in|out|xmit obj ... dev DEV``): lwt_in on input, lwt_out on output,
    lwt_xmit before transmission. Closing the link removes the route."""
    hooks = {ProgType.LWT_IN: "in", ProgType.LWT_OUT: "out", ProgType.LWT_XMIT: "xmit"}
    hook = hooks.get(program.type)
    if hook is None:
        raise NotSupportedError(f"{program.type.label} programs are attached by seg6local "
                                "routes (ip -6 route ... encap seg6local action End.BPF)",
                                program=program.name)
    if dst is None:
        fail("lwt attach needs a route: pass dst= (and dev= / gateway=)", program)
    route: dict[str, Any] = {"dst": dst}
    if dev is not None:
        route["oif"] = ifindex_of(dev)
    if gateway is not None:
        route["gateway"] = gateway
    if table is not None:
        route["table"] = table
    spec: dict[str, Any] = {"fd": program.fd, "name": program.name}
    encap: dict[str, Any] = {"type": "bpf", hook: spec}
    if headroom and hook == "xmit":
        encap["headroom"] = headroom
    try:
        with _ipr() as ipr:
            ipr.route("add", encap=encap, **route)
    except Exception as exc:
        if isinstance(exc, BpfObjError):
            raise
        raise _netlink_error(exc, f"cannot add route {dst} with encap bpf {hook}",
                             program) from None

    def remove() -> None:
        try:
            with _ipr() as ipr:
                ipr.route("del", **route)
        except Exception as exc:
            if getattr(exc, "code", None) in (_errno.ESRCH, _errno.ENODEV):
                return
            if isinstance(exc, BpfObjError):
                raise
            raise _netlink_error(exc, f"cannot remove route {dst}", program) from None

    return Link(None, kind="lwt", target=f"route {dst} encap bpf {hook}", program=program,
                undo=[remove])


__all__ = [
    "attach_lwt",
    "attach_netfilter",
    "attach_netkit",
    "attach_netns",
    "attach_sk_reuseport",
    "attach_socket",
    "attach_sockmap",
    "attach_tc",
    "attach_tcx",
    "attach_xdp",
    "ifindex_of",
]

