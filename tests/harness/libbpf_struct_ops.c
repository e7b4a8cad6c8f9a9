// SPDX-License-Identifier: Apache-2.0
/*
 * libbpf_struct_ops: load a struct_ops object with the system libbpf (needs root), register
 * each struct_ops map (bpf_map__attach_struct_ops), read back what the kernel holds, and
 * print it as one JSON document: the reference side of integration/test_struct_ops.py.
 *
 *   usage: libbpf_struct_ops OBJ.o
 *
 * Output (exit 0):
 *   {"programs": [{"name", "type", "expected_attach_type", "attach_btf_id", "id"}],
 *    "maps": [{"name", "type", "flags", "value_size", "btf_vmlinux_value_type_id",
 *              "value": hex of BPF_MAP_LOOKUP_ELEM while registered}]}
 * The kernel's lookup of a struct_ops value shows program ids in the function-pointer
 * slots and its own refcnt/state in the common header. On a failure: {"error", "errno"},
 * exit 2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level; (void)fmt; (void)args;
	return 0;
}

static int fail(const char *what, int err)
{
	printf("{\"error\": \"%s\", \"errno\": %d}\n", what, err < 0 ? -err : err);
	return 2;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	const char *sep = "";
	int err;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OBJ.o\n", argv[0]);
		return 1;
	}
	if (!getenv("HARNESS_DEBUG"))
		libbpf_set_print(quiet);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		return fail("open", -errno);
	err = bpf_object__load(obj);
	if (err)
		return fail("load", err);
	printf("{\"programs\": [");
	bpf_object__for_each_program(prog, obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);

		memset(&info, 0, sizeof(info));
		if (bpf_program__fd(prog) < 0)
			continue;
		err = bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len);
		if (err)
			return fail("prog info", err);
		printf("%s{\"name\": \"%s\", \"type\": %d, \"expected_attach_type\": %d, "
		       "\"attach_btf_id\": %u, \"id\": %u}", sep, bpf_program__name(prog),
		       (int)bpf_program__type(prog), (int)bpf_program__expected_attach_type(prog),
		       info.attach_btf_id, info.id);
		sep = ", ";
	}
	printf("], \"maps\": [");
	sep = "";
	bpf_object__for_each_map(map, obj) {
		struct bpf_map_info info;
		__u32 len = sizeof(info), zero = 0, i;
		struct bpf_link *link;
		unsigned char *value;

		if (bpf_map__type(map) != BPF_MAP_TYPE_STRUCT_OPS)
			continue;
		memset(&info, 0, sizeof(info));
		err = bpf_obj_get_info_by_fd(bpf_map__fd(map), &info, &len);
		if (err)
			return fail("map info", err);
		value = calloc(1, info.value_size);
		link = bpf_map__attach_struct_ops(map);
		if (!link)
			return fail("attach_struct_ops", -errno);
		err = bpf_map_lookup_elem(bpf_map__fd(map), &zero, value);
		bpf_link__destroy(link);
		if (err)
			return fail("lookup", err);
		printf("%s{\"name\": \"%s\", \"type\": %u, \"flags\": %u, \"value_size\": %u, "
		       "\"btf_vmlinux_value_type_id\": %u, \"value\": \"", sep, bpf_map__name(map),
		       info.type, info.map_flags, info.value_size, info.btf_vmlinux_value_type_id);
		for (i = 0; i < info.value_size; i++)
			printf("%02x", value[i]);
		printf("\"}");
		free(value);
		sep = ", ";
	}
	printf("]}\n");
	bpf_object__close(obj);
	return 0;
}
