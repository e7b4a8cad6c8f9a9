// SPDX-License-Identifier: GPL-2.0
/* One arena global (an __arena variable: clang puts it in .addr_space.1) in a 2-page
 * arena, which libbpf places at the start or the end of the arena
 * (bpfobj.prepare.arena_layout; tests/test_map_types.py,
 * tests/test_arena_globals_offline.py). The open-time refusals, built with:
 *   -DNO_ARENA_MAP   the arena global and no arena map to put it in
 *   -DTWO_ARENAS     a second arena map (libbpf takes one per object)
 *   -DBIG=N          N more bytes of arena globals: more than 2 pages do not fit
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define __arena __attribute__((address_space(1)))

char LICENSE[] SEC("license") = "GPL";

#ifndef NO_ARENA_MAP
struct {
	__uint(type, BPF_MAP_TYPE_ARENA);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2);
} arena SEC(".maps");
#endif

#ifdef TWO_ARENAS
struct {
	__uint(type, BPF_MAP_TYPE_ARENA);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
} other_arena SEC(".maps");
#endif

int __arena counter;

#ifdef BIG
char __arena big[BIG] = { 1 };
#endif

SEC("syscall")
int bump(void *ctx)
{
#ifdef BIG
	big[BIG - 1]++;
#endif
	return ++counter;
}
