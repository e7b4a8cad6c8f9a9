// SPDX-License-Identifier: GPL-2.0
/* Section names added to libbpf after 1.1, which opens the object but leaves these
 * programs BPF_PROG_TYPE_UNSPEC ("unrecognized ELF section name"): tc/ingress, tc/egress,
 * tcx/ingress, tcx/egress, netkit/primary, netfilter and uprobe.multi (all libbpf 1.3),
 * kprobe.session (1.5). A current loader should resolve them (sched_cls/tcx_ingress,
 * netfilter/netfilter, kprobe/trace_uprobe_multi, kprobe/trace_kprobe_session, ...); the
 * parity test skips type and attach type for them. kretsyscall (known to 1.1) keeps the
 * object from being all-unknown.
 */
#include <linux/bpf.h>
#include "common.h"
#include <bpf/bpf_helpers.h>

SEC("tc/ingress")
int tc_ingress(struct __sk_buff *skb) { return 0; }

SEC("tc/egress")
int tc_egress(struct __sk_buff *skb) { return 0; }

SEC("tcx/ingress")
int tcx_ingress(struct __sk_buff *skb) { return 0; }

SEC("tcx/egress")
int tcx_egress(struct __sk_buff *skb) { return 0; }

SEC("netkit/primary")
int netkit_primary(struct __sk_buff *skb) { return 0; }

SEC("netfilter")
int nf_hook(void *ctx) { return 1; }

SEC("uprobe.multi//usr/lib/libc.so.6:malloc*")
int uprobe_multi(void *ctx) { return 0; }

SEC("kprobe.session/vfs_*")
int kprobe_session(void *ctx) { return 0; }

SEC("kretsyscall/close")
int kretsyscall_close(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
