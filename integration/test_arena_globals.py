"""__arena global variables in the running kernel (Linux 6.9+): tests/progs/
obj_arena_globals.c loaded with its globals at the start of the arena, at its end, and
where bpfobj puts them by default (libbpf 1.7's rule for this kernel); the SEC("syscall")
programs, run with BPF_PROG_TEST_RUN, see the initial values (edited ones too), Python sees
what they wrote through ``obj.arena`` and the arena mapping, and they see what Python
wrote."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bpfobj import BpfObject, maptypes
from bpfobj.arena import ArenaMap
from bpfobj.errors import NotSupportedError, VerifierError
from bpfobj.prepare import arena_placement_for

BuildFn = Callable[..., Path]
PAGES = 4  # obj_arena_globals.c's ARENA_PAGES
INITIAL = {"magic": 0x1122334455667788, "origin": {"x": 3, "y": 4},
           "hist": [1, 2, 3, 4, 5, 6, 7, 8], "label": b"arena", "counter": 0, "hidden": 77}


def _run(o: BpfObject, prog: str, value: int = 0) -> tuple[int, list[int]]:
    """Run `prog` with struct args {in = value}; its return value and out[7]."""
    res = o.programs[prog].test_run(ctx=struct.pack("<8Q", value, *[0] * 7))
    return res.retval, list(struct.unpack("<8Q", res.ctx)[1:])


@pytest.fixture(params=["default", "start", "end"])
def obj(request: pytest.FixtureRequest, bpf_build: BuildFn) -> Iterator[BpfObject]:
    with BpfObject.open(bpf_build("obj_arena_globals.c", vmlinux=True)) as o:
        o.prepare(arena_globals=None if request.param == "default" else request.param)
        o.load()
        yield o


def _var_offsets(o: BpfObject) -> dict[str, int]:
    arena = o.spec.arena_globals
    assert arena is not None
    return {name: off for name, off, _size in arena.variables}


def test_placement(obj: BpfObject) -> None:
    layout = obj.prepared.arena
    assert layout is not None and layout.map == "arena" and layout.size == 80
    page = obj.spec.arena_globals.page_size  # type: ignore[union-attr]
    if layout.placement == "end":
        assert layout.offset == PAGES * page - page
    else:
        assert layout.offset == 0


def test_default_placement_follows_the_kernel(bpf_build: BuildFn) -> None:
    """libbpf 1.7: the end when the kernel takes ld_imm64 offsets past 512 MiB (its
    FEAT_LDIMM64_FULL_RANGE_OFF probe, Linux 7.0+), else the start (as libbpf 1.4-1.6).
    prepare decides from the release (no bpf(2)): the probe must agree with it."""
    with BpfObject.open(bpf_build("obj_arena_globals.c", vmlinux=True)) as o:
        layout = o.prepare().arena
        assert layout is not None
        release = o.features.kernel_release
        want = "end" if o.features.ldimm64_full_range_off else "start"
        assert arena_placement_for(release) == want, release
        assert layout.placement == want


def test_program_sees_the_initial_values(obj: BpfObject) -> None:
    assert obj.arena.to_dict() == INITIAL  # now read from the arena itself
    retval, out = _run(obj, "read_globals")
    assert retval == 0
    assert out == [0, 0x1122334455667788, 304, 1 + 8, ord("a") | ord("r") << 8, 77, 1]


def test_python_sees_what_the_program_wrote(obj: BpfObject) -> None:
    retval, out = _run(obj, "write_globals", 5)
    assert retval == 5 and out[0] == 6 + 10  # hist[5] += 10 in the subprogram
    assert obj.arena.to_dict() == {
        "magic": ~5 & (1 << 64) - 1, "origin": {"x": 5, "y": 10},
        "hist": [1, 2, 3, 4, 5, 16, 7, 8], "label": b"Arena", "counter": 5, "hidden": 82}
    _run(obj, "write_globals", 1)
    assert obj.arena.counter == 6 and obj.arena.hist[1] == 12
    # the bytes are where the layout says, in the arena's mapping
    arena = obj.maps["arena"]
    assert isinstance(arena, ArenaMap)
    layout = obj.prepared.arena
    assert layout is not None
    at = layout.offset + _var_offsets(obj)["counter"]
    assert arena.read(at, 4) == struct.pack("<i", 6)
    assert arena.decode(layout.offset + _var_offsets(obj)["origin"], "struct point") == \
        {"x": 1, "y": 2}


def test_program_sees_what_python_wrote(obj: BpfObject) -> None:
    obj.arena.counter = -7
    obj.arena.magic = 42
    obj.arena.origin = {"x": 1, "y": 2}
    obj.arena.hist = [10, 0, 0, 0, 0, 0, 0, 20]
    obj.arena.label = b"xy"
    obj.arena.hidden = 1000
    _, out = _run(obj, "read_globals", 7)
    assert out == [(1 << 64) - 7, 42, 102, 30, ord("x") | ord("y") << 8, 1000, 20]


def test_addresses_are_arena_pointers(obj: BpfObject) -> None:
    """&variable in the program is the arena's user address plus the variable's offset."""
    arena = obj.maps["arena"]
    assert isinstance(arena, ArenaMap)
    layout = obj.prepared.arena
    assert layout is not None
    base = arena.user_vm_start + layout.offset
    off = _var_offsets(obj)
    _, out = _run(obj, "addresses")
    assert out[:5] == [base + off["counter"], base + off["magic"], base + off["origin"] + 8,
                       base + off["hist"] + 8, base + off["hidden"]]


def test_initial_values_edited_before_load(bpf_build: BuildFn) -> None:
    with BpfObject.open(bpf_build("obj_arena_globals.c", vmlinux=True)) as o:
        o.arena.counter = 40
        o.arena.origin = {"x": 0, "y": 9}
        o.load()
        assert _run(o, "write_globals", 2)[0] == 42
        assert _run(o, "read_globals")[1][2] == 2 * 100 + 4


def test_globals_past_512_mib(bpf_build: BuildFn, monkeypatch: pytest.MonkeyPatch,
                              count_fds: Callable[[], int]) -> None:
    """A 1 GiB arena with its globals at the end: past the 512 MiB ld_imm64 offsets a kernel
    before 7.0 takes. There create_maps refuses before creating anything (without that check
    the verifier does, as the second half shows), and at the start they load; from 7.0 on,
    the end is the default and loads."""
    path = bpf_build("obj_arena_globals.c", vmlinux=True, defines=("ARENA_PAGES=262144",))
    with BpfObject.open(path) as o:
        if o.features.ldimm64_full_range_off:  # Linux 7.0+: the end loads, as by default
            layout = o.prepare().arena
            assert layout is not None and layout.placement == "end"
            assert layout.offset == 262144 * o.spec.arena_globals.page_size - layout.size \
                - (-layout.size % o.spec.arena_globals.page_size)  # type: ignore[union-attr]
            o.load()
            assert _run(o, "write_globals", 5)[0] == 5 and o.arena.counter == 5
            return
        o.prepare(arena_globals="end")
        before = count_fds()
        with pytest.raises(NotSupportedError, match=r"\(512 MiB\) only: Linux 7\.0") as info:
            o.load()
        assert "arena_globals='start'" in (info.value.hint or "")
        assert count_fds() == before  # nothing was created (the object's BTF was closed)
    with BpfObject.open(path) as o:
        o.prepare(arena_globals="end")
        monkeypatch.setattr(maptypes, "check_arena_globals", lambda *a: None)
        with pytest.raises(VerifierError, match="direct value offset of"):
            o.load()
    monkeypatch.undo()
    with BpfObject.open(path) as o:
        o.prepare(arena_globals="start")
        o.load()
        assert _run(o, "write_globals", 3)[0] == 3 and o.arena.counter == 3
