// SPDX-License-Identifier: GPL-2.0
/* Attach test object (integration/test_attach.py): kprobe, kretprobe, ksyscall,
 * kretsyscall and kprobe.multi programs counting the test process's (target_tgid)
 * clock_nanosleep calls. Kept apart from attach_trace.c: kernels without CONFIG_KPROBES
 * load these programs but cannot attach them, and attach_all() on this object fails there.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;

__u64 kprobe_hits = 0;
__u64 kretprobe_hits = 0;
__u64 ksyscall_hits = 0;
__u64 kretsyscall_hits = 0;
__u64 kprobe_multi_hits = 0;

static __always_inline int mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("kprobe/hrtimer_nanosleep")
int BPF_KPROBE(on_kprobe)
{
	if (mine())
		__sync_fetch_and_add(&kprobe_hits, 1);
	return 0;
}

SEC("kretprobe/hrtimer_nanosleep")
int BPF_KRETPROBE(on_kretprobe, long ret)
{
	if (mine())
		__sync_fetch_and_add(&kretprobe_hits, 1);
	return 0;
}

SEC("ksyscall/clock_nanosleep")
int on_ksyscall(struct pt_regs *ctx)
{
	if (mine())
		__sync_fetch_and_add(&ksyscall_hits, 1);
	return 0;
}

SEC("kretsyscall/clock_nanosleep")
int BPF_KRETPROBE(on_kretsyscall, long ret)
{
	if (mine())
		__sync_fetch_and_add(&kretsyscall_hits, 1);
	return 0;
}

SEC("kprobe.multi/hrtimer_nanosleep*")
int on_kprobe_multi(struct pt_regs *ctx)
{
	if (mine())
		__sync_fetch_and_add(&kprobe_multi_hits, 1);
	return 0;
}
