/* SPDX-License-Identifier: Apache-2.0 */
/* 64-bit immediate loads (two instruction slots) for the codec and disassembler tests.
 *
 * C gives 64-bit constants, map and global-variable addresses (relocated ld_imm64 with
 * src_reg 0 in the object) and a callback address. -DINSN_ASM adds ld_imm64 with every
 * BPF_PSEUDO_* src_reg value and extreme constants.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

__u64 global_counter = 5;
const volatile __u64 tunable = 0x1122334455667788ULL;

static int each_cb(__u32 index, void *ctx)
{
	return index >= 3;
}

SEC("socket")
int imm64_loads(struct __sk_buff *skb)
{
	__u32 key = 1;
	__u64 *v = bpf_map_lookup_elem(&values, &key);
	__u64 big = 0x8000000000000000ULL | skb->len;

	if (v)
		*v += 0x123456789abcdefULL;
	global_counter += tunable;
	bpf_loop(4, each_cb, 0, 0);
	return (int)(big >> 60) + (int)(0xffffffff00000000ULL >> (skb->mark & 63));
}

#ifdef INSN_ASM
SEC("socket")
int ld64_asm(void *ctx)
{
	asm volatile(
		"r1 = 0 ll\n r1 = -1 ll\n r1 = 0x7fffffffffffffff ll\n r1 = 0xffffffff ll\n"
		"r10 = 0x100000000 ll\n"
		"ld_pseudo r1, 1, 3\n ld_pseudo r1, 2, 4\n ld_pseudo r1, 3, 0x1234\n"
		"ld_pseudo r1, 4, 2\n ld_pseudo r1, 5, 0\n ld_pseudo r1, 6, 1\n"
		::: "r1");
	return 0;
}
#endif

char _license[] SEC("license") = "GPL";
