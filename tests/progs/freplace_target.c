// SPDX-License-Identifier: GPL-2.0
/* The target of the freplace test: an XDP program whose verdict comes from a global
 * (noinline, so a function of its own in BTF) function, which freplace_xdp.c replaces. */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

__noinline int xdp_verdict(struct xdp_md *ctx)
{
	if (!ctx)
		return XDP_ABORTED;
	return XDP_PASS;
}

SEC("xdp")
int xdp_main(struct xdp_md *ctx)
{
	return xdp_verdict(ctx);
}

char LICENSE[] SEC("license") = "GPL";
