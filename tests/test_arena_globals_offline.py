"""__arena global variables (clang's section .addr_space.1) at open and prepare, no kernel.

libbpf (1.4+) does not make .addr_space.1 a map: its bytes are the initial contents of part
of the object's one arena map, and each ld_imm64 of an arena global becomes a map-value
reference into the arena map (BPF_PSEUDO_MAP_VALUE, imm = the map, second imm =
arena_data_off + the variable's offset). Where in the arena (libbpf 1.7.0 src/libbpf.c):

* bpf_object__relocate() (7388-7393): ``arena_data_off = bpf_map_mmap_sz(arena) -
  roundup(arena_data_sz, page_size)`` -- the end of the arena -- when the kernel takes
  ld_imm64 offsets of any size (FEAT_LDIMM64_FULL_RANGE_OFF, Linux 7.0), else 0; libbpf
  1.4 to 1.6 always 0. bpf_map_mmap_sz() of an arena (1837) is page_size * max_entries.
* bpf_object__relocate_data() (6380-6385): ``insn[1].imm = insn[0].imm + sym_off``, plus
  arena_data_off for the arena map.
* bpf_object__init_user_btf_maps() (3067-3093) and init_arena_map_data() (2991-3018): one
  arena map at most; one at least when there are arena globals; the globals must fit.

Debian's libbpf-dev (1.1) predates arenas, so the numbers below are libbpf's formulas
applied by hand; `test_prepare_matches_libbpf` compares with a libbpf 1.4+ when one is
given (BPFOBJ_LIBBPF_PREFIX, see tests/harnessbuild.py) and root can load.

Objects are opened with page_size=4096: the layouts are those of a 4 KiB-page kernel
(one test uses 16 KiB pages).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

from bpfobj import BpfObject
from bpfobj.errors import LinkError, SpecError
from bpfobj.insn import Instruction
from bpfobj.prepare import ArenaLayout
from bpfobj.uapi import PSEUDO_MAP_IDX_VALUE

PAGE = 4096
LD_IMM64 = 0x18
BuildFn = Callable[..., Path]


def _open(bpf_build: BuildFn, source: str, *defines: str, page_size: int = PAGE) -> BpfObject:
    return BpfObject.open(bpf_build(source, vmlinux=True, defines=defines), page_size=page_size)


def _elf_arena_relocs(path: Path) -> dict[str, list[tuple[int, int]]]:
    """pyelftools' view, independent of bpfobj's ELF reader: function -> (instruction
    index in the function, offset in .addr_space.1 the ld_imm64 points at: symbol value
    plus the instruction's own imm) for each relocation against an arena global."""
    out: dict[str, list[tuple[int, int]]] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        arena_idx = next(i for i, s in enumerate(elf.iter_sections())
                         if s.name == ".addr_space.1")
        symtab = elf.get_section_by_name(".symtab")
        funcs = [s for s in symtab.iter_symbols() if s["st_info"]["type"] == "STT_FUNC"]
        for rel in elf.iter_sections():
            if rel["sh_type"] != "SHT_REL":
                continue
            target = elf.get_section(rel["sh_info"])
            if not target["sh_flags"] & 0x4:  # SHF_EXECINSTR: code, not debug info
                continue
            code = target.data()
            for r in rel.iter_relocations():
                sym = symtab.get_symbol(r["r_info_sym"])
                if sym["st_shndx"] != arena_idx:
                    continue
                off = r["r_offset"]
                func = next(fn for fn in funcs if fn["st_shndx"] == rel["sh_info"]
                            and fn["st_value"] <= off < fn["st_value"] + fn["st_size"])
                imm = int.from_bytes(code[off + 4 : off + 8], "little", signed=True)
                out.setdefault(func.name, []).append(
                    ((off - func["st_value"]) // 8, sym["st_value"] + imm))
    return out


# -- open ---------------------------------------------------------------------------------


def test_open_collects_the_section(bpf_build: BuildFn) -> None:
    with _open(bpf_build, "load_arena_globals.c") as obj:
        arena = obj.spec.arena_globals
        assert arena is not None
        assert (arena.map, arena.size, arena.data, arena.page_size) == ("arena", 4, bytes(4), PAGE)
        assert arena.variables == (("counter", 0, 4),)
        btf = obj.spec.btf
        assert btf is not None and btf.type(arena.datasec_id).name == ".addr_space.1"
        assert list(obj.spec.maps) == ["arena"]  # no map of its own


def test_objects_without_arena_globals(bpf_build: BuildFn) -> None:
    with _open(bpf_build, "load_arena.c") as obj:  # an arena, no __arena variables
        assert obj.spec.arena_globals is None
        assert obj.prepare(arena_globals="end").arena is None
        with pytest.raises(SpecError, match=r"no data section '\.addr_space\.1'"):
            obj.arena  # noqa: B018


def test_arena_global_without_arena_map(bpf_build: BuildFn) -> None:
    with pytest.raises(SpecError) as info:
        _open(bpf_build, "load_arena_globals.c", "NO_ARENA_MAP")
    err = info.value
    assert "the __arena variables counter) need an arena map to live in" in str(err)
    assert (err.section, err.program, err.insn) == (".addr_space.1", "bump", 0)
    assert "BPF_MAP_TYPE_ARENA" in (err.hint or "") and "SEC(\".maps\")" in (err.hint or "")


def test_two_arena_maps(bpf_build: BuildFn) -> None:
    with pytest.raises(SpecError) as info:
        _open(bpf_build, "load_arena_globals.c", "TWO_ARENAS")
    err = info.value
    assert "defines 2 arena maps ('arena', 'other_arena')" in str(err)
    assert err.extra["map"] == "other_arena" and "keep one BPF_MAP_TYPE_ARENA" in (err.hint or "")


def test_globals_larger_than_the_arena(bpf_build: BuildFn) -> None:
    with pytest.raises(SpecError) as info:  # 4 + 8192 bytes: 3 pages, in a 2-page arena
        _open(bpf_build, "load_arena_globals.c", "BIG=8192")
    assert "take 8196 bytes (3 pages of 4096), more than arena map 'arena' has (2 pages)" \
        in str(info.value)
    assert "max_entries to at least 3" in (info.value.hint or "")


@pytest.mark.parametrize(("big", "size", "end"), [(4092, 4096, 4096), (4093, 4100, 0),
                                                 (8188, 8192, 0)])
def test_end_offset_rounds_up_to_pages(bpf_build: BuildFn, big: int, size: int, end: int
                                       ) -> None:
    """libbpf: mmap_sz - roundup(data_sz, page): 4096 bytes take one page, 4100 (counter
    aligned after big[4093]) two, and globals filling the arena start at 0 either way."""
    with _open(bpf_build, "load_arena_globals.c", f"BIG={big}") as obj:
        layout = obj.prepare(arena_globals="end").arena
        assert layout is not None and (layout.size, layout.offset) == (size, end)


def test_page_size_of_the_target(bpf_build: BuildFn) -> None:
    with _open(bpf_build, "load_arena_globals.c", page_size=16384) as obj:
        layout = obj.prepare(arena_globals="end").arena
        assert layout == ArenaLayout(map="arena", map_index=0, offset=16384, size=4,
                                     placement="end")


# -- prepare ------------------------------------------------------------------------------


@pytest.mark.parametrize(("placement", "offset"), [("start", 0), ("end", 3 * PAGE)])
def test_relocations_into_the_arena(bpf_build: BuildFn, placement: str, offset: int) -> None:
    """Every arena ld_imm64 of obj_arena_globals.c (3 programs, a subprogram two of them call,
    a static variable relocated through the section symbol) points into the arena map at
    the layout's offset plus the variable's; nothing else changes."""
    path = bpf_build("obj_arena_globals.c", vmlinux=True)
    expected = _elf_arena_relocs(path)
    assert sorted(expected) == ["addresses", "hist_add", "read_globals", "write_globals"]
    with BpfObject.open(path, page_size=PAGE) as obj:
        spec = obj.spec
        assert spec.arena_globals is not None and spec.arena_globals.size == 80
        prepared = obj.prepare(arena_globals=placement)
        # 4 pages, 80 bytes of globals: the end is the last page (16384 - 4096)
        assert prepared.arena == ArenaLayout(map="arena", map_index=0, offset=offset,
                                             size=80, placement=placement)
        for name, prog in prepared.programs.items():
            want = {}
            for func, base in prog.layout:
                for idx, var_off in expected.get(func, []):
                    want[base + idx] = offset + var_off
            got = {}
            for i, insn in enumerate(prog.insns):
                if insn.code == LD_IMM64 and insn.src == PSEUDO_MAP_IDX_VALUE:
                    assert insn.imm == 0, f"{name} insn {i}: map index {insn.imm}"
                    got[i] = prog.insns[i + 1].imm
            assert got == want, name
            assert {r.insn: r.value_off for r in prog.map_refs} == want
            assert {r.map for r in prog.map_refs} == {"arena"}
            # the rest is the compiled code (calls aside)
            original = [*spec.programs[name].instructions,
                        *(spec.subprograms["hist_add"].instructions
                          if len(prog.layout) > 1 else [])]
            for i, (a, b) in enumerate(zip(original, prog.insns, strict=True)):
                if i not in want and i - 1 not in want and a.code != 0x85:
                    assert a == b, f"{name} insn {i}"


def test_variables_named_in_map_refs(bpf_build: BuildFn) -> None:
    with _open(bpf_build, "obj_arena_globals.c") as obj:
        prepared = obj.prepare(arena_globals="end")
        refs = {r.value_off - 3 * PAGE: r.arena_global
                for r in prepared.programs["read_globals"].map_refs}
        # offsets of the variables in .addr_space.1 (clang orders them so)
        assert refs == {0: "magic", 8: "origin", 24: "hist", 56: "label", 68: "counter",
                        72: "hidden"}
        layout = prepared.programs["read_globals"].layout
        assert [n for n, _ in layout] == ["read_globals", "hist_add"]
        sub = layout[1][1]  # the appended subprogram's reference to hist
        assert [(r.insn, r.arena_global) for r in prepared.programs["read_globals"].map_refs
                if r.insn >= sub] == [(sub, "hist")]


def test_prepare_json(bpf_build: BuildFn) -> None:
    with _open(bpf_build, "load_arena_globals.c") as obj:
        doc = obj.prepare(arena_globals="end").to_json()
    assert doc["arena"] == {"map": "arena", "map_index": 0, "section": ".addr_space.1",
                            "offset": 4096, "size": 4, "placement": "end"}
    (prog,) = doc["programs"]
    assert prog["map_refs"] == [{"insn": 0, "map_index": 0, "map": "arena", "value_off": 4096,
                                 "arena_global": "counter"}]
    assert prog["insns"][:2] == [Instruction(0x18, 1, 6, 0, 0).to_bytes("little").hex(),
                                 Instruction(0, 0, 0, 0, 4096).to_bytes("little").hex()]


def test_cli_prepare(bpf_build: BuildFn, capsys: pytest.CaptureFixture[str]) -> None:
    from bpfobj.cli.main import main

    path = str(bpf_build("load_arena_globals.c", vmlinux=True))
    assert main(["prepare", path, "--json", "--arena-globals", "start"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["arena"]["placement"] == "start" and doc["arena"]["offset"] == 0
    assert main(["prepare", path, "--arena-globals", "end"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "__arena globals (.addr_space.1, 4 bytes): at offset" in text
    assert "of arena map 'arena' (its end); used: counter" in text


def test_cli_inspect(bpf_build: BuildFn, capsys: pytest.CaptureFixture[str]) -> None:
    from bpfobj.cli.main import main

    path = str(bpf_build("load_arena_globals.c", vmlinux=True))
    assert main(["inspect", path, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["arena_globals"] == {"map": "arena", "section": ".addr_space.1", "size": 4,
                                    "variables": [{"name": "counter", "offset": 0, "size": 4}]}
    assert main(["inspect", path]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "__arena globals (.addr_space.1, 4 bytes, in map arena)" in text
    assert "counter │ 0 │ 4" in text


def test_bad_placement(bpf_build: BuildFn) -> None:
    with _open(bpf_build, "load_arena_globals.c") as obj, \
            pytest.raises(LinkError, match="arena_globals='middle': use 'start' or 'end'"):
        obj.prepare(arena_globals="middle")


# -- the globals from Python, before the maps exist ---------------------------------------

INITIAL = {"magic": 0x1122334455667788, "origin": {"x": 3, "y": 4},
           "hist": [1, 2, 3, 4, 5, 6, 7, 8], "label": b"arena", "counter": 0, "hidden": 77}


def test_initial_values_by_name(bpf_build: BuildFn) -> None:
    with _open(bpf_build, "obj_arena_globals.c") as obj:
        assert obj.arena.to_dict() == INITIAL
        assert obj.section(".addr_space.1") is obj.arena
        obj.arena.counter = 9
        obj.arena.origin = {"x": 30, "y": 40}
        assert obj.arena.counter == 9 and obj.arena.origin == {"x": 30, "y": 40}
        assert obj.spec.arena_globals is not None
        assert obj.spec.arena_globals.data[68:72] == bytes(4)  # the spec stays as compiled
        with pytest.raises(AttributeError, match="has no variable 'nope'; it has: magic"):
            obj.arena.nope  # noqa: B018
        with pytest.raises(SpecError, match=r"data sections are: .*\.addr_space\.1"):
            obj.section(".nope")


# -- libbpf itself, when it is new enough ---------------------------------------------------


def test_prepare_matches_libbpf(bpf_build: BuildFn) -> None:
    """The instructions of libbpf 1.4+ after load, where bpfobj places the globals by
    default for this kernel (libbpf 1.7's rule; 1.4 to 1.6 always at the start)."""
    import prepare_parity as pp

    if (reason := pp.not_root_reason() or pp.harness_missing_reason()) is not None:
        pytest.skip(reason)
    path = bpf_build("obj_arena_globals.c", vmlinux=True)
    view: dict[str, Any] = pp.run_libbpf(path, harness=pp.build_harness())
    version = tuple(int(x) for x in str(view.get("libbpf_version", "v0.0")).lstrip("v").split("."))
    if version < (1, 4):
        pytest.skip(f"libbpf {view.get('libbpf_version')} predates __arena globals (1.4+): "
                    "set BPFOBJ_LIBBPF_PREFIX to a newer libbpf's install (tests/harnessbuild.py)")
    if "error" in view:
        pytest.fail(pp.libbpf_failure(view))
    with BpfObject.open(path) as obj:  # this host's page size, as libbpf
        ours = obj.prepare(arena_globals=None if version >= (1, 7) else "start").to_json()
    expected = pp.normalize(view, loader="libbpf")
    assert pp.diff_programs(expected, pp.normalize(ours, loader="bpfobj")) == []
    assert pp.check_map_refs(ours) == []


@pytest.mark.parametrize(("release", "placement"), [
    ("6.18.44-fc-v657", "start"), ("6.12.117+deb12-amd64", "start"), ("5.10.0-35-amd64", "start"),
    ("7.0.0", "end"), ("7.3.1-arch1", "end"), ("10.1", "end"), ("7", "start"), ("garbage", "start"),
])
def test_running_kernel_placement_from_the_release(release: str, placement: str) -> None:
    """libbpf 1.7 places the globals last where ld_imm64 takes any offset (Linux 7.0+);
    prepare decides it from the release, with no bpf(2)."""
    from bpfobj.prepare import arena_placement_for

    assert arena_placement_for(release) == placement
