// SPDX-License-Identifier: GPL-2.0
/* Subprogram linking in a realistic shape: several entry programs sharing a web of
 * .text functions, so that the order in which the linker appends subprograms (libbpf:
 * depth first, in call-instruction order, once per main program) and the call /
 * BPF_PSEUDO_FUNC offsets it patches are exercised. Written for the bpfobj
 * prepare-parity test.
 *
 *  .text functions:
 *    leaf           static __noinline, called from mid, loop_cb and two programs
 *    mid            static __noinline, calls leaf twice (nested)
 *    add_counter    static __noinline, map reference (counters) from .text
 *    task_tgid      static __noinline, CO-RE BPF_CORE_READ inside .text (the CO-RE
 *                   relocation belongs to the subprogram, before it is appended)
 *    global_score   global __noinline (verified on its own), calls mid, reads .data
 *    global_account global __noinline, calls add_counter, bumps a .bss counter
 *    hidden_clamp   __hidden global __noinline
 *    weak_bias      __weak global __noinline
 *    loop_cb        bpf_loop callback (ld_imm64 BPF_PSEUDO_FUNC), calls leaf, reads .rodata
 *    sum_cb         bpf_for_each_map_elem callback
 *  programs (each calls the functions in a different order, so each gets its own
 *  append order):
 *    fork_prog   tracepoint/sched/sched_process_fork: global_score, add_counter,
 *                bpf_loop(loop_cb), task_tgid, weak_bias
 *    xdp_prog    xdp: bpf_loop(loop_cb), leaf, global_account, hidden_clamp
 *    rawtp_prog  raw_tp/sys_enter: mid, bpf_for_each_map_elem(sum_cb), global_score,
 *                task_tgid
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, u32);
	__type(value, u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u64);
} per_tgid SEC(".maps");

const volatile __u32 loop_limit = 16;
const volatile __u32 bias = 5;
int scale = 3;
__u64 calls_total;

struct loop_state {
	__u64 sum;
	__u32 stop_at;
};

static __noinline int leaf(int x)
{
	return (x & 0xff) + 1;
}

static __noinline int mid(int x)
{
	return leaf(x) + leaf(x >> 8);
}

static __noinline u64 add_counter(u32 slot, u64 by)
{
	u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (!v)
		return 0;
	__sync_fetch_and_add(v, by);
	return *v;
}

static __noinline u32 task_tgid(struct task_struct *task)
{
	return BPF_CORE_READ(task, tgid) ^ BPF_CORE_READ(task, real_parent, pid);
}

__noinline int global_score(int x)
{
	if (x < 0)
		return 0;
	return mid(x) * scale;
}

__noinline int global_account(u32 slot)
{
	__sync_fetch_and_add(&calls_total, 1);
	return (int)add_counter(slot & 7, 1);
}

__hidden __noinline int hidden_clamp(int x)
{
	return x > 1000 ? 1000 : x;
}

__weak __noinline int weak_bias(int x)
{
	return x + bias;
}

static long loop_cb(u32 index, void *data)
{
	struct loop_state *st = data;

	st->sum += leaf(index);
	return index >= st->stop_at || index >= loop_limit ? 1 : 0;
}

static long sum_cb(struct bpf_map *map, u32 *key, u64 *val, void *data)
{
	u64 *total = data;

	*total += *val;
	return 0;
}

SEC("tracepoint/sched/sched_process_fork")
int fork_prog(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct loop_state st = { .stop_at = 8 };
	u32 tgid;
	u64 v;

	v = global_score((int)bpf_get_prandom_u32());
	add_counter(0, v);
	bpf_loop(loop_limit, loop_cb, &st, 0);
	tgid = task_tgid(task);
	v = st.sum + weak_bias(tgid);
	bpf_map_update_elem(&per_tgid, &tgid, &v, BPF_ANY);
	return 0;
}

SEC("xdp")
int xdp_prog(struct xdp_md *ctx)
{
	struct loop_state st = { .stop_at = 4 };
	int len = ctx->data_end - ctx->data;

	bpf_loop(4, loop_cb, &st, 0);
	len = leaf(len) + (int)st.sum;
	global_account((u32)len);
	return hidden_clamp(len) > 0 ? XDP_PASS : XDP_DROP;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(rawtp_prog, struct pt_regs *regs, long id)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u64 total = 0;
	u32 tgid;

	total = mid((int)id);
	bpf_for_each_map_elem(&counters, sum_cb, &total, 0);
	total += global_score((int)total);
	tgid = task_tgid(task);
	bpf_map_update_elem(&per_tgid, &tgid, &total, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
