// SPDX-License-Identifier: GPL-2.0
/* BPF_MAP_TYPE_USER_RINGBUF (integration/test_user_ringbuf.py): user space produces records
 * into `requests` (bpfobj.user_ringbuf.UserRingBuffer); the SEC("syscall") program drain,
 * run with BPF_PROG_TEST_RUN, drains them with bpf_user_ringbuf_drain() and appends each
 * record's seq, op and value, in order, to the array `seen` (`seen_count` entries); a record
 * shorter than struct request is counted in short_records; op 1 stops the drain after its
 * record. Arrays, not a queue: before Linux 6.4 a sleepable program (SEC("syscall") is one)
 * may use only array, hash and ring buffer maps.
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

#define MAX_SEEN 1024

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SEEN);
	__type(key, __u32);
	__type(value, struct report);
} seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} seen_count SEC(".maps");

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
	__u32 zero = 0, *count, i;

	args->calls++;
	if (bpf_dynptr_read(&req, sizeof(req), dynptr, 0, 0)) {
		args->short_records++;
		return 0;
	}
	rep.seq = req.seq;
	rep.op = req.op;
	rep.value = req.value;
	count = bpf_map_lookup_elem(&seen_count, &zero);
	if (count) {
		i = *count;
		if (i < MAX_SEEN) {
			bpf_map_update_elem(&seen, &i, &rep, 0);
			*count = i + 1;
		}
	}
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
