// SPDX-License-Identifier: GPL-2.0
/* A user-space helper for the uprobe tests (built with gcc, not a BPF object): calls
 * bpfobj_uprobe_target(i) for i = 1..N and the two bpfobj_multi_* functions N times each.
 * Usage: attach_uprobe_target N
 */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline, used)) int bpfobj_uprobe_target(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 2;
}

__attribute__((noinline, used)) int bpfobj_multi_one(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

__attribute__((noinline, used)) int bpfobj_multi_two(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 2;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	long sum = 0;

	for (int i = 1; i <= n; i++) {
		sum += bpfobj_uprobe_target(i);
		sum += bpfobj_multi_one(i) + bpfobj_multi_two(i);
	}
	printf("%ld\n", sum);
	return 0;
}
