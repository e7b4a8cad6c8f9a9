// SPDX-License-Identifier: GPL-2.0
/* A BPF_MAP_TYPE_BLOOM_FILTER map (Linux 5.16+; map_extra: the number of hash functions),
 * kept out of obj_maps.c and load_maps.c so that those load on older kernels. In the libbpf
 * parity catalogue (tests/objects.py) and run by integration/test_maps.py with
 * BPF_PROG_TEST_RUN: one XDP program adds the packet's key to the filter, one tests it.
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 64);
	__type(value, __u32);
	__uint(map_extra, 3); /* number of hash functions */
} bloom SEC(".maps");

/* the packet's first four bytes: the key */
static __always_inline int packet_key(struct xdp_md *ctx, __u32 *key)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + 4 > end)
		return -1;
	__builtin_memcpy(key, data, 4);
	return 0;
}

/* add the packet's key to the bloom filter */
SEC("xdp")
int xdp_bloom_add(struct xdp_md *ctx)
{
	__u32 k;

	if (packet_key(ctx, &k))
		return XDP_ABORTED;
	return bpf_map_push_elem(&bloom, &k, 0) == 0 ? XDP_PASS : XDP_DROP;
}

/* XDP_PASS when the packet's key may be in the bloom filter, XDP_DROP when it is not */
SEC("xdp")
int xdp_bloom(struct xdp_md *ctx)
{
	__u32 k;

	if (packet_key(ctx, &k))
		return XDP_ABORTED;
	return bpf_map_peek_elem(&bloom, &k) == 0 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
