// SPDX-License-Identifier: GPL-2.0
/* A realistic execve tracer in the style of libbpf-tools' execsnoop (written for the
 * bpfobj prepare-parity test, not copied from it).
 *
 * Exercises, for the prepare phase:
 *  - two tracepoint programs (tp/syscalls/sys_enter_execve, sys_exit_execve) whose
 *    ctx structs come from vmlinux.h (preserve_access_index: ctx->args[i] and ctx->ret
 *    are CO-RE byte_off relocations on trace_event_raw_sys_enter/exit);
 *  - BPF_CORE_READ chains through task_struct (real_parent->tgid, cred->uid.val,
 *    group_leader->pid) from bpf_get_current_task() (probe-read based CO-RE);
 *  - a hash map keyed by pid, a perf event array, a cgroup array;
 *  - const volatile filters in .rodata (ld_imm64 MAP_VALUE with non-zero offsets) and a
 *    static const empty event in .rodata used as a map update value;
 *  - a .bss counter updated with an atomic add;
 *  - an unrolled argv copy loop with bpf_probe_read_user / bpf_probe_read_user_str.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN 16
#define ARG_SIZE 128
#define MAX_ARGS 12
#define ARGS_BUF (MAX_ARGS * ARG_SIZE)
#define INVALID_UID ((uid_t)-1)

struct exec_event {
	pid_t pid;
	pid_t ppid;
	pid_t leader;
	uid_t uid;
	int retval;
	int args_count;
	unsigned int args_size;
	char comm[TASK_COMM_LEN];
	char args[ARGS_BUF];
};

const volatile bool filter_cg = false;
const volatile bool ignore_failed = true;
const volatile uid_t targ_uid = INVALID_UID;
const volatile int max_args = MAX_ARGS;

static const struct exec_event empty_event = {};

__u64 lost_events = 0;

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} cgroup_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, pid_t);
	__type(value, struct exec_event);
} execs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} events SEC(".maps");

static __always_inline bool valid_uid(uid_t uid)
{
	return uid != INVALID_UID;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int execsnoop_enter(struct trace_event_raw_sys_enter *ctx)
{
	const char **argv = (const char **)(ctx->args[1]);
	struct task_struct *task;
	struct exec_event *ev;
	const char *argp;
	uid_t uid = (u32)bpf_get_current_uid_gid();
	pid_t pid, tgid;
	u64 id;
	int i, n;

	if (filter_cg && !bpf_current_task_under_cgroup(&cgroup_map, 0))
		return 0;
	if (valid_uid(targ_uid) && targ_uid != uid)
		return 0;

	id = bpf_get_current_pid_tgid();
	pid = (pid_t)id;
	tgid = id >> 32;
	if (bpf_map_update_elem(&execs, &pid, &empty_event, BPF_NOEXIST))
		return 0;
	ev = bpf_map_lookup_elem(&execs, &pid);
	if (!ev)
		return 0;

	task = (struct task_struct *)bpf_get_current_task();
	ev->pid = tgid;
	ev->uid = uid;
	ev->ppid = BPF_CORE_READ(task, real_parent, tgid);
	ev->leader = BPF_CORE_READ(task, group_leader, pid);
	ev->args_count = 0;
	ev->args_size = 0;

	n = bpf_probe_read_user_str(ev->args, ARG_SIZE, (const char *)ctx->args[0]);
	if (n < 0)
		return 0;
	if (n <= ARG_SIZE) {
		ev->args_size = n;
	} else {
		ev->args[0] = '\0';
		ev->args_size++;
	}
	ev->args_count++;

#pragma unroll
	for (i = 1; i < MAX_ARGS; i++) {
		if (i >= max_args)
			break;
		if (bpf_probe_read_user(&argp, sizeof(argp), &argv[i]) || !argp)
			return 0;
		if (ev->args_size > ARGS_BUF - ARG_SIZE)
			return 0;
		n = bpf_probe_read_user_str(&ev->args[ev->args_size], ARG_SIZE, argp);
		if (n < 0)
			return 0;
		ev->args_count++;
		ev->args_size += n;
	}
	/* there were more arguments than we copied: count one more */
	if (bpf_probe_read_user(&argp, sizeof(argp), &argv[MAX_ARGS]) == 0 && argp)
		ev->args_count++;
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int execsnoop_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *task;
	struct exec_event *ev;
	unsigned int len;
	pid_t pid;
	int ret;

	if (filter_cg && !bpf_current_task_under_cgroup(&cgroup_map, 0))
		return 0;
	if (valid_uid(targ_uid) && targ_uid != (u32)bpf_get_current_uid_gid())
		return 0;

	pid = (pid_t)bpf_get_current_pid_tgid();
	ev = bpf_map_lookup_elem(&execs, &pid);
	if (!ev)
		return 0;
	ret = ctx->ret;
	if (ignore_failed && ret < 0)
		goto cleanup;

	task = (struct task_struct *)bpf_get_current_task();
	ev->retval = ret;
	/* the credentials after exec (setuid binaries) */
	ev->uid = BPF_CORE_READ(task, cred, uid.val);
	bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
	len = offsetof(struct exec_event, args) + ev->args_size;
	if (len > sizeof(*ev))
		len = sizeof(*ev);
	if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, ev, len))
		__sync_fetch_and_add(&lost_events, 1);
cleanup:
	bpf_map_delete_elem(&execs, &pid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
