// The C side of bench/ringbuf.py: libbpf's ring_buffer__poll() consuming the benchmark's
// BPF program, and the load generator every consumer shares.
//
//   ringbuf_consume produce                  wait for a line on stdin, then call getppid()
//                                            in a loop until killed (the BPF program turns
//                                            each call into `per_call` ring buffer records)
//   ringbuf_consume consume OBJ PID PER_CALL SECONDS
//                                            load OBJ (libbpf 1.x), settings = {PID, PER_CALL},
//                                            attach, print "ready", then count records for
//                                            SECONDS from the first one; prints JSON (events,
//                                            wall and CPU seconds, produced, dropped, RSS)
//
// Build: cc -O2 ringbuf_consume.c -lbpf -lelf -lz
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct event {
	uint64_t seq;
	uint64_t ts;
	uint32_t pid;
	uint32_t cpu;
	char comm[16];
};

static uint64_t count;
static uint64_t seq_sum;
static double deadline; /* 0 while warming up: stop at the first record */

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

static double clock_s(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static int on_sample(void *ctx, void *data, size_t size)
{
	const struct event *e = data;
	seq_sum += e->seq; /* touch the record, as a real consumer would */
	count++;
	/* ring_buffer__poll() returns only once the ring is empty, never while the producer
	 * outruns the consumer: a negative return stops it */
	if (!deadline || !(count & 1023))
		return now_s() >= deadline ? -1 : 0;
	return 0;
}

static int produce(void)
{
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	for (;;)
		syscall(SYS_getppid);
}

static long hwm_kb(void)
{
	char line[256];
	long kb = 0;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

static int consume(const char *path, uint32_t pid, uint32_t per_call, double seconds)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_link *link;
	struct ring_buffer *rb;
	uint32_t key, val;
	uint64_t stats[2] = {0, 0};
	double start, end, cpu;
	int err, cfg_fd;

	libbpf_set_print(quiet);
	obj = bpf_object__open_file(path, NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "cannot load %s\n", path);
		return 1;
	}
	cfg_fd = bpf_object__find_map_fd_by_name(obj, "settings");
	key = 0, val = pid;
	bpf_map_update_elem(cfg_fd, &key, &val, 0);
	key = 1, val = per_call;
	bpf_map_update_elem(cfg_fd, &key, &val, 0);
	prog = bpf_object__find_program_by_name(obj, "produce");
	link = bpf_program__attach(prog);
	if (!link) {
		fprintf(stderr, "cannot attach\n");
		return 1;
	}
	rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "events"), on_sample, NULL,
			      NULL);
	if (!rb)
		return 1;
	printf("ready\n");
	fflush(stdout);
	while (count == 0)
		ring_buffer__poll(rb, 100);
	count = 0;
	start = now_s();
	cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	end = deadline = start + seconds;
	do {
		err = ring_buffer__poll(rb, 100);
		if (err < 0 && err != -1)
			return 1;
	} while (now_s() < end);
	end = now_s();
	cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
	for (key = 0; key < 2; key++)
		bpf_map_lookup_elem(bpf_object__find_map_fd_by_name(obj, "stats"), &key,
				    &stats[key]);
	printf("{\"events\": %llu, \"seconds\": %.6f, \"cpu_seconds\": %.6f, \"produced\": %llu, "
	       "\"dropped\": %llu, \"rss_mb\": %.1f}\n",
	       (unsigned long long)count, end - start, cpu, (unsigned long long)stats[0],
	       (unsigned long long)stats[1], hwm_kb() / 1024.0);
	ring_buffer__free(rb);
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "produce"))
		return produce();
	if (argc == 6 && !strcmp(argv[1], "consume"))
		return consume(argv[2], strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10),
			       atof(argv[5]));
	fprintf(stderr, "usage: %s produce | consume OBJ PID PER_CALL SECONDS\n", argv[0]);
	return 2;
}
