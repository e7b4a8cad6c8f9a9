// SPDX-License-Identifier: GPL-2.0
/* A realistic process-exit tracer in the style of libbpf-tools' exitsnoop (written for
 * the bpfobj prepare-parity test, not copied from it).
 *
 * Exercises, for the prepare phase:
 *  - tp/sched/sched_process_exit (the raw ctx struct trace_event_raw_sched_process_template
 *    from vmlinux.h: ctx->pid is a CO-RE byte_off relocation);
 *  - task_struct reads with BPF_CORE_READ from bpf_get_current_task(): exit_code,
 *    exit_signal, real_parent->tgid, signal->live.counter, start time;
 *  - bpf_core_field_exists choosing between task_struct::start_boottime (>= 5.5) and the
 *    ___o flavor's real_start_time (< 5.5): on a new kernel the flavor's field does not
 *    exist, so libbpf poisons the dead branch's relocated instruction (call 0xbad2310);
 *  - bpf_core_field_size and bpf_core_field_offset (ALU imm relocations);
 *  - a perf event array output, a cgroup array filter, .rodata filters.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN 16

/* task_struct::real_start_time became start_boottime in v5.5 */
struct task_struct___o {
	u64 real_start_time;
} __attribute__((preserve_access_index));

struct exit_event {
	__u64 start_time;
	__u64 exit_time;
	pid_t pid;
	pid_t tid;
	pid_t ppid;
	int exit_code;
	int sig;
	int exit_signal;
	int live;
	__u32 code_size;
	__u32 code_offset;
	char comm[TASK_COMM_LEN];
};

const volatile bool filter_cg = false;
const volatile pid_t target_pid = 0;
const volatile bool trace_failed_only = false;
const volatile bool trace_by_process = true;

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} cgroup_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} events SEC(".maps");

static __always_inline __u64 task_start_time(struct task_struct *task)
{
	struct task_struct___o *old = (void *)task;

	if (bpf_core_field_exists(task->start_boottime))
		return BPF_CORE_READ(task, start_boottime);
	return BPF_CORE_READ(old, real_start_time);
}

SEC("tracepoint/sched/sched_process_exit")
int exitsnoop_exit(struct trace_event_raw_sched_process_template *ctx)
{
	struct task_struct *task;
	struct exit_event ev = {};
	u64 id = bpf_get_current_pid_tgid();
	pid_t pid = id >> 32, tid = (u32)id;
	int exit_code;

	if (filter_cg && !bpf_current_task_under_cgroup(&cgroup_map, 0))
		return 0;
	if (target_pid && target_pid != pid)
		return 0;
	/* the tracepoint's own pid (the exiting thread) must agree with the helper */
	if (ctx->pid != tid)
		return 0;
	if (trace_by_process && pid != tid)
		return 0;

	task = (struct task_struct *)bpf_get_current_task();
	exit_code = BPF_CORE_READ(task, exit_code);
	if (trace_failed_only && exit_code == 0)
		return 0;

	ev.start_time = task_start_time(task);
	ev.exit_time = bpf_ktime_get_boot_ns();
	ev.pid = pid;
	ev.tid = tid;
	ev.ppid = BPF_CORE_READ(task, real_parent, tgid);
	ev.exit_code = exit_code >> 8;
	ev.sig = exit_code & 0xff;
	ev.exit_signal = BPF_CORE_READ(task, exit_signal);
	ev.live = BPF_CORE_READ(task, signal, live.counter);
	ev.code_size = bpf_core_field_size(task->exit_code);
	ev.code_offset = bpf_core_field_offset(task->exit_code);
	bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
