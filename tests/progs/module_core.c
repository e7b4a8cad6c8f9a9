// A program reading a type that only a (test) kernel module has: CO-RE must find its
// candidate in the module's BTF, after finding none in vmlinux.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct bpfobj_testmod_state {
	int counter;
	long flags;
} __attribute__((preserve_access_index));

__u64 out_off, out_exists, out_id;

SEC("raw_tp/sys_enter")
int read_mod(void *ctx)
{
	struct bpfobj_testmod_state *s = (void *)0;

	out_off = bpf_core_field_offset(s->flags);
	out_exists = bpf_core_field_exists(s->counter);
	out_id = bpf_core_type_id_kernel(struct bpfobj_testmod_state);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
