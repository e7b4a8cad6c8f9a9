// SPDX-License-Identifier: GPL-2.0
/* An arena global (an __arena variable: clang puts it in .addr_space.1), which libbpf
 * places at the end of the arena: bpfobj refuses it at prepare, naming it
 * (tests/test_map_types.py). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define __arena __attribute__((address_space(1)))

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARENA);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2);
} arena SEC(".maps");

int __arena counter;

SEC("syscall")
int bump(void *ctx)
{
	return ++counter;
}
