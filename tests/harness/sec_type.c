/* sec_type: classify BPF section names with the system libbpf.
 *
 * Reads section names from stdin, one per line, and prints for each, tab-separated:
 *
 *     <name>\t<prog_type>\t<expected_attach_type>     libbpf_prog_type_by_name() succeeded
 *     <name>\tERR\t<errno>                            it failed (ESRCH: unknown name)
 *
 * Numbers are the UAPI enum values. With "-a" it calls libbpf_attach_type_by_name() instead
 * and prints <name>\t<attach_type>. Output is flushed after every line so that a test can
 * keep one process open and query it interactively.
 *
 * Build: gcc -O2 -Wall -o sec_type sec_type.c -lbpf -lelf -lz
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	(void)fmt;
	(void)args;
	return 0;
}

int main(int argc, char **argv)
{
	int attach_mode = argc > 1 && strcmp(argv[1], "-a") == 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	libbpf_set_print(quiet);

	while ((len = getline(&line, &cap, stdin)) != -1) {
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';

		if (attach_mode) {
			enum bpf_attach_type at = 0;
			int err = libbpf_attach_type_by_name(line, &at);

			if (err)
				printf("%s\tERR\t%d\n", line, -err);
			else
				printf("%s\t%d\n", line, (int)at);
		} else {
			enum bpf_prog_type pt = 0;
			enum bpf_attach_type at = 0;
			int err = libbpf_prog_type_by_name(line, &pt, &at);

			if (err)
				printf("%s\tERR\t%d\n", line, -err);
			else
				printf("%s\t%d\t%d\n", line, (int)pt, (int)at);
		}
		fflush(stdout);
	}
	free(line);
	return 0;
}
