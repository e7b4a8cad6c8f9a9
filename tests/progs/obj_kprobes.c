// SPDX-License-Identifier: GPL-2.0
/* pt_regs-based probes through bpf_tracing.h's arch macros: BPF_KPROBE / BPF_KRETPROBE
 * (PT_REGS_PARMn / PT_REGS_RC), raw PT_REGS_IP/SP/FP reads, uprobes, and BPF_KSYSCALL
 * (reads the syscall-wrapper regs with CO-RE and references libbpf's
 * LINUX_HAS_SYSCALL_WRAPPER kconfig extern, so a .kconfig map appears).
 * Built for the host (x86: struct pt_regs from <asm/ptrace.h>) and for arm64
 * (-D__TARGET_ARCH_arm64: struct user_pt_regs from common.h): same programs, different
 * register offsets in the instructions.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} starts SEC(".maps");

SEC("kprobe/vfs_read")
int BPF_KPROBE(read_entry, void *file, char *buf, __u64 count, __u64 *pos)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ts = bpf_ktime_get_ns() + count;

	bpf_map_update_elem(&starts, &id, &ts, BPF_ANY);
	return buf != 0 && pos != 0;
}

SEC("kretprobe/vfs_read")
int BPF_KRETPROBE(read_exit, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *ts = bpf_map_lookup_elem(&starts, &id);

	if (ts)
		bpf_map_delete_elem(&starts, &id);
	return ret < 0;
}

SEC("kprobe/do_nanosleep")
int regs_dump(struct pt_regs *ctx)
{
	__u64 ip = PT_REGS_IP(ctx);
	__u64 sp = PT_REGS_SP(ctx);
	__u64 fp = PT_REGS_FP(ctx);

	return (ip ^ sp ^ fp ^ PT_REGS_PARM5(ctx)) & 1;
}

SEC("uprobe/libc.so.6:malloc")
int BPF_KPROBE(malloc_entry, __u64 size)
{
	return size > 4096;
}

SEC("uretprobe/libc.so.6:malloc")
int BPF_KRETPROBE(malloc_exit, void *ptr)
{
	return ptr == 0;
}

SEC("ksyscall/kill")
int BPF_KSYSCALL(kill_entry, int pid, int sig)
{
	return pid == 1 && sig == 9;
}

char LICENSE[] SEC("license") = "GPL";
