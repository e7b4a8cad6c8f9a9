// SPDX-License-Identifier: GPL-2.0
/* Attach test object (integration/test_attach.py): USDT programs written with libbpf's
 * <bpf/usdt.bpf.h>, for the bpfobj:hit probes of attach_usdt_target.c. on_usdt is attached
 * by hand; on_usdt_sec names the target in its section (USDT_TARGET, a -D define with the
 * helper's path), for attach_all.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "GPL";

#ifndef USDT_TARGET
#define USDT_TARGET "/nonexistent/attach_usdt_target"
#endif

__u64 usdt_hits = 0;
__u64 usdt_sum_a = 0;
__u64 usdt_sum_b = 0;
__u64 usdt_sum_c = 0;
__u64 usdt_cookie = 0;
__u64 usdt_arg_cnt = 0;
__u64 usdt_sec_hits = 0;

SEC("usdt")
int BPF_USDT(on_usdt, long a, long b, int c)
{
	__sync_fetch_and_add(&usdt_hits, 1);
	__sync_fetch_and_add(&usdt_sum_a, a);
	__sync_fetch_and_add(&usdt_sum_b, b);
	__sync_fetch_and_add(&usdt_sum_c, c);
	usdt_cookie = bpf_usdt_cookie(ctx);
	usdt_arg_cnt = bpf_usdt_arg_cnt(ctx);
	return 0;
}

SEC("usdt/" USDT_TARGET ":bpfobj:hit")
int BPF_USDT(on_usdt_sec)
{
	__sync_fetch_and_add(&usdt_sec_hits, 1);
	return 0;
}
