#!/usr/bin/env python3
"""xdp_count: count the packets a veth interface receives with XDP, per IP protocol.

    sudo examples/xdp_count.py [--packets N] [--json] [--keep-going S]

Sets up a throw-away network: a network namespace ``bpfobj-xdp-<pid>`` and a veth pair,
one end (``xh<pid>``, 10.213.0.1/30) in this namespace and its peer (``xn<pid>``,
10.213.0.2/30) in the new one. examples/xdp_count.bpf.c is attached (XDP) to the host end,
so it sees every packet sent from inside the namespace. The script sends `--packets` ICMP
echo requests (a raw socket; each waits for its reply, so the packets really pass) and as
many UDP datagrams from inside the namespace, prints the
counters (a per-CPU array, summed over CPUs), detaches and deletes the namespace (which
takes the veth pair with it), also when interrupted.

Needs root and iproute2 (``ip``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

OBJECT = os.path.join(HERE, "build", "xdp_count.bpf.o")
HOST_IP, PEER_IP = "10.213.0.1", "10.213.0.2"
PROTOCOLS = {0: "other", 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


def ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    subprocess.run(cmd, check=True, capture_output=True)


@contextlib.contextmanager
def veth_pair(tag: str) -> Iterator[tuple[str, str]]:
    """A netns and a veth pair (host end, netns name); both deleted on exit."""
    netns, host, peer = f"bpfobj-xdp-{tag}", f"xh{tag}", f"xn{tag}"
    ip("netns", "add", netns)
    try:
        ip("link", "add", host, "type", "veth", "peer", "name", peer, "netns", netns)
        ip("addr", "add", f"{HOST_IP}/30", "dev", host)
        ip("link", "set", host, "up")
        ip("addr", "add", f"{PEER_IP}/30", "dev", peer, netns=netns)
        ip("link", "set", peer, "up", netns=netns)
        ip("link", "set", "lo", "up", netns=netns)
        yield host, netns
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("link", "del", host)  # gone with the netns anyway; quicker when it exists
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


# Run inside the netns: N ICMP echo requests (raw socket, each waits for its reply: the
# packets really pass XDP) and N UDP datagrams to the host end. No ping binary needed.
TRAFFIC = r"""
import socket, struct, sys
n, dst = int(sys.argv[1]), sys.argv[2]

def checksum(data):
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF

icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
icmp.settimeout(2)
replies = 0
for seq in range(n):
    body = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + b"bpfobj-xdp"
    icmp.sendto(body[:2] + struct.pack("!H", checksum(body)) + body[4:], (dst, 0))
    while True:
        try:
            pkt = icmp.recv(2048)
        except TimeoutError:
            break
        ihl = (pkt[0] & 0xF) * 4
        if pkt[ihl] == 0 and struct.unpack_from("!HH", pkt, ihl + 4) == (0x4242, seq):
            replies += 1
            break
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(n):
    udp.sendto(b"x" * 64, (dst, 9))
print(replies)
"""


def send_traffic(netns: str, packets: int) -> int:
    """Send from inside `netns`; returns the echo replies received."""
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", TRAFFIC,
                          str(packets), HOST_IP], check=True, capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Count packets per IP protocol with XDP.")
    ap.add_argument("--packets", type=int, default=10, help="pings and UDP datagrams to send")
    ap.add_argument("--keep-going", type=float, default=0.0, metavar="S",
                    help="then keep counting for S seconds, printing every second")
    ap.add_argument("--xdp-mode", choices=("skb", "drv"), help="default: the kernel's choice")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--object", default=OBJECT, help="the compiled xdp_count.bpf.o")
    args = ap.parse_args(argv)

    from bpfobj import BpfObject
    from bpfobj.attach import attach

    if not os.path.exists(args.object):
        print(f"xdp_count: {args.object} is missing: run examples/build.sh", file=sys.stderr)
        return 1

    def counters(obj: BpfObject) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for key, per_cpu in obj.maps["counts"].items():
            packets = sum(c["packets"] for c in per_cpu)
            if packets:
                name = PROTOCOLS.get(key, str(key))
                out[name] = {"packets": packets, "bytes": sum(c["bytes"] for c in per_cpu)}
        return out

    tag = str(os.getpid())
    with BpfObject.open(args.object) as obj, veth_pair(tag) as (host, netns):
        obj.load()
        link = attach(obj.programs["xdp_count"], dev=host, xdp_mode=args.xdp_mode)
        try:
            if not args.json:
                print(f"XDP on {host} (ifindex {socket.if_nametoindex(host)}), "
                      f"netns {netns}", flush=True)
            replies = send_traffic(netns, args.packets)
            end = time.monotonic() + args.keep_going
            while time.monotonic() < end:
                time.sleep(1)
                if not args.json:
                    print(counters(obj), flush=True)
            result = counters(obj)
        finally:
            link.close()
        if args.json:
            print(json.dumps({"interface": host, "netns": netns, "sent": args.packets,
                              "replies": replies, "counts": result}))
        else:
            print(f"sent {args.packets} pings ({replies} answered) and {args.packets} UDP "
                  "datagrams from the netns")
            print(f"{'protocol':<10}{'packets':>10}{'bytes':>12}")
            for name, c in sorted(result.items()):
                print(f"{name:<10}{c['packets']:>10}{c['bytes']:>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
