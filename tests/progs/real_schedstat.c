// SPDX-License-Identifier: GPL-2.0
/* A context-switch statistics tool built the way tools are that carry their own kernel
 * type definitions (a trimmed header from another kernel/config instead of this host's
 * vmlinux.h). Written for the bpfobj prepare-parity test.
 *
 * The real_*.c objects built against this host's vmlinux.h mostly get CO-RE relocations
 * whose new value equals the old one; this one does not include vmlinux.h, so its local
 * layouts differ from the kernel's and CO-RE has real work to do:
 *  - tp_btf/sched_switch with direct loads through BTF pointers (prev->pid,
 *    next->real_parent->tgid): LDX off relocations with new offsets;
 *  - task_struct::nvcsw/nivcsw declared __u32 locally but unsigned long in the kernel:
 *    libbpf patches the LDX size as well (mem_sz 4 -> 8), and bpf_core_field_size
 *    reports 8;
 *  - BPF_CORE_READ chains through task->cgroups->subsys[memory_cgrp_id]->cgroup->kn->id
 *    where the subsys index is a CO-RE enum value relocation (local 3, kernel 4 here);
 *  - an enumerator this kernel does not have (rdma_cgrp_id without CONFIG_CGROUP_RDMA):
 *    enumval_exists 0 and a poisoned ld_imm64 (both slots) in the dead branch;
 *  - bpf_core_type_id_kernel / bpf_core_type_size of struct task_struct (ld_imm64 and ALU
 *    relocations whose values only the target BTF knows), stored in .bss;
 *  - a hash of per-pid stats, a .rodata filter.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* ---- the trimmed "other kernel" types ---- */

enum cgroup_subsys_id {
	cpuset_cgrp_id,
	cpu_cgrp_id,
	io_cgrp_id,
	memory_cgrp_id,
	pids_cgrp_id,
	rdma_cgrp_id,
	CGROUP_SUBSYS_COUNT,
};

struct kernfs_node {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct cgroup_subsys_state {
	struct cgroup *cgroup;
} __attribute__((preserve_access_index));

struct css_set {
	struct cgroup_subsys_state *subsys[CGROUP_SUBSYS_COUNT];
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	__u32 nvcsw;
	__u32 nivcsw;
	struct task_struct *real_parent;
	struct css_set *cgroups;
	char comm[16];
} __attribute__((preserve_access_index));

/* ---- the tool ---- */

struct sw_stats {
	__u64 switches_out;
	__u64 nvcsw;
	__u64 nivcsw;
	__u64 memcg_id;
	__u64 rdma_cg;
	__s32 parent_tgid;
	__u32 nvcsw_size;
	char comm[16];
};

const volatile int targ_tgid = 0;

__u32 task_btf_id;
__u32 task_size;
__u32 memcg_index;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct sw_stats);
} stats SEC(".maps");

static __always_inline __u64 css_cgroup_id(struct task_struct *task, int subsys)
{
	struct cgroup_subsys_state *css = NULL;
	struct css_set *cgroups = BPF_CORE_READ(task, cgroups);

	if (!cgroups || subsys < 0 || subsys >= 16)
		return 0;
	bpf_core_read(&css, sizeof(css), &cgroups->subsys[subsys]);
	if (!css)
		return 0;
	return BPF_CORE_READ(css, cgroup, kn, id);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, _Bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct sw_stats zero = {}, *st;
	__u32 pid = prev->pid;
	int memcg;

	if (targ_tgid && prev->tgid != targ_tgid)
		return 0;

	task_btf_id = bpf_core_type_id_kernel(struct task_struct);
	task_size = bpf_core_type_size(struct task_struct);
	memcg = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	memcg_index = memcg;

	st = bpf_map_lookup_elem(&stats, &pid);
	if (!st) {
		bpf_map_update_elem(&stats, &pid, &zero, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&stats, &pid);
		if (!st)
			return 0;
	}
	st->switches_out++;
	st->nvcsw = prev->nvcsw;
	st->nivcsw = prev->nivcsw;
	st->nvcsw_size = bpf_core_field_size(prev->nvcsw);
	st->parent_tgid = next->real_parent->tgid;
	st->memcg_id = css_cgroup_id(prev, memcg);
	if (bpf_core_enum_value_exists(enum cgroup_subsys_id, rdma_cgrp_id))
		st->rdma_cg = css_cgroup_id(prev, bpf_core_enum_value(enum cgroup_subsys_id,
								      rdma_cgrp_id));
	BPF_CORE_READ_STR_INTO(&st->comm, prev, comm);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
