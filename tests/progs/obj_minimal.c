// SPDX-License-Identifier: GPL-2.0
/* The smallest useful object: one tracepoint program, a license and a version section. */
#include <linux/bpf.h>
#include <linux/version.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_getpid")
int minimal_getpid(void *ctx)
{
	bpf_printk("getpid from %d", (int)(bpf_get_current_pid_tgid() >> 32));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
__u32 _version SEC("version") = KERNEL_VERSION(6, 1, 0);
