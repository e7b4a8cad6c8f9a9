"""Property tests of the open phase: `BpfObject.open(data=...)` on corrupted real objects.

The contract: every input, however broken, ends in success or in a `BpfObjError` that is not
an `InternalError` (which means a bug), within 1 second; the error's text is one non-empty
line naming the object. `fuzz_util.run_open` checks all of it, with a SIGALRM hang guard
(1 s; on a loaded machine it waits on while the open has used less than 1 s of CPU).

Inputs are catalogue objects (tests/objects.py) mutated by:

* truncation of the file and of single sections (sh_size shrunk to a boundary inside the
  .BTF header and type records, the .BTF.ext subsections, symbol and relocation entries);
* bit flips and byte overwrites inside the interesting parts (headers, .BTF, .BTF.ext,
  symtab, strtab, code, relocations, .maps);
* targeted field values (`fuzz_util.Layout`): ELF header, each section header, each
  symbol, each relocation, the BTF header, BTF type records (unknown kinds 20..31, huge
  vlen, length-preserving kind swaps, out-of-range / self / cyclic type references, bad
  name offsets), the .BTF.ext header, record sizes and counts, the .maps DATASEC with the
  types of its map definitions (or the legacy `struct bpf_map_def`s), the other DATASECs
  (data, .kconfig, .ksyms) with their VARs;
* combinations of the above.

Every input opened is counted; the total is printed in the terminal summary. Default: a
short run (about a minute on 2 cores). ``BPFOBJ_FUZZ_EXAMPLES=N`` gives every property test
N examples and truncates at every boundary of every section (N=250: ~25k inputs).

The deterministic tests at the end are regressions for the bugs this fuzzing found.
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import fuzz_util
import objects
import pytest
from fuzz_util import (
    CATEGORIES,
    STATS,
    Field,
    Layout,
    run_open,
    write,
)
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from bpfobj import BpfObject
from bpfobj.elf.reader import read_elf
from bpfobj.errors import InsnError, InternalError, SpecError

_ENV = os.environ.get("BPFOBJ_FUZZ_EXAMPLES")
LARGE = _ENV is not None
EXAMPLES = int(_ENV) if LARGE else 20
# Boundary truncations per section in the default run (all of them with BPFOBJ_FUZZ_EXAMPLES).
BOUNDARY_SAMPLE = 24

# Objects opened by the properties: BTF maps (both byte orders), global data, kconfig and
# ksym externs, CO-RE, subprograms and callbacks, every section kind, legacy maps.
SEED_CASES = [
    "maps",
    "maps-bpfeb",
    "globals",
    "externs",
    "core",
    "multiprog",
    "sections",
    "legacy-maps",
    "kprobes",
]

# (case, category) pairs for test_field_values: those objects have no .maps and no "maps".
FIELD_CASES = [
    (case, cat)
    for case in SEED_CASES
    for cat in CATEGORIES
    if not (cat == "maps" and case in ("globals", "externs", "sections"))
]

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_LAYOUTS: dict[str, Layout] = {}


def layout(case: str, bpf_build: Any) -> Layout:
    if case not in _LAYOUTS:
        path = objects.build_case(objects.by_name(case), bpf_build)
        _LAYOUTS[case] = Layout.of(path.read_bytes())
    return _LAYOUTS[case]


def obj_name(case: str) -> str:
    return f"fz_{case}.o"


# ---------------------------------------------------------------------------------------
# Input counter in the terminal summary
# ---------------------------------------------------------------------------------------


class _Summary:
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not STATS.inputs:
            return
        outcomes = ", ".join(f"{k} {v}" for k, v in STATS.outcomes.most_common())
        terminalreporter.write_sep("-", "test_fuzz_open")
        terminalreporter.write_line(
            f"test_fuzz_open: {STATS.inputs} inputs opened ({outcomes}); "
            f"slowest open {STATS.slowest:.3f} s CPU ({STATS.slowest_input}); "
            f"{'BPFOBJ_FUZZ_EXAMPLES=' + str(EXAMPLES) if LARGE else 'default run'}"
        )


@pytest.fixture(scope="module", autouse=True)
def _count_inputs(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.has_plugin("bpfobj-fuzz-open-summary"):
        manager.register(_Summary(), "bpfobj-fuzz-open-summary")


# ---------------------------------------------------------------------------------------
# Mutations drawn by hypothesis
# ---------------------------------------------------------------------------------------


def _set(buf: bytearray, lay: Layout, f: Field, value: int, recipe: list[str]) -> bytearray:
    if f.offset + f.size > len(buf):
        return buf  # truncated away already
    recipe.append(f"{f.name}={value:#x}")
    return write(buf, f, value, lay.order)


def draw_cut(data: st.DataObject, lay: Layout, buf: bytearray, recipe: list[str]) -> bytearray:
    n = data.draw(
        st.one_of(st.sampled_from(lay.file_cuts), st.integers(0, len(buf))), label="file length"
    )
    recipe.append(f"truncate to {n} bytes")
    return buf[:n]


def draw_shrink(data: st.DataObject, lay: Layout, buf: bytearray, recipe: list[str]) -> bytearray:
    shndx = data.draw(st.sampled_from(sorted(lay.section_cuts)), label="section")
    sec = lay.sections[shndx]
    size = data.draw(
        st.one_of(st.sampled_from(lay.section_cuts[shndx]), st.integers(0, max(0, sec.size - 1))),
        label="section size",
    )
    return _set(buf, lay, lay.sh_size_field(shndx), size, recipe)


def draw_flip(data: st.DataObject, lay: Layout, buf: bytearray, recipe: list[str]) -> bytearray:
    names = sorted(n for n, (a, b) in lay.regions.items() if b > a)
    region = data.draw(st.sampled_from(names), label="region")
    lo, hi = lay.regions[region]
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        at = data.draw(st.integers(lo, hi - 1), label="offset")
        if at >= len(buf):
            continue
        if data.draw(st.booleans(), label="flip a bit (or overwrite the byte)"):
            bit = data.draw(st.integers(0, 7), label="bit")
            buf[at] ^= 1 << bit
            recipe.append(f"flip bit {bit} of byte {at:#x} ({region})")
        else:
            value = data.draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, 1]) | st.integers(0, 255))
            buf[at] = value
            recipe.append(f"byte {at:#x} ({region}) = {value:#x}")
    return buf


def draw_field(
    data: st.DataObject, lay: Layout, buf: bytearray, recipe: list[str], category: str | None
) -> bytearray:
    cats = [c for c in CATEGORIES if lay.fields[c]] if category is None else [category]
    cat = data.draw(st.sampled_from(cats), label="category")
    fields = lay.fields[cat]
    f = fields[data.draw(st.integers(0, len(fields) - 1), label="field")]
    value = data.draw(
        st.one_of(st.sampled_from(f.values()), st.integers(0, (1 << (8 * f.size)) - 1)),
        label=f"value of {f.name}",
    )
    return _set(buf, lay, f, value, recipe)


def check(case: str, buf: bytearray, recipe: list[str]) -> None:
    text = f"{case}: " + "; ".join(recipe or ["unchanged"])
    note(text)
    run_open(buf, obj_name(case), text)


# ---------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SEED_CASES)
def test_seed_opens(case: str, bpf_build: Any) -> None:
    """The unmutated objects open (so the mutations start from something valid)."""
    lay = layout(case, bpf_build)
    assert run_open(lay.data, obj_name(case), f"{case} unchanged") is None


@pytest.mark.parametrize("case", SEED_CASES)
def test_truncate_at_boundaries(case: str, bpf_build: Any) -> None:
    """The file cut at every header and section boundary (+-1 byte), and each section cut at
    its own record boundaries: .BTF header and type records, .BTF.ext subsections and
    blocks, symbol and relocation entries, strings, code."""
    lay = layout(case, bpf_build)
    for n in lay.file_cuts:
        run_open(lay.data[:n], obj_name(case), f"{case}: truncate to {n} bytes")
    for shndx, cuts in sorted(lay.section_cuts.items()):
        step = 1 if LARGE else max(1, len(cuts) // BOUNDARY_SAMPLE)
        f = lay.sh_size_field(shndx)
        for size in cuts[::step]:
            buf = write(lay.data, f, size, lay.order)
            run_open(buf, obj_name(case), f"{case}: section #{shndx} {lay.sections[shndx].name} "
                     f"sh_size={size}")


@pytest.mark.parametrize("case", SEED_CASES)
@FUZZ
@given(data=st.data())
def test_truncate_anywhere(case: str, bpf_build: Any, data: st.DataObject) -> None:
    lay = layout(case, bpf_build)
    recipe: list[str] = []
    buf = bytearray(lay.data)
    if data.draw(st.booleans(), label="truncate the file (or a section)"):
        buf = draw_cut(data, lay, buf, recipe)
    else:
        buf = draw_shrink(data, lay, buf, recipe)
    check(case, buf, recipe)


@pytest.mark.parametrize("case", SEED_CASES)
@FUZZ
@given(data=st.data())
def test_flip_bytes(case: str, bpf_build: Any, data: st.DataObject) -> None:
    lay = layout(case, bpf_build)
    recipe: list[str] = []
    buf = draw_flip(data, lay, bytearray(lay.data), recipe)
    check(case, buf, recipe)


@pytest.mark.parametrize(("case", "category"), FIELD_CASES)
@FUZZ
@given(data=st.data())
def test_field_values(case: str, category: str, bpf_build: Any, data: st.DataObject) -> None:
    """One or two fields of one kind (ELF header, section headers, symbols, relocations,
    BTF header, BTF types, .BTF.ext, .maps DATASEC or legacy map definitions, other
    DATASECs) set to nasty or random values."""
    lay = layout(case, bpf_build)
    if not lay.fields[category]:
        pytest.skip(f"{case} has no {category} fields")
    recipe: list[str] = []
    buf = bytearray(lay.data)
    for _ in range(data.draw(st.integers(1, 2), label="fields")):
        buf = draw_field(data, lay, buf, recipe, category)
    check(case, buf, recipe)


@pytest.mark.parametrize("case", SEED_CASES)
@FUZZ
@given(data=st.data())
def test_combined(case: str, bpf_build: Any, data: st.DataObject) -> None:
    """Two to five mutations of any kind, in any order."""
    lay = layout(case, bpf_build)
    recipe: list[str] = []
    buf = bytearray(lay.data)
    steps = data.draw(
        st.lists(st.sampled_from(["field", "field", "field", "flip", "shrink", "cut"]),
                 min_size=2, max_size=5),
        label="mutations",
    )
    for step in steps:
        if step == "field":
            buf = draw_field(data, lay, buf, recipe, None)
        elif step == "flip":
            buf = draw_flip(data, lay, buf, recipe)
        elif step == "shrink":
            buf = draw_shrink(data, lay, buf, recipe)
        else:
            buf = draw_cut(data, lay, buf, recipe)
    check(case, buf, recipe)


# ---------------------------------------------------------------------------------------
# The checker itself fails on what it must catch
# ---------------------------------------------------------------------------------------


def _hang(*args: Any, **kwargs: Any) -> None:
    while True:
        pass


def _bug(*args: Any, **kwargs: Any) -> None:
    raise InternalError("boom", obj="x.o")


def _foreign(*args: Any, **kwargs: Any) -> None:
    raise KeyError("boom")


class _MultiLineError(SpecError):
    def __str__(self) -> str:  # bypasses BpfObjError's one-line formatting on purpose
        return "bad\nthing [object x.o]"


def _two_lines(*args: Any, **kwargs: Any) -> None:
    raise _MultiLineError("bad thing", obj="x.o")


def _anonymous(*args: Any, **kwargs: Any) -> None:
    raise SpecError("bad thing")


@pytest.mark.parametrize(
    ("fake", "expect"),
    [
        (_hang, "did not finish within"),
        (_bug, "InternalError"),
        (_foreign, "KeyError escaped"),
        (_two_lines, "not one line"),
        (_anonymous, "does not name the object"),
    ],
)
def test_checker_catches(fake: Any, expect: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzz_util.BpfObject, "open", fake)
    monkeypatch.setattr(fuzz_util, "HANG_SECONDS", 0.2)
    monkeypatch.setattr(fuzz_util, "STATS", fuzz_util.Stats())  # not inputs of the fuzzing
    with pytest.raises(fuzz_util.ContractViolation, match=expect):
        run_open(b"", "x.o", "fake")


# ---------------------------------------------------------------------------------------
# Regressions for the bugs found (each was an InternalError, a hang or a bad message)
# ---------------------------------------------------------------------------------------


def _u32(lay: Layout, at: int) -> Field:
    return Field(f"u32@{at:#x}", at, 4, 0, ())


def _btf_type(lay: Layout, name: str, kind: int) -> tuple[int, int]:
    """(type id, file offset of its record) of the first BTF type `name` of `kind`."""
    for tid, at, k, _ in lay.btf_records:
        if k == kind and lay.btf_string(lay.u32(at)) == name:
            return tid, at
    raise AssertionError(f"no BTF type {name!r} of kind {kind}")


def _source(tmp: Path, name: str, body: str) -> Path:
    path = tmp / name
    path.write_text("#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n" + body +
                    'char LICENSE[] SEC("license") = "GPL";\n')
    return path


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_open_src")


def test_kconfig_tristate_enum64_of_size_0(bpf_build: Any, gen_dir: Path) -> None:
    """`enum libbpf_tristate` turned into an ENUM64 of size 0 (3 ENUM values take the words
    of 2 ENUM64 ones, so the BTF still walks): align_of() was 0 and laying out .kconfig
    divided by it (ZeroDivisionError -> InternalError). libbpf: "failed to resolve size of
    extern (kcfg)"."""
    src = _source(gen_dir, "fuzz_kconfig.c",
                  "extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig __weak;\n"
                  "extern int LINUX_KERNEL_VERSION __kconfig;\n"
                  'SEC("xdp") int prog(struct xdp_md *ctx)\n'
                  "{ return CONFIG_BPF_JIT == TRI_YES && LINUX_KERNEL_VERSION ? 2 : 1; }\n")
    lay = Layout.of(bpf_build(src).read_bytes())
    assert run_open(lay.data, "kconfig.o") is None
    tid, at = _btf_type(lay, "libbpf_tristate", 6)  # ENUM, 3 values: 9 words
    enum64_of_2 = (19 << 24) | 2  # ENUM64, 2 values: 9 words too
    for size, expect in ((0, "has size 0"), (4, None), (3, None)):
        buf = write(lay.data, _u32(lay, at + 4), enum64_of_2, lay.order)
        buf = write(buf, _u32(lay, at + 8), size, lay.order)
        exc = run_open(buf, "kconfig.o", f"type [{tid}] -> ENUM64 vlen 2 size {size}")
        if expect is None:
            assert exc is None  # libbpf accepts an ENUM64 tristate of any size
        else:
            assert isinstance(exc, SpecError) and expect in str(exc), exc
            assert exc.section == ".kconfig"


