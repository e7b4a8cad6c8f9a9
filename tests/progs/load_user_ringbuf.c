// SPDX-License-Identifier: GPL-2.0
/* BPF_MAP_TYPE_USER_RINGBUF (integration/test_user_ringbuf.py): user space produces records
 * into `requests` (bpfobj.user_ringbuf.UserRingBuffer); the SEC("syscall") program drain,
 * run with BPF_PROG_TEST_RUN, drains them with bpf_user_ringbuf_drain() and pushes each
 * record's seq, op and value, in order, to the queue `seen`; a record shorter than struct
 * request is counted in short_records; op 1 stops the drain after its record.
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct request {
	__u32 seq;
	__u32 op;
	__u64 value;
	char name[16];
};

struct report {
	__u32 seq;
	__u32 op;
	__u64 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 4096);
} requests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 1024);
	__type(value, struct report);
} seen SEC(".maps");

/* the context of drain: what happened */
struct drain_args {
	__u32 calls;         /* records the callback saw */
	__u32 short_records;
	__s64 drained;       /* bpf_user_ringbuf_drain()'s return value */
};

/* keep struct request in the BTF for user space (UserRingBuffer(record_type="request")) */
const struct request *unused_request __attribute__((unused));

static long on_record(struct bpf_dynptr *dynptr, void *ctx)
{
	struct drain_args *args = ctx;
	struct request req = {};
	struct report rep = {};

	args->calls++;
	if (bpf_dynptr_read(&req, sizeof(req), dynptr, 0, 0)) {
		args->short_records++;
		return 0;
	}
	rep.seq = req.seq;
	rep.op = req.op;
	rep.value = req.value;
	bpf_map_push_elem(&seen, &rep, 0);
	if (req.op == 1)  /* "stop" */
		return 1;
	return 0;
}

SEC("syscall")
int drain(struct drain_args *args)
{
	struct drain_args local = {};

	args->drained = bpf_user_ringbuf_drain(&requests, on_record, &local, 0);
	args->calls = local.calls;
	args->short_records = local.short_records;
	return 0;
}
