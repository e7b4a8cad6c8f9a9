// SPDX-License-Identifier: GPL-2.0
// execsnoop: report every exec with its pid, parent pid and command, through a ring buffer.
// CO-RE: reads task_struct fields whose offsets are relocated for the running kernel.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define TASK_COMM_LEN 16
#define FILENAME_LEN 128

struct event {
	__u32 pid;
	__u32 ppid;
	__u32 uid;
	__s32 retval;
	char comm[TASK_COMM_LEN];
	char filename[FILENAME_LEN];
};

/* Keep struct event in the object's BTF (a local type is not emitted otherwise): user space
 * decodes the ring buffer's records through it (bpfobj run, RingBuffer(event_type="event")). */
const struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} exec_count SEC(".maps");

const volatile __u32 target_uid = (__u32)-1;

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	__u32 zero = 0;
	__u64 *count;
	struct event *e;

	if (target_uid != (__u32)-1 && uid != target_uid)
		return 0;

	count = bpf_map_lookup_elem(&exec_count, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = uid;
	e->retval = 0; /* sched_process_exec only fires for an exec that succeeded */
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	/* __data_loc: the low 16 bits are the string's offset from the start of the record */
	bpf_probe_read_kernel_str(&e->filename, sizeof(e->filename),
				  (void *)ctx + (ctx->__data_loc_filename & 0xFFFF));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