def test_map_values_use_the_maps_own_var(bpf_build: Any) -> None:
    """Map relocations (.rel.maps) looked the map's definition up by name: an earlier VAR of
    the same name with an INT type made it read `.members` of an Int (AttributeError ->
    InternalError). libbpf uses the map's own VAR (map->btf_var_idx)."""
    lay = layout("maps", bpf_build)
    jmp, _ = _btf_type(lay, "jmp_table", 14)
    inner, inner_at = _btf_type(lay, "inner_a", 14)
    i32, _ = _btf_type(lay, "int", 1)
    _, ds_at = _btf_type(lay, ".maps", 15)
    vlen = lay.u32(ds_at + 4) & 0xFFFF
    slot = next(k for k in range(vlen) if lay.u32(ds_at + 12 + 12 * k) == inner)
    jmp_at = next(at for tid, at, _, _ in lay.btf_records if tid == jmp)
    buf = write(lay.data, _u32(lay, inner_at), lay.u32(jmp_at), lay.order)  # VAR named jmp_table
    buf = write(buf, _u32(lay, inner_at + 8), i32, lay.order)  # ... of type int
    buf = write(buf, _u32(lay, ds_at + 12 + 12 * slot), jmp, lay.order)  # not in .maps
    run_open(buf, obj_name("maps"), "VAR inner_a renamed jmp_table, typed int, out of .maps")


