// SPDX-License-Identifier: GPL-2.0
/* CO-RE type and enum value relocations (tests/test_core_*.py).
 *
 * Built twice: as is (the program) and with -DTARGET=1 (the same names with other
 * definitions: the target BTF). See core_fields.c.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef TARGET

enum ct_color { CT_RED, CT_GREEN = 5, CT_BLUE };
enum ct_big { CT_BIG_SMALL = 1, CT_BIG_HUGE = 0x100000000ULL };        /* ENUM64 */
enum ct_neg { CT_NEG = -3, CT_POS = 3 };                               /* signed ENUM */
enum ct_gone { CT_GONE_A = 1 };
struct ct_thing { int a; long b; };
typedef struct ct_thing ct_thing_t;
struct ct_missing { int z; };
struct ct_match { int a; unsigned int b; struct ct_thing *p; enum ct_color c; };
struct ct_nomatch { int a; long b; };
union ct_u { int i; float f; };
typedef int (*ct_fn_t)(int, long);
typedef int (*ct_fn2_t)(int, long);

__u64 out[64];

SEC("raw_tp/sys_enter")
int types_ids(void *ctx)
{
	out[0] = bpf_core_type_id_local(struct ct_thing);
	out[1] = bpf_core_type_id_kernel(struct ct_thing);
	out[2] = bpf_core_type_id_kernel(ct_thing_t);
	out[3] = bpf_core_type_id_local(ct_thing_t);
	out[4] = bpf_core_type_id_kernel(struct ct_missing);
	return 0;
}

SEC("raw_tp/sys_enter")
int types_exist(void *ctx)
{
	out[10] = bpf_core_type_exists(struct ct_thing);
	out[11] = bpf_core_type_exists(struct ct_missing);
	out[12] = bpf_core_type_size(struct ct_thing);
	out[13] = bpf_core_type_size(ct_thing_t);
	out[14] = bpf_core_type_size(struct ct_missing);
	out[15] = bpf_core_type_exists(union ct_u);
	out[16] = bpf_core_type_exists(ct_fn_t);
	out[17] = bpf_core_type_exists(ct_fn2_t);
	out[18] = bpf_core_type_size(enum ct_color);
	out[19] = bpf_core_type_size(enum ct_big);
	return 0;
}

SEC("raw_tp/sys_enter")
int types_match(void *ctx)
{
	out[20] = bpf_core_type_matches(struct ct_match);
	out[21] = bpf_core_type_matches(struct ct_thing);
	out[22] = bpf_core_type_matches(enum ct_color);
	out[23] = bpf_core_type_matches(ct_fn_t);
	out[24] = bpf_core_type_matches(union ct_u);
	out[25] = bpf_core_type_matches(struct ct_nomatch);
	out[26] = bpf_core_type_matches(enum ct_neg);
	out[27] = bpf_core_type_matches(ct_thing_t);
	return 0;
}

SEC("raw_tp/sys_enter")
int enum_values(void *ctx)
{
	out[30] = bpf_core_enum_value_exists(enum ct_color, CT_GREEN);
	out[31] = bpf_core_enum_value_exists(enum ct_color, CT_BLUE);
	out[32] = bpf_core_enum_value(enum ct_color, CT_GREEN);
	out[33] = bpf_core_enum_value(enum ct_big, CT_BIG_HUGE);
	out[34] = bpf_core_enum_value(enum ct_big, CT_BIG_SMALL);
	out[35] = bpf_core_enum_value_exists(enum ct_gone, CT_GONE_A);
	out[36] = bpf_core_enum_value(enum ct_neg, CT_POS);
	return 0;
}

SEC("raw_tp/sys_enter")
int enum_missing(void *ctx)
{
	if (bpf_core_enum_value_exists(enum ct_color, CT_BLUE))
		out[37] = bpf_core_enum_value(enum ct_color, CT_BLUE);
	out[38] = bpf_core_enum_value(enum ct_gone, CT_GONE_A);
	return 0;
}

SEC("raw_tp/sys_enter")
int enum_negative(void *ctx)
{
	out[39] = bpf_core_enum_value(enum ct_neg, CT_NEG);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

#else /* TARGET */

enum ct_color { CT_RED, CT_GREEN = 7 };                                  /* no CT_BLUE */
enum ct_big { CT_BIG_SMALL = 0xfffffff0, CT_BIG_HUGE = 2 };              /* ENUM now */
enum ct_neg { CT_NEG = -5, CT_POS = 9, CT_NEG_HUGE = -0x100000000LL };   /* signed ENUM64 */
struct ct_thing { long pad; int a; long b; };
typedef struct ct_thing ct_thing_t;
struct ct_match { unsigned int b; int a; struct ct_thing *p; enum ct_color c; long extra; };
struct ct_nomatch { int a; int b; };
union ct_u { int i; float f; long l; };
typedef int (*ct_fn_t)(int, long);
typedef int (*ct_fn2_t)(int, long, int);

struct anchors {
	enum ct_color c;
	enum ct_big b;
	enum ct_neg n;
	struct ct_thing t;
	ct_thing_t tt;
	struct ct_match m;
	struct ct_nomatch nm;
	union ct_u u;
	ct_fn_t f;
	ct_fn2_t f2;
} anchor;

#endif
