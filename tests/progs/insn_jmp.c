/* SPDX-License-Identifier: Apache-2.0 */
/* Jumps, calls and exits for the instruction codec and disassembler tests.
 *
 * C gives conditional jumps (JMP32 with -mcpu>=v3), helper calls, subprogram calls
 * (src_reg 1), a kfunc call (src_reg 2), a callback address (ld_imm64) and exits.
 * -DINSN_ASM adds every jump operation with K and X sources in JMP and JMP32, gotol,
 * may_goto and callx.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

volatile __u64 in_u64 = 3;
volatile __s64 in_s64 = -3;
volatile __u32 in_u32 = 4;
volatile __s32 in_s32 = -4;
volatile __u64 out_u64;

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

static __noinline int sub_leaf(int x)
{
	return x * 3 + (int)in_u32;
}

static __noinline int sub_mid(int x)
{
	if (x > 10)
		return sub_leaf(x - 1);
	return sub_leaf(x + 1) + 2;
}

__noinline int global_sub(__u64 x)
{
	return x ? (int)(x >> 1) : -1;
}

static int loop_cb(__u32 index, void *ctx)
{
	*(__u64 *)ctx += index;
	return index > 5;
}

SEC("socket")
int jumps(struct __sk_buff *skb)
{
	__u64 a = in_u64, r = 0;
	__s64 s = in_s64;
	__u32 w = in_u32;
	__s32 sw = in_s32;

	if (a == 7) r += 1;
	if (a != skb->len) r += 2;
	if (a > 100) r += 3;
	if (a >= skb->mark) r += 4;
	if (a < 9) r += 5;
	if (a <= skb->priority) r += 6;
	if (s > -2) r += 7;
	if (s >= (__s64)a) r += 8;
	if (s < -9) r += 9;
	if (s <= 0) r += 10;
	if (a & 0x10) r += 11;
	if (w == 3) r += 12;
	if (w > skb->len) r += 13;
	if (sw < -1) r += 14;
	if (sw >= (__s32)w) r += 15;
	for (int i = 0; i < (int)(a & 15); i++)
		r += i * a;
	out_u64 = r;
	return sub_mid((int)r) + global_sub(r);
}

SEC("socket")
int calls(struct __sk_buff *skb)
{
	__u64 acc = 0;

	bpf_rcu_read_lock();
	acc = bpf_get_prandom_u32();
	bpf_rcu_read_unlock();
	bpf_loop(8, loop_cb, &acc, 0);
	acc += bpf_ktime_get_ns();
	return (int)acc;
}

#ifdef INSN_ASM
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define KFUNC_CALL_BYTES ".byte 0x85, 0x20, 0x00, 0x00, 0x34, 0x12, 0x00, 0x00\n"
#else
#define KFUNC_CALL_BYTES ".byte 0x85, 0x02, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34\n"
#endif

SEC("socket")
int jmp_asm(void *ctx)
{
	asm volatile(
		"if r1 == 1 goto +0\n if r1 == r2 goto +0\n if r1 != -1 goto +0\n if r1 != r2 goto +0\n"
		"if r1 > 2 goto +0\n if r1 > r2 goto +0\n if r1 >= 3 goto +0\n if r1 >= r2 goto +0\n"
		"if r1 < 4 goto +0\n if r1 < r2 goto +0\n if r1 <= 5 goto +0\n if r1 <= r2 goto +0\n"
		"if r1 s> 6 goto +0\n if r1 s> r2 goto +0\n if r1 s>= 7 goto +0\n if r1 s>= r2 goto +0\n"
		"if r1 s< 8 goto +0\n if r1 s< r2 goto +0\n if r1 s<= 9 goto +0\n if r1 s<= r2 goto +0\n"
		"if r1 & 0x80 goto +0\n if r1 & r2 goto +0\n"
		"if w1 == 1 goto +0\n if w1 == w2 goto +0\n if w1 != 1 goto +0\n if w1 != w2 goto +0\n"
		"if w1 > 2 goto +0\n if w1 > w2 goto +0\n if w1 >= 3 goto +0\n if w1 >= w2 goto +0\n"
		"if w1 < 4 goto +0\n if w1 < w2 goto +0\n if w1 <= 5 goto +0\n if w1 <= w2 goto +0\n"
		"if w1 s> 6 goto +0\n if w1 s> w2 goto +0\n if w1 s>= 7 goto +0\n if w1 s>= w2 goto +0\n"
		"if w1 s< 8 goto +0\n if w1 s< w2 goto +0\n if w1 s<= 9 goto +0\n if w1 s<= w2 goto +0\n"
		"if w1 & 0x80 goto +0\n if w1 & w2 goto +0\n"
		"goto +1\n r0 = 0\n goto -1\n gotol +1\n r0 = 1\n gotol -3\n"
		"may_goto +1\n r0 = 2\n callx r3\n call 1\n"
		/* a kfunc call as libbpf leaves it (src_reg 2, BTF id 0x1234): no asm syntax */
		KFUNC_CALL_BYTES
		::: "r0", "r1", "r2", "r3", "r4", "r5");
	return 0;
}
#endif

char _license[] SEC("license") = "GPL";
