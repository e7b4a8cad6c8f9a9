// The libbpf side of bench/startup.py: spawn -> attached for an execsnoop-like tool.
//
//   startup OBJ   bpf_object__open_file + bpf_object__load + bpf_program__attach of every
//                 program + ring_buffer__new on the "events" map (what a libbpf-tools
//                 binary does before its first poll), then prints "attached" and waits for
//                 stdin to close (so the caller can read its peak RSS), then cleans up.
//
// Build: cc -O2 startup.c -lbpf -lelf -lz
#include <bpf/libbpf.h>
#include <stdio.h>
#include <unistd.h>

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

static int on_sample(void *ctx, void *data, size_t size)
{
	return 0;
}

int main(int argc, char **argv)
{
	struct bpf_link *links[16];
	struct bpf_program *prog;
	struct bpf_object *obj;
	struct ring_buffer *rb;
	int n = 0, i;
	char buf[64];

	if (argc != 2) {
		fprintf(stderr, "usage: %s OBJ\n", argv[0]);
		return 2;
	}
	libbpf_set_print(quiet);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "cannot load %s\n", argv[1]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj) {
		if (n == 16)
			break;
		links[n] = bpf_program__attach(prog);
		if (!links[n]) {
			fprintf(stderr, "cannot attach %s\n", bpf_program__name(prog));
			return 1;
		}
		n++;
	}
	rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "events"), on_sample, NULL,
			      NULL);
	if (!rb)
		return 1;
	printf("attached\n");
	fflush(stdout);
	while (read(0, buf, sizeof(buf)) > 0)
		;
	ring_buffer__free(rb);
	for (i = 0; i < n; i++)
		bpf_link__destroy(links[i]);
	bpf_object__close(obj);
	return 0;
}