def test_insn_error_names_the_object(bpf_build: Any) -> None:
    """InsnError from instruction decoding did not say which object it was about."""
    lay = layout("multiprog", bpf_build)
    sec = next(s for s in lay.sections if s.name == "xdp")
    buf = write(lay.data, lay.sh_size_field(sec.index), sec.size - 3, lay.order)
    exc = run_open(buf, obj_name("multiprog"), "xdp sh_size - 3")
    assert isinstance(exc, InsnError)
    assert exc.obj == obj_name("multiprog") and exc.section == "xdp"


@pytest.mark.parametrize("char", ["\n", "\r", "\x1b", "\x85", "\u2028"])
def test_control_characters_in_names_keep_one_line(char: str, bpf_build: Any) -> None:
    """A section name with a line break (from a corrupt string table) made a multi-line
    error message."""
    lay = layout("multiprog", bpf_build)
    sec = next(s for s in lay.sections if s.name == "xdp")
    strtab = lay.sections[struct.unpack_from(lay.order + "H", lay.data, 0x3E)[0]]
    name_at = strtab.offset + lay.u32(sec.header)
    buf = bytearray(lay.data)
    encoded = ("x" + char + "p").encode()
    if len(encoded) > 3:  # keep the NUL: "xdp" -> "x\xc2\x85", "\xe2\x80\xa8"
        encoded = ("x" + char).encode() if len(char.encode()) == 2 else char.encode()
    buf[name_at : name_at + 3] = encoded
    buf = write(buf, lay.sh_size_field(sec.index), sec.size - 3, lay.order)
    exc = run_open(buf, obj_name("multiprog"), f"xdp renamed with {char!r}, sh_size - 3")
    assert isinstance(exc, InsnError)
    assert ascii(char)[1:-1] in str(exc)


