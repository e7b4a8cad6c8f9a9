"""The definition checks create_maps runs before BPF_MAP_CREATE for local storage, user
ring buffer and arena maps (bpfobj.maptypes): each refusal names the map, what is wrong and
the fix, where the kernel would answer a bare EINVAL. No kernel needed."""

from __future__ import annotations

import mmap

import pytest

from bpfobj import records
from bpfobj.errors import NotSupportedError, SpecError
from bpfobj.maptypes import check_create, map_class
from bpfobj.spec import MapKind, MapSpec
from bpfobj.uapi import BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, MapType

PAGE = mmap.PAGESIZE


def spec(mtype: MapType, key: int = 0, value: int = 0, entries: int = 0, **kw: int) -> MapSpec:
    return MapSpec("m", ".maps", MapKind.BTF, mtype, key, value, entries, **kw)


STORAGE = [MapType.TASK_STORAGE, MapType.SK_STORAGE, MapType.INODE_STORAGE,
           MapType.CGRP_STORAGE]


@pytest.mark.parametrize("mtype", STORAGE, ids=lambda t: t.label)
def test_local_storage_definitions(mtype: MapType) -> None:
    good = spec(mtype, 4, 16, flags=BPF_F_NO_PREALLOC, key_type_id=1, value_type_id=2)
    check_create(good, have_btf=True)
    assert map_class(mtype).__name__ == "LocalStorageMap"
    cases = [
        (records.evolve(good, flags=0), "needs map_flags BPF_F_NO_PREALLOC",
         "__uint(map_flags, BPF_F_NO_PREALLOC)"),
        (records.evolve(good, max_entries=16), "takes none", "drop __uint(max_entries"),
        (records.evolve(good, key_size=8), "key of 8 bytes", "__type(key, int)"),
        (records.evolve(good, value_type_id=0), "no BTF value type", "-g"),
    ]
    for bad, message, hint in cases:
        with pytest.raises(SpecError, match=message) as info:
            check_create(bad, have_btf=True, obj="x.o")
        assert hint in (info.value.hint or "")
        assert f"{mtype.label} map 'm'" in str(info.value) and "object x.o" in str(info.value)
    with pytest.raises(NotSupportedError, match="needs the object's BTF in the kernel"):
        check_create(good, have_btf=False)


def test_user_ringbuf_definitions() -> None:
    check_create(spec(MapType.USER_RINGBUF, entries=4 * PAGE), have_btf=False)
    for entries in (0, 3 * PAGE, PAGE // 2):
        with pytest.raises(SpecError, match="power of 2 and a multiple of the page size"):
            check_create(spec(MapType.USER_RINGBUF, entries=entries), have_btf=False)
    with pytest.raises(SpecError, match="takes neither"):
        check_create(spec(MapType.USER_RINGBUF, 4, 4, PAGE), have_btf=False)


def test_arena_definitions() -> None:
    good = spec(MapType.ARENA, entries=4, flags=BPF_F_MMAPABLE, map_extra=1 << 44)
    check_create(good, have_btf=False)
    check_create(records.evolve(good, map_extra=0), have_btf=False)
    assert map_class(MapType.ARENA).__name__ == "ArenaMap"
    cases = [
        (records.evolve(good, flags=0), "needs map_flags BPF_F_MMAPABLE"),
        (records.evolve(good, key_size=4), "an arena has neither"),
        (records.evolve(good, max_entries=0), "size in pages"),
        (records.evolve(good, max_entries=(1 << 32) // PAGE + 1), "size in pages"),
        (records.evolve(good, map_extra=(1 << 44) + 1), "not page aligned"),
        (records.evolve(good, map_extra=(1 << 32) - PAGE), "crosses a 4 GiB boundary"),
    ]
    for bad, message in cases:
        with pytest.raises(SpecError, match=message):
            check_create(bad, have_btf=False)


def test_other_types_unchecked() -> None:
    check_create(spec(MapType.HASH, 4, 4, 1), have_btf=False)
    assert map_class(MapType.HASH).__name__ == "Map"


def test_arena_globals_refused_by_name(bpf_build) -> None:  # type: ignore[no-untyped-def]
    from bpfobj import BpfObject
    from bpfobj.errors import LinkError

    with BpfObject.open(bpf_build("load_arena_globals.c", vmlinux=True)) as obj:
        assert obj.spec.maps["arena"].type == MapType.ARENA
        with pytest.raises(LinkError, match="'counter' is an arena global") as info:
            obj.prepare()
        assert "bpf_arena_alloc_pages" in (info.value.hint or "")
