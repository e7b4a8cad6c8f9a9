"""BPF_MAP_TYPE_ARENA in the running kernel (Linux 6.9+): arenas mapped by create_maps at
their map_extra address or where the kernel chooses, pages allocated by a SEC("syscall")
program (bpf_arena_alloc_pages(), tests/progs/load_arena.c) read and written from Python
through `ArenaMap`, and pages Python touched first read by the program."""

from __future__ import annotations

import errno
import mmap
import struct
from collections.abc import Callable, Iterator

import pytest

from bpfobj import BpfObject
from bpfobj.arena import ArenaMap
from bpfobj.errors import NotSupportedError, PhaseError, SpecError, SyscallError
from bpfobj.uapi import MapType

PAGE = mmap.PAGESIZE
FIXED = 1 << 44  # ARENA_BASE of load_arena.c
PAGES = 4


def _run(o: BpfObject, prog: str, addr: int = 0, value: int = 0) -> tuple[int, int, int, int]:
    res = o.programs[prog].test_run(ctx=struct.pack("<QQQ", addr, value, 0))
    return (res.retval, *struct.unpack("<QQQ", res.ctx))


@pytest.fixture(params=["map_extra", "kernel"])
def obj(request: pytest.FixtureRequest, bpf_build) -> Iterator[BpfObject]:  # type: ignore[no-untyped-def]
    """load_arena.c loaded: its arena at map_extra 1 << 44, or (built with ARENA_BASE=0)
    where the kernel's first mmap puts it."""
    options = {} if request.param == "map_extra" else {"defines": ("ARENA_BASE=0",)}
    with BpfObject.open(bpf_build("load_arena.c", vmlinux=True, **options)) as o:
        o.load()
        yield o


def test_arena_mapped_before_load(obj: BpfObject) -> None:
    arena = obj.maps["arena"]
    assert isinstance(arena, ArenaMap) and arena.type == MapType.ARENA
    info = arena.info()
    assert info["max_entries"] == PAGES and arena.size == PAGES * PAGE
    start = arena.user_vm_start
    if arena.spec.map_extra:
        assert start == FIXED == info["map_extra"]
    else:  # the kernel chose: within one 4 GiB range, as arena pointers are 32-bit offsets
        assert start and start % PAGE == 0
        assert start >> 32 == (start + arena.size - 1) >> 32


def test_program_pages_read_and_written_from_python(obj: BpfObject) -> None:
    arena = obj.maps["arena"]
    retval, addr, _, _ = _run(obj, "alloc_page", value=100)
    assert retval == 0
    assert arena.user_vm_start <= addr < arena.user_vm_start + arena.size  # a user address
    assert addr % PAGE == 0
    assert [arena.read_u64(addr + 8 * i) for i in range(8)] == list(range(100, 108))
    assert arena.read(arena.offset(addr), 8) == struct.pack("<Q", 100)  # by offset too
    assert arena.decode(addr, "struct arena_args") == {"addr": 100, "value": 101, "sum": 102}
    arena.write(addr, struct.pack("<Q", 5000))  # seen by the program
    assert _run(obj, "read_page", addr) == (0, addr, 5000, 5000 + sum(range(101, 108)))
    _, second, _, _ = _run(obj, "alloc_page", value=1)
    assert second != addr and arena.read_u64(second) == 1


def test_python_touches_a_page_first(obj: BpfObject) -> None:
    arena = obj.maps["arena"]
    last = arena.user_vm_start + (PAGES - 1) * PAGE
    assert arena.read_u64(last) == 0  # the fault allocates a zeroed page
    arena.write(last, struct.pack("<QQ", 7, 8))
    assert _run(obj, "read_page", last)[2:] == (7, 15)
    # the program's allocator knows the page is taken: it gets the others
    got = {_run(obj, "alloc_page", value=1)[1] for _ in range(PAGES - 1)}
    assert last not in got and len(got) == PAGES - 1
    assert _run(obj, "alloc_page")[0] == 1  # full: bpf_arena_alloc_pages() gave NULL
    _run(obj, "free_page", last)
    assert _run(obj, "alloc_page", value=9)[1] == last


def test_arena_access_errors(obj: BpfObject) -> None:
    arena = obj.maps["arena"]
    with pytest.raises(SpecError, match="is not in arena 'arena'"):
        arena.read(arena.user_vm_start + arena.size, 8)
    with pytest.raises(SpecError, match="outside the mapping"):
        arena.read(arena.size - 4, 8)
    with pytest.raises(NotSupportedError, match="mapped by the loader"):
        arena.map_memory(writable=True)
    with pytest.raises(SpecError, match="no type named"):
        arena.decode(0, "struct nope")


def test_arena_unmapped_with_its_object(bpf_build) -> None:  # type: ignore[no-untyped-def]
    o = BpfObject.open(bpf_build("load_arena.c", vmlinux=True))
    o.load()
    arena = o.maps["arena"]
    region = arena.region
    assert region is not None and not region.closed
    o.close()
    assert region.closed and arena.closed
    with pytest.raises(PhaseError, match="closed"):
        arena.read(0, 8)
    with open("/proc/self/maps") as f:  # the mapping is gone
        assert not any(line.startswith(f"{FIXED:x}-") for line in f)


def test_arena_address_in_use(bpf_build, count_fds: Callable[[], int]) -> None:  # type: ignore[no-untyped-def]
    path = bpf_build("load_arena.c", vmlinux=True)
    with BpfObject.open(path) as first:
        first.load()
        before = count_fds()
        with BpfObject.open(path) as second:
            with pytest.raises(SyscallError) as info:
                second.create_maps()  # the same map_extra, already mapped by the first
            assert info.value.errno == errno.EEXIST
            assert f"{FIXED:#x} (map_extra) is in use" in (info.value.hint or "")
            assert "cannot mmap arena 'arena'" in str(info.value)
        assert count_fds() == before  # the second arena's fd was closed again
        assert first.maps["arena"].read_u64(0) == 0
