// SPDX-License-Identifier: GPL-2.0
/* C values whose layout clang computes: tests/test_value_codec.py encodes the same Python
 * values through the object's BTF (bpfobj.maps.Codec, what map keys/values and ring buffer
 * records go through) and compares with the bytes clang put in .data. */
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum color { RED = 1, GREEN = 2, BLUE = -3 };		/* signed: kind_flag set */
enum big { SMALL = 1, BIG = 0x1122334455667788ULL };	/* ENUM64 */

struct inner {
	__u16 a;
	__s8 b;
};

struct value {
	__u8 u8;
	__s16 s16;
	__u32 u32;
	__s64 s64;
	_Bool flag;
	char name[8];
	__u8 raw[4];
	unsigned int bf_u : 3;
	int bf_s : 5;
	unsigned long long bf_wide : 40;
	enum color color;
	enum big big;
	float f;
	double d;
	struct inner pair[2];
	union {
		__u32 word;
		__u8 bytes[4];
	};
	struct {
		__u16 x;
		__u16 y;
	};
	void *ptr;
	const volatile __u32 cv;
};

struct value expected = {
	.u8 = 200,
	.s16 = -2,
	.u32 = 0xdeadbeef,
	.s64 = -(1LL << 40),
	.flag = 1,
	.name = "bpf",
	.raw = { 1, 2, 3, 4 },
	.bf_u = 5,
	.bf_s = -7,
	.bf_wide = 0xabcdef0123ULL,
	.color = BLUE,
	.big = BIG,
	.f = 1.5f,
	.d = -2.25,
	.pair = { { .a = 1, .b = -1 }, { .a = 65535, .b = 127 } },
	.word = 0x04030201,
	.x = 7,
	.y = 9,
	.ptr = 0,
	.cv = 42,
};

SEC("xdp")
int read_expected(void *ctx)
{
	return expected.u32 & 1;
}
