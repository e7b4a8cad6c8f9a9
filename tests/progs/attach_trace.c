// SPDX-License-Identifier: GPL-2.0
/* Attach test object (integration/test_attach.py): one program per tracing attach kind
 * (the BPF trampoline kinds -- fentry, fexit, fmod_ret, lsm -- are in attach_tramp.c, the
 * programs reading BPF cookies, a 5.15 feature, in attach_cookie.c),
 * each counting into its own .bss counter the events of the test process (target_tgid),
 * so the test attaches, triggers, reads the counter back, detaches and checks the counter
 * stops. Triggers: clock_nanosleep (time.sleep), openat, a busy loop, libc getpid, and the
 * functions of attach_uprobe_target.c.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;

__u64 tp_hits = 0;
__u64 raw_tp_hits = 0;
__u64 tp_btf_hits = 0;
__u64 perf_hits = 0;
__u64 uprobe_hits = 0;
__u64 uprobe_arg_sum = 0;
__u64 uretprobe_hits = 0;
__u64 uprobe_multi_hits = 0;

static __always_inline int mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("tp/syscalls/sys_enter_clock_nanosleep")
int on_tp(void *ctx)
{
	if (mine())
		__sync_fetch_and_add(&tp_hits, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int on_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	if (mine())
		__sync_fetch_and_add(&raw_tp_hits, 1);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(on_tp_btf, struct pt_regs *regs, long id)
{
	if (mine())
		__sync_fetch_and_add(&tp_btf_hits, 1);
	return 0;
}

SEC("iter/task")
int on_iter(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	if (!task || task->pid != task->tgid)
		return 0;
	BPF_SEQ_PRINTF(seq, "%d %s\n", task->tgid, task->comm);
	return 0;
}

SEC("perf_event")
int on_perf(struct bpf_perf_event_data *ctx)
{
	if (mine())
		__sync_fetch_and_add(&perf_hits, 1);
	return 0;
}

/* attached by hand: binary and function come from the test (a gcc-built helper) */
SEC("uprobe")
int BPF_KPROBE(on_uprobe, int x)
{
	__sync_fetch_and_add(&uprobe_hits, 1);
	__sync_fetch_and_add(&uprobe_arg_sum, x);
	return 0;
}

/* auto-attached from the section: libc's getpid, called through ctypes */
SEC("uretprobe/libc.so.6:getpid")
int BPF_KRETPROBE(on_uretprobe, int ret)
{
	if (mine() && ret == target_tgid)
		__sync_fetch_and_add(&uretprobe_hits, 1);
	return 0;
}

SEC("uprobe.multi")
int on_uprobe_multi(struct pt_regs *ctx)
{
	__sync_fetch_and_add(&uprobe_multi_hits, 1);
	return 0;
}
