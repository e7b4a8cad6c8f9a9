// SPDX-License-Identifier: GPL-2.0
/* Every BTF kind clang emits, plus func_info, line_info and CO-RE relocations in .BTF.ext.
 * Used by tests/test_btf_objects.py; compare with `bpftool btf dump file btf_kinds.o`.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define __dtag(x) __attribute__((btf_decl_tag(x)))
#define __ttag(x) __attribute__((btf_type_tag(x)))

typedef unsigned int u32;
typedef unsigned long long u64;

enum color { RED, GREEN = 5, BLUE };			/* ENUM, unsigned */
enum small { SMALL_NEG = -1, SMALL_POS = 2 };		/* ENUM, signed */
enum big64 { BIG_LO = 1, BIG_HI = 0x100000000ULL };	/* ENUM64, unsigned */
enum sbig64 { SBIG_NEG = -0x100000000LL, SBIG_ONE = 1 };	/* ENUM64, signed */

struct only_declared;					/* FWD struct */
union only_declared_u;					/* FWD union */

struct all_fields {
	unsigned int a : 3;				/* bitfields: kind_flag set */
	unsigned int b : 5;
	int c : 7;
	u64 d;
	char name[16];
	int matrix[2][3];
	volatile int vol;
	const char *cstr;
	struct only_declared *fwd;
	union only_declared_u *fwd_u;
	float f;
	double dbl;
	int __ttag("user") *tagged;			/* TYPE_TAG */
	struct {
		int x, y;
	} anon;
	union {
		int i;
		unsigned int u;
	} anon_u;
	enum color col;
	enum small sm;
	enum big64 b64;
	enum sbig64 sb64;
	_Bool flag;
	int (*callback)(int, const char *, ...);	/* FUNC_PROTO, variadic */
	int tail __dtag("member_tag");			/* DECL_TAG on a member */
} __dtag("struct_tag");					/* DECL_TAG on the struct */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, struct all_fields);
} btf_map SEC(".maps");

struct all_fields global_fields = {};			/* .bss */
int global_counter = 1;					/* .data */
const volatile int rodata_val = 7;			/* .rodata */
extern int LINUX_KERNEL_VERSION __kconfig;		/* extern VAR in .kconfig */
extern int bpf_some_kfunc(int x) __ksym __weak;	/* extern FUNC in .ksyms */

/* What CO-RE relocations target (a local flavour of a kernel struct). */
struct task_struct___local {
	int pid;
	int tgid;
	struct task_struct___local *parent;
} __attribute__((preserve_access_index));

enum pid_type___local { PIDTYPE_PID___local, PIDTYPE_TGID___local };

static __noinline int static_helper(int *restrict p __dtag("param_tag"))
{
	return p ? *p + 1 : 0;
}

__noinline int global_helper(int a, long b)
{
	return a + (int)b + rodata_val;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int handle_exec(void *ctx)
{
	struct task_struct___local *t = (void *)bpf_get_current_task();
	int pid = BPF_CORE_READ(t, pid);
	int ppid = BPF_CORE_READ(t, parent, tgid);
	int v = global_counter;

	if (bpf_core_field_exists(t->tgid))
		v += 1;
	if (bpf_core_type_exists(struct all_fields))
		v += bpf_core_type_size(struct all_fields);
	if (bpf_core_enum_value_exists(enum pid_type___local, PIDTYPE_TGID___local))
		v += bpf_core_enum_value(enum pid_type___local, PIDTYPE_TGID___local);
	global_fields.d = pid + ppid + static_helper(&v);
	return global_helper(v, LINUX_KERNEL_VERSION);
}

SEC("xdp")
int handle_xdp(struct xdp_md *ctx)
{
	if (bpf_some_kfunc)
		return bpf_some_kfunc(ctx->ingress_ifindex);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
