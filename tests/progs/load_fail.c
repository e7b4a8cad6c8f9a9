// SPDX-License-Identifier: GPL-2.0
/* Programs the verifier must reject, for integration/test_load.py (each test turns
 * autoload off for the others):
 *  - oob_read: reads past the end of a map value -> VerifierError naming this C line;
 *  - core_poison: a CO-RE read of a field no kernel has -> libbpf-style poisoned
 *    instruction (call 0xbad2310) -> VerifierError explaining the relocation;
 *  - fine: loads.
 * Uses this host's vmlinux.h for the kernel types.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} one SEC(".maps");

/* a task_struct flavor with a field no kernel has */
struct task_struct___bpfobj {
	int bpfobj_no_such_field;
} __attribute__((preserve_access_index));

volatile __u32 index_of_choice = 4;

SEC("xdp")
int oob_read(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&one, &k);

	if (!v)
		return XDP_PASS;
	return v[index_of_choice & 7]; /* value_size is 8: reads past the end */
}

SEC("tp/syscalls/sys_enter_getpid")
int core_poison(void *ctx)
{
	struct task_struct___bpfobj *t = (void *)bpf_get_current_task();

	return BPF_CORE_READ(t, bpfobj_no_such_field);
}

SEC("xdp")
int fine(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
