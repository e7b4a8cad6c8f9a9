// SPDX-License-Identifier: GPL-2.0
/* A minimal TCP congestion control as struct_ops: each callback counts its calls in .bss.
 *
 * No vmlinux.h: the local struct tcp_congestion_ops declares only the members it sets, in
 * another order than the kernel's, as libbpf matches members by name. Variants (-D):
 *   NO_LINK          only the plain .struct_ops map, with .init too (libbpf 1.1 has no
 *                    .struct_ops.link)
 *   OPTIONAL_MAP     the plain map in SEC("?.struct_ops") (not created by default)
 *   EXTRA_MEMBER=V   a member the kernel lacks, set to V (0: allowed, skipped)
 *   UNREFERENCED     a struct_ops program no map uses
 *   BAD_PROG_TYPE    .undo_cwnd set to an XDP program
 *   BAD_MEMBER_PTR   a data-pointer member set to a program
 *   SWAP_MAP         a second .struct_ops.link map of the same name, whose cong_avoid
 *                    counts in swapped_calls (for bpf_link__update_map)
 *   CC_NAME / CC_PLAIN_NAME   the registered names
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

#ifndef CC_NAME
#define CC_NAME "bpfobj_cc"
#endif
#ifndef CC_PLAIN_NAME
#define CC_PLAIN_NAME "bpfobj_cc_plain"
#endif

struct sock;

struct tcp_congestion_ops {
	char name[16];
	__u32 (*ssthresh)(struct sock *sk);
	void (*cong_avoid)(struct sock *sk, __u32 ack, __u32 acked);
	__u32 (*undo_cwnd)(struct sock *sk);
	void (*init)(struct sock *sk);
#ifdef EXTRA_MEMBER
	__u64 bpfobj_not_in_kernel;
#endif
#ifdef BAD_MEMBER_PTR
	void *owner_data;
#endif
};

/* calls[0] init, [1] ssthresh, [2] cong_avoid, [3] undo_cwnd */
__u64 calls[4];

SEC("struct_ops/cc_init")
int cc_init(unsigned long long *ctx)
{
	__sync_fetch_and_add(&calls[0], 1);
	return 0;
}

SEC("struct_ops/cc_ssthresh")
__u32 cc_ssthresh(unsigned long long *ctx)
{
	__sync_fetch_and_add(&calls[1], 1);
	return 10;
}

SEC("struct_ops/cc_cong_avoid")
int cc_cong_avoid(unsigned long long *ctx)
{
	__sync_fetch_and_add(&calls[2], 1);
	return 0;
}

SEC("struct_ops/cc_undo_cwnd")
__u32 cc_undo_cwnd(unsigned long long *ctx)
{
	__sync_fetch_and_add(&calls[3], 1);
	return 10;
}

#ifdef UNREFERENCED
SEC("struct_ops/cc_unused")
int cc_unused(unsigned long long *ctx)
{
	return 0;
}
#endif

#ifdef BAD_PROG_TYPE
SEC("xdp")
int not_struct_ops(struct xdp_md *ctx)
{
	return XDP_PASS;
}
#define UNDO not_struct_ops
#else
#define UNDO cc_undo_cwnd
#endif

#if !defined(NO_LINK) && !defined(OPTIONAL_MAP)
SEC(".struct_ops.link")
struct tcp_congestion_ops cc_link = {
	.init = (void *)cc_init,
	.ssthresh = (void *)cc_ssthresh,
	.cong_avoid = (void *)cc_cong_avoid,
	.undo_cwnd = (void *)UNDO,
	.name = CC_NAME,
#ifdef EXTRA_MEMBER
	.bpfobj_not_in_kernel = EXTRA_MEMBER,
#endif
#ifdef BAD_MEMBER_PTR
	.owner_data = (void *)cc_init,
#endif
};
#endif

#ifdef SWAP_MAP
__u64 swapped_calls;

SEC("struct_ops/cc_cong_avoid_swapped")
int cc_cong_avoid_swapped(unsigned long long *ctx)
{
	__sync_fetch_and_add(&swapped_calls, 1);
	return 0;
}

/* the kernel swaps a TCP congestion control only for one of the same name */
SEC(".struct_ops.link")
struct tcp_congestion_ops cc_swapped = {
	.init = (void *)cc_init,
	.ssthresh = (void *)cc_ssthresh,
	.cong_avoid = (void *)cc_cong_avoid_swapped,
	.undo_cwnd = (void *)UNDO,
	.name = CC_NAME,
};
#endif

#ifdef OPTIONAL_MAP
SEC("?.struct_ops")
#else
SEC(".struct_ops")
#endif
struct tcp_congestion_ops cc_plain = {
	.ssthresh = (void *)cc_ssthresh,
	.cong_avoid = (void *)cc_cong_avoid,
	.undo_cwnd = (void *)UNDO,
	.name = CC_PLAIN_NAME,
#ifdef NO_LINK
	.init = (void *)cc_init,
#endif
};

char LICENSE[] SEC("license") = "GPL";