def test_compressed_sections_are_not_inflated(bpf_build: Any) -> None:
    """SHF_COMPRESSED sections were inflated by pyelftools to the size their header claims:
    a zlib bomb in the debug sections of a 650 KB object took ~1 s and 600 MB. libbpf
    (libelf's elf_getdata) reads the stored bytes; so does bpfobj now."""
    lay = layout("globals", bpf_build)
    buf = bytearray(lay.data)
    claimed = 0
    for sec in lay.sections:
        if not sec.name.startswith(".debug_") or sec.type != 1 or sec.size < 64:
            continue
        room = sec.size - 24
        n = room * 1000
        while len(bomb := zlib.compress(bytes(n), 9)) > room:
            n = n * 9 // 10
        buf[sec.offset : sec.offset + 24] = struct.pack(lay.order + "IIQQ", 1, 0, n, 1)
        buf[sec.offset + 24 : sec.offset + 24 + len(bomb)] = bomb
        flags = Field("sh_flags", sec.header + 8, 8, 0, ())
        buf = write(buf, flags, lay.u64(sec.header + 8) | 0x800, lay.order)
        claimed += n
    assert claimed > 1_000_000
    assert run_open(buf, obj_name("globals"), "debug sections replaced by zlib bombs") is None
    elf = read_elf(bytes(buf), "bomb.o")
    for sec in elf.sections:
        assert len(sec.data) == (0 if sec.type in (0, 8) else sec.size), sec.name


