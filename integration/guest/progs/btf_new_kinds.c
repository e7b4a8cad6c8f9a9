// SPDX-License-Identifier: GPL-2.0
/* BTF kinds newer than Linux 5.10 in a loadable object (integration/guest/test_guest_btf.py):
 * FLOAT (5.13), DECL_TAG (5.16), TYPE_TAG (5.17), ENUM64 and signed ENUM (6.0), all in the
 * value type of a BTF-described map and in the program's own types. clang-19 emits them
 * all; a kernel that lacks one refuses the whole BTF blob unless bpfobj sanitises it
 * (bpfobj/btf/sanitize.py), and then the maps and programs would go in without BTF.
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

#define __dtag(x) __attribute__((btf_decl_tag(x)))
#define __ttag(x) __attribute__((btf_type_tag(x)))

enum big64 { BIG_LO = 1, BIG_HI = 0x100000000ULL };	/* ENUM64 */
enum sign { SIGN_NEG = -1, SIGN_POS = 1 };		/* signed ENUM */

struct sample {
	__u64 packets;
	__u64 bytes;
	float ratio;					/* FLOAT */
	enum big64 big;
	enum sign sign;
	int __ttag("user") *where;			/* TYPE_TAG */
	__u32 last_len __dtag("member_tag");		/* DECL_TAG on a member */
} __dtag("struct_tag");					/* DECL_TAG on the struct */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sample);
} samples SEC(".maps");

__u64 runs = 0;

static __noinline int account(struct sample *s __dtag("param_tag"), __u32 len)
{
	s->packets++;
	s->bytes += len;
	s->last_len = len;
	s->big = BIG_HI;
	s->sign = SIGN_NEG;
	return XDP_PASS;
}

SEC("xdp")
int count_packets(struct xdp_md *ctx) __dtag("prog_tag")
{
	__u32 key = 0;
	struct sample *s = bpf_map_lookup_elem(&samples, &key);

	__sync_fetch_and_add(&runs, 1);
	if (!s)
		return XDP_ABORTED;
	return account(s, ctx->data_end - ctx->data);
}

char LICENSE[] SEC("license") = "GPL";
