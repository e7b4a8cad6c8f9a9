// SPDX-License-Identifier: Apache-2.0
/*
 * libbpf_prepare: open AND load a BPF ELF object with the system libbpf and print the
 * final instructions of every loaded program as one JSON document on stdout. It is the
 * reference side of tests/test_prepare_parity.py (bpfobj's `prepare` phase must produce
 * the same instructions, up to map file descriptors).
 *
 *   usage: libbpf_prepare OBJ.o [--btf PATH]
 *   build: gcc -O2 -Wall -o libbpf_prepare libbpf_prepare.c -lbpf -lelf -lz
 *
 * Loading needs root (CAP_BPF + CAP_PERFMON/CAP_SYS_ADMIN): libbpf only has the final
 * instructions after bpf_object__load(), which creates the maps (their fds end up in
 * the ld_imm64 instructions), performs CO-RE relocations against the kernel's BTF (or
 * PATH, passed as bpf_object_open_opts.btf_custom_path), appends subprograms, relocates
 * data references and loads every program. bpf_program__insns() keeps the instructions
 * after load (libbpf >= 1.0).
 *
 * Output (exit 0):
 *   {"libbpf_version": "v1.1", "object": PATH, "btf": PATH|null, "name": OBJ_NAME,
 *    "maps": [{"index", "name", "section", "internal", "type", "fd"}],
 *    "programs": [{"name", "section", "type", "insn_cnt",
 *                  "insns": ["<16 hex chars>", ...],
 *                  "map_refs": [{"insn", "map", "map_index", "section", "kind",
 *                                "value_off"}]}],
 *    "log": [every libbpf message line, DEBUG included]}
 * On a failed open or load (exit 1):
 *   {"libbpf_version", "object", "btf", "stage": "open"|"load", "error": ERRNO,
 *    "message": "...", "log": [...]}
 *
 * - Programs: bpf_object__for_each_program order (ELF section index, then offset;
 *   .text subprograms are not programs); only those with autoload on (libbpf neither
 *   relocates nor loads the others).
 * - insns: each struct bpf_insn as its 8 bytes in memory order, lower-case hex (so on a
 *   little-endian host "18 01 00 00 ..." is ld_imm64 r1; byte 1 is dst_reg in the low
 *   nibble, src_reg in the high nibble).
 * - map_refs: one per ld_imm64 whose src_reg is BPF_PSEUDO_MAP_FD (kind "fd") or
 *   BPF_PSEUDO_MAP_VALUE (kind "value"), at its first slot's index; the map is the one
 *   whose bpf_map__fd() equals the imm; value_off is the second slot's imm (0 for "fd").
 * - maps: bpf_object__for_each_map order (which is libbpf's map index order: .maps
 *   section maps by symbol offset, then internal maps by ELF section index, then
 *   .kconfig). "section" is ".maps" for BTF-defined maps; for internal maps it is the
 *   ELF section (the name of the map value's BTF DATASEC; without a DATASEC, e.g.
 *   .rodata.str1.1, everything from the map name's first '.'), because libbpf names
 *   .data/.rodata/.bss/.kconfig maps "<object name prefix><section>" (internal_map_name()).
 * - log: libbpf's messages of every level (LIBBPF_DEBUG included), split into lines.
 *   CO-RE decisions read "prog 'P': relo #N: ..." where N counts the relocation within
 *   its ELF section and the insn numbers are relative to the (sub)program P before
 *   subprograms are appended.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "harness_json.h"
#include "map_section.h"

#ifndef BPF_PSEUDO_MAP_VALUE
#define BPF_PSEUDO_MAP_VALUE 2
#endif

/* ---- capture every libbpf message instead of letting it hit stderr ---- */

static int capture_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	char *buf = NULL;

	(void)level;
	if (vasprintf(&buf, fmt, args) < 0 || !buf)
		return 0;
	/* verifier logs arrive as one multi-line message: one JSON string per line */
	log_add_lines(buf);
	free(buf);
	return 0;
}

/* ---- maps ---- */

struct map_info {
	const struct bpf_map *map;
	int fd;
	char section[256];
};

static struct map_info *maps;
static int map_cnt;

static int collect_maps(struct bpf_object *obj)
{
	struct bpf_map *map;
	int n = 0;

	bpf_object__for_each_map(map, obj)
		n++;
	maps = calloc(n ? n : 1, sizeof(*maps));
	if (!maps)
		return -ENOMEM;
	bpf_object__for_each_map(map, obj) {
		maps[map_cnt].map = map;
		maps[map_cnt].fd = bpf_map__fd(map);
		map_section(obj, map, maps[map_cnt].section, sizeof(maps[map_cnt].section));
		map_cnt++;
	}
	return 0;
}

static int map_by_fd(int fd)
{
	int i;

	if (fd < 0)
		return -1;
	for (i = 0; i < map_cnt; i++)
		if (maps[i].fd == fd)
			return i;
	return -1;
}

/* ---- output ---- */

static void print_error(const char *path, const char *btf, const char *stage, int err)
{
	char msg[256];

	libbpf_strerror(err, msg, sizeof(msg));
	json_begin(path);
	json_key("btf", 0);
	json_str(btf);
	json_key("stage", 0);
	json_str(stage);
	json_key("error", 0);
	printf("%d", err < 0 ? -err : err);
	json_key("message", 0);
	json_str(msg);
	json_log();
	fputs("}\n", stdout);
}

