/* SPDX-License-Identifier: Apache-2.0 */
/* Shared bits for the bpfobj test objects (tests/progs/obj_*.c).
 *
 * Include it after either <linux/bpf.h> or "vmlinux.h" and before the libbpf headers:
 * it picks a default target arch for <bpf/bpf_tracing.h> and supplies the few arch
 * types that this x86 host's UAPI headers lack for cross-arch builds.
 */
#ifndef BPFOBJ_TEST_COMMON_H
#define BPFOBJ_TEST_COMMON_H

/* bpf_tracing.h's PT_REGS_* accessors need an arch; default to the host's. */
#if !defined(__TARGET_ARCH_x86) && !defined(__TARGET_ARCH_arm64) && \
	!defined(__TARGET_ARCH_s390) && !defined(__TARGET_ARCH_riscv) && \
	!defined(__TARGET_ARCH_arm) && !defined(__TARGET_ARCH_powerpc) && \
	!defined(__TARGET_ARCH_mips) && !defined(__TARGET_ARCH_sparc) && \
	!defined(__TARGET_ARCH_loongarch)
#define __TARGET_ARCH_x86
#endif

/* Without vmlinux.h, bpf_tracing.h uses the UAPI register struct of the arch:
 * x86's struct pt_regs comes from <asm/ptrace.h> (on the host include path), but
 * arm64's struct user_pt_regs is not installed on an x86 host, so define it here
 * (same layout as arch/arm64/include/uapi/asm/ptrace.h).
 */
#if defined(__TARGET_ARCH_arm64) && !defined(__VMLINUX_H__)
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
#endif

#define DUAL_LICENSE "Dual BSD/GPL"

#endif /* BPFOBJ_TEST_COMMON_H */
