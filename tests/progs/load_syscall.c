// SPDX-License-Identifier: GPL-2.0
/* A SEC("syscall") program (BPF_PROG_TYPE_SYSCALL, Linux 5.14+) for integration/test_load.py:
 * BPF_PROG_TEST_RUN hands it the test's struct as its context and copies the struct back
 * after the run. Kept apart from load_maps.c (whose programs take their arguments from an
 * XDP test packet) so that load_maps.c loads on older kernels.
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

/* the context: filled by the test, read back after the run */
struct args {
	__u32 key;
	__u32 pad;
	__u64 value;
	__u64 out;
	__u64 out2;
};

const volatile __u32 multiplier = 3;           /* .rodata: set from Python before load */
const volatile char greeting[8] = "hello";
__u64 counter;                                 /* .bss */

/* out: how many runs so far; out2: the greeting's first letter; returns value * multiplier's
 * low 16 bits */
SEC("syscall")
int args_round_trip(struct args *a)
{
	counter++;
	a->out = counter;
	a->out2 = greeting[0];
	return (int)((a->value * multiplier) & 0xffff);
}

char LICENSE[] SEC("license") = "GPL";
