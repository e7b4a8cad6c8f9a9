// Times libbpf's bpf_object__open_file + bpf_object__load (+ close) of one object, the
// yardstick for bpfobj's open + prepare. libbpf re-parses the vmlinux BTF on every load.
// Usage: prepare_time OBJ RUNS  -> prints JSON {"median_ms":..,"min_ms":..,"first_ms":..,
//                                               "rss_mb":..}
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static long hwm_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	int runs = argc > 2 ? atoi(argv[2]) : 10;
	double *t = calloc(runs, sizeof(double));

	if (argc < 2)
		return 2;
	libbpf_set_print(quiet);
	for (int i = 0; i < runs; i++) {
		double a = now_ms();
		struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
		if (!obj || libbpf_get_error(obj)) {
			fprintf(stderr, "open failed\n");
			return 1;
		}
		if (bpf_object__load(obj)) {
			fprintf(stderr, "load failed\n");
			return 1;
		}
		t[i] = now_ms() - a;
		bpf_object__close(obj);
	}
	double first = t[0]; /* the process's first open + load: nothing warm yet */
	qsort(t, runs, sizeof(double), cmp);
	printf("{\"median_ms\": %.3f, \"min_ms\": %.3f, \"first_ms\": %.3f, \"rss_mb\": %.1f}\n",
	       t[runs / 2], t[0], first, hwm_kb() / 1024.0);
	return 0;
}
