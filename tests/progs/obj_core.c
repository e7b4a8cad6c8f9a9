// SPDX-License-Identifier: GPL-2.0
/* CO-RE: BPF_CORE_READ chains on task_struct, field existence/size/offset, type and
 * enum value relocations, bitfield reads, a ___flavor struct for a renamed field, and
 * bpf_core_read_str. Produces .BTF.ext CO-RE relocation records (bpf_core_relo) that a
 * loader resolves against kernel BTF at prepare/load time; at open they are only parsed.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* task_struct::state was renamed __state in 5.14 */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

struct event {
	__u32 pid;
	__u32 tgid;
	__u32 ppid;
	__u32 uid;
	long state;
	__u64 start_time;
	__u32 flags_size;
	__u32 has_numa;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} core_events SEC(".maps");

static __always_inline long task_state(struct task_struct *t)
{
	struct task_struct___pre514 *old = (void *)t;

	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ(old, state);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(core_fork, struct task_struct *parent, struct task_struct *child)
{
	struct event *e = bpf_ringbuf_reserve(&core_events, sizeof(*e), 0);

	if (!e)
		return 0;
	e->pid = BPF_CORE_READ(child, pid);
	e->tgid = BPF_CORE_READ(child, tgid);
	e->ppid = BPF_CORE_READ(child, real_parent, tgid);
	e->uid = BPF_CORE_READ(child, cred, uid.val);
	e->state = task_state(child);
	e->start_time = BPF_CORE_READ(child, start_time);
	e->flags_size = bpf_core_field_size(child->flags);
	e->has_numa = bpf_core_type_exists(struct numa_group);
	BPF_CORE_READ_STR_INTO(&e->comm, child, comm);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("kprobe/wake_up_new_task")
int BPF_KPROBE(core_wakeup, struct task_struct *p)
{
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	__u64 off = bpf_core_field_offset(struct task_struct, pid);
	int running = bpf_core_enum_value(enum bpf_prog_type, BPF_PROG_TYPE_TRACING);
	unsigned int in_execve = BPF_CORE_READ_BITFIELD_PROBED(p, in_execve);

	if (!bpf_core_enum_value_exists(enum bpf_map_type, BPF_MAP_TYPE_BLOOM_FILTER))
		return 0;
	if (!mm)
		return (int)off;
	return running + in_execve + (int)BPF_CORE_READ(mm, total_vm);
}

SEC("fentry/do_exit")
int BPF_PROG(core_exit, long code)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();

	return BPF_CORE_READ(t, group_leader, pid) == t->pid ? (int)code : 0;
}

char LICENSE[] SEC("license") = "GPL";
