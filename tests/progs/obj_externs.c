// SPDX-License-Identifier: GPL-2.0
/* Externs: kconfig (.kconfig DATASEC -> libbpf's internal ".kconfig" map) of several kinds
 * (libbpf's LINUX_KERNEL_VERSION, strong and __weak bool/tristate/int/char-array
 * CONFIG_*), ksyms (.ksyms DATASEC, no map): typed (`struct rq runqueues`), typeless
 * (`const void bpf_prog_active`), weak typed and weak typeless, and kfuncs (strong and
 * __weak extern functions called with BPF_PSEUDO_KFUNC_CALL).
 * Uses this host's vmlinux.h for the kernel types.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

extern int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern bool CONFIG_BPFOBJ_DOES_NOT_EXIST __kconfig __weak;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig __weak;
extern int CONFIG_HZ __kconfig __weak;
extern unsigned long CONFIG_NR_CPUS __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[16] __kconfig __weak;

extern const struct rq runqueues __ksym;
extern const void bpf_prog_active __ksym;
extern const int bpf_bpfobj_missing_typed __ksym __weak;
extern const void bpf_bpfobj_missing_typeless __ksym __weak;

extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern void bpf_bpfobj_missing_kfunc(void) __ksym __weak;

__u64 seen_version;
__u64 seen_cpus;

SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct rq *rq = (struct rq *)bpf_per_cpu_ptr(&runqueues, 0);
	int *active = (int *)bpf_this_cpu_ptr(&bpf_prog_active);

	seen_version = LINUX_KERNEL_VERSION;
	if (!CONFIG_BPF_SYSCALL || CONFIG_BPFOBJ_DOES_NOT_EXIST)
		return 0;
	if (CONFIG_BPF_JIT == TRI_YES)
		seen_cpus = CONFIG_NR_CPUS + CONFIG_HZ + CONFIG_DEFAULT_HOSTNAME[0];
	if (rq)
		seen_cpus += rq->cpu;
	if (&bpf_bpfobj_missing_typed)
		seen_cpus += bpf_bpfobj_missing_typed;
	if (&bpf_bpfobj_missing_typeless)
		seen_cpus++;
	return *active;
}

SEC("tp_btf/task_newtask")
int BPF_PROG(on_newtask, struct task_struct *task, u64 clone_flags)
{
	struct task_struct *t = bpf_task_acquire(task);

	if (!t)
		return 0;
	if (bpf_bpfobj_missing_kfunc)
		bpf_bpfobj_missing_kfunc();
	bpf_task_release(t);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
