// SPDX-License-Identifier: GPL-2.0
/* __arena global variables (clang: section .addr_space.1) in the object's arena map, as
 * libbpf places them (bpfobj.prepare.arena_layout): zero-initialised and initialised
 * scalars, a struct, an array, a string and a static variable (relocated through the
 * section symbol), used from three SEC("syscall") programs and from a .text subprogram two
 * of them call. In the catalogue (tests/objects.py); opened and prepared offline by
 * tests/test_arena_globals_offline.py; run with BPF_PROG_TEST_RUN by
 * integration/test_arena_globals.py (-DARENA_PAGES=262144: a 1 GiB arena, whose end is
 * past the 512 MiB of ld_imm64 offsets kernels before 7.0 take).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define __arena __attribute__((address_space(1)))
#ifndef ARENA_PAGES
#define ARENA_PAGES 4
#endif

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARENA);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, ARENA_PAGES);
} arena SEC(".maps");

struct point {
	__u64 x;
	__u64 y;
};

int __arena counter;				/* zero: no magic value */
__u64 __arena magic = 0x1122334455667788ULL;
struct point __arena origin = { .x = 3, .y = 4 };
__u32 __arena hist[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
char __arena label[12] = "arena";
static __u64 __arena hidden = 77;		/* static: a local symbol */

/* the context of every program, in and out (struct of BPF_PROG_TEST_RUN ctx_in/out) */
struct args {
	__u64 in;
	__u64 out[7];
};

/* a .text subprogram: its arena references move with it when it is appended */
static __noinline __u32 hist_add(__u32 i, __u32 v)
{
	hist[i & 7] += v;
	return hist[i & 7];
}

SEC("syscall")
int read_globals(struct args *a)
{
	a->out[0] = counter;
	a->out[1] = magic;
	a->out[2] = origin.x * 100 + origin.y;
	a->out[3] = hist[0] + hist[7];
	a->out[4] = label[0] | label[1] << 8;
	a->out[5] = hidden;
	a->out[6] = hist_add(a->in, 0);
	return 0;
}

SEC("syscall")
int write_globals(struct args *a)
{
	counter += a->in;
	magic = ~a->in;
	origin.x = a->in;
	origin.y = a->in * 2;
	label[0] = 'A';
	hidden += a->in;
	a->out[0] = hist_add(a->in, 10);
	return counter;
}

SEC("syscall")
int addresses(struct args *a)
{
	a->out[0] = (__u64)&counter;
	a->out[1] = (__u64)&magic;
	a->out[2] = (__u64)&origin.y;
	a->out[3] = (__u64)&hist[2];
	a->out[4] = (__u64)&hidden;
	return 0;
}
