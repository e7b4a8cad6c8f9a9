// SPDX-License-Identifier: GPL-2.0
/* BTF-defined maps (SEC(".maps")) of the common types and definition attributes:
 * key/value by type and by size, map_flags, pinning, numa_node, ringbuf sizes
 * (aligned and one libbpf rounds up at open), maps without keys (queue/stack; the bloom
 * filter, Linux 5.16+, is in obj_bloom.c so that this object loads on older kernels),
 * map-in-map (ARRAY_OF_MAPS / HASH_OF_MAPS with __array(values, inner) and initial
 * .values), prog_array with initial .values = { [i] = &prog }.
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

struct flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
};

struct flow_stats {
	__u64 packets;
	__u64 bytes;
	__u64 last_seen_ns;
};

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, struct flow_stats);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} arr SEC(".maps");

/* key/value given by size only (no BTF key/value types) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32);
	__uint(key_size, 6);
	__uint(value_size, 12);
} sized_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, struct flow_stats);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pcpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} pcpu_arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
} lru_pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* not a power-of-2 multiple of the page size: libbpf 1.1 rounds it up at open */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 10000);
} events_odd SEC(".maps");

/* max_entries 0: libbpf sets it to the number of possible CPUs at create, not at open */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1024);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 255);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 64);
	__type(value, __u32);
} fifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 64);
	__type(value, __u64);
} lifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NUMA_NODE);
	__uint(numa_node, 0);
} numa_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
	__uint(map_flags, BPF_F_MMAPABLE | BPF_F_RDONLY_PROG);
} mmapable SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} devs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} socks SEC(".maps");

/* ---- map in map ---- */

struct inner_arr {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct inner_hash {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} inner_h SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner_arr);
} outer_arr SEC(".maps") = {
	.values = { [0] = &inner_a, [2] = &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 16);
	__type(key, __u32);
	__array(values, struct inner_hash);
} outer_hash SEC(".maps") = {
	.values = { [1] = &inner_h },
};

/* inner map declared inline, no initial values */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_RINGBUF);
		__uint(max_entries, 4096);
	});
} outer_rb SEC(".maps");

/* ---- prog array with initial values ---- */

SEC("xdp")
int tail_a(struct xdp_md *ctx) { return XDP_PASS; }

SEC("xdp")
int tail_b(struct xdp_md *ctx) { return XDP_DROP; }

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 8);
	__uint(key_size, sizeof(__u32));
	__array(values, int (void *));
} jmp_table SEC(".maps") = {
	.values = { [0] = (void *)&tail_a, [3] = (void *)&tail_b },
};

SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v;
	struct flow_key fk = {};
	struct flow_stats *st;
	void *inner;
	__u32 q = 7;

	v = bpf_map_lookup_elem(&arr, &k);
	if (v)
		*v += 1;
	st = bpf_map_lookup_elem(&flows, &fk);
	if (st)
		st->packets++;
	inner = bpf_map_lookup_elem(&outer_arr, &k);
	if (inner)
		bpf_map_lookup_elem(inner, &k);
	bpf_map_push_elem(&fifo, &q, 0);
	bpf_tail_call(ctx, &jmp_table, 0);
	return XDP_PASS;
}

SEC("tp/sched/sched_process_exec")
int on_exec(void *ctx)
{
	__u32 *slot = bpf_ringbuf_reserve(&events, sizeof(__u32), 0);
	__u64 pid = bpf_get_current_pid_tgid();

	if (slot) {
		*slot = (__u32)pid;
		bpf_ringbuf_submit(slot, 0);
	}
	bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &pid, sizeof(pid));
	bpf_get_stackid(ctx, &stacks, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