static void print_insns(const struct bpf_program *prog)
{
	const struct bpf_insn *insns = bpf_program__insns(prog);
	size_t cnt = bpf_program__insn_cnt(prog), i;
	const unsigned char *b;
	int first = 1, m;

	json_key("insns", 0);
	putchar('[');
	for (i = 0; insns && i < cnt; i++) {
		b = (const unsigned char *)&insns[i];
		printf("%s\"%02x%02x%02x%02x%02x%02x%02x%02x\"", i ? ", " : "", b[0], b[1], b[2],
		       b[3], b[4], b[5], b[6], b[7]);
	}
	putchar(']');

	json_key("map_refs", 0);
	putchar('[');
	for (i = 0; insns && i < cnt; i++) {
		const struct bpf_insn *insn = &insns[i];
		int is_value;

		if (insn->code != (BPF_LD | BPF_IMM | BPF_DW))
			continue;
		if (i + 1 >= cnt)
			break;
		if (insn->src_reg != BPF_PSEUDO_MAP_FD && insn->src_reg != BPF_PSEUDO_MAP_VALUE) {
			i++; /* skip the second slot */
			continue;
		}
		is_value = insn->src_reg == BPF_PSEUDO_MAP_VALUE;
		m = map_by_fd(insn->imm);
		fputs(first ? "\n    {" : ",\n    {", stdout);
		first = 0;
		json_key("insn", 1);
		printf("%zu", i);
		json_key("map_index", 0);
		printf("%d", m);
		json_key("map", 0);
		json_str(m >= 0 ? bpf_map__name(maps[m].map) : NULL);
		json_key("section", 0);
		json_str(m >= 0 ? maps[m].section : NULL);
		json_key("kind", 0);
		json_str(is_value ? "value" : "fd");
		json_key("value_off", 0);
		printf("%d", is_value ? insn[1].imm : 0);
		putchar('}');
		i++;
	}
	fputs(first ? "]" : "\n  ]", stdout);
}

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	const char *path = NULL, *btf = NULL, *only = NULL;
	struct bpf_program *prog;
	struct bpf_object *obj;
	int i, first, err, bad = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--btf") == 0 && i + 1 < argc)
			btf = argv[++i];
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i]; /* comma-separated program names: autoload only these */
		else if (!path && argv[i][0] != '-')
			path = argv[i];
		else
			bad = 1;
	}
	if (!path || bad) {
		fprintf(stderr, "usage: %s OBJ.o [--btf PATH] [--only P1,P2]\n", argv[0]);
		return 64;
	}
	libbpf_set_print(capture_print);
	opts.btf_custom_path = btf;

	obj = bpf_object__open_file(path, &opts);
	err = libbpf_get_error(obj);
	if (err) {
		print_error(path, btf, "open", err);
		return 1;
	}
	if (only) {
		bpf_object__for_each_program(prog, obj) {
			const char *name = bpf_program__name(prog);
			const char *p = only;
			size_t n = strlen(name);
			bool keep = false;

			while (p && *p) {
				if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == 0))
					keep = true;
				p = strchr(p, ',');
				p = p ? p + 1 : NULL;
			}
			bpf_program__set_autoload(prog, keep);
		}
	}
	err = bpf_object__load(obj);
	if (err) {
		print_error(path, btf, "load", err);
		bpf_object__close(obj);
		return 1;
	}
	if (collect_maps(obj)) {
		print_error(path, btf, "load", ENOMEM);
		return 1;
	}

	json_begin(path);
	json_key("btf", 0);
	json_str(btf);
	json_key("name", 0);
	json_str(bpf_object__name(obj));

	json_key("maps", 0);
	putchar('[');
	for (i = 0; i < map_cnt; i++) {
		const struct bpf_map *map = maps[i].map;

		fputs(i ? ",\n {" : "\n {", stdout);
		json_key("index", 1);
		printf("%d", i);
		json_key("name", 0);
		json_str(bpf_map__name(map));
		json_key("section", 0);
		json_str(maps[i].section);
		json_key("internal", 0);
		fputs(bpf_map__is_internal(map) ? "true" : "false", stdout);
		json_key("type", 0);
		json_str(libbpf_bpf_map_type_str(bpf_map__type(map)));
		json_key("fd", 0);
		printf("%d", maps[i].fd);
		putchar('}');
	}
	fputs(map_cnt ? "\n]" : "]", stdout);

	json_key("programs", 0);
	putchar('[');
	first = 1;
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__autoload(prog))
			continue;
		fputs(first ? "\n {" : ",\n {", stdout);
		first = 0;
		json_key("name", 1);
		json_str(bpf_program__name(prog));
		json_key("section", 0);
		json_str(bpf_program__section_name(prog));
		json_key("type", 0);
		json_str(libbpf_bpf_prog_type_str(bpf_program__type(prog)));
		json_key("insn_cnt", 0);
		printf("%zu", bpf_program__insn_cnt(prog));
		print_insns(prog);
		putchar('}');
	}
	fputs(first ? "]" : "\n]", stdout);

	json_log();
	fputs("}\n", stdout);
	bpf_object__close(obj);
	return 0;
}
