// SPDX-License-Identifier: GPL-2.0
/* A realistic block I/O latency histogram in the style of libbpf-tools' biolatency
 * (written for the bpfobj prepare-parity test, not copied from it).
 *
 * Exercises, for the prepare phase:
 *  - tp_btf/block_rq_insert, tp_btf/block_rq_issue, tp_btf/block_rq_complete taking
 *    struct request * from the raw u64 ctx array; which ctx slot holds the request
 *    depends on the kernel (v5.11 dropped the request_queue argument), decided with the
 *    LINUX_KERNEL_VERSION kconfig extern (ld_imm64 MAP_VALUE into the .kconfig map); the
 *    pre-5.11 slot is read with bpf_probe_read_kernel (see rq_arg);
 *  - direct CO-RE loads from BTF pointers (rq->cmd_flags, rq->start_time_ns: LDX off
 *    relocations) and BPF_CORE_READ chains (rq->q->disk->major, rq->part->bd_dev);
 *  - ___x flavors: struct request___x { rq_disk } (gone in v5.19: its read is poisoned)
 *    guarded by bpf_core_field_exists, and a tp/block/block_rq_complete program reading
 *    its ctx through trace_event_raw_block_rq_completion___x (v6.x name, exists) or
 *    trace_event_raw_block_rq_complete___x (older name, missing here) guarded by
 *    bpf_core_type_exists (type_exists relocations; the missing flavor's BPF_CORE_READs
 *    are poisoned; BPF_CORE_READ, not ctx->dev, because clang merges the two branches'
 *    direct ctx loads into "ctx + off" arithmetic that the verifier rejects);
 *  - a hash of start timestamps keyed by request pointer, a hash of per-disk/per-flag
 *    histograms (struct with a slots[] array, initial value from .bss), an ARRAY map of
 *    global slots, a per-device sector hash; .rodata filters.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define MAX_SLOTS 27
#define MAX_ENTRIES 10240
#define REQ_OP_BITS 8
#define REQ_OP_MASK ((1 << REQ_OP_BITS) - 1)
#define MINORBITS 20
#define MKDEV(ma, mi) (((ma) << MINORBITS) | (mi))

#ifndef KERNEL_VERSION
#define KERNEL_VERSION(a, b, c) (((a) << 16) + ((b) << 8) + ((c) > 255 ? 255 : (c)))
#endif

extern int LINUX_KERNEL_VERSION __kconfig;

struct hist_key {
	__u32 dev;
	__u32 cmd_flags;
};

struct hist {
	__u32 slots[MAX_SLOTS];
};

/* v5.19 removed request::rq_disk; the disk is request->q->disk since v5.16 */
struct request_queue___x {
	struct gendisk *disk;
} __attribute__((preserve_access_index));

struct request___x {
	struct request_queue___x *q;
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

/* the block_rq_complete tracepoint's event struct was renamed in v6.x */
struct trace_event_raw_block_rq_completion___x {
	dev_t dev;
	sector_t sector;
	unsigned int nr_sector;
} __attribute__((preserve_access_index));

struct trace_event_raw_block_rq_complete___x {
	dev_t dev;
	sector_t sector;
	unsigned int nr_sector;
} __attribute__((preserve_access_index));

const volatile bool filter_dev = false;
const volatile __u32 targ_dev = 0;
const volatile bool targ_per_disk = false;
const volatile bool targ_per_flag = false;
const volatile bool targ_queued = false;
const volatile bool targ_ms = false;

static struct hist initial_hist;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct request *);
	__type(value, u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct hist_key);
	__type(value, struct hist);
} hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SLOTS);
	__type(key, u32);
	__type(value, u64);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, u32);
	__type(value, u64);
} sectors SEC(".maps");

