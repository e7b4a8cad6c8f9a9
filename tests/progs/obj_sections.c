// SPDX-License-Identifier: GPL-2.0
/* One program per section kind libbpf 1.1 knows, plus '?' (no autoload) and sleepable
 * ('.s') variants. Program bodies are trivial on purpose: this object is about section
 * name -> (prog type, expected attach type, autoload) resolution at open.
 * No vmlinux.h: tracing contexts are plain u64 arrays / void pointers.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* ---- tracing ---- */

SEC("tp/sched/sched_switch")
int tp_short(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_write")
int tp_long(void *ctx) { return 1; }

SEC("raw_tp/sched_switch")
int raw_tp_short(void *ctx) { return 0; }

SEC("raw_tracepoint/sys_enter")
int raw_tp_long(void *ctx) { return 0; }

SEC("raw_tp.w/bpf_test_finish")
int raw_tp_writable(void *ctx) { return 0; }

SEC("tp_btf/sched_switch")
int tp_btf_switch(__u64 *ctx) { return ctx[0] != 0; }

SEC("fentry/do_unlinkat")
int fentry_unlinkat(__u64 *ctx) { return 0; }

SEC("fexit/do_unlinkat")
int fexit_unlinkat(__u64 *ctx) { return (int)ctx[2]; }

SEC("fmod_ret/security_file_open")
int fmod_ret_open(__u64 *ctx) { return 0; }

SEC("fentry.s/__x64_sys_getuid")
int fentry_sleepable(__u64 *ctx)
{
	char buf[8];

	bpf_copy_from_user(buf, sizeof(buf), (void *)ctx[0]);
	return buf[0];
}

SEC("fexit.s/__x64_sys_getuid")
int fexit_sleepable(__u64 *ctx) { return 0; }

SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(kprobe_openat2, int dfd, const char *filename)
{
	return dfd + (filename != 0);
}

SEC("kretprobe/do_sys_openat2")
int BPF_KRETPROBE(kretprobe_openat2, long ret)
{
	return ret < 0;
}

SEC("kprobe")
int kprobe_bare(struct pt_regs *ctx) { return 0; }

SEC("ksyscall/openat")
int ksyscall_openat(struct pt_regs *ctx) { return 0; }

SEC("kprobe.multi/vfs_*")
int kprobe_multi_vfs(struct pt_regs *ctx) { return 0; }

SEC("uprobe//bin/bash:readline")
int BPF_KPROBE(uprobe_readline, const void *prompt) { return prompt != 0; }

SEC("uretprobe//bin/bash:readline")
int BPF_KRETPROBE(uretprobe_readline, const void *line) { return line != 0; }

SEC("uprobe.s//bin/bash:readline")
int BPF_KPROBE(uprobe_sleepable, const void *prompt)
{
	char c = 0;

	bpf_copy_from_user(&c, 1, prompt);
	return c;
}

SEC("uprobe")
int uprobe_bare(struct pt_regs *ctx) { return 0; }

SEC("lsm/file_open")
int lsm_file_open(__u64 *ctx) { return 0; }

SEC("lsm.s/bprm_committed_creds")
int lsm_sleepable(__u64 *ctx) { return 0; }

SEC("perf_event")
int perf_sample(void *ctx) { return 0; }

SEC("iter/task")
int iter_task(void *ctx) { return 0; }

SEC("iter.s/task_file")
int iter_task_file_sleepable(void *ctx) { return 0; }

SEC("syscall")
int syscall_prog(void *ctx) { return 0; }

/* ---- networking ---- */

SEC("xdp")
int xdp_plain(struct xdp_md *ctx) { return XDP_PASS; }

SEC("xdp.frags")
int xdp_frags(struct xdp_md *ctx) { return XDP_PASS; }

SEC("xdp/devmap")
int xdp_devmap(struct xdp_md *ctx) { return XDP_PASS; }

SEC("xdp/cpumap")
int xdp_cpumap(struct xdp_md *ctx) { return XDP_PASS; }

SEC("tc")
int tc_plain(struct __sk_buff *skb) { return skb->len > 1500; }

SEC("classifier")
int tc_classifier(struct __sk_buff *skb) { return 0; }

SEC("action")
int tc_action(struct __sk_buff *skb) { return 0; }

SEC("cgroup_skb/ingress")
int cgroup_ingress(struct __sk_buff *skb) { return 1; }

SEC("cgroup_skb/egress")
int cgroup_egress(struct __sk_buff *skb) { return 1; }

SEC("cgroup/skb")
int cgroup_skb_any(struct __sk_buff *skb) { return 1; }

SEC("cgroup/sock_create")
int cgroup_sock_create(struct bpf_sock *sk) { return 1; }

SEC("cgroup/connect4")
int cgroup_connect4(struct bpf_sock_addr *ctx) { return 1; }

SEC("cgroup/sysctl")
int cgroup_sysctl(struct bpf_sysctl *ctx) { return 1; }

SEC("cgroup/getsockopt")
int cgroup_getsockopt(struct bpf_sockopt *ctx) { return 1; }

SEC("cgroup/dev")
int cgroup_dev(struct bpf_cgroup_dev_ctx *ctx) { return 1; }

SEC("socket")
int socket_filter(struct __sk_buff *skb) { return skb->len; }

SEC("sockops")
int sock_ops(struct bpf_sock_ops *ctx) { return 1; }

SEC("sk_skb/stream_parser")
int skb_parser(struct __sk_buff *skb) { return skb->len; }

SEC("sk_skb/stream_verdict")
int skb_verdict(struct __sk_buff *skb) { return SK_PASS; }

SEC("sk_msg")
int msg_verdict(struct sk_msg_md *msg) { return SK_PASS; }

SEC("sk_lookup")
int lookup(struct bpf_sk_lookup *ctx) { return SK_PASS; }

SEC("sk_reuseport")
int reuseport(struct sk_reuseport_md *ctx) { return SK_PASS; }

SEC("flow_dissector")
int dissect(struct __sk_buff *skb) { return 0; }

SEC("lwt_in")
int lwt_in_prog(struct __sk_buff *skb) { return 0; }

/* ---- no autoload ('?' prefix; libbpf forgets the '?' in the section name) ---- */

SEC("?tp/syscalls/sys_enter_close")
int optional_tp(void *ctx) { return 0; }

SEC("?xdp")
int optional_xdp(struct xdp_md *ctx) { return XDP_DROP; }

SEC("?fentry.s/__x64_sys_getuid")
int optional_fentry_sleepable(__u64 *ctx) { return 0; }

SEC("?lsm/bpf")
int optional_lsm(__u64 *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0x060c00;
