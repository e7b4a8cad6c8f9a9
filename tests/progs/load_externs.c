// SPDX-License-Identifier: GPL-2.0
/* Externs the loader resolves in the running kernel, for integration/test_load.py: kconfig
 * values (.kconfig map, frozen) including libbpf's virtual LINUX_* ones, and a typeless
 * ksym whose address comes from /proc/kallsyms. An XDP program, run once on a test packet,
 * copies them into .bss where the test reads them back (XDP, not SEC("syscall"): Linux 5.10
 * runs it). A tp_btf program needs attach_btf_id from the running
 * kernel's BTF (typedef btf_trace_sched_switch).
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

extern int LINUX_KERNEL_VERSION __kconfig;
extern int LINUX_HAS_SYSCALL_WRAPPER __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern int CONFIG_HZ __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[16] __kconfig __weak;
extern _Bool CONFIG_BPFOBJ_DOES_NOT_EXIST __kconfig __weak;

extern const void vfs_read __ksym;                       /* a text symbol: in kallsyms */
extern const void bpfobj_missing_symbol __ksym __weak;   /* not anywhere: stays 0 */

__u64 version, wrapper, bpf_syscall, hz, hostname0, missing_config;
__u64 vfs_read_addr, missing_addr;

SEC("xdp")
int read_externs(struct xdp_md *ctx)
{
	version = LINUX_KERNEL_VERSION;
	wrapper = LINUX_HAS_SYSCALL_WRAPPER;
	bpf_syscall = CONFIG_BPF_SYSCALL;
	hz = CONFIG_HZ;
	hostname0 = CONFIG_DEFAULT_HOSTNAME[0];
	missing_config = CONFIG_BPFOBJ_DOES_NOT_EXIST;
	vfs_read_addr = (__u64)&vfs_read;
	missing_addr = (__u64)&bpfobj_missing_symbol;
	return XDP_PASS;
}

__u64 switches;

SEC("tp_btf/sched_switch")
int on_switch(unsigned long long *ctx)
{
	__sync_fetch_and_add(&switches, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
