// SPDX-License-Identifier: Apache-2.0
/*
 * libbpf_core_log: let the system libbpf perform the CO-RE relocations of a BPF object
 * against a given target BTF and print libbpf's whole log (debug level) as JSON.
 * It is the reference side of tests/test_core_libbpf.py: bpfobj.core must take the same
 * decisions and print the same "prog '...': relo #N: ..." lines.
 *
 *   usage: libbpf_core_log OBJ.o --btf TARGET [--prog NAME]...
 *   build: gcc -O2 -Wall -o libbpf_core_log libbpf_core_log.c -lbpf -lelf -lz
 *
 * TARGET is a raw BTF file or an ELF object with a .BTF section (libbpf's btf__parse
 * takes both); it is passed as bpf_object_open_opts.btf_custom_path, so libbpf searches
 * candidates in it only (no kernel or module BTF). With --prog, only the named programs
 * keep autoload on (libbpf skips the CO-RE relocations of the others). libbpf (1.1)
 * performs CO-RE relocations only inside bpf_object__load(), so the object is loaded:
 * this needs root, and the load itself may fail (a poisoned or unverifiable program, a
 * failed relocation): that is expected, the log is what matters.
 *
 * Output (exit 0 whatever the load did):
 *   {"libbpf_version": "v1.1", "open": 0|-errno, "load": 0|-errno, "log": ["...", ...]}
 * Every libbpf message, split into lines (trailing whitespace kept).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "harness_json.h"

/* libbpf may print one message in several calls; join them until a newline. */
static char pending[65536];
static size_t pending_len;

static int capture_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	char buf[16384];
	int n;
	char *p, *nl;

	(void)level;
	n = vsnprintf(buf, sizeof(buf), fmt, args);
	if (n < 0)
		return 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (pending_len + n >= sizeof(pending))
		pending_len = 0;
	memcpy(pending + pending_len, buf, n);
	pending_len += n;
	pending[pending_len] = '\0';
	p = pending;
	while ((nl = strchr(p, '\n')) != NULL) {
		log_add(p, nl - p);
		p = nl + 1;
	}
	pending_len = strlen(p);
	memmove(pending, p, pending_len + 1);
	return 0;
}

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	const char *obj_path = NULL, *btf_path = NULL;
	const char *only[64];
	int only_cnt = 0, open_err = 0, load_err = 0, i;
	struct bpf_object *obj;
	struct bpf_program *prog;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--btf") && i + 1 < argc)
			btf_path = argv[++i];
		else if (!strcmp(argv[i], "--prog") && i + 1 < argc && only_cnt < 64)
			only[only_cnt++] = argv[++i];
		else if (!obj_path)
			obj_path = argv[i];
		else {
			fprintf(stderr, "usage: %s OBJ.o --btf TARGET [--prog NAME]...\n", argv[0]);
			return 2;
		}
	}
	if (!obj_path || !btf_path) {
		fprintf(stderr, "usage: %s OBJ.o --btf TARGET [--prog NAME]...\n", argv[0]);
		return 2;
	}

	libbpf_set_print(capture_print);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	opts.btf_custom_path = btf_path;
	opts.kernel_log_level = 0;

	obj = bpf_object__open_file(obj_path, &opts);
	if (!obj) {
		open_err = -errno;
	} else {
		if (only_cnt) {
			bpf_object__for_each_program(prog, obj) {
				int keep = 0, j;

				for (j = 0; j < only_cnt; j++)
					if (!strcmp(bpf_program__name(prog), only[j]))
						keep = 1;
				bpf_program__set_autoload(prog, keep);
			}
		}
		load_err = bpf_object__load(obj);
		bpf_object__close(obj);
	}
	if (pending_len)
		log_add(pending, pending_len);

	printf("{\"libbpf_version\": \"v%d.%d\", \"open\": %d, \"load\": %d",
	       LIBBPF_MAJOR_VERSION, LIBBPF_MINOR_VERSION, open_err, load_err);
	json_log();
	fputs("}\n", stdout);
	return 0;
}
