// SPDX-License-Identifier: GPL-2.0
/* Attach test object (integration/test_attach.py): the attach kinds that run on BPF
 * trampolines -- fentry, fexit, fmod_ret, lsm, lsm_cgroup -- kept apart from attach_trace.c because
 * some kernels refuse to load them (no trampolines, lsm=bpf missing); counters count the
 * test process's (target_tgid) clock_nanosleep calls and file opens; lsm_cgroup counts
 * socket binds in the test cgroup.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;

__u64 fentry_hits = 0;
__u64 fexit_hits = 0;
__u64 fmod_ret_hits = 0;
__u64 lsm_hits = 0;
__u64 lsm_cgroup_hits = 0;

static __always_inline int mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("fentry/hrtimer_nanosleep")
int BPF_PROG(on_fentry)
{
	if (mine())
		__sync_fetch_and_add(&fentry_hits, 1);
	return 0;
}

SEC("fexit/hrtimer_nanosleep")
int BPF_PROG(on_fexit)
{
	if (mine())
		__sync_fetch_and_add(&fexit_hits, 1);
	return 0;
}

SEC("fmod_ret/security_file_open")
int BPF_PROG(on_fmod_ret, struct file *file)
{
	if (mine())
		__sync_fetch_and_add(&fmod_ret_hits, 1);
	return 0; /* 0: keep the function's own return value */
}

SEC("lsm/file_open")
int BPF_PROG(on_lsm, struct file *file, int ret)
{
	if (mine())
		__sync_fetch_and_add(&lsm_hits, 1);
	return ret;
}

/* an LSM hook run only for tasks of the cgroup the test attaches it to */
SEC("lsm_cgroup/socket_bind")
int BPF_PROG(on_lsm_cgroup, struct socket *sock, struct sockaddr *address, int addrlen)
{
	__sync_fetch_and_add(&lsm_cgroup_hits, 1);
	return 1;
}
