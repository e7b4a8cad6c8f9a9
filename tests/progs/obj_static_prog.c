// SPDX-License-Identifier: GPL-2.0
/* A program whose symbol is static (STB_LOCAL FUNC) in a program section. libbpf refuses
 * the whole object at open ("sec 'xdp': program 'static_xdp' is static and not
 * supported", -ENOTSUP); only .text may hold local functions (subprograms). The object
 * also has a normal global program and a static subprogram in .text, which are fine.
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

static __noinline int helper(int x)
{
	return x + 1;
}

SEC("xdp")
static __attribute__((used)) int static_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tc")
int global_tc(struct __sk_buff *skb)
{
	return helper(skb->len) > 0;
}

char LICENSE[] SEC("license") = "GPL";
