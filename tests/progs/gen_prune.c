// SPDX-License-Identifier: GPL-2.0
/* BTFGen and libbpf's candidate pruning (tests/test_btfgen.py).
 *
 * The target (-DTARGET=1) has two flavors of `struct gp`: ___a with x only, ___b with x
 * and y, x at the same offset in both. Relocation 1 (x) matches both: the candidate
 * list stays [___a, ___b]. Relocation 2 (y) matches ___b only. bpftool keeps the first
 * matching candidate of each relocation (___a.x and ___b.y): against its output,
 * relocation 1 matches ___a only, the list is pruned to [___a], and relocation 2 finds no
 * y: poisoned. bpfobj keeps the candidate the list ends on after both relocations,
 * ___b, with x and y: both relocations are patched as against the full BTF (relocation 1
 * with ___b's x, at the same offset as ___a's), and the file is smaller than bpftool's.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define PAI __attribute__((preserve_access_index))

#ifndef TARGET

struct gp { int x; int y; } PAI;

__u64 out[4];

SEC("raw_tp/sys_enter")
int prune(__u64 *ctx)
{
	struct gp *p = (void *)ctx[0];

	out[0] = bpf_core_field_offset(p->x);
	asm volatile("" ::: "memory");
	out[1] = bpf_core_field_offset(p->y);
	return 0;
}

#else

struct gp___a { long pad; int x; };
struct gp___b { long pad; int x; int y; };

struct anchors { struct gp___a a; struct gp___b b; } anchor;

#endif
char LICENSE[] SEC("license") = "GPL";
