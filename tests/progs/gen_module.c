// SPDX-License-Identifier: GPL-2.0
/* BTFGen with module BTF (tests/test_btfgen.py): `struct gen_mod_state` and
 * `enum gen_mod_mode` exist only in a (hand-built) module BTF, split on vmlinux;
 * `struct task_struct` is vmlinux's. The module's struct points at a vmlinux type, so its
 * minimised split BTF refers to the minimised vmlinux. `struct gen_mod_holder` (module)
 * embeds a task_struct: its relocation walks from a module type into a vmlinux one.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define PAI __attribute__((preserve_access_index))

struct task_struct { int pid; int tgid; } PAI;
struct gen_mod_state {
	int counter;
	long flags;
	struct task_struct *owner;
} PAI;
struct gen_mod_holder { struct task_struct t; } PAI;
enum gen_mod_mode { GEN_MOD_OFF, GEN_MOD_ON };

__u64 out[16];

SEC("raw_tp/sys_enter")
int mod_fields(__u64 *ctx)
{
	struct gen_mod_state *s = (void *)ctx[0];
	struct task_struct *t = (void *)ctx[1];
	struct gen_mod_holder *h = (void *)ctx[2];

	out[0] = bpf_core_field_offset(s->flags);
	out[1] = bpf_core_field_exists(s->counter);
	out[2] = BPF_CORE_READ(s, owner, tgid);
	out[3] = bpf_core_type_size(struct gen_mod_state);
	out[4] = bpf_core_type_exists(struct gen_mod_state);
	out[5] = bpf_core_enum_value(enum gen_mod_mode, GEN_MOD_ON);
	out[6] = bpf_core_type_id_kernel(struct gen_mod_state);
	out[7] = BPF_CORE_READ(t, pid);
	out[8] = BPF_CORE_READ(h, t.pid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
