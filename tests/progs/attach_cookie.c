// SPDX-License-Identifier: GPL-2.0
/* Attach test object (integration/test_attach.py): the programs that read their BPF cookie
 * (bpf_get_attach_cookie, Linux 5.15+), kept apart from attach_trace.c so that the other
 * tracing attach tests run on kernels without cookies. Counts the test process's
 * (target_tgid) clock_nanosleep calls and keeps the last cookie seen.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;

__u64 tp_hits = 0;
__u64 tp_cookie = 0;

SEC("tp/syscalls/sys_enter_clock_nanosleep")
int on_tp_cookie(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid) {
		__sync_fetch_and_add(&tp_hits, 1);
		tp_cookie = bpf_get_attach_cookie(ctx);
	}
	return 0;
}
