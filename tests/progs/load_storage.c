// SPDX-License-Identifier: GPL-2.0
/* Local storage maps (integration/test_storage.py): task, cgroup and socket storage
 * written by programs and read back (and written) from user space through a pidfd, a
 * cgroup directory fd and a socket fd. Inode storage only has LSM helpers: see
 * load_storage_lsm.c.
 *
 * on_getppid (a syscall tracepoint) counts getppid() calls of the tasks in the cgroup
 * `target_cgid` into their task storage and into their cgroup's storage, and copies the
 * `tag` user space wrote into the task's storage to `seen_tag`; on_sock_create (attached
 * to that cgroup) stores each new socket's family, type and protocol.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define F_CREATE 1 /* BPF_LOCAL_STORAGE_GET_F_CREATE */
#define F_NO_PREALLOC 1 /* BPF_F_NO_PREALLOC */

struct task_val {
	__u64 calls;
	__u32 pid;
	__u32 tag;       /* written from user space */
	__u32 seen_tag;  /* the tag the program saw at the last call */
	__u32 pad;
};

struct cgrp_val {
	__u64 calls;
	__u64 id;
};

struct sk_val {
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 magic;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_val);
} task_store SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct cgrp_val);
} cgrp_store SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sk_val);
} sk_store SEC(".maps");

__u64 target_cgid = 0;

SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	struct task_struct *task;
	struct task_val *tv;
	struct cgrp_val *cv;
	struct cgroup *cg;

	if (!target_cgid || bpf_get_current_cgroup_id() != target_cgid)
		return 0;
	task = bpf_get_current_task_btf();
	tv = bpf_task_storage_get(&task_store, task, 0, F_CREATE);
	if (tv) {
		tv->calls++;
		tv->pid = task->pid;
		tv->seen_tag = tv->tag;
	}
	cg = task->cgroups->dfl_cgrp;
	cv = bpf_cgrp_storage_get(&cgrp_store, cg, 0, F_CREATE);
	if (cv) {
		cv->calls++;
		cv->id = BPF_CORE_READ(cg, kn, id);
	}
	return 0;
}

SEC("cgroup/sock_create")
int on_sock_create(struct bpf_sock *sk)
{
	struct sk_val *v = bpf_sk_storage_get(&sk_store, sk, 0, F_CREATE);

	if (v) {
		v->family = sk->family;
		v->type = sk->type;
		v->protocol = sk->protocol;
		v->magic = 0x5eed;
	}
	return 1;
}
