// SPDX-License-Identifier: Apache-2.0
/*
 * libbpf_open: open (never load) a BPF ELF object with the system libbpf and print
 * what libbpf saw as one JSON document on stdout. It is the reference side of
 * tests/test_libbpf_parity.py.
 *
 *   usage: libbpf_open OBJ.o
 *   build: gcc -O2 -Wall -o libbpf_open libbpf_open.c -lbpf -lelf -lz
 *
 * Opening needs no privileges: bpf_object__open_file() parses the ELF, BTF and
 * relocations and builds the program and map descriptions, but creates nothing in
 * the kernel.
 *
 * Output (exit 0):
 *   {"libbpf_version": "v1.1", "object": PATH, "name": OBJ_NAME, "kversion": N,
 *    "programs": [{"name", "section", "type", "expected_attach_type",
 *                  "expected_attach_type_raw", "insn_cnt", "autoload"}],
 *    "maps": [{"name", "section", "internal", "type", "key_size", "value_size",
 *              "max_entries", "flags", "numa_node", "map_extra", "pin_path",
 *              "inner_map"}],
 *    "log": [libbpf messages of level WARN and INFO]}
 * On a failed open (exit 2): {"libbpf_version", "object", "error": "...", "errno": N, "log": [...]}
 *
 * Notes on how libbpf 1.1 reports things at open time:
 *  - programs come sorted by (ELF section index, offset in section); .text subprograms
 *    are hidden from the iteration (while the object has more than one program);
 *  - a leading '?' of SEC("?...") is dropped from the section name and turns autoload off;
 *  - insn_cnt is the program's own instruction count (symbol size / 8): subprograms are
 *    appended only at load;
 *  - expected_attach_type comes from libbpf's section table; 0 is both "none" and
 *    BPF_CGROUP_INET_INGRESS, so it is printed as null unless the section is
 *    "cgroup_skb/ingress" (the only 1.1 section whose attach type really is 0); the raw
 *    number is in expected_attach_type_raw;
 *  - internal maps (one ARRAY map per .data, .rodata, .bss, .data.*, .rodata.*, .bss.*
 *    section, plus .kconfig for kconfig externs) get kernel-visible names built by
 *    internal_map_name(): "<object name prefix><section>" in 15 chars, where the object
 *    name is the file's basename up to its first '.', and the prefix is 8 chars for
 *    .data/.rodata/.bss (the suffix reserves at least 7) and 7 for .kconfig (8-char
 *    suffix); sections with a second '.' (.data.custom, .rodata.str1.1, .bss.x) get no
 *    prefix, just the section name cut to 15; any char other than [A-Za-z0-9_.] becomes
 *    '_'. bpf_map__name() returns that kernel name, except for .data.* and .rodata.*
 *    maps, where it returns the full ELF section name ("real name"). So names of
 *    internal maps depend on the file name: compare them by "section", which here is
 *    the name of the map's BTF DATASEC when it has one, else the name from its first '.'
 *    (e.g. .rodata.str1.1 / .rodata.cst16, which have no DATASEC). BTF-defined maps get
 *    section ".maps" (libbpf >= 1.0 rejects legacy SEC("maps") objects at open).
 *  - ringbuf max_entries is already rounded up to a power-of-2 multiple of the page size;
 *    perf_event_array max_entries 0 stays 0 (it becomes the CPU count at create);
 *    flags are the definition's map_flags as written (BPF_F_RDONLY_PROG and
 *    BPF_F_MMAPABLE added for internal maps as described in libbpf.c);
 *  - kversion is the "version" section, or the running kernel's version without one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "harness_json.h"
#include "map_section.h"

/* ---- capture libbpf's messages instead of letting them hit stderr ---- */

/* WARN and INFO messages, one line each (trailing newlines removed) */
static int capture_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	char buf[1024];
	size_t n;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, args);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		n--;
	log_add(buf, n);
	return 0;
}

/* ---- what libbpf knows ---- */

