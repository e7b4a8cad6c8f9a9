/* SPDX-License-Identifier: Apache-2.0 */
/*
 * map_section.h: the ELF section a map of an opened object comes from, as the libbpf
 * harnesses (libbpf_open.c, libbpf_prepare.c) report it: ".maps" for BTF-defined maps;
 * for internal maps (.data, .rodata, .bss, .kconfig and their .suffix variants) the name
 * of the value's BTF DATASEC, or without one (e.g. .rodata.str1.1) everything from the
 * first '.' of the map's name (libbpf names them "<object name prefix><section>", and the
 * object name never has a '.').
 */
#ifndef MAP_SECTION_H
#define MAP_SECTION_H

#include <stdio.h>
#include <string.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

static inline void map_section(const struct bpf_object *obj, const struct bpf_map *map,
			       char *out, size_t out_sz)
{
	const char *name = bpf_map__name(map);
	const struct btf *btf;
	const struct btf_type *t;
	__u32 vid;

	if (!bpf_map__is_internal(map)) {
		snprintf(out, out_sz, ".maps");
		return;
	}
	btf = bpf_object__btf(obj);
	vid = bpf_map__btf_value_type_id(map);
	if (btf && vid) {
		t = btf__type_by_id(btf, vid);
		if (t && btf_is_datasec(t)) {
			snprintf(out, out_sz, "%s", btf__name_by_offset(btf, t->name_off));
			return;
		}
	}
	/* No DATASEC (e.g. .rodata.str1.1): the section is everything from the first '.'. */
	snprintf(out, out_sz, "%s", strchr(name, '.') ? strchr(name, '.') : name);
}

#endif /* MAP_SECTION_H */
