// SPDX-License-Identifier: Apache-2.0
/*
 * libbpf_btf_fixup: write the BTF that the system libbpf makes of a BPF object, the
 * reference side of tests/test_btf_fixup.py and tests/test_btf_sanitize.py.
 *
 *   usage: libbpf_btf_fixup open OBJ.o OUT.btf
 *          libbpf_btf_fixup load OBJ.o OUT.btf [MISSING]
 *          libbpf_btf_fixup builder OUTDIR
 *   build: gcc -O2 -Wall -rdynamic -o libbpf_btf_fixup libbpf_btf_fixup.c -lbpf -lelf -lz
 *
 * open: bpf_object__open_file() (no kernel involved), then btf__raw_data() of
 *   bpf_object__btf(): the object's BTF after libbpf's open-time fixups
 *   (bpf_object__collect_externs: .ksyms/.kconfig rewriting and dummy_ksym;
 *   bpf_object_fixup_btf: DATASEC sizes, VAR offsets, hidden VARs static, sorted vars).
 *
 * load: bpf_object__load() with every bpf(2) call faked in this process (nothing reaches
 *   the kernel): this file defines syscall(), which libbpf's sys_bpf() calls through the
 *   PLT, so the executable's definition wins (-rdynamic exports it). Feature probes
 *   (recognised by their fixed string sections, libbpf.c probe_kern_btf_*) succeed unless
 *   their feature is named in MISSING (comma-separated: func, func_global, datasec,
 *   float, decl_tag, type_tag, enum64); program and map creation "succeed" with /dev/null
 *   descriptors. The first BPF_BTF_LOAD that is not a probe carries the object's BTF as
 *   libbpf loads it (hidden subprograms' FUNCs made static, sanitised for the features):
 *   it is written to OUT and the process exits 0 right there.
 *
 * builder: build a fixed set of types with libbpf's btf__add_* API (the sequence that
 *   tests/test_btf_writer.py replays with bpfobj's BtfBuilder) and write OUTDIR/base.btf
 *   (host order), OUTDIR/base_be.btf (btf__set_endianness big) and OUTDIR/split.btf
 *   (btf__new_empty_split on base.btf).
 *
 * Exit codes: 0 written; 1 usage/IO; 2 libbpf failed (message on stderr).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/btf.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

static int fake_bpf;
static const char *out_path;
static char missing[256];

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, args);
	return 0;
}

static int write_file(const char *path, const void *data, size_t size)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		return -1;
	if (fwrite(data, 1, size, f) != size) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

static int feature_missing(const char *name)
{
	char buf[sizeof(missing)], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", missing);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (strcmp(tok, name) == 0)
			return 1;
	return 0;
}

/* The string sections of libbpf's BTF feature probes (libbpf.c probe_kern_btf_*). */
static const struct {
	const char *strs;
	size_t len;
} probe_strs[] = {
	{ "\0int", sizeof("\0int") },
	{ "\0int\0x\0a", sizeof("\0int\0x\0a") },
	{ "\0x\0.data", sizeof("\0x\0.data") },
	{ "\0float", sizeof("\0float") },
	{ "\0tag", sizeof("\0tag") },
	{ "\0enum64", sizeof("\0enum64") },
};

/* Which feature a probe BTF tests, from the kinds it holds; NULL for plain BTF. */
static const char *probe_feature(const char *types, __u32 type_len)
{
	const char *feat = NULL;
	__u32 off = 0;

	while (off + sizeof(struct btf_type) <= type_len) {
		const struct btf_type *t = (const void *)(types + off);
		__u32 kind = BTF_INFO_KIND(t->info), vlen = BTF_INFO_VLEN(t->info);

		off += sizeof(*t);
		switch (kind) {
		case BTF_KIND_INT: off += 4; break;
		case BTF_KIND_FUNC_PROTO: off += vlen * sizeof(struct btf_param); break;
		case BTF_KIND_VAR: off += sizeof(struct btf_var); break;
		case BTF_KIND_DATASEC: off += vlen * sizeof(struct btf_var_secinfo); feat = "datasec"; break;
		case BTF_KIND_DECL_TAG: off += sizeof(struct btf_decl_tag); feat = "decl_tag"; break;
		case BTF_KIND_FLOAT: feat = "float"; break;
		case BTF_KIND_TYPE_TAG: feat = "type_tag"; break;
		case BTF_KIND_ENUM64: off += vlen * 12; feat = "enum64"; break;
		case BTF_KIND_FUNC:
			if (!feat)
				feat = vlen == BTF_FUNC_GLOBAL ? "func_global" : "func";
			break;
		default: break;
		}
	}
	return feat;
}

