// SPDX-License-Identifier: GPL-2.0
/* Loaded into the running kernel by integration/test_maps.py and test_load.py, and run
 * with BPF_PROG_TEST_RUN (no attaching); loads on Linux 5.10. XDP programs that write every
 * common map type and the globals, read map-in-map and LPM entries back, pop the queue: each
 * takes its arguments from the test packet and writes its results back into it (the test
 * run returns the packet); an XDP entry that tail-calls through a prog array with initial
 * values; a tc program. (The bloom filter, Linux 5.16+, is tested with obj_bloom.c; a
 * SEC("syscall") program's context, Linux 5.14+, with load_syscall.c.)
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

struct stats {
	__u64 count;
	__u64 sum;
};

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct event {
	__u32 key;
	__u32 pad;
	__u64 value;
};

/* the arguments of update_maps and read_inner: the start of the test packet, filled by the
 * test; the programs write out and out2 into it, and the test reads them from the packet
 * the test run returns */
struct args {
	__u32 key;
	__u32 pad;
	__u64 value;
	__u64 out;
	__u64 out2;
};

struct cfg {
	__u32 id;
	__u16 flags;
	__u8 enabled;
	char name[9];
};

/* globals */
const volatile __u32 multiplier = 3;           /* .rodata: set from Python before load */
const volatile char greeting[8] = "hello";
__u64 counter;                                 /* .bss */
__u64 hits[4];
__u64 data_total = 100;                        /* .data */
struct cfg config = { .id = 7, .flags = 2, .enabled = 1, .name = "bpfobj" };
__u64 xdp_runs;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct stats);
} hash_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} array_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} pcpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct stats);
} pcpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 128);
	__type(key, __u64);
	__type(value, __u32);
} lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__type(key, struct lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 16);
	__type(value, __u32);
} fifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 16);
	__type(value, __u64);
} lifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} load_pinned SEC(".maps");

struct inner_arr {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} inner_a SEC(".maps"), inner_b SEC(".maps");

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
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct inner_arr);
} outer_hash SEC(".maps") = {
	.values = { [5] = &inner_b },
};

/* the packet's struct args, or NULL when the packet is shorter */
static __always_inline struct args *packet_struct(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + sizeof(struct args) > end)
		return NULL;
	return data;
}

/* every common map type, the ring buffer and the globals; returns value * multiplier's low
 * 16 bits (not an XDP action: the test run only reports it), -1 for a short packet */
SEC("xdp")
int update_maps(struct xdp_md *ctx)
{
	struct args *a = packet_struct(ctx);
	__u32 k, zero = 0;
	__u64 v, *p;
	struct stats *s, ns;
	struct event *e;

	if (!a)
		return -1;
	k = a->key;
	v = a->value * multiplier;
	ns.count = 1;
	ns.sum = v;
	s = bpf_map_lookup_elem(&hash_map, &k);
	if (s) {
		s->count++;
		s->sum += v;
	} else {
		bpf_map_update_elem(&hash_map, &k, &ns, BPF_ANY);
	}
	bpf_map_update_elem(&array_map, &k, &v, BPF_ANY);
	p = bpf_map_lookup_elem(&pcpu_array, &zero);
	if (p)
		*p += v;
	bpf_map_update_elem(&pcpu_hash, &k, &ns, BPF_ANY);
	bpf_map_update_elem(&lru, &v, &k, BPF_ANY);
	bpf_map_update_elem(&load_pinned, &k, &v, BPF_ANY);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->key = k;
		e->pad = 0;
		e->value = v;
		bpf_ringbuf_submit(e, 0);
	}
	counter++;
	hits[k & 3] += v;
	data_total += v;
	a->out = counter;
	a->out2 = greeting[0];
	return (int)(v & 0xffff);
}

/* out: inner_arr[0] of outer_arr[key]; out2: that of outer_hash[5]. Returns 0, or -1 for
 * an empty outer_arr slot, -2 for a missing inner value, -3 for an empty outer_hash[5],
 * -4 for a short packet */
SEC("xdp")
int read_inner(struct xdp_md *ctx)
{
	struct args *a = packet_struct(ctx);
	__u32 idx = 0, k, five = 5;
	__u32 *val;
	void *inner;

	if (!a)
		return -4;
	k = a->key;
	inner = bpf_map_lookup_elem(&outer_arr, &k);
	if (!inner)
		return -1;
	val = bpf_map_lookup_elem(inner, &idx);
	if (!val)
		return -2;
	a->out = *val;
	inner = bpf_map_lookup_elem(&outer_hash, &five);
	if (!inner)
		return -3;
	val = bpf_map_lookup_elem(inner, &idx);
	a->out2 = val ? *val : 0;
	return 0;
}

/* ---- the queue, the stack and the LPM trie ---- */

/* packet: u32 key, u64 value (unaligned, read by bytes) */
static __always_inline int packet_args(struct xdp_md *ctx, __u32 *key, __u64 *value)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + 12 > end)
		return -1;
	__builtin_memcpy(key, data, 4);
	__builtin_memcpy(value, data + 4, 8);
	return 0;
}

/* push to the queue and the stack; look the key up in the LPM trie as an IPv4
 * address and store what it finds at array_map[2] */
SEC("xdp")
int xdp_push(struct xdp_md *ctx)
{
	struct lpm_key lk = { .prefixlen = 32 };
	__u32 k, q, two = 2;
	__u64 v, found;
	__u32 *route;

	if (packet_args(ctx, &k, &v))
		return XDP_ABORTED;
	q = (__u32)v;
	bpf_map_push_elem(&fifo, &q, 0);
	bpf_map_push_elem(&lifo, &v, 0);
	__builtin_memcpy(lk.addr, &k, 4);
	route = bpf_map_lookup_elem(&routes, &lk);
	found = route ? *route : 0;
	bpf_map_update_elem(&array_map, &two, &found, BPF_ANY);
	return XDP_PASS;
}

/* pop the queue and the stack into array_map[3] and [4]; XDP_PASS if both had one */
SEC("xdp")
int xdp_pop(struct xdp_md *ctx)
{
	__u32 q = 0, three = 3, four = 4;
	__u64 s = 0, q64;
	int r1, r2;

	r1 = bpf_map_pop_elem(&fifo, &q);
	r2 = bpf_map_pop_elem(&lifo, &s);
	q64 = q;
	bpf_map_update_elem(&array_map, &three, &q64, BPF_ANY);
	bpf_map_update_elem(&array_map, &four, &s, BPF_ANY);
	return r1 == 0 && r2 == 0 ? XDP_PASS : XDP_DROP;
}

/* ---- XDP tail calls through a prog array with initial values ---- */

SEC("xdp")
int tail_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("xdp")
int tail_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__array(values, int (void *));
} jmp SEC(".maps") = {
	.values = { [0] = (void *)&tail_drop, [1] = (void *)&tail_tx },
};

SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 slot;

	__sync_fetch_and_add(&xdp_runs, 1);
	if (data + 1 > end)
		return XDP_ABORTED;
	slot = *(__u8 *)data;
	bpf_tail_call(ctx, &jmp, slot);
	return XDP_PASS; /* empty slot */
}

SEC("tc")
int tc_len(struct __sk_buff *skb)
{
	__u32 k = 1;
	__u64 len = skb->len;

	bpf_map_update_elem(&array_map, &k, &len, BPF_ANY);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
