// SPDX-License-Identifier: GPL-2.0
/* CO-RE candidate selection: several target flavors of one local type (tests/test_core_*.py).
 *
 * The target (-DTARGET=1) defines ___flavors of each local type, as bpftool's vmlinux.h
 * does for duplicated kernel types (task_struct___2). libbpf accepts several matching
 * candidates only when they all give the same result; otherwise the relocation fails.
 * It also prunes a local type's cached candidate list to those that matched, which
 * changes the later relocations of that type (prune_*).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define PAI __attribute__((preserve_access_index))

#ifndef TARGET

struct ca_amb { int x; } PAI;           /* two flavors, x at different offsets */
struct ca_sz { int x; } PAI;            /* two flavors, x of different sizes */
struct ca_id { int q; } PAI;            /* two identical flavors */
struct ca_prune { int a; int b; } PAI;  /* b only in one flavor */
struct ca_same { int x; } PAI;          /* two flavors, same layout */

__u64 out[16];

SEC("raw_tp/sys_enter")
int amb_offset(__u64 *ctx)
{
	struct ca_amb *p = (void *)ctx[0];

	out[0] = bpf_core_field_offset(p->x);
	return 0;
}

SEC("raw_tp/sys_enter")
int amb_size(__u64 *ctx)
{
	struct ca_sz *p = (void *)ctx[0];

	out[1] = bpf_core_field_offset(p->x);   /* same offset in both: fine */
	out[2] = bpf_core_field_size(p->x);     /* 4 != 8: decision ambiguity */
	return 0;
}

SEC("raw_tp/sys_enter")
int amb_type_id(__u64 *ctx)
{
	out[3] = bpf_core_type_exists(struct ca_id);      /* both say 1: fine */
	out[4] = bpf_core_type_id_kernel(struct ca_id);   /* two ids: ambiguity */
	return 0;
}

SEC("raw_tp/sys_enter")
int prune_then_id(__u64 *ctx)
{
	struct ca_prune *p = (void *)ctx[0];

	out[5] = bpf_core_field_offset(p->b);              /* only ca_prune___2 matches */
	out[6] = bpf_core_type_id_kernel(struct ca_prune); /* so only ___2 is left: no ambiguity */
	return 0;
}

SEC("raw_tp/sys_enter")
int same_flavors(__u64 *ctx)
{
	struct ca_same *p = (void *)ctx[0];

	out[7] = bpf_core_field_offset(p->x);
	out[8] = bpf_core_field_size(p->x);
	out[9] = p->x;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

#else

struct ca_amb___1 { int pad; int x; };
struct ca_amb___2 { int x; };
struct ca_sz___1 { int x; };
struct ca_sz___2 { long x; };
struct ca_id___a { int q; };
struct ca_id___b { int q; };
struct ca_prune___1 { int a; };
struct ca_prune___2 { int a; int b; };
struct ca_same { long pad; int x; };
struct ca_same___v2 { long pad; int x; };

struct anchors {
	struct ca_amb___1 a1; struct ca_amb___2 a2;
	struct ca_sz___1 s1; struct ca_sz___2 s2;
	struct ca_id___a i1; struct ca_id___b i2;
	struct ca_prune___1 p1; struct ca_prune___2 p2;
	struct ca_same m1; struct ca_same___v2 m2;
} anchor;

#endif
