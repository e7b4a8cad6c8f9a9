// SPDX-License-Identifier: GPL-2.0
/* Attach test object (integration/test_attach.py): one program per networking attach
 * kind, each counting the packets / sockets / lookups it sees into its own .bss counter
 * and letting everything through. XDP and tc run on a veth pair in a test netns; cgroup
 * programs in a test cgroup; netfilter, socket, sk_lookup and sk_reuseport on loopback.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define TC_ACT_OK 0
#define TCX_PASS 0
#define SK_PASS 1
#define NF_ACCEPT 1
#define BPF_OK 0

const volatile __u32 target_tgid = 0;

__u64 xdp_hits = 0;
__u64 xdp2_hits = 0;
__u64 tc_hits = 0;
__u64 tcx_in_hits = 0;
__u64 tcx_out_hits = 0;
__u64 cgroup_skb_hits = 0;
__u64 cgroup_skb2_hits = 0;
__u64 sock_create_hits = 0;
__u64 socket_hits = 0;
__u64 sk_lookup_hits = 0;
__u64 netfilter_hits = 0;
__u64 reuseport_hits = 0;
__u64 sk_msg_hits = 0;
__u64 lwt_hits = 0;

SEC("xdp")
int on_xdp(struct xdp_md *ctx)
{
	__sync_fetch_and_add(&xdp_hits, 1);
	return XDP_PASS;
}

SEC("xdp")
int on_xdp2(struct xdp_md *ctx)
{
	__sync_fetch_and_add(&xdp2_hits, 1);
	return XDP_PASS;
}

SEC("tc")
int on_tc(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&tc_hits, 1);
	return TC_ACT_OK;
}

SEC("tcx/ingress")
int on_tcx_in(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&tcx_in_hits, 1);
	return TCX_PASS;
}

SEC("tcx/egress")
int on_tcx_out(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&tcx_out_hits, 1);
	return TCX_PASS;
}

SEC("cgroup_skb/egress")
int on_cgroup_skb(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&cgroup_skb_hits, 1);
	return 1;
}

SEC("cgroup_skb/egress")
int on_cgroup_skb2(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&cgroup_skb2_hits, 1);
	return 1;
}

SEC("cgroup/sock_create")
int on_sock_create(struct bpf_sock *sk)
{
	__sync_fetch_and_add(&sock_create_hits, 1);
	return 1;
}

SEC("socket")
int on_socket(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&socket_hits, 1);
	return skb->len;
}

SEC("sk_lookup")
int on_sk_lookup(struct bpf_sk_lookup *ctx)
{
	__sync_fetch_and_add(&sk_lookup_hits, 1);
	return SK_PASS;
}

SEC("netfilter")
int on_netfilter(struct bpf_nf_ctx *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		__sync_fetch_and_add(&netfilter_hits, 1);
	return NF_ACCEPT;
}

SEC("sk_reuseport")
int on_reuseport(struct sk_reuseport_md *ctx)
{
	__sync_fetch_and_add(&reuseport_hits, 1);
	return SK_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} sock_map SEC(".maps");

SEC("sk_msg")
int on_sk_msg(struct sk_msg_md *msg)
{
	__sync_fetch_and_add(&sk_msg_hits, 1);
	return SK_PASS;
}

SEC("flow_dissector")
int on_flow_dissector(struct __sk_buff *skb)
{
	return BPF_OK;
}

SEC("lwt_xmit")
int on_lwt(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&lwt_hits, 1);
	return BPF_OK;
}