static const char *expected_attach_type_str(const struct bpf_program *prog)
{
	enum bpf_attach_type eat = bpf_program__expected_attach_type(prog);

	if (eat == 0) {
		/* BPF_CGROUP_INET_INGRESS == 0: meaningful only where libbpf's section
		 * table says so (SEC_DEF("cgroup_skb/ingress", CGROUP_SKB, BPF_CGROUP_INET_INGRESS)).
		 */
		if (bpf_program__type(prog) == BPF_PROG_TYPE_CGROUP_SKB &&
		    strcmp(bpf_program__section_name(prog), "cgroup_skb/ingress") == 0)
			return libbpf_bpf_attach_type_str(eat);
		return NULL;
	}
	return libbpf_bpf_attach_type_str(eat);
}

/* The members a map and its inner map both have: type, sizes, max_entries, flags. */
static void json_map_def(const struct bpf_map *map)
{
	json_key("type", 0);
	json_str(libbpf_bpf_map_type_str(bpf_map__type(map)));
	json_key("key_size", 0);
	printf("%u", bpf_map__key_size(map));
	json_key("value_size", 0);
	printf("%u", bpf_map__value_size(map));
	json_key("max_entries", 0);
	printf("%u", bpf_map__max_entries(map));
	json_key("flags", 0);
	printf("%u", bpf_map__map_flags(map));
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	char section[256];
	int first, err;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OBJ.o\n", argv[0]);
		return 64;
	}
	libbpf_set_print(capture_print);

	obj = bpf_object__open_file(argv[1], NULL);
	err = libbpf_get_error(obj);

	json_begin(argv[1]);
	if (err) {
		char msg[256];

		libbpf_strerror((int)err, msg, sizeof(msg));
		json_key("error", 0);
		json_str(msg);
		json_key("errno", 0);
		printf("%d", (int)-err);
		json_log();
		fputs("}\n", stdout);
		return 2;
	}

	json_key("name", 0);
	json_str(bpf_object__name(obj));
	json_key("kversion", 0);
	printf("%u", bpf_object__kversion(obj));

	json_key("programs", 0);
	putchar('[');
	first = 1;
	bpf_object__for_each_program(prog, obj) {
		enum bpf_prog_type type = bpf_program__type(prog);

		fputs(first ? "\n  {" : ",\n  {", stdout);
		first = 0;
		json_key("name", 1);
		json_str(bpf_program__name(prog));
		json_key("section", 0);
		json_str(bpf_program__section_name(prog));
		json_key("type", 0);
		json_str(libbpf_bpf_prog_type_str(type));
		json_key("expected_attach_type", 0);
		json_str(expected_attach_type_str(prog));
		json_key("expected_attach_type_raw", 0);
		printf("%d", (int)bpf_program__expected_attach_type(prog));
		json_key("insn_cnt", 0);
		printf("%zu", bpf_program__insn_cnt(prog));
		json_key("autoload", 0);
		fputs(bpf_program__autoload(prog) ? "true" : "false", stdout);
		putchar('}');
	}
	fputs(first ? "]" : "\n]", stdout);

	json_key("maps", 0);
	putchar('[');
	first = 1;
	bpf_object__for_each_map(map, obj) {
		struct bpf_map *inner;

		fputs(first ? "\n  {" : ",\n  {", stdout);
		first = 0;
		map_section(obj, map, section, sizeof(section));
		json_key("name", 1);
		json_str(bpf_map__name(map));
		json_key("section", 0);
		json_str(section);
		json_key("internal", 0);
		fputs(bpf_map__is_internal(map) ? "true" : "false", stdout);
		json_map_def(map);
		json_key("numa_node", 0);
		printf("%u", bpf_map__numa_node(map));
		json_key("map_extra", 0);
		printf("%llu", (unsigned long long)bpf_map__map_extra(map));
		json_key("pin_path", 0);
		json_str(bpf_map__pin_path(map));
		json_key("inner_map", 0);
		inner = bpf_map__inner_map(map);
		if (inner) {
			putchar('{');
			json_key("name", 1);
			json_str(bpf_map__name(inner));
			json_map_def(inner);
			putchar('}');
		} else {
			fputs("null", stdout);
		}
		putchar('}');
	}
	fputs(first ? "]" : "\n]", stdout);

	json_log();
	fputs("}\n", stdout);
	bpf_object__close(obj);
	return 0;
}
