/* SPDX-License-Identifier: Apache-2.0 */
/* Loads, stores and atomics for the instruction codec and disassembler tests.
 *
 * C gives LDX/STX of every size, sign-extending loads (-mcpu=v4), stores of immediates,
 * and atomics through the __sync builtins (32-bit fetch forms need -mcpu>=v3).
 * -DINSN_ASM adds every load/store/atomic form and the legacy LD_ABS/LD_IND packet loads.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct rec {
	__u8 b;
	__s8 sb;
	__u16 h;
	__s16 sh;
	__u32 w;
	__s32 sw;
	__u64 dw;
};

struct rec shared;
__u32 counter32;
__u64 counter64;
volatile __s64 out_s64;

SEC("socket")
int loads_stores(struct __sk_buff *skb)
{
	struct rec local = {};
	struct rec *g = &shared;
	__s64 sum;

	local.b = g->b + 1;
	local.h = g->h + 2;
	local.w = g->w + 3;
	local.dw = g->dw + 4;
	sum = g->sb + g->sh + (__s64)g->sw; /* ldsx with -mcpu=v4 */
	g->b = 7;       /* BPF_ST stores of immediates with -mcpu=v4 */
	g->h = 0x1234;
	g->w = 0xdeadbeef;
	g->dw = 42;
	out_s64 = sum + local.b + local.h + local.w + local.dw;
	bpf_probe_read_kernel(&local, sizeof(local), g);
	return local.sb;
}

SEC("socket")
int atomics(struct __sk_buff *skb)
{
	__u64 r = 0;

	__sync_fetch_and_add(&counter64, 1);
	__sync_fetch_and_or(&counter64, 2);
	__sync_fetch_and_and(&counter64, 3);
	__sync_fetch_and_xor(&counter64, 4);
	r += __sync_fetch_and_add(&counter64, 5);
	r += __sync_fetch_and_or(&counter64, 6);
	r += __sync_fetch_and_and(&counter64, 7);
	r += __sync_fetch_and_xor(&counter64, 8);
	r += __sync_lock_test_and_set(&counter64, 9);
	r += __sync_val_compare_and_swap(&counter64, 10, 11);
	__sync_fetch_and_add(&counter32, 1);
#ifdef __BPF_FEATURE_ALU32
	/* 32-bit fetch forms exist only with alu32 (-mcpu>=v3) */
	r += __sync_fetch_and_add(&counter32, 2);
	r += __sync_fetch_and_or(&counter32, 3);
	r += __sync_lock_test_and_set(&counter32, 4);
	r += __sync_val_compare_and_swap(&counter32, 5, 6);
#endif
	return (int)r;
}

#ifdef INSN_ASM
SEC("socket")
int mem_asm(void *ctx)
{
	asm volatile(
		"r6 = r1\n"
		/* LDX MEM and MEMSX */
		"r1 = *(u8 *)(r2 + 0)\n r1 = *(u16 *)(r2 - 2)\n r1 = *(u32 *)(r10 - 4)\n"
		"r1 = *(u64 *)(r2 + 0x7fff)\n r1 = *(s8 *)(r2 - 0x8000)\n r1 = *(s16 *)(r2 + 2)\n"
		"r1 = *(s32 *)(r2 + 4)\n w1 = *(u8 *)(r2 + 0)\n w1 = *(u16 *)(r2 + 0)\n w1 = *(u32 *)(r2 + 0)\n"
		/* ST MEM */
		"*(u8 *)(r10 - 1) = 1\n *(u16 *)(r10 - 2) = -2\n *(u32 *)(r10 - 4) = 3\n"
		"*(u64 *)(r10 - 8) = -0x80000000\n"
		/* STX MEM */
		"*(u8 *)(r2 + 1) = r1\n *(u16 *)(r2 + 2) = r1\n *(u32 *)(r2 + 4) = r1\n"
		"*(u64 *)(r2 + 8) = r1\n *(u8 *)(r2 + 1) = w1\n *(u16 *)(r2 + 2) = w1\n *(u32 *)(r2 + 4) = w1\n"
		/* STX ATOMIC, 64-bit */
		"lock *(u64 *)(r2 + 0) += r1\n lock *(u64 *)(r2 + 0) |= r1\n"
		"lock *(u64 *)(r2 + 0) &= r1\n lock *(u64 *)(r2 + 0) ^= r1\n"
		"r1 = atomic_fetch_add((u64 *)(r2 + 0), r1)\n r1 = atomic_fetch_or((u64 *)(r2 + 0), r1)\n"
		"r1 = atomic_fetch_and((u64 *)(r2 + 0), r1)\n r1 = atomic_fetch_xor((u64 *)(r2 + 0), r1)\n"
		"r1 = xchg_64(r2 + 8, r1)\n r0 = cmpxchg_64(r2 - 8, r0, r1)\n"
		/* STX ATOMIC, 32-bit */
		"lock *(u32 *)(r2 + 0) += w1\n lock *(u32 *)(r2 + 0) |= w1\n"
		"lock *(u32 *)(r2 + 0) &= w1\n lock *(u32 *)(r2 + 0) ^= w1\n"
		"w1 = atomic_fetch_add((u32 *)(r2 + 0), w1)\n w1 = atomic_fetch_or((u32 *)(r2 + 0), w1)\n"
		"w1 = atomic_fetch_and((u32 *)(r2 + 0), w1)\n w1 = atomic_fetch_xor((u32 *)(r2 + 0), w1)\n"
		"w1 = xchg32_32(r2 + 0, w1)\n w0 = cmpxchg32_32(r2 + 0, w0, w1)\n"
		/* LD ABS / IND (legacy packet access, skb in r6) */
		"r0 = *(u8 *)skb[0]\n r0 = *(u16 *)skb[12]\n r0 = *(u32 *)skb[-4]\n"
		"r0 = *(u8 *)skb[r7]\n r0 = *(u16 *)skb[r7]\n r0 = *(u32 *)skb[r7]\n"
		::: "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "memory");
	return 0;
}
#endif

char _license[] SEC("license") = "GPL";