static long fake_fd(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static long fake_btf_load(union bpf_attr *attr)
{
	const char *blob = (const char *)(unsigned long)attr->btf;
	const struct btf_header *hdr = (const void *)blob;
	const char *strs = blob + hdr->hdr_len + hdr->str_off;
	const char *feat;
	size_t i;

	for (i = 0; i < sizeof(probe_strs) / sizeof(probe_strs[0]); i++) {
		if (hdr->str_len != probe_strs[i].len || memcmp(strs, probe_strs[i].strs, hdr->str_len))
			continue;
		feat = probe_feature(blob + hdr->hdr_len + hdr->type_off, hdr->type_len);
		if (feat && feature_missing(feat)) {
			errno = EINVAL;
			return -1;
		}
		return fake_fd();
	}
	/* the object's BTF */
	if (write_file(out_path, blob, attr->btf_size)) {
		perror(out_path);
		_exit(1);
	}
	_exit(0);
}

static long fake_sys_bpf(int cmd, union bpf_attr *attr)
{
	switch (cmd) {
	case BPF_BTF_LOAD:
		return fake_btf_load(attr);
	case BPF_PROG_LOAD:
	case BPF_MAP_CREATE:
		return fake_fd();
	case BPF_MAP_UPDATE_ELEM:
	case BPF_MAP_FREEZE:
		return 0;
	default:
		errno = EINVAL;
		return -1;
	}
}

/* Interposes libc's syscall() for libbpf (see the header comment). */
long syscall(long number, ...)
{
	static long (*real)(long, ...);
	long a[6];
	va_list ap;
	int i;

	va_start(ap, number);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (number == __NR_bpf && fake_bpf)
		return fake_sys_bpf((int)a[0], (union bpf_attr *)a[1]);
	if (!real)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

#define CHECK(x)                                                                    \
	do {                                                                        \
		if ((x) < 0) {                                                      \
			fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #x); \
			exit(2);                                                    \
		}                                                                   \
	} while (0)

static int write_btf(const char *dir, const char *name, const struct btf *btf)
{
	char path[4096];
	const void *raw;
	__u32 size;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	raw = btf__raw_data(btf, &size);
	if (!raw || write_file(path, raw, size)) {
		perror(path);
		return 1;
	}
	return 0;
}

/* Keep in step with test_btf_writer.py::replay_libbpf_sequence. */
static int builder(const char *dir)
{
	struct btf *b = btf__new_empty(), *base, *split;
	int i_int, i_uchar, p, arr, s, fp, var, var2, td, vol;
	const void *raw;
	__u32 size;

	CHECK(i_int = btf__add_int(b, "int", 4, BTF_INT_SIGNED));
	CHECK(i_uchar = btf__add_int(b, "unsigned char", 1, 0));
	CHECK(btf__add_int(b, "_Bool", 1, BTF_INT_BOOL));
	CHECK(btf__add_int(b, "char", 1, BTF_INT_CHAR | BTF_INT_SIGNED));
	CHECK(btf__add_int(b, "__int128", 16, BTF_INT_SIGNED));
	CHECK(p = btf__add_ptr(b, i_int));
	CHECK(arr = btf__add_array(b, i_int, i_int, 16));
	CHECK(s = btf__add_struct(b, "pair", 16));
	CHECK(btf__add_field(b, "a", i_int, 0, 0));
	CHECK(btf__add_field(b, "b", i_int, 32, 0));
	CHECK(btf__add_field(b, "ptr", p, 64, 0));
	CHECK(btf__add_struct(b, "flags", 4));
	CHECK(btf__add_field(b, "x", i_int, 0, 3));
	CHECK(btf__add_field(b, "y", i_int, 3, 5));
	CHECK(btf__add_field(b, "z", i_uchar, 8, 0));
	CHECK(btf__add_union(b, "num", 8));
	CHECK(btf__add_field(b, "i", i_int, 0, 0));
	CHECK(btf__add_field(b, "p", p, 0, 0));
	CHECK(btf__add_struct(b, "", 64));
	CHECK(btf__add_field(b, "arr", arr, 0, 0));
	CHECK(btf__add_enum(b, "color", 4));
	CHECK(btf__add_enum_value(b, "RED", 0));
	CHECK(btf__add_enum_value(b, "GREEN", 5));
	CHECK(btf__add_enum(b, "small", 4));
	CHECK(btf__add_enum_value(b, "NEG", -1));
	CHECK(btf__add_enum_value(b, "POS", 2));
	CHECK(btf__add_enum64(b, "big", 8, false));
	CHECK(btf__add_enum64_value(b, "BIG_LO", 1));
	CHECK(btf__add_enum64_value(b, "BIG_HI", 0x100000000ULL));
	CHECK(btf__add_enum64(b, "sbig", 8, true));
	CHECK(btf__add_enum64_value(b, "SBIG_NEG", -0x100000000LL));
	CHECK(btf__add_fwd(b, "fwd_struct", BTF_FWD_STRUCT));
	CHECK(btf__add_fwd(b, "fwd_union", BTF_FWD_UNION));
	CHECK(btf__add_fwd(b, "fwd_enum", BTF_FWD_ENUM));
	CHECK(td = btf__add_typedef(b, "myint", i_int));
	CHECK(vol = btf__add_volatile(b, i_int));
	CHECK(btf__add_const(b, vol));
	CHECK(btf__add_restrict(b, p));
	CHECK(btf__add_type_tag(b, "user", i_int));
	CHECK(fp = btf__add_func_proto(b, i_int));
	CHECK(btf__add_func_param(b, "a", i_int));
	CHECK(btf__add_func_param(b, "", p));
	CHECK(btf__add_func(b, "f", BTF_FUNC_GLOBAL, fp));
	CHECK(btf__add_func(b, "g", BTF_FUNC_STATIC, fp));
	CHECK(fp = btf__add_func_proto(b, 0));
	CHECK(btf__add_func_param(b, "fmt", p));
	CHECK(btf__add_func_param(b, "", 0));
	CHECK(btf__add_func(b, "h", BTF_FUNC_EXTERN, fp));
	CHECK(var = btf__add_var(b, "counter", BTF_VAR_GLOBAL_ALLOCATED, i_int));
	CHECK(var2 = btf__add_var(b, "static_v", BTF_VAR_STATIC, td));
	CHECK(btf__add_var(b, "ext_v", BTF_VAR_GLOBAL_EXTERN, i_int));
	CHECK(btf__add_datasec(b, ".data", 8));
	CHECK(btf__add_datasec_var_info(b, var, 0, 4));
	CHECK(btf__add_datasec_var_info(b, var2, 4, 4));
	CHECK(btf__add_float(b, "double", 8));
	CHECK(btf__add_float(b, "long double", 16));
	CHECK(btf__add_decl_tag(b, "tag1", s, -1));
	CHECK(btf__add_decl_tag(b, "tag2", s, 1));
	CHECK(btf__add_typedef(b, "pair", s)); /* "pair" again: the string is shared */
	CHECK(btf__add_str(b, "just a string"));

	if (write_btf(dir, "base.btf", b))
		return 1;
	raw = btf__raw_data(b, &size);
	base = btf__new(raw, size);
	CHECK(libbpf_get_error(base));
	CHECK(btf__set_endianness(b, BTF_BIG_ENDIAN));
	if (write_btf(dir, "base_be.btf", b))
		return 1;

	split = btf__new_empty_split(base);
	CHECK(libbpf_get_error(split));
	CHECK(btf__add_int(split, "int", 4, BTF_INT_SIGNED)); /* "int" from the base */
	CHECK(s = btf__add_struct(split, "split_only", 16));
	CHECK(btf__add_field(split, "a", i_int, 0, 0));
	CHECK(btf__add_field(split, "new_member", p, 64, 0));
	CHECK(btf__add_ptr(split, s));
	if (write_btf(dir, "split.btf", split))
		return 1;
	btf__free(split);
	btf__free(base);
	btf__free(b);
	return 0;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	const void *raw;
	__u32 size;
	int err;

	if (argc == 3 && strcmp(argv[1], "builder") == 0)
		return builder(argv[2]);
	if (argc < 4 || (strcmp(argv[1], "open") && strcmp(argv[1], "load"))) {
		fprintf(stderr, "usage: %s open|load OBJ.o OUT.btf [MISSING] | builder DIR\n",
			argv[0]);
		return 1;
	}
	out_path = argv[3];
	if (argc > 4)
		snprintf(missing, sizeof(missing), "%s", argv[4]);
	libbpf_set_print(silent_print);

	obj = bpf_object__open_file(argv[2], NULL);
	err = libbpf_get_error(obj);
	if (err) {
		fprintf(stderr, "open %s: %d\n", argv[2], err);
		return 2;
	}
	if (strcmp(argv[1], "open") == 0) {
		if (!bpf_object__btf(obj)) {
			fprintf(stderr, "%s has no BTF\n", argv[2]);
			return 2;
		}
		raw = btf__raw_data(bpf_object__btf(obj), &size);
		if (!raw || write_file(out_path, raw, size)) {
			perror(out_path);
			return 1;
		}
		bpf_object__close(obj);
		return 0;
	}
	fake_bpf = 1;
	err = bpf_object__load(obj);
	fprintf(stderr, "load %s finished without loading BTF: %d\n", argv[2], err);
	return 2;
}
