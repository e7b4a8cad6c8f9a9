// SPDX-License-Identifier: GPL-2.0
/* Legacy (pre-BTF) map definitions: `struct bpf_map_def SEC("maps")`, the layout that
 * samples/bpf and libbpf < 1.0 used. Each definition is a 20-byte record found through its
 * symbol in the "maps" section; there is no BTF for key/value. libbpf >= 1.0 refuses to
 * open such an object ("legacy map definitions in 'maps' section are not supported").
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

/* bpf_helpers.h of libbpf >= 1.0 no longer declares it. */
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_counts = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 64,
};

struct bpf_map_def SEC("maps") legacy_hash = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 1024,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct bpf_map_def SEC("maps") legacy_progs = {
	.type = BPF_MAP_TYPE_PROG_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 4,
};

SEC("socket")
int legacy_socket(struct __sk_buff *skb)
{
	__u32 key = skb->protocol & 63;
	__u64 *v = bpf_map_lookup_elem(&legacy_counts, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	bpf_tail_call(skb, &legacy_progs, 0);
	return 0;
}

SEC("kprobe/__x64_sys_write")
int legacy_kprobe(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u32 one = 1;

	bpf_map_update_elem(&legacy_hash, &pid, &one, BPF_NOEXIST);
	return 0;
}

char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0xFFFFFFFE;
