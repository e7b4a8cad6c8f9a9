// SPDX-License-Identifier: GPL-2.0
/* A realistic open(2)/openat(2) tracer in the style of libbpf-tools' opensnoop (written
 * for the bpfobj prepare-parity test, not copied from it).
 *
 * Exercises, for the prepare phase:
 *  - four tracepoint programs: sys_enter_open / sys_enter_openat stash the filename
 *    pointer and flags in a hash keyed by thread id, sys_exit_open / sys_exit_openat
 *    emit the event; enter and exit share static __always_inline helpers, so each
 *    program carries its own inlined copy (no subprograms);
 *  - bpf_probe_read_user_str of the user filename into a ring buffer record
 *    (bpf_ringbuf_reserve / submit / discard);
 *  - const volatile pid/tgid/uid/failed filters in .rodata, a .bss drop counter and a
 *    .data sampling knob (MAP_VALUE relocations into three internal maps);
 *  - CO-RE byte_off relocations on trace_event_raw_sys_enter::args[] and
 *    trace_event_raw_sys_exit::ret.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN 16
#define NAME_MAX 255
#define INVALID_UID ((uid_t)-1)

struct open_args {
	const char *fname;
	int flags;
	__u32 mode;
};

struct open_event {
	__u64 ts;
	pid_t pid;
	uid_t uid;
	int ret;
	int flags;
	__u32 mode;
	__u32 callsite;
	char comm[TASK_COMM_LEN];
	char fname[NAME_MAX];
};

const volatile pid_t targ_pid = 0;
const volatile pid_t targ_tgid = 0;
const volatile uid_t targ_uid = INVALID_UID;
const volatile bool targ_failed = false;

__u64 dropped = 0;
__u32 sample_every = 1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);
	__type(value, struct open_args);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline bool trace_allowed(u32 tgid, u32 pid)
{
	u32 uid;

	if (targ_tgid && targ_tgid != tgid)
		return false;
	if (targ_pid && targ_pid != pid)
		return false;
	if (targ_uid != INVALID_UID) {
		uid = (u32)bpf_get_current_uid_gid();
		if (targ_uid != uid)
			return false;
	}
	return true;
}

static __always_inline int stash_args(const char *fname, int flags, __u32 mode)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, pid = (u32)id;
	struct open_args args = {};

	if (!trace_allowed(tgid, pid))
		return 0;
	if (sample_every > 1 && bpf_get_prandom_u32() % sample_every)
		return 0;
	args.fname = fname;
	args.flags = flags;
	args.mode = mode;
	bpf_map_update_elem(&start, &pid, &args, BPF_ANY);
	return 0;
}

static __always_inline int emit_event(struct trace_event_raw_sys_exit *ctx, __u32 callsite)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 pid = (u32)id;
	struct open_args *ap;
	struct open_event *e;
	int ret;

	ap = bpf_map_lookup_elem(&start, &pid);
	if (!ap)
		return 0;
	ret = ctx->ret;
	if (targ_failed && ret >= 0)
		goto cleanup;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		goto cleanup;
	}
	e->ts = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->uid = (u32)bpf_get_current_uid_gid();
	e->ret = ret;
	e->flags = ap->flags;
	e->mode = ap->mode;
	e->callsite = callsite;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	if (bpf_probe_read_user_str(&e->fname, sizeof(e->fname), ap->fname) < 0) {
		bpf_ringbuf_discard(e, 0);
		goto cleanup;
	}
	bpf_ringbuf_submit(e, 0);
cleanup:
	bpf_map_delete_elem(&start, &pid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int opensnoop_enter_open(struct trace_event_raw_sys_enter *ctx)
{
	return stash_args((const char *)ctx->args[0], (int)ctx->args[1], (__u32)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int opensnoop_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return stash_args((const char *)ctx->args[1], (int)ctx->args[2], (__u32)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_exit_open")
int opensnoop_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	return emit_event(ctx, 1);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int opensnoop_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return emit_event(ctx, 2);
}

char LICENSE[] SEC("license") = "GPL";
