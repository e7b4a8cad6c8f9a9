// SPDX-License-Identifier: GPL-2.0
/* BPF_MAP_TYPE_ARENA (integration/test_arena.py, Linux 6.9+): a 4-page arena at a fixed
 * user address (map_extra; built with -DARENA_BASE=0: where the kernel chooses), mmap-ed
 * by the loader. The SEC("syscall") programs, run with BPF_PROG_TEST_RUN, allocate pages
 * with bpf_arena_alloc_pages() (a sleepable kfunc: syscall programs are sleepable) and
 * write them; user space reads the pages back through the mapping, writes them, and the
 * program reads what it wrote.
 */
#include "vmlinux.h"
#include "common.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define __arena __attribute__((address_space(1)))
#ifndef __ulong
#define __ulong(name, val) enum { ___bpf_concat(__unique_value, __COUNTER__) = val } name
#endif
#define NUMA_NO_NODE (-1)
#ifndef ARENA_BASE
#define ARENA_BASE 0x100000000000ULL /* 0: the kernel chooses at the first mmap */
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARENA);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 4); /* pages */
	__ulong(map_extra, ARENA_BASE);
} arena SEC(".maps");

void __arena *bpf_arena_alloc_pages(void *map, void __arena *addr, __u32 page_cnt,
				    int node_id, __u64 flags) __ksym __weak;
void bpf_arena_free_pages(void *map, void __arena *ptr, __u32 page_cnt) __ksym __weak;

/* a program that only dereferences arena pointers (addr_space_cast) must still reference
 * the arena map (one ld_imm64 of it) for the verifier to know which arena they point to */
#define USE_ARENA() asm volatile("" : : "r"(&arena))

struct arena_args {
	__u64 addr;   /* in: where to read (read_page); out: the page allocated (alloc_page) */
	__u64 value;  /* in: the value to write (alloc_page); out: the value read (read_page) */
	__u64 sum;    /* out: read_page: the sum of the page's first 8 u64 */
};

SEC("syscall")
int alloc_page(struct arena_args *args)
{
	__u64 __arena *page = bpf_arena_alloc_pages(&arena, NULL, 1, NUMA_NO_NODE, 0);
	int i;

	if (!page)
		return 1;
	for (i = 0; i < 8; i++)
		page[i] = args->value + i;
	args->addr = (__u64)page;
	return 0;
}

SEC("syscall")
int read_page(struct arena_args *args)
{
	__u64 __arena *page = (__u64 __arena *)args->addr;
	__u64 sum = 0;
	int i;

	USE_ARENA();
	for (i = 0; i < 8; i++)
		sum += page[i];
	args->value = page[0];
	args->sum = sum;
	return 0;
}

SEC("syscall")
int free_page(struct arena_args *args)
{
	bpf_arena_free_pages(&arena, (void __arena *)args->addr, 1);
	return 0;
}
