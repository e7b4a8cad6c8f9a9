// SPDX-License-Identifier: GPL-2.0
/* Several programs per section, static and global subprograms, callbacks.
 *
 * - two programs in SEC("tp/syscalls/sys_enter_openat") and two in SEC("xdp");
 * - static __noinline subprograms (local FUNC symbols in .text), one shared by
 *   programs of different sections, one calling another (nested);
 * - global __noinline subprograms (GLOBAL FUNC in .text, verified separately by the
 *   kernel), one of them __hidden (libbpf marks its BTF FUNC static);
 * - callbacks: bpf_loop and bpf_for_each_map_elem with static callbacks
 *   (ld_imm64 BPF_PSEUDO_FUNC relocations against .text).
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

static __noinline __u64 bump(__u32 slot, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (!v)
		return 0;
	__sync_fetch_and_add(v, by);
	return *v;
}

static __noinline __u64 bump_twice(__u32 slot)
{
	return bump(slot, 1) + bump(slot + 1, 2);
}

__noinline int global_weight(int x)
{
	if (x < 0)
		return 0;
	return x * 3 + 1;
}

__hidden __noinline int hidden_weight(int x)
{
	return x > 7 ? 7 : x;
}

struct loop_ctx {
	__u64 sum;
	__u32 limit;
};

static long loop_body(__u32 index, void *data)
{
	struct loop_ctx *c = data;

	c->sum += index;
	return index >= c->limit ? 1 : 0;
}

static long count_elem(void *map, __u32 *key, __u64 *val, void *data)
{
	__u64 *total = data;

	*total += *val;
	return 0;
}

SEC("tp/syscalls/sys_enter_openat")
int openat_first(void *ctx)
{
	struct loop_ctx c = { .sum = 0, .limit = 10 };

	bpf_loop(32, loop_body, &c, 0);
	bump(0, c.sum);
	return global_weight((int)c.sum);
}

SEC("tp/syscalls/sys_enter_openat")
int openat_second(void *ctx)
{
	__u64 total = 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	bpf_for_each_map_elem(&counters, count_elem, &total, 0);
	bpf_map_update_elem(&seen, &pid, &total, BPF_ANY);
	return (int)bump_twice(2);
}

SEC("xdp")
int xdp_pass_one(struct xdp_md *ctx)
{
	bump(4, 1);
	return hidden_weight(ctx->ingress_ifindex) >= 0 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int xdp_pass_two(struct xdp_md *ctx)
{
	return global_weight(ctx->rx_queue_index) > 0 ? XDP_PASS : XDP_ABORTED;
}

SEC("raw_tp/sys_exit")
int raw_exit(void *ctx)
{
	struct loop_ctx c = { .sum = 1, .limit = 3 };

	bpf_loop(4, loop_body, &c, 0);
	return (int)bump_twice(6) + hidden_weight((int)c.sum);
}

char LICENSE[] SEC("license") = "GPL";