static __always_inline u64 log2_u32(u32 v)
{
	u32 shift, r;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline u64 log2_u64(u64 v)
{
	u32 hi = v >> 32;

	if (hi)
		return log2_u32(hi) + 32;
	return log2_u32(v);
}

static __always_inline struct gendisk *get_disk(void *request)
{
	struct request___x *r = request;

	if (bpf_core_field_exists(r->rq_disk))
		return BPF_CORE_READ(r, rq_disk);
	return BPF_CORE_READ(r, q, disk);
}

static __always_inline u32 disk_dev(struct gendisk *disk)
{
	return disk ? MKDEV(BPF_CORE_READ(disk, major), BPF_CORE_READ(disk, first_minor)) : 0;
}

static __always_inline int trace_rq_start(struct request *rq, bool issue)
{
	u64 ts;

	if (issue && targ_queued && BPF_CORE_READ(rq, q, elevator))
		return 0;
	if (filter_dev && targ_dev != disk_dev(get_disk(rq)))
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &rq, &ts, BPF_ANY);
	return 0;
}

static __always_inline void *rq_arg(u64 *ctx)
{
	void *rq = NULL;

	/* v5.11 (commit a54895fa) dropped the request_queue argument */
	if (LINUX_KERNEL_VERSION >= KERNEL_VERSION(5, 11, 0))
		return (void *)ctx[0];
	/* Before 5.11 the request is ctx[1], read with a helper: written as ctx[1], clang
	 * merges both branches into one load through "ctx + (cond ? 0 : 8)", a modified ctx
	 * pointer that the verifier refuses to dereference (a 5.10 kernel walks this branch;
	 * newer ones prune it, LINUX_KERNEL_VERSION being a known read-only value). */
	bpf_probe_read_kernel(&rq, sizeof(rq), &ctx[1]);
	return rq;
}

SEC("tp_btf/block_rq_insert")
int block_rq_insert(u64 *ctx)
{
	return trace_rq_start(rq_arg(ctx), false);
}

SEC("tp_btf/block_rq_issue")
int block_rq_issue(u64 *ctx)
{
	return trace_rq_start(rq_arg(ctx), true);
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete, struct request *rq, int error, unsigned int nr_bytes)
{
	struct hist_key hkey = {};
	struct hist *histp;
	u64 *tsp, slot, *global;
	s64 delta;
	u32 s;

	tsp = bpf_map_lookup_elem(&start, &rq);
	if (!tsp)
		return 0;
	delta = (s64)(bpf_ktime_get_ns() - *tsp);
	if (delta < 0)
		goto cleanup;

	if (targ_per_disk)
		hkey.dev = disk_dev(get_disk(rq));
	if (targ_per_flag)
		hkey.cmd_flags = rq->cmd_flags;

	delta /= targ_ms ? 1000000U : 1000U;
	slot = log2_u64(delta);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;

	if (targ_per_disk || targ_per_flag) {
		histp = bpf_map_lookup_elem(&hists, &hkey);
		if (!histp) {
			bpf_map_update_elem(&hists, &hkey, &initial_hist, BPF_NOEXIST);
			histp = bpf_map_lookup_elem(&hists, &hkey);
			if (!histp)
				goto cleanup;
		}
		__sync_fetch_and_add(&histp->slots[slot], 1);
	} else {
		s = slot;
		global = bpf_map_lookup_elem(&slots, &s);
		if (global)
			__sync_fetch_and_add(global, 1);
	}
cleanup:
	bpf_map_delete_elem(&start, &rq);
	return 0;
}

SEC("tp/block/block_rq_complete")
int block_rq_complete_tp(void *ctx)
{
	u64 zero = 0, *total;
	unsigned int nr_sector;
	u32 dev;

	if (bpf_core_type_exists(struct trace_event_raw_block_rq_completion___x)) {
		struct trace_event_raw_block_rq_completion___x *c = ctx;

		dev = BPF_CORE_READ(c, dev);
		nr_sector = BPF_CORE_READ(c, nr_sector);
	} else {
		struct trace_event_raw_block_rq_complete___x *c = ctx;

		dev = BPF_CORE_READ(c, dev);
		nr_sector = BPF_CORE_READ(c, nr_sector);
	}
	if (filter_dev && dev != targ_dev)
		return 0;
	total = bpf_map_lookup_elem(&sectors, &dev);
	if (!total) {
		bpf_map_update_elem(&sectors, &dev, &zero, BPF_NOEXIST);
		total = bpf_map_lookup_elem(&sectors, &dev);
		if (!total)
			return 0;
	}
	__sync_fetch_and_add(total, nr_sector);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