def test_compressed_debug_sections_open_like_uncompressed(bpf_build: Any) -> None:
    """clang -gz (SHF_COMPRESSED .debug_*) objects still open, with the same result."""
    plain = BpfObject.open(objects.build_case(objects.by_name("globals"), bpf_build)).spec
    try:
        gz_path = bpf_build("obj_globals.c", extra=("-gz",), tag="gz")
    except subprocess.CalledProcessError:
        pytest.skip("this clang cannot compress debug sections (-gz)")
    gz = BpfObject.open(gz_path).spec
    assert repr(gz.programs) == repr(plain.programs)
    assert gz.maps == plain.maps


def test_many_programs_open_in_time(bpf_build: Any, gen_dir: Path) -> None:
    """Each program used to scan all its section's relocations and .BTF.ext records
    (quadratic): 3000 programs in one section took ~1.5 s."""
    body = "int counter;\n" + "".join(
        f'SEC("xdp") int p{i}(struct xdp_md *ctx) {{ counter += {i + 1}; return XDP_PASS; }}\n'
        for i in range(3000)
    )
    data = bpf_build(_source(gen_dir, "fuzz_many_progs.c", body)).read_bytes()
    assert run_open(data, "many_progs.o", "3000 programs in one section") is None
    spec = BpfObject.open(data=data, name="many_progs.o").spec
    assert len(spec.programs) == 3000
    assert all(len(p.relocations) == 1 for p in spec.programs.values())


def test_many_globals_open_in_time(bpf_build: Any, gen_dir: Path) -> None:
    """Each DATASEC variable used to scan the whole symbol table for its symbol
    (quadratic): 20000 globals took ~3.6 s."""
    n = 20000
    body = "".join(f"int g{i} = {i + 1};\n" for i in range(n))
    body += f'SEC("xdp") int prog(struct xdp_md *ctx) {{ return g0 + g{n - 1}; }}\n'
    data = bpf_build(_source(gen_dir, "fuzz_many_globals.c", body)).read_bytes()
    assert run_open(data, "many_globals.o", f"{n} globals in .data") is None


def test_error_text_is_one_line_whatever_the_names_hold() -> None:
    err = SpecError("bad\nthing", obj="x\r.o", section="a\u2028b")
    text = str(err)
    assert "\n" not in text and "\r" not in text and "\u2028" not in text
    assert "\\n" in text and "x\\r.o" in text
