// SPDX-License-Identifier: GPL-2.0
/* Load test object (integration/test_load.py::test_missing_strong_ksym_fails_before_loading):
 * a strong __ksym extern no kernel has, which must fail the load (LinkError naming it)
 * before any program reaches the kernel.
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

extern const void bpfobj_surely_missing __ksym;
__u64 addr;

SEC("syscall")
int prog(void *ctx)
{
	addr = (__u64)&bpfobj_surely_missing;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
