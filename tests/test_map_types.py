"""The definition checks create_maps runs before BPF_MAP_CREATE for local storage, user
ring buffer and arena maps (bpfobj.maptypes): each refusal names the map, what is wrong and
the fix, where the kernel would answer a bare EINVAL; and what create_maps says about arena
maps and __arena globals a kernel cannot take. No kernel needed."""

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


def test_arena_globals_prepared(bpf_build) -> None:  # type: ignore[no-untyped-def]
    """An __arena global (was refused before bpfobj placed them): its ld_imm64 becomes a
    reference into the arena map, at the start or the end of the arena."""
    from bpfobj import BpfObject
    from bpfobj.insn import Instruction
    from bpfobj.uapi import PSEUDO_MAP_IDX_VALUE

    with BpfObject.open(bpf_build("load_arena_globals.c", vmlinux=True), page_size=4096) as obj:
        assert obj.spec.maps["arena"].type == MapType.ARENA
        assert list(obj.spec.maps) == ["arena"]  # .addr_space.1 is no map of its own
        for placement, offset in (("start", 0), ("end", 4096)):  # 2 pages - 1 page
            insns = obj.prepare(arena_globals=placement).insns("bump")
            assert insns[0] == Instruction(0x18, 1, PSEUDO_MAP_IDX_VALUE, 0, 0)  # map 0
            assert insns[1] == Instruction(0, 0, 0, 0, offset)


ARENA = spec(MapType.ARENA, entries=4, flags=BPF_F_MMAPABLE)


def _features(**kw: object):  # type: ignore[no-untyped-def]
    from bpfobj.kernel.features import Features

    return Features(kernel_release="6.1.0-test", **kw)  # type: ignore[arg-type]


def test_arena_map_type_unknown_to_the_kernel() -> None:
    """BPF_MAP_CREATE's EINVAL for a well-formed arena: a kernel before 6.9."""
    import errno

    from bpfobj.errors import SyscallError
    from bpfobj.maptypes import create_error

    exc = SyscallError("cannot create map 'm'", errno=errno.EINVAL, command="BPF_MAP_CREATE")
    err = create_error(ARENA, exc, _features(), obj="o.bpf.o")
    assert isinstance(err, NotSupportedError)
    assert "6.1.0-test does not know BPF_MAP_TYPE_ARENA (Linux 6.9+" in str(err)
    assert "Linux 6.9 or later" in (err.hint or "") and err.extra["map"] == "m"
    # flags an arena does not take: the kernel's EINVAL is about them, not the type
    odd = records.evolve(ARENA, flags=BPF_F_MMAPABLE | 1)
    assert create_error(odd, exc, _features()) is exc
    nomem = SyscallError("x", errno=errno.ENOMEM, command="BPF_MAP_CREATE")
    assert create_error(ARENA, nomem, _features()) is nomem
    assert create_error(spec(MapType.HASH, 4, 4, 1), exc, _features()) is exc


def test_arena_globals_layout_checks() -> None:
    """__arena globals 512 MiB or more into the arena need Linux 7.0's ld_imm64 offsets;
    in a BPF_F_SEGV_ON_FAULT arena they cannot be initialised from user space."""
    from bpfobj.arena import check_layout
    from bpfobj.prepare import ArenaLayout
    from bpfobj.uapi import BPF_F_SEGV_ON_FAULT

    big = records.evolve(ARENA, max_entries=(1 << 30) // 4096)
    high = ArenaLayout(map="m", map_index=0, offset=(1 << 30) - 4096, size=8, placement="end")
    with pytest.raises(NotSupportedError,
                       match=r"below 0x20000000 \(512 MiB\) only: Linux 7\.0") as info:
        check_layout(high, big, _features())
    assert "arena_globals='start'" in (info.value.hint or "")
    check_layout(high, big, _features(ldimm64_full_range_off=True))
    check_layout(records.evolve(high, offset=(1 << 29) - 8), big, _features())  # just fits
    with pytest.raises(NotSupportedError, match="BPF_F_SEGV_ON_FAULT"):
        check_layout(records.evolve(high, offset=0), records.evolve(
            big, flags=BPF_F_MMAPABLE | BPF_F_SEGV_ON_FAULT), _features())
