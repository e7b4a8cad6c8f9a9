// SPDX-License-Identifier: GPL-2.0
/* A stand-in "kernel" for the offline struct_ops tests: its BTF (the object's .BTF) is the
 * target BTF of prepare. It declares struct tcp_congestion_ops in a smaller layout than
 * Linux's, with the value wrapper struct bpf_struct_ops_tcp_congestion_ops. Variants (-D):
 *   NO_WRAPPER     no struct bpf_struct_ops_tcp_congestion_ops (the kernel lacks the type)
 *   NO_UNDO        no undo_cwnd member
 *   NAME_SIZE=N    name is char[N] (16 otherwise)
 *   INIT_INT       init is an unsigned long, not a pointer
 *   INIT_DATA_PTR  init is a void *, not a function pointer
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifndef NAME_SIZE
#define NAME_SIZE 16
#endif

struct sock;
struct module;

struct tcp_congestion_ops {
	__u32 (*ssthresh)(struct sock *sk);
	void (*cong_avoid)(struct sock *sk, __u32 ack, __u32 acked);
#ifndef NO_UNDO
	__u32 (*undo_cwnd)(struct sock *sk);
#endif
	char name[NAME_SIZE];
	struct module *owner;
#if defined(INIT_INT)
	unsigned long init;
#elif defined(INIT_DATA_PTR)
	void *init;
#else
	void (*init)(struct sock *sk);
#endif
};

struct bpf_struct_ops_common_value {
	int refcnt;
	int state;
};

#ifndef NO_WRAPPER
struct bpf_struct_ops_tcp_congestion_ops {
	struct bpf_struct_ops_common_value common;
	struct tcp_congestion_ops data;
};

struct bpf_struct_ops_tcp_congestion_ops kernel_value;
#else
struct tcp_congestion_ops kernel_value;
#endif

char LICENSE[] SEC("license") = "GPL";
