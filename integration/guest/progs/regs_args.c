// SPDX-License-Identifier: GPL-2.0
/* Arguments and return values read through the kernel's pt_regs, for the arch the object is
 * compiled for (integration/guest/test_guest_regs.py; -D__TARGET_ARCH_arm64 and an arm64
 * vmlinux.h for arm64 guests). Each program records what the test process (target_tgid)
 * passed or got back, so the test can compare it with what it knows:
 *
 *   kprobe/vfs_read          BPF_KPROBE: the third argument (count), PT_REGS_PARM3
 *   kretprobe/vfs_read       BPF_KRETPROBE: the return value, PT_REGS_RC
 *   ksyscall/kill            BPF_KSYSCALL: pid and sig through the syscall wrapper's inner
 *                            pt_regs (__x64_sys_kill / __arm64_sys_kill), CO-RE reads
 *   kretsyscall/getpgid      BPF_KRETPROBE on the syscall: its return value
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define COUNT_MIN 40000
#define COUNT_MAX 50000

const volatile __u32 target_tgid = 0;

__u64 read_count = 0;
__s64 read_ret = 0;
__u64 read_hits = 0;
__s64 kill_pid = 0;
__s64 kill_sig = 0;
__u64 kill_hits = 0;
__s64 getpgid_ret = 0;
__u64 getpgid_hits = 0;

static __always_inline int mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("kprobe/vfs_read")
int BPF_KPROBE(on_vfs_read, struct file *file, char *buf, size_t count)
{
	if (mine() && count >= COUNT_MIN && count <= COUNT_MAX) {
		read_count = count;
		read_hits++;
	}
	return 0;
}

SEC("kretprobe/vfs_read")
int BPF_KRETPROBE(on_vfs_read_ret, long ret)
{
	if (mine() && ret >= COUNT_MIN && ret <= COUNT_MAX)
		read_ret = ret;
	return 0;
}

SEC("ksyscall/kill")
int BPF_KSYSCALL(on_kill, int pid, int sig)
{
	if (mine()) {
		kill_pid = pid;
		kill_sig = sig;
		kill_hits++;
	}
	return 0;
}

SEC("kretsyscall/getpgid")
int BPF_KRETPROBE(on_getpgid_ret, long ret)
{
	if (mine()) {
		getpgid_ret = ret;
		getpgid_hits++;
	}
	return 0;
}
