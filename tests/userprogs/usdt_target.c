// SPDX-License-Identifier: GPL-2.0
/* A user-space helper for the USDT tests (built with gcc, not a BPF object): N times, fires
 * the USDT probe bpfobj:hit at two sites with arguments (i, 10 * i, 7), guarded by its
 * semaphore like DTRACE_PROBE users do, and prints how often the semaphore was set.
 * Usage: attach_usdt_target N
 *
 * The probes are written out as <sys/sdt.h> (SystemTap SDT v3) emits them, so the build
 * needs no systemtap-sdt-dev: a nop at the probe address, a .note.stapsdt note {pc,
 * .stapsdt.base, semaphore, provider, name, argument spec}, the .stapsdt.base marker, and
 * the semaphore in .probes. The argument spec is printed by the compiler ("-8@%rdi").
 */
#include <stdio.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__aarch64__)
#define PTR ".8byte"
#else
#error "64-bit x86 or arm64 only"
#endif

#define BPFOBJ_USDT3(provider, name, sema, a1, a2, a3)                                    \
	__asm__ __volatile__(                                                               \
		"990: nop\n"                                                                \
		".pushsection .note.stapsdt,\"?\",\"note\"\n"                               \
		".balign 4\n"                                                               \
		".4byte 992f-991f, 994f-993f, 3\n"                                          \
		"991: .asciz \"stapsdt\"\n"                                                 \
		"992: .balign 4\n"                                                          \
		"993: " PTR " 990b\n"                                                       \
		PTR " _.stapsdt.base\n"                                                     \
		PTR " " #sema "\n"                                                          \
		".asciz \"" #provider "\"\n"                                                \
		".asciz \"" #name "\"\n"                                                    \
		".asciz \"-8@%0 -8@%1 -4@%2\"\n"                                            \
		"994: .balign 4\n"                                                          \
		".popsection\n"                                                             \
		".ifndef _.stapsdt.base\n"                                                  \
		".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n"     \
		".weak _.stapsdt.base\n"                                                    \
		".hidden _.stapsdt.base\n"                                                  \
		"_.stapsdt.base: .space 1\n"                                                \
		".size _.stapsdt.base, 1\n"                                                 \
		".popsection\n"                                                             \
		".endif\n"                                                                  \
		:: "nor"((long)(a1)), "nor"((long)(a2)), "nor"((int)(a3)))

/* the semaphore: the kernel counts attached uprobes here (uprobe ref_ctr_offset) */
__attribute__((section(".probes"), used)) volatile unsigned short bpfobj_hit_semaphore;

static long enabled;

__attribute__((noinline)) void second_site(long i)
{
	if (bpfobj_hit_semaphore) {
		enabled++;
		BPFOBJ_USDT3(bpfobj, hit, bpfobj_hit_semaphore, i, i * 10, 7);
	}
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;

	for (long i = 1; i <= n; i++) {
		if (bpfobj_hit_semaphore) {
			enabled++;
			BPFOBJ_USDT3(bpfobj, hit, bpfobj_hit_semaphore, i, i * 10, 7);
		}
		second_site(i);
	}
	printf("%ld\n", enabled);
	return 0;
}
