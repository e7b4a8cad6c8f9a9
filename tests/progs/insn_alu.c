/* SPDX-License-Identifier: Apache-2.0 */
/* Arithmetic instructions for the instruction codec and disassembler tests
 * (tests/test_insn_codec.py, tests/test_disasm.py).
 *
 * The C part lets clang pick encodings, which differ per -mcpu: v1/v2 64-bit only, v3 adds
 * ALU32 (w registers), v4 adds sdiv/smod, movsx and bswap. With -DINSN_ASM an inline-asm
 * block also spells out every ALU/ALU64 form, whatever the cpu: the assembler accepts them
 * all, the kernel would not (the block is never meant to be loaded).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

volatile __u64 in_u64 = 0x1234;
volatile __s64 in_s64 = -77;
volatile __u32 in_u32 = 99;
volatile __s32 in_s32 = -5;
volatile __u64 out_u64;
volatile __s64 out_s64;
volatile __u32 out_u32;
volatile __s32 out_s32;

SEC("socket")
int alu64_ops(struct __sk_buff *skb)
{
	__u64 a = in_u64, b = in_u64 | 1;
	__s64 s = in_s64, t = in_s64 | 1;

	out_u64 = a + b;
	out_u64 = a - 7;
	out_u64 = a * b;
	out_u64 = a * 13;
	out_u64 = a / b;
	out_u64 = a / 10;
	out_u64 = a % b;
	out_u64 = a % 10;
	out_u64 = a | 0x40;
	out_u64 = a & b;
	out_u64 = a ^ 0x55;
	out_u64 = a << (b & 63);
	out_u64 = a >> 3;
	out_s64 = s >> (t & 63);
	out_s64 = s >> 5;
	out_s64 = -s;
#ifdef __BPF_FEATURE_SDIV_SMOD
	out_s64 = s / t;     /* sdiv: -mcpu=v4 only, older cpus cannot divide signed */
	out_s64 = s % 7;     /* smod */
#endif
	out_s64 = (__s8)a;   /* movsx with -mcpu=v4 */
	out_s64 = (__s16)a;
	out_s64 = (__s32)a;
	out_u64 = __builtin_bswap64(a); /* be64/le64, bswap64 with -mcpu=v4 */
	out_u64 = 0xfffffffffffffff0ULL;
	return skb->len;
}

SEC("socket")
int alu32_ops(struct __sk_buff *skb)
{
	__u32 a = in_u32, b = in_u32 | 1;
	__s32 s = in_s32, t = in_s32 | 1;

	out_u32 = a + b;
	out_u32 = a - b;
	out_u32 = a * 3;
	out_u32 = a / b;
	out_u32 = a % 6;
	out_u32 = a | b;
	out_u32 = a & 0xff;
	out_u32 = a ^ b;
	out_u32 = a << 4;
	out_u32 = a >> (b & 31);
	out_s32 = s >> 2;
	out_s32 = -s;
#ifdef __BPF_FEATURE_SDIV_SMOD
	out_s32 = s / t;
	out_s32 = s % t;
#endif
	out_s32 = (__s8)a;
	out_s32 = (__s16)a;
	out_u32 = __builtin_bswap32(a);
	out_u32 = __builtin_bswap16((__u16)a);
	return 0;
}

#ifdef INSN_ASM
SEC("socket")
int alu_asm(void *ctx)
{
	asm volatile(
		/* ALU64, source K and X */
		"r1 += 1\n r1 += r2\n r1 -= -1\n r1 -= r2\n r1 *= 0x7fffffff\n r1 *= r2\n"
		"r1 /= 3\n r1 /= r2\n r1 s/= -3\n r1 s/= r2\n r1 %%= 3\n r1 %%= r2\n"
		"r1 s%%= 3\n r1 s%%= r2\n r1 |= 0x10\n r1 |= r2\n r1 &= 0xff\n r1 &= r2\n"
		"r1 <<= 63\n r1 <<= r2\n r1 >>= 1\n r1 >>= r2\n r1 s>>= 2\n r1 s>>= r2\n"
		"r1 ^= -0x80000000\n r1 ^= r2\n r1 = -r1\n r9 = 5\n r9 = r10\n"
		"r1 = (s8)r2\n r1 = (s16)r2\n r1 = (s32)r2\n"
		"r3 = bswap16 r3\n r3 = bswap32 r3\n r3 = bswap64 r3\n"
		"r1 = addr_space_cast(r2, 1, 0)\n r1 = addr_space_cast(r2, 0, 1)\n"
		/* ALU, source K and X */
		"w1 += 1\n w1 += w2\n w1 -= 1\n w1 -= w2\n w1 *= 3\n w1 *= w2\n"
		"w1 /= 3\n w1 /= w2\n w1 s/= 3\n w1 s/= w2\n w1 %%= 3\n w1 %%= w2\n"
		"w1 s%%= 3\n w1 s%%= w2\n w1 |= 1\n w1 |= w2\n w1 &= 1\n w1 &= w2\n"
		"w1 <<= 31\n w1 <<= w2\n w1 >>= 1\n w1 >>= w2\n w1 s>>= 1\n w1 s>>= w2\n"
		"w1 ^= 1\n w1 ^= w2\n w1 = -w1\n w1 = 0xffffffff\n w1 = w2\n"
		"w1 = (s8)w2\n w1 = (s16)w2\n"
		/* BPF_END in the ALU class: to_le / to_be */
		"r4 = le16 r4\n r4 = le32 r4\n r4 = le64 r4\n"
		"r4 = be16 r4\n r4 = be32 r4\n r4 = be64 r4\n"
		::: "r1", "r2", "r3", "r4", "r9");
	return 0;
}
#endif

char _license[] SEC("license") = "GPL";
