// SPDX-License-Identifier: GPL-2.0
/* CO-RE field relocations (tests/test_core_*.py).
 *
 * Built twice: as is, it is the program (the local BTF and the relocations); with
 * -DTARGET=1 it only defines the same types with other layouts, and its .BTF is the target
 * BTF (btf_custom_path for libbpf); -DTARGET=2 defines none of them (no candidates).
 * Each program exercises one group so that a failing relocation (libbpf stops at the
 * first) only stops its own program: the tests relocate one program at a time.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define PAI __attribute__((preserve_access_index))

/* libbpf 1.1's bpf_core_read.h has no bpf_core_field_signed() */
#ifndef bpf_core_field_signed
#define bpf_core_field_signed(field...) \
	__builtin_preserve_field_info(___bpf_field_ref(field), BPF_FIELD_SIGNED)
#endif

#ifndef TARGET

struct cf_inner {
	int x;
	int y;
} PAI;

struct cf_sample {
	int a;                          /* 0 */
	long b;                         /* 8 */
	struct cf_inner in;             /* 16 */
	int arr[4];                     /* 24 */
	union {                         /* 40: anonymous union */
		int u1;
		long u2;
	};
	struct {                        /* 48: anonymous struct */
		short s1;
		short s2;
	};
	unsigned int cnt;               /* 52 */
	int sgn;                        /* 56 */
	void *ptr;                      /* 64 */
	char name[8];                   /* 72 */
	int gone;                       /* 80: not in the target */
	struct cf_inner objs[2];        /* 84 */
	int tail[];                     /* 100: flexible array */
} PAI;

struct cf_bits {
	unsigned int lo : 3;
	int mid : 7;
	unsigned long long wide : 40;
	unsigned int flag : 1;
	int plain;
} PAI;

/* a local flavor of struct cf_sample: its candidates are the target's cf_sample */
struct cf_sample___flav {
	long b;
	int a;
} PAI;

/* field whose type the target changes incompatibly (int -> struct) */
struct cf_kind {
	int v;
} PAI;

/* a bitfield the target makes unreadable with one 64-bit load */
struct cf_wide {
	unsigned long long v : 60;
} PAI;

__u64 out[64];

SEC("raw_tp/sys_enter")
int fields_offsets(__u64 *ctx)
{
	struct cf_sample *s = (void *)ctx[0];

	out[0] = bpf_core_field_offset(s->a);
	out[1] = bpf_core_field_offset(s->in.x);
	out[2] = bpf_core_field_offset(s->arr[3]);
	out[3] = bpf_core_field_offset(s->u2);
	out[4] = bpf_core_field_offset(s->s2);
	out[5] = bpf_core_field_offset(s->tail[5]);
	out[6] = bpf_core_field_offset(s->objs[1].y);
	out[7] = bpf_core_field_size(s->name);
	out[8] = bpf_core_field_size(s->cnt);
	out[9] = bpf_core_field_exists(s->gone);
	out[10] = bpf_core_field_exists(s->a);
	out[11] = bpf_core_field_signed(s->sgn);
	out[12] = bpf_core_field_signed(s->cnt);
	out[13] = bpf_core_field_size(s->arr[1]);
	out[14] = bpf_core_field_offset(s->gone);
	out[15] = bpf_core_field_size(s->ptr);
	return 0;
}

SEC("raw_tp/sys_enter")
int fields_access(__u64 *ctx)
{
	struct cf_sample *s = (void *)ctx[0];

	out[20] = s->a;
	out[21] = s->cnt;
	out[22] = (__u64)s->ptr;
	out[23] = s->in.y;
	s->b = 7;
	s->in.x = (int)ctx[1];
	return 0;
}

SEC("raw_tp/sys_enter")
int fields_signed_resize(__u64 *ctx)
{
	struct cf_sample *s = (void *)ctx[0];

	out[24] = s->sgn;
	return 0;
}

SEC("raw_tp/sys_enter")
int fields_missing(__u64 *ctx)
{
	struct cf_sample *s = (void *)ctx[0];

	if (bpf_core_field_exists(s->gone))
		out[25] = s->gone;
	out[26] = bpf_core_field_offset(s->objs[1].x);
	return 0;
}

SEC("raw_tp/sys_enter")
int fields_bits(__u64 *ctx)
{
	struct cf_bits *b = (void *)ctx[0];

	out[30] = BPF_CORE_READ_BITFIELD(b, lo);
	out[31] = BPF_CORE_READ_BITFIELD(b, mid);
	out[32] = BPF_CORE_READ_BITFIELD(b, wide);
	out[33] = BPF_CORE_READ_BITFIELD(b, flag);
	out[34] = BPF_CORE_READ_BITFIELD(b, plain);
	return 0;
}

SEC("raw_tp/sys_enter")
int fields_bits_probed(__u64 *ctx)
{
	struct cf_bits *b = (void *)ctx[0];

	out[35] = BPF_CORE_READ_BITFIELD_PROBED(b, mid);
	return 0;
}

SEC("raw_tp/sys_enter")
int fields_flavor(__u64 *ctx)
{
	struct cf_sample___flav *f = (void *)ctx[0];
	struct cf_kind *k = (void *)ctx[1];

	out[40] = bpf_core_field_offset(f->a);
	out[41] = bpf_core_field_offset(f->b);
	out[42] = bpf_core_field_exists(k->v);
	out[43] = bpf_core_field_offset(k->v);
	return 0;
}

SEC("raw_tp/sys_enter")
int fields_bad_bitfield(__u64 *ctx)
{
	struct cf_wide *w = (void *)ctx[0];

	out[50] = bpf_core_field_size(w->v);
	return 0;
}

SEC("raw_tp/sys_enter")
int fields_bad_array(__u64 *ctx)
{
	struct cf_sample *s = (void *)ctx[0];

	out[51] = bpf_core_field_signed(s->arr[1]);
	return 0;
}

SEC("raw_tp/sys_enter")
int fields_anon(__u64 *ctx)
{
	struct {
		int q;
		int r;
	} PAI *p = (void *)ctx[0];

	out[52] = bpf_core_field_offset(p->r);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

#elif TARGET == 1

struct cf_inner {
	long pad;
	int y;
	int x;
};

struct cf_sample {
	long pad0;
	int a;
	long b;
	struct cf_inner in;
	int arr[6];
	union {
		int u1;
		long u2;
	};
	struct {
		short s2;
		short s1;
	};
	unsigned long cnt;              /* unsigned, resized 4 -> 8: loads are resized */
	long sgn;                       /* signed, resized: loads are poisoned */
	void *ptr;
	char name[16];
	struct cf_inner objs[1];        /* objs[1] is out of bounds now */
	int tail[];
};

struct cf_bits {
	unsigned int pad : 5;
	unsigned int lo : 3;
	int mid : 12;
	unsigned long long wide : 40;
	unsigned int flag : 1;
	int plain;
};

struct cf_kind {
	struct cf_inner v;
};

struct cf_wide {
	unsigned long long pad : 10;
	unsigned long long v : 60;
} __attribute__((packed));

struct cf_sample *anchor_sample;
struct cf_bits *anchor_bits;
struct cf_kind *anchor_kind;
struct cf_wide *anchor_wide;

#else /* TARGET == 2: none of the types */

struct cf_other {
	int a;
};

struct cf_other *anchor_other;

#endif
