// SPDX-License-Identifier: GPL-2.0
/* Layouts that make the BTF-to-C dumper (libbpf btf_dump.c, bpfobj.btf.cdump) work hard:
 * bitfields and padding, packed and over-aligned structs, anonymous and nested types,
 * declarator chains (function pointers, arrays of them, pointers to arrays, qualifiers),
 * odd-sized enums, duplicate type names, forward declarations and type cycles, type and
 * decl tags. Every type reaches BTF through a global variable or a function.
 * Used by tests/test_btf_cdump.py and tests/test_btf_dump.py (compared with bpftool).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __dtag(x) __attribute__((btf_decl_tag(x)))
#define __ttag(x) __attribute__((btf_type_tag(x)))

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

/* --- bitfields and padding ------------------------------------------------------------ */
struct bits {
	u8 a : 1;
	u8 b : 3;
	u32 c : 20;
	u32 : 0;			/* zero-width: next field starts a new unit */
	u32 d : 7;
	u64 e : 33;			/* crosses a 32-bit boundary */
	int f : 2;			/* signed bitfield */
	u16 : 5;			/* unnamed padding bitfield */
	u16 g : 4;
	char last;
};

struct holes {
	char a;
	long b;
	char c;
	short d;
	int e;
	char f;				/* trailing padding */
};

struct over_aligned {
	char a;
	int b __attribute__((aligned(16)));
	char c;
	long d __attribute__((aligned(32)));
} __attribute__((aligned(64)));

struct gap_bitfield {
	u32 x : 4;
	u32 y : 4;
	u64 z __attribute__((aligned(16)));
	u8 w : 3;
};

union bit_union {
	u32 whole;
	struct {
		u32 lo : 16;
		u32 hi : 16;
	};
	u8 bytes[4];
	u64 wide : 48;
};

/* --- packed ---------------------------------------------------------------------------- */
struct __attribute__((packed)) packed_simple {
	char a;
	int b;
	short c;
	long d;
};

struct __attribute__((packed)) packed_bits {
	u8 a : 4;
	u32 b : 20;
	u64 c;
};

struct contains_packed {
	char a;
	struct packed_simple p;
	int after;
};

struct __attribute__((packed, aligned(4))) packed_aligned {
	char a;
	int b;
	char c;
};

struct packed_member {
	char a;
	int b __attribute__((packed));
	char c;
};

/* --- anonymous and nested ------------------------------------------------------------- */
struct nested {
	int kind;
	union {
		struct {
			int x, y;
		} point;
		struct {
			u64 lo, hi;
		};
		char raw[16];
	};
	enum { NESTED_A, NESTED_B = 7 } inline_enum;
	struct {
		struct {
			int deep;
		} inner;
		union {
			int i;
			float f;
		} *ptr_to_anon;
	} outer;
};

typedef struct {
	int x;
	int y;
} anon_typedef_t;

typedef union {
	u32 v;
	u8 b[4];
} anon_union_t;

/* --- declarator chains ---------------------------------------------------------------- */
typedef int (*binop_t)(int, int);
typedef void handler_fn(int sig, void *ctx);
typedef int (*(*getter_t)(long))(const char *, ...);

struct decls {
	int (*fp)(int, char *);
	void (*fps[4])(void);
	int (*(*fret)(int))(long);
	int (*vararg)(const char *fmt, ...);
	int (*parr)[10];
	int (*parr2)[3][4];
	int m[2][3][4];
	const volatile int *const cvp;
	char *restrict rp;
	const char *const *strv;
	binop_t ops[2];
	handler_fn *handler;
	getter_t getter;
	anon_typedef_t pt;
	anon_union_t un;
	void *vp;
	const void *cvp2;
	u8 flex_before;
	char flex[];
};

struct zero_len {
	int n;
	long items[0];
};

struct empty {};

struct only_empty {
	struct empty e;
	int x;
};

/* --- enums ------------------------------------------------------------------------------ */
enum __attribute__((packed)) tiny_enum { TINY_A, TINY_B = 200 };
enum signed_enum { S_NEG = -5, S_POS = 3 };
enum wide_enum { W_SMALL = 1, W_BIG = 0x1234567890ULL };
enum signed_wide { SW_NEG = -0x100000000LL, SW_ONE = 1 };
enum __attribute__((mode(word))) word_enum { WORD_A = 1, WORD_B = 2 };

struct enums {
	enum tiny_enum t;
	u8 after_tiny;
	enum signed_enum s;
	enum wide_enum w;
	enum signed_wide sw;
	enum word_enum we;
	enum tiny_enum tb : 4;
};

/* --- forward declarations and cycles ---------------------------------------------------- */
struct opaque;
union opaque_u;

struct node_b;
struct node_a {
	struct node_b *b;
	struct node_a *self;
	struct opaque *op;
	union opaque_u *opu;
};
struct node_b {
	struct node_a a;		/* embeds A: A must be complete first */
	struct node_b *next;
};

struct tree {
	struct tree *left, *right;
	struct {
		struct tree *parent;	/* anonymous struct pointing back to its container */
	} up;
};

/* --- tags and other kinds --------------------------------------------------------------- */
struct tagged {
	int __ttag("user") *uptr;
	int __ttag("percpu") __ttag("rcu") *multi;
	int plain __dtag("member_tag");
} __dtag("struct_tag");

struct scalars {
	_Bool flag;
	signed char sc;
	unsigned char uc;
	float f;
	double d;
	__int128 i128;
	unsigned __int128 u128;
	long long ll;
	unsigned long ul;
};

/* --- globals holding everything ----------------------------------------------------------- */
struct bits g_bits;
struct holes g_holes;
struct over_aligned g_over;
struct gap_bitfield g_gap;
union bit_union g_bu;
struct packed_simple g_ps;
struct packed_bits g_pb;
struct contains_packed g_cp;
struct packed_aligned g_pa;
struct packed_member g_pm;
struct nested g_nested;
struct decls *g_decls;
struct zero_len *g_zl;
struct only_empty g_oe;
struct enums g_enums;
struct node_b g_nb;
struct tree g_tree;
struct tagged g_tagged;
struct scalars g_scalars;
int (*g_table[3])(struct holes *, ...);

/* Tags declared in a prototype are scoped to it: the same name in two prototypes names two
 * types, which the dumper must rename (dup, dup___2; DUPV, DUPV___2). */
#pragma clang diagnostic ignored "-Wvisibility"
static __attribute__((noinline)) int dup_a(struct dup { int a; } *p, enum dup_e { DUPV = 1 } e)
{
	return p->a + e;
}

static __attribute__((noinline)) long dup_b(struct dup { long b; char c; } *p,
					    enum dup_e2 { DUPV = 2, DUPW } e)
{
	return p->b + p->c + e;
}

__attribute__((noinline)) int global_func(struct bits *b __dtag("arg_tag"), int n) __dtag("func_tag")
{
	return b ? b->c + n : n;
}

SEC("tp/syscalls/sys_enter_getpid")
int dump_prog(void *ctx)
{
	return dup_a((void *)&g_holes, 1) + dup_b((void *)&g_holes, 2) +
	       global_func(&g_bits, g_holes.e);
}

char LICENSE[] SEC("license") = "GPL";
