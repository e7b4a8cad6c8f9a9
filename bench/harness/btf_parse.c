// SPDX-License-Identifier: Apache-2.0
/* libbpf's side of bench/btf_index.py: time btf__parse() of a BTF file.
 *
 *   btf_parse [PATH [REPS]]      (default /sys/kernel/btf/vmlinux, 15)
 *
 * Prints one line of key=value pairs: the first parse in this process (first_ms), the
 * median and minimum over REPS parses (each parse + free), one btf__find_by_name_kind()
 * for "task_struct" (libbpf scans every type), the type count, and the process's peak RSS
 * (VmHWM) after the runs.
 *
 * Build: gcc -O2 -o btf_parse btf_parse.c -lbpf -lelf -lz
 */
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long vm_hwm_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmHWM:", 6)) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/sys/kernel/btf/vmlinux";
	int reps = argc > 2 ? atoi(argv[2]) : 15;
	double *times, first = 0, find_ms = 0, t0, t1;
	unsigned int types = 0;
	long long size = -1;
	int i, id = -1;

	if (reps < 1)
		reps = 1;
	times = calloc(reps, sizeof(*times));
	if (!times)
		return 1;
	libbpf_set_print(quiet);
	for (i = 0; i < reps + 1; i++) {
		struct btf *btf;

		t0 = now_ms();
		btf = btf__parse(path, NULL);
		t1 = now_ms();
		if (!btf) {
			fprintf(stderr, "btf__parse(%s): %s\n", path, strerror(errno));
			return 1;
		}
		if (i == 0) {
			first = t1 - t0;
			types = btf__type_cnt(btf) - 1;
			t0 = now_ms();
			id = btf__find_by_name_kind(btf, "task_struct", BTF_KIND_STRUCT);
			find_ms = now_ms() - t0;
			if (id > 0)
				size = btf__resolve_size(btf, id);
		} else {
			times[i - 1] = t1 - t0;
		}
		btf__free(btf);
	}
	qsort(times, reps, sizeof(*times), cmp_double);
	printf("first_ms=%.3f median_ms=%.3f min_ms=%.3f find_ms=%.3f types=%u "
	       "task_struct=%d size=%lld vmhwm_kb=%ld\n",
	       first, times[reps / 2], times[0], find_ms, types, id, size, vm_hwm_kb());
	free(times);
	return 0;
}
