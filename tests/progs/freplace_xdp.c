// SPDX-License-Identifier: GPL-2.0
/* freplace: replaces xdp_verdict() of freplace_target.c's xdp_main with a drop. */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

SEC("freplace/xdp_verdict")
int xdp_drop_all(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
