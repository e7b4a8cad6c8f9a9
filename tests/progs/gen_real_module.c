// SPDX-License-Identifier: GPL-2.0
/* BTFGen with real module BTF (tests/test_btfgen.py): the veth module's own types, as the
 * kernel matrix saved them into build/btf-corpus (<kernel>/modules/veth, split on that
 * kernel's vmlinux). Their relocations resolve into the module; `struct net_device` (which
 * `peer` points to) is vmlinux's, so the minimised split BTF refers to the minimised base.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define PAI __attribute__((preserve_access_index))

struct net_device { unsigned int mtu; } PAI;
struct veth_stats { __u64 rx_drops; __u64 xdp_packets; __u64 xdp_bytes; } PAI;
struct veth_rq_stats { struct veth_stats vs; } PAI;
struct veth_rq { struct veth_rq_stats stats; } PAI;
struct veth_priv {
	struct net_device *peer;
	struct veth_rq *rq;
	unsigned int requested_headroom;
} PAI;

__u64 out[8];

SEC("raw_tp/sys_enter")
int veth_fields(__u64 *ctx)
{
	struct veth_priv *priv = (void *)ctx[0];
	struct veth_rq *rq = BPF_CORE_READ(priv, rq);

	out[0] = BPF_CORE_READ(priv, requested_headroom);
	out[1] = BPF_CORE_READ(rq, stats.vs.xdp_bytes);
	out[2] = BPF_CORE_READ(priv, peer, mtu);
	out[3] = bpf_core_field_exists(priv->requested_headroom);
	out[4] = bpf_core_type_exists(struct veth_stats);
	out[5] = bpf_core_type_size(struct veth_rq);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
