// SPDX-License-Identifier: GPL-2.0
/* Global data: .data, .rodata (const volatile, patched by loaders before load), .bss,
 * custom SEC(".data.custom") / SEC(".rodata.custom") / SEC(".bss.custom") sections (own
 * internal maps, named without the object prefix), a long custom name (kernel map name
 * truncated to 15 chars), static and __hidden globals (an internal map is not mmapable
 * if every var in it is static), string literals (.rodata.str1.1, no DATASEC), and
 * programs reading/writing all of them.
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

struct config {
	__u32 verbose;
	__u32 sample_rate;
	char tag[8];
};

/* .rodata */
const volatile __u32 target_pid = 0;
const volatile __u64 min_duration_ns = 1000000;
const volatile struct config cfg = { .verbose = 1, .sample_rate = 100, .tag = "bpfobj" };
const volatile char comm_filter[16] = "bash";

/* .data */
__u64 packets = 42;
int mode = -1;
__u8 mac[6] = { 0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc };

/* .bss */
__u64 drops;
__u64 hist[32];
struct config scratch;

/* custom sections */
__u64 custom_counter SEC(".data.custom") = 7;
__u32 custom_table[4] SEC(".data.custom") = { 1, 2, 3, 4 };
const volatile __u32 custom_limit SEC(".rodata.custom") = 99;
__u64 long_name_var SEC(".data.a_rather_long_custom_section") = 5;
__u64 custom_zeroes[2] SEC(".bss.custom");

/* static-only section: libbpf makes its map not BPF_F_MMAPABLE */
static __u32 static_only SEC(".data.statics") = 3;

/* hidden global: a STATIC BTF var */
__hidden __u64 hidden_total = 11;

static __noinline int record(__u32 bucket)
{
	if (bucket >= 32)
		bucket = 31;
	hist[bucket]++;
	return bucket;
}

SEC("tp/syscalls/sys_enter_read")
int on_read(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	if (target_pid && pid != target_pid)
		return 0;
	packets++;
	custom_counter += custom_limit;
	static_only++;
	hidden_total += mac[3];
	if (cfg.verbose)
		bpf_printk("read pid=%d tag=%s", pid, cfg.tag);
	return record(pid & 31);
}

SEC("xdp")
int count_xdp(struct xdp_md *ctx)
{
	__u32 i = ctx->rx_queue_index & 3;

	if (mode < 0)
		drops++;
	custom_table[i] += 1;
	custom_zeroes[i & 1]++;
	long_name_var += min_duration_ns;
	scratch.sample_rate = cfg.sample_rate;
	bpf_printk("xdp %s", "hello");
	return comm_filter[0] == 'b' ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
