"""Map operations on real kernel maps: every common type from Python and from programs run
with BPF_PROG_TEST_RUN, globals through the mmap-ed data sections, pinning and reuse."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable, Iterator

import pytest

from bpfobj import BpfObject
from bpfobj.errors import PhaseError, SpecError, SyscallError
from bpfobj.maps import possible_cpus
from bpfobj.ringbuf import RingBuffer
from bpfobj.sys import attr, bpffs
from bpfobj.sys.syscall import Cmd, bpf_fd
from bpfobj.uapi import MapType

XDP_DROP, XDP_PASS = 1, 2


@pytest.fixture
def obj(bpf_build, pin_root: str) -> Iterator[BpfObject]:
    """tests/progs/load_maps.c, loaded, with multiplier 3 (its initial value)."""
    with BpfObject.open(bpf_build("load_maps.c")) as o:
        o.load(pin_root=pin_root)
        yield o


ARGS = struct.Struct("<IIQQQ")
"""load_maps.c's struct args (key, pad, value, out, out2): update_maps and read_inner read it
from the test packet and write out and out2 back into it."""


def _update(o: BpfObject, key: int, value: int) -> tuple[int, bytes]:
    """Run update_maps(key, value): the return value and the packet (struct args) after."""
    res = o.programs["update_maps"].test_run(ARGS.pack(key, 0, value, 0, 0))
    return res.retval, res.data


def _packet(key: int, value: int) -> bytes:
    return struct.pack("<IQ", key, value).ljust(64, b"\0")


def test_every_map_type_created(obj: BpfObject) -> None:
    want = {
        "hash_map": MapType.HASH, "array_map": MapType.ARRAY,
        "pcpu_array": MapType.PERCPU_ARRAY, "pcpu_hash": MapType.PERCPU_HASH,
        "lru": MapType.LRU_HASH, "routes": MapType.LPM_TRIE, "fifo": MapType.QUEUE,
        "lifo": MapType.STACK, "events": MapType.RINGBUF,
        "load_pinned": MapType.HASH, "inner_a": MapType.ARRAY, "inner_b": MapType.ARRAY,
        "outer_arr": MapType.ARRAY_OF_MAPS, "outer_hash": MapType.HASH_OF_MAPS,
        "jmp": MapType.PROG_ARRAY, ".bss": MapType.ARRAY, ".data": MapType.ARRAY,
        ".rodata": MapType.ARRAY,
    }
    for name, mtype in want.items():
        m = obj.maps[name]
        info = m.info()
        assert info["type"] == mtype == m.type, name
        assert info["max_entries"] == m.max_entries
    assert obj.maps["events"].info()["max_entries"] == 16384
    assert obj.maps["hash_map"].info()["btf_value_type_id"] > 0  # BTF-typed


# -- globals ------------------------------------------------------------------------------


def test_globals_through_the_mmap(obj: BpfObject) -> None:
    bss, data = obj.bss, obj.data
    assert obj.maps[".bss"].mmap is not None and obj.maps[".data"].mmap is not None
    assert bss.counter == 0 and bss.hits == [0, 0, 0, 0]
    assert data.data_total == 100
    assert data.config == {"id": 7, "flags": 2, "enabled": 1, "name": b"bpfobj"}
    bss.hits = [0, 0, 1000, 0]  # written through the mmap: the program sees it
    retval, _ = _update(obj, 2, 10)
    assert retval == 30
    assert bss.counter == 1
    assert bss.hits == [0, 0, 1030, 0]
    assert data.data_total == 130
    data.config = {"id": 9, "name": "x"}  # missing members become zero
    assert data.config == {"id": 9, "flags": 0, "enabled": 0, "name": b"x"}
    assert sorted(dir(bss)) == ["counter", "hits", "xdp_runs"]
    with pytest.raises(AttributeError, match="no variable"):
        bss.nope  # noqa: B018


def test_rodata_set_before_load_then_frozen(bpf_build, pin_root: str) -> None:
    with BpfObject.open(bpf_build("load_maps.c")) as o:
        assert o.rodata.multiplier == 3 and o.rodata.greeting == b"hello"
        o.rodata.multiplier = 11
        o.rodata.greeting = "howdy"
        assert o.rodata.multiplier == 11
        o.load(pin_root=pin_root)
        retval, args = _update(o, 1, 2)
        assert retval == 22
        assert ARGS.unpack(args)[4] == ord("h")
        assert o.rodata.multiplier == 11 and o.rodata.greeting == b"howdy"
        rodata = o.maps[".rodata"]
        assert rodata.frozen
        with pytest.raises(PhaseError, match=r"frozen.*") as info:
            o.rodata.multiplier = 12
        assert "before load()" in (info.value.hint or "")
        with pytest.raises(SyscallError) as sys_info:  # the kernel refuses too
            rodata.update_raw(b"\0\0\0\0", bytes(rodata.value_size))
        assert sys_info.value.errno == errno.EPERM
        assert o.rodata.multiplier == 11


def test_test_run_of_a_short_packet_says_what_it_needs(obj: BpfObject) -> None:
    try:
        obj.programs["update_maps"].test_run(b"x")
    except SyscallError as exc:
        assert exc.message == "test run of program 'update_maps' failed"
        assert exc.errno == errno.EINVAL
        assert "at least 14 bytes (an Ethernet header)" in (exc.hint or "")
    else:  # (seen on 5.10)
        pytest.skip(f"this kernel ({os.uname().release}) test-runs XDP programs on packets "
                    "shorter than an Ethernet header; newer ones refuse them (EINVAL)")


def test_bad_values_name_the_variable_or_map(obj: BpfObject) -> None:
    with pytest.raises(SpecError, match=r"cannot set \.bss variable '\w+': .*wants an int, "
                       r"not str"):
        setattr(obj.bss, next(n for n, v in obj.bss.to_dict().items() if isinstance(v, int)),
                "x")
    with pytest.raises(SpecError, match=r"map 'array_map' value: .*wants an int, not str"):
        obj.maps["array_map"][1] = "x"
    with pytest.raises(SpecError, match=r"map 'array_map' key: .*does not fit") as info:
        obj.maps["array_map"][1 << 40] = 1
    assert info.value.extra.get("map") == "array_map"
    with pytest.raises(SpecError, match=r"map 'events' key") as info:
        obj.maps["events"].update(0, 1)  # a ring buffer has no elements
    assert "no keys or values" in (info.value.hint or "")


# -- hash, array, per-CPU, LRU -----------------------------------------------------------


def test_hash_map_from_both_sides(obj: BpfObject) -> None:
    h = obj.maps["hash_map"]
    _update(obj, 5, 1)
    _update(obj, 5, 2)
    assert h[5] == {"count": 2, "sum": 9}
    h[6] = {"count": 10, "sum": 20}
    _update(obj, 6, 1)
    assert h[6] == {"count": 11, "sum": 23}
    assert sorted(h.keys()) == [5, 6] and len(h) == 2
    assert dict(h.items()) == {5: {"count": 2, "sum": 9}, 6: {"count": 11, "sum": 23}}
    assert 5 in h and 7 not in h
    assert h.lookup(7) is None and h.lookup(7, "none") == "none"
    with pytest.raises(KeyError):
        _ = h[7]
    # raw bytes API
    raw = h.lookup_raw(struct.pack("<I", 5))
    assert raw == struct.pack("<QQ", 2, 9)
    h.update_raw(struct.pack("<I", 8), struct.pack("<QQ", 1, 1))
    assert h[8] == {"count": 1, "sum": 1}
    # flags
    with pytest.raises(SyscallError) as info:
        h.update(8, {"count": 0}, h.NOEXIST)
    assert info.value.errno == errno.EEXIST
    with pytest.raises(SyscallError):
        h.update(99, {"count": 0}, h.EXIST)
    assert h.delete(8) and not h.delete(8)
    del h[6]
    assert list(h) == [5]
    h.clear()
    assert len(h) == 0


def test_hash_map_batches(obj: BpfObject) -> None:
    h = obj.maps["hash_map"]
    items = [(k, {"count": k, "sum": 2 * k}) for k in range(40)]
    assert h.update_batch(items) == 40
    got = dict(h.lookup_batch(batch_size=7))
    assert got == dict(items)
    assert h.delete_batch(range(10)) == 10
    assert len(h) == 30
    drained = h.lookup_batch(delete=True)
    assert len(drained) == 30 and len(h) == 0


def test_array_map(obj: BpfObject) -> None:
    a = obj.maps["array_map"]
    assert list(a.keys()) == list(range(8))
    _update(obj, 4, 5)
    assert a[4] == 15
    a[7] = 1 << 40
    assert a.lookup_raw(struct.pack("<I", 7)) == struct.pack("<Q", 1 << 40)
    assert a.lookup(8) is None  # past max_entries
    assert a.get(4) == 15 and a.get(8, -1) == -1  # dict's name for lookup
    with pytest.raises(SyscallError):
        a[8] = 1
    a.clear()
    assert set(a.values()) == {0}


def test_percpu_maps(obj: BpfObject) -> None:
    ncpus = possible_cpus()
    pa = obj.maps["pcpu_array"]
    assert pa.percpu and pa.ncpus == ncpus
    _update(obj, 1, 4)
    values = pa[0]
    assert len(values) == ncpus and sum(values) == 12
    pa[1] = 5  # one value for every CPU
    assert pa[1] == [5] * ncpus
    pa[2] = list(range(ncpus))
    assert pa[2] == list(range(ncpus))
    with pytest.raises(SpecError, match="per-CPU"):
        pa[3] = [1] * (ncpus + 1)
    ph = obj.maps["pcpu_hash"]
    _update(obj, 3, 1)
    assert sum(v["sum"] for v in ph[3]) == 3
    ph[4] = {"count": 1, "sum": 1}
    assert ph[4] == [{"count": 1, "sum": 1}] * ncpus


def test_lru_hash_evicts(obj: BpfObject) -> None:
    lru = obj.maps["lru"]
    _update(obj, 9, 100)
    assert lru[300] == 9
    for k in range(2000):
        lru[k] = k
    assert 0 < len(lru) <= lru.max_entries


def test_ring_buffer_events(obj: BpfObject) -> None:
    """update_maps submits one event a run (from XDP: ring buffers work in any program)."""
    with RingBuffer(obj.maps["events"]) as rb:  # struct event is not in the object's BTF
        assert rb.read(0) == []
        _update(obj, 2, 5)
        _update(obj, 7, 1)
        events = [struct.unpack("<IIQ", record) for record in rb.read(1)]
        assert events == [(2, 0, 15), (7, 0, 3)]


# -- LPM, queue, stack, bloom filter -------------------------------------------------------


def test_lpm_trie(obj: BpfObject) -> None:
    routes = obj.maps["routes"]
    routes[{"prefixlen": 8, "addr": bytes([10, 0, 0, 0])}] = 8
    routes[{"prefixlen": 24, "addr": bytes([10, 1, 2, 0])}] = 24
    key = int.from_bytes(bytes([10, 1, 2, 3]), "little")
    assert obj.programs["xdp_push"].test_run(_packet(key, 1)).retval == XDP_PASS
    assert obj.maps["array_map"][2] == 24  # longest prefix
    key = int.from_bytes(bytes([10, 9, 9, 9]), "little")
    obj.programs["xdp_push"].test_run(_packet(key, 1))
    assert obj.maps["array_map"][2] == 8
    assert routes[{"prefixlen": 32, "addr": bytes([10, 1, 2, 200])}] == 24
    assert routes.lookup({"prefixlen": 32, "addr": bytes([11, 0, 0, 0])}) is None


def test_queue_and_stack(obj: BpfObject) -> None:
    fifo, lifo = obj.maps["fifo"], obj.maps["lifo"]
    assert fifo.pop() is None and lifo.peek() is None
    for v in (1, 2, 3):  # pushed by the program
        obj.programs["xdp_push"].test_run(_packet(0, v))
    assert fifo.peek() == 1 and lifo.peek() == 3
    assert fifo.pop() == 1 and lifo.pop() == 3
    fifo.push(40)  # pushed from Python, popped by the program
    lifo.push(50)
    assert obj.programs["xdp_pop"].test_run(_packet(0, 0)).retval == XDP_PASS
    assert obj.maps["array_map"][3] == 2  # the queue's oldest
    assert obj.maps["array_map"][4] == 50  # the stack's newest
    assert [fifo.pop(), fifo.pop(), fifo.pop()] == [3, 40, None]
    assert [lifo.pop(), lifo.pop(), lifo.pop()] == [2, 1, None]


def test_bloom_filter(bpf_build) -> None:
    """tests/progs/obj_bloom.c (Linux 5.16+, apart from load_maps.c so that it loads on
    older kernels): added to from a program and from Python, tested from both."""
    with BpfObject.open(bpf_build("obj_bloom.c")) as o:
        o.load()
        bloom = o.maps["bloom"]
        info = bloom.info()
        assert info["type"] == MapType.BLOOM_FILTER == bloom.type
        assert info["map_extra"] == 3 and info["max_entries"] == 64
        add, test = o.programs["xdp_bloom_add"], o.programs["xdp_bloom"]
        assert add.test_run(_packet(1234, 0)).retval == XDP_PASS
        assert bloom.contains(1234)
        bloom.push(777)
        assert test.test_run(_packet(777, 0)).retval == XDP_PASS
        assert test.test_run(_packet(1234, 0)).retval == XDP_PASS
        absent = [k for k in range(100000, 100050) if not bloom.contains(k)]
        assert absent  # a 64-entry filter with 3 hashes cannot say yes to everything
        assert test.test_run(_packet(absent[0], 0)).retval == XDP_DROP


# -- map in map, prog array -------------------------------------------------------------------


def test_map_in_map_initial_values(obj: BpfObject) -> None:
    outer, outer_hash = obj.maps["outer_arr"], obj.maps["outer_hash"]
    inner_a, inner_b = obj.maps["inner_a"], obj.maps["inner_b"]
    assert outer[0] == inner_a.id and outer[2] == inner_b.id  # the kernel gives map ids
    assert 1 not in outer
    assert outer_hash[5] == inner_b.id and list(outer_hash) == [5]
    inner_a[0] = 111
    inner_b[0] = 222
    run = obj.programs["read_inner"]

    def read(key: int) -> tuple[int, int, int]:
        res = run.test_run(ARGS.pack(key, 0, 0, 0, 0))
        return res.retval, *ARGS.unpack(res.data)[3:]

    assert read(0) == (0, 111, 222)
    assert read(2) == (0, 222, 222)
    assert read(1)[0] == 0xFFFFFFFF  # empty slot: returned -1 (retval is the u32 r0)
    outer[1] = inner_a  # a Map object stands for its fd
    assert read(1) == (0, 111, 222)
    del outer[1]
    assert read(1)[0] == 0xFFFFFFFF


def test_prog_array_slots(obj: BpfObject) -> None:
    jmp = obj.maps["jmp"]
    assert jmp[0] == obj.programs["tail_drop"].id
    jmp[2] = obj.programs["tail_drop"]
    assert obj.programs["xdp_entry"].test_run(b"\x02" + bytes(63)).retval == XDP_DROP
    jmp.clear()
    assert list(jmp.items()) == []


# -- pinning --------------------------------------------------------------------------------


def test_pin_by_name_and_reuse(bpf_build, pin_root: str) -> None:
    path = os.path.join(pin_root, "load_pinned")
    src = bpf_build("load_maps.c")
    with BpfObject.open(src) as first:
        first.load(pin_root=pin_root)
        pinned = first.maps["load_pinned"]
        assert pinned.pin_path == path and not pinned.reused
        assert bpffs.is_bpffs(path) and os.path.exists(path)
        _update(first, 1, 5)
        map_id = pinned.id
    assert os.path.exists(path)  # pins outlive the object
    with BpfObject.open(src) as second:
        second.load(pin_root=pin_root)
        again = second.maps["load_pinned"]
        assert again.reused and again.id == map_id
        assert again[1] == 15  # written by the first object's program
        again.unpin()
    assert not os.path.exists(path)


def test_incompatible_pin_is_refused(bpf_build, pin_root: str,
                                     count_fds: Callable[[], int]) -> None:
    path = os.path.join(pin_root, "load_pinned")
    with bpf_fd(Cmd.MAP_CREATE, attr.map_create(MapType.ARRAY, 4, 4, 1)) as other:
        bpffs.pin(int(other), path)
    before = count_fds()
    with BpfObject.open(bpf_build("load_maps.c")) as o:
        with pytest.raises(SpecError, match="cannot reuse the map pinned"):
            o.load(pin_root=pin_root)
        assert o.phase.name == "PREPARED"
        assert count_fds() == before  # the maps created before it were closed again
    assert sorted(os.listdir(pin_root)) == ["load_pinned"]
    os.unlink(path)


def test_manual_pin_and_get(obj: BpfObject, pin_root: str) -> None:
    path = os.path.join(pin_root, "manual")
    h = obj.maps["hash_map"]
    h[1] = {"count": 1, "sum": 1}
    h.pin(path)
    with bpffs.get(path) as fd:
        from bpfobj.maps import map_info

        assert map_info(int(fd))["id"] == h.id
    h.unpin()
    assert not os.path.exists(path)


def test_maps_close_with_the_object(bpf_build, pin_root: str) -> None:
    o = BpfObject.open(bpf_build("load_maps.c"))
    o.load(pin_root=pin_root)
    m = o.maps["hash_map"]
    fd = m.fd
    bss = o.bss
    o.close()
    assert m.closed
    with pytest.raises(PhaseError):
        m.fd  # noqa: B018
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(PhaseError, match="closed"):
        bss.counter  # noqa: B018


def test_maps_without_btf_types_take_bytes_and_ints(bpf_build, pin_root: str) -> None:
    with BpfObject.open(bpf_build("obj_maps.c")) as o:
        o.create_maps(pin_root=pin_root)
        sized = o.maps["sized_hash"]  # key_size 6, value_size 12, no BTF types
        sized[b"abcdef"] = b"0123456789ab"
        assert sized[b"abcdef"] == b"0123456789ab"
        with pytest.raises(SpecError, match="without BTF"):
            sized[b"abcdef"] = {"x": 1}
        arr = o.maps["arr"]
        arr[3] = 9
        assert arr[3] == 9
