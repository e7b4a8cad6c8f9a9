"""BPF_MAP_TYPE_USER_RINGBUF in the running kernel: records written from Python with
`UserRingBuffer` are drained by a BPF program (tests/progs/load_user_ringbuf.c, a
SEC("syscall") program run with BPF_PROG_TEST_RUN calling bpf_user_ringbuf_drain()), which
reports each one, in order, through an array map and its count."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bpfobj import BpfObject
from bpfobj.errors import BufferFullError, PhaseError, SpecError
from bpfobj.uapi import MapType
from bpfobj.user_ringbuf import UserRingBuffer

RING = 4096  # max_entries of `requests`
RECORD = 32  # sizeof(struct request)
STRIDE = RECORD + 8  # with its header, 8-aligned


@pytest.fixture
def obj(bpf_build) -> Iterator[BpfObject]:  # type: ignore[no-untyped-def]
    with BpfObject.open(bpf_build("load_user_ringbuf.c")) as o:
        o.load()
        yield o


@pytest.fixture
def urb(obj: BpfObject) -> Iterator[UserRingBuffer]:
    with UserRingBuffer(obj.maps["requests"], record_type="request") as rb:
        yield rb


def drain(obj: BpfObject) -> tuple[int, int, int]:
    """Run the drain program: (records its callback saw, short ones, drain's return)."""
    res = obj.programs["drain"].test_run(ctx=bytes(16))
    assert res.retval == 0
    calls, short, drained = struct.unpack("<IIq", res.ctx)
    return calls, short, drained


def seen(obj: BpfObject) -> list[dict[str, int]]:
    """What the program reported, in order (and forget it: the count goes back to 0)."""
    count = obj.maps["seen_count"][0]
    out = [obj.maps["seen"][i] for i in range(count)]
    obj.maps["seen_count"][0] = 0
    return out


def request(seq: int, op: int = 0) -> dict[str, object]:
    return {"seq": seq, "op": op, "value": seq * 1000 + 7, "name": f"r{seq}"}


def test_map_created(obj: BpfObject) -> None:
    info = obj.maps["requests"].info()
    assert info["type"] == MapType.USER_RINGBUF and info["max_entries"] == RING


def test_records_arrive_in_order(obj: BpfObject, urb: UserRingBuffer) -> None:
    assert urb.avail_space() == RING
    for seq in range(10):
        urb.write(request(seq))  # dicts encoded through the object's BTF
    urb.write(struct.pack("<IIQ16s", 10, 0, 10007, b"raw"))  # bytes as they are
    assert urb.avail_space() == RING - 11 * STRIDE
    assert drain(obj) == (11, 0, 11)
    assert seen(obj) == [{"seq": s, "op": 0, "value": s * 1000 + 7} for s in range(11)]
    assert urb.avail_space() == RING  # the kernel advanced consumer_pos
    assert urb.consumer_pos == urb.producer_pos == 11 * STRIDE
    assert drain(obj) == (0, 0, 0)


def test_reserve_submit_discard(obj: BpfObject, urb: UserRingBuffer) -> None:
    first = urb.reserve(RECORD)
    second = urb.reserve(RECORD)
    second.write(struct.pack("<IIQ", 2, 0, 2))
    urb.submit(second)
    assert drain(obj) == (0, 0, 0)  # the kernel stops at the first busy record
    first.buf[:16] = struct.pack("<IIQ", 1, 0, 1)
    urb.submit(first)
    discarded = urb.reserve(RECORD)
    urb.discard(discarded)
    short = urb.reserve(4)  # shorter than struct request: bpf_dynptr_read() fails
    short.write(b"abcd")
    urb.submit(short)
    assert drain(obj) == (3, 1, 3)  # discarded records are skipped
    assert [r["seq"] for r in seen(obj)] == [1, 2]
    with pytest.raises(PhaseError, match="already submitted"):
        urb.submit(first)
    with pytest.raises(PhaseError, match="already submitted"):
        first.write(b"x")
    with pytest.raises(ValueError):  # the view is released with the submit
        first.buf[0] = 1


def test_program_stops_early(obj: BpfObject, urb: UserRingBuffer) -> None:
    for seq in range(5):
        urb.write(request(seq, op=1 if seq == 2 else 0))
    assert drain(obj)[2] == 3  # the callback returned 1 at seq 2
    assert drain(obj)[2] == 2
    assert [r["seq"] for r in seen(obj)] == [0, 1, 2, 3, 4]


def test_full_buffer_raises(obj: BpfObject, urb: UserRingBuffer) -> None:
    fits = RING // STRIDE
    for seq in range(fits):
        urb.write(request(seq))
    with pytest.raises(BufferFullError) as info:
        urb.write(request(fits))
    err = info.value
    assert err.needed == STRIDE and err.available == RING - fits * STRIDE
    assert "user ring buffer 'requests' is full" in str(err)
    assert "bpf_user_ringbuf_drain" in (err.hint or "")
    with pytest.raises(BufferFullError):
        urb.write(request(fits), timeout=0.05)  # nobody drains: times out
    assert drain(obj)[2] == fits
    urb.write(request(fits))  # room again
    assert drain(obj)[2] == 1
    assert [r["seq"] for r in seen(obj)] == list(range(fits + 1))
    with pytest.raises(SpecError, match="can never fit"):
        urb.reserve(RING)


def test_blocking_write_waits_for_the_program(obj: BpfObject, urb: UserRingBuffer) -> None:
    fits = RING // STRIDE
    for seq in range(fits):
        urb.write(request(seq))
    drainer = threading.Timer(0.2, drain, args=(obj,))
    drainer.start()
    start = time.monotonic()
    urb.write(request(fits), timeout=10)  # woken by the drain (EPOLLOUT)
    assert time.monotonic() - start < 5
    drainer.join()
    assert drain(obj)[2] == 1
    assert [r["seq"] for r in seen(obj)] == list(range(fits + 1))


def test_wrapping_records_stay_whole(obj: BpfObject, urb: UserRingBuffer) -> None:
    # 40-byte strides do not divide 4096: records straddle the end of the ring
    for round_ in range(5):
        for seq in range(60):
            urb.write(request(round_ * 100 + seq))
        assert drain(obj)[:2] == (60, 0)
        assert [r["seq"] for r in seen(obj)] == [round_ * 100 + s for s in range(60)]


def test_misuse(obj: BpfObject, count_fds: Callable[[], int]) -> None:
    with pytest.raises(SpecError, match="is not a user ring buffer"):
        UserRingBuffer(obj.maps["seen"])
    before = count_fds()
    rb = UserRingBuffer(obj.maps["requests"])
    with pytest.raises(SpecError, match="takes bytes without a record type"):
        rb.write({"seq": 1})
    pending = rb.reserve(RECORD)
    pending.write(struct.pack("<I", 99))
    rb.close()  # discards what is still reserved: the kernel is not stuck behind it
    assert count_fds() == before
    with pytest.raises(PhaseError, match="closed"):
        rb.write(b"x")
    with UserRingBuffer(obj.maps["requests"], record_type="request") as again:
        again.write(request(5))
        assert drain(obj) == (1, 0, 1)  # the discarded one is skipped
    assert [r["seq"] for r in seen(obj)] == [5]
