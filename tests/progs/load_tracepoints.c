// SPDX-License-Identifier: GPL-2.0
/* Load test object (integration/test_load.py::test_perf_event_link_and_raw_tracepoint):
 * a tracepoint and a raw tracepoint program, each counting its hits, attached there with
 * raw bpf(2) / perf_event_open(2) calls (bpfobj.sys.perf, LINK_CREATE and
 * RAW_TRACEPOINT_OPEN attrs) rather than through bpfobj.attach.
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

__u64 tp_hits, raw_hits;

SEC("tp/syscalls/sys_enter_getppid")
int on_tp(void *ctx)
{
	__sync_fetch_and_add(&tp_hits, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int on_raw(void *ctx)
{
	__sync_fetch_and_add(&raw_hits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
