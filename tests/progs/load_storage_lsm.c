// SPDX-License-Identifier: GPL-2.0
/* Inode storage (integration/test_storage.py): BPF_MAP_TYPE_INODE_STORAGE has helpers for
 * BPF LSM programs only, so the program is an lsm/file_open hook (a BPF trampoline) that
 * counts the opens of files of the inode storage holders: user space creates a file's
 * storage (by path or fd), the hook counts its opens by the task `target_tgid` there.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct inode_val {
	__u64 opens;
	__u32 tag;   /* written from user space */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_INODE_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inode_val);
} inode_store SEC(".maps");

const volatile __u32 target_tgid = 0;

SEC("lsm/file_open")
int BPF_PROG(on_file_open, struct file *file)
{
	struct inode_val *v;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	v = bpf_inode_storage_get(&inode_store, file->f_inode, 0, 0); /* no F_CREATE */
	if (v)
		__sync_fetch_and_add(&v->opens, 1);
	return 0;
}
