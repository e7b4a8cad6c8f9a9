/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness_json.h: what the libbpf harnesses (libbpf_open.c, libbpf_prepare.c,
 * libbpf_core_log.c) share: the lines of libbpf's log they capture instead of letting
 * them reach stderr, and a minimal JSON writer for the one document each prints.
 *
 * Each harness keeps its own libbpf_print_fn (which levels, how a message becomes lines)
 * and stores the lines with log_add()/log_add_lines(); json_log() prints them as the
 * document's "log" member. Strings are written as ASCII JSON: bytes 0x7f and above as
 * \u00XX (Python's json gives them back as the latin-1 character of each byte), so any
 * byte string libbpf prints decodes.
 *
 * tests/harnessbuild.py hashes this header with the harness sources, so a change
 * here rebuilds the cached binaries.
 */
#ifndef HARNESS_JSON_H
#define HARNESS_JSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

/* ---- the captured log ---- */

static char **log_lines;
static size_t log_cnt, log_cap;

/* Append the `n` bytes at `s` as one line (dropped when memory runs out). */
static inline void log_add(const char *s, size_t n)
{
	char *line;

	if (log_cnt == log_cap) {
		size_t cap = log_cap ? log_cap * 2 : 256;
		char **p = realloc(log_lines, cap * sizeof(*p));

		if (!p)
			return;
		log_lines = p;
		log_cap = cap;
	}
	line = strndup(s, n);
	if (line)
		log_lines[log_cnt++] = line;
}

/* Append `s` split at each '\n' (a last part without one is a line too; none after a
 * final newline).
 */
static inline void log_add_lines(const char *s)
{
	const char *nl;

	for (; *s; s = nl + 1) {
		nl = strchr(s, '\n');
		if (!nl) {
			log_add(s, strlen(s));
			break;
		}
		log_add(s, (size_t)(nl - s));
	}
}

/* ---- minimal JSON writer ---- */

/* `s` as a JSON string, null for NULL. */
static inline void json_str(const char *s)
{
	const unsigned char *p;

	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", stdout);
			break;
		case '\\':
			fputs("\\\\", stdout);
			break;
		case '\n':
			fputs("\\n", stdout);
			break;
		case '\t':
			fputs("\\t", stdout);
			break;
		default:
			if (*p < 0x20 || *p >= 0x7f)
				printf("\\u%04x", *p);
			else
				putchar(*p);
		}
	}
	putchar('"');
}

/* `"k": `, after a comma unless it is the object's first member. */
static inline void json_key(const char *k, int first)
{
	if (!first)
		fputs(", ", stdout);
	json_str(k);
	fputs(": ", stdout);
}

/* Open the document: `{"libbpf_version": "v1.1", "object": PATH`. */
static inline void json_begin(const char *object)
{
	putchar('{');
	json_key("libbpf_version", 1);
	json_str(libbpf_version_string());
	json_key("object", 0);
	json_str(object);
}

/* The captured lines as the member "log" (never the first member), one a line. */
static inline void json_log(void)
{
	size_t i;

	json_key("log", 0);
	putchar('[');
	for (i = 0; i < log_cnt; i++) {
		fputs(i ? ",\n  " : "\n  ", stdout);
		json_str(log_lines[i]);
	}
	putchar(']');
}

#endif /* HARNESS_JSON_H */
