"""BTFGen (`bpfobj gen min-btf`): prepare against the minimised BTF gives what prepare
against the source gives, and the file is no larger than bpftool gen min_core_btf's.

Objects: tests/progs/real_*.c (vmlinux.h builds), tests/progs/core_*.c against their
-DTARGET=1 builds, examples/build/execsnoop.bpf.o. Sources: this kernel's BTF and every
kernel under build/btf-corpus/ (when another job has filled it).

What "the same" means: byte-identical instructions and, per CO-RE relocation, the same
kind, outcome, old/new values and target spec text, with two things translated through
the id map of the minimisation, because they cannot be the same in a smaller BTF: type
ids (the ``[N]`` of a target spec, the value of ``bpf_core_type_id_kernel()``), and the
raw member indices of a target spec (``0:95`` becomes ``0:1`` once the 94 members before
it are gone); the named access path and the byte offset are compared as they are.

One more thing may differ, and only where the full BTF has several matching candidates
(flavors) for a relocation: the minimised BTF keeps the candidate that survives libbpf's
pruning of the candidate list, so the target spec may name another of the candidates
that matched against the full BTF, with the same access path and offset (libbpf has
checked that all matching candidates give the same value). See gen_prune below.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bpfobj import records
from bpfobj.btf.reader import Btf, load_kernel_btf
from bpfobj.btf.writer import BtfBuilder
from bpfobj.btfgen import BtfGen, MinBtf, minimize, target_for
from bpfobj.check import discover
from bpfobj.cli.main import main as cli
from bpfobj.core.engine import CoreEngine
from bpfobj.core.record import CoreRecord
from bpfobj.errors import BpfObjError, CoreError
from bpfobj.object import BpfObject
from bpfobj.prepare import PreparedObject, prepare
from bpfobj.spec import ObjectSpec
from bpfobj.uapi import CoreReloKind

ROOT = Path(__file__).resolve().parent.parent
VMLINUX = Path("/sys/kernel/btf/vmlinux")
CORPUS = ROOT / "build" / "btf-corpus"
EXECSNOOP = ROOT / "examples" / "build" / "execsnoop.bpf.o"
REAL = ("biolatency", "execsnoop", "exitsnoop", "opensnoop", "schedstat", "subprogs")
CORE = ("core_fields", "core_types", "core_ambig")
# Every other tests/progs object with CO-RE relocations (those with True include this
# host's vmlinux.h).
OTHER = {
    "attach_net": True,
    "attach_trace": True,
    "attach_usdt": True,
    "btf_kinds": False,
    "core_ambig": False,
    "core_fields": False,
    "core_types": False,
    "gen_module": False,
    "gen_prune": False,
    "load_fail": True,
    "module_core": False,
    "obj_core": True,
    "obj_externs": True,
    "obj_kprobes": False,
}
# Objects whose prepare resolves ksym externs against the target BTF: a BTFGen file has
# only what CO-RE needs (bpftool's too; libbpf resolves ksyms against the running
# kernel's BTF, never against btf_custom_path), so their CO-RE decisions are compared.
KSYMS = frozenset({"obj_externs"})
HAVE_BPFTOOL = shutil.which("bpftool") is not None


def _sources() -> list[Path]:
    out = [VMLINUX] if VMLINUX.exists() else []
    if CORPUS.is_dir():
        out += [Path(k.path) for k in discover(CORPUS)]
    return out


SOURCES = _sources()


def _src_id(p: Path) -> str:
    return "host" if p == VMLINUX else str(p.relative_to(CORPUS))


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def _open(obj: Path | str, disabled: Sequence[str] = ()) -> ObjectSpec:
    spec = BpfObject.open(obj).spec
    for name in disabled:
        spec.programs[name].autoload = False
    return spec


def _prepare(
    obj: Path | str, btf: Path | str, modules: dict[str, str] | None = None,
    disabled: Sequence[str] = (),
) -> PreparedObject:
    return prepare(_open(obj, disabled), target_for(btf, modules))


def _working_set(obj: Path, src: Path | str) -> list[str]:
    """Programs to switch off so that prepare against `src` succeeds (those with a
    relocation libbpf fails on)."""
    disabled: list[str] = []
    while True:
        try:
            _prepare(obj, src, disabled=disabled)
            return disabled
        except CoreError as exc:
            rec = getattr(exc, "record", None)
            assert rec is not None and rec.program and rec.program not in disabled
            disabled.append(rec.program)


_RAW = re.compile(r"\((?:-?\d+(?::-?\d+)*) @ ")
_ID = re.compile(r"^(<[a-z_0-9]+> )\[(\d+)\]")


def _norm_spec(text: str | None, result: MinBtf | None, btf: str | None) -> str | None:
    """A target spec text with the raw indices dropped and, for the source's side, the
    root id translated to the minimised BTF's."""
    if text is None:
        return None
    text = _RAW.sub("(@ ", text)
    if result is not None:
        text = _ID.sub(lambda m: f"{m.group(1)}[{result.map_id(btf, int(m.group(2)))}]", text)
    return text


def _key(rec: CoreRecord, result: MinBtf | None) -> tuple[Any, ...]:
    new = rec.new
    if rec.kind == "target_type_id" and result is not None and new:
        new = result.map_id(rec.target_btf, new)
    return (
        rec.program,
        rec.insn,
        rec.kind,
        rec.local_spec,
        rec.outcome,
        rec.old,
        new,
        rec.target_btf,
    )


def _same_target(full: CoreRecord, mini: CoreRecord, result: MinBtf) -> bool:
    """The target specs are the same (ids translated), or the full BTF had several
    matching candidates and the minimised BTF's spec is one of theirs."""
    if _norm_spec(full.target_spec, result, full.target_btf) == _norm_spec(
        mini.target_spec, None, None
    ):
        return True
    matched = [c for c in full.candidates if c.matched]
    if len(matched) < 2:
        return False
    return any(
        _norm_spec(c.spec, result, c.btf) == _norm_spec(mini.target_spec, None, None)
        and result.map_id(c.btf, c.type_id)
        for c in matched
    )


def _decisions(obj: Path, btf: Path, result: MinBtf | None) -> list[tuple[Any, ...]]:
    """Every CO-RE decision prepare would take (CoreEngine, no linking): kind, outcome,
    values; a target type id translated through `result`'s id map."""
    engine = CoreEngine(_open(obj), target_for(btf))
    out = []
    for prog, items in engine.decide_all().items():
        for idx, d in items:
            new = d.new_val
            if d.kind == CoreReloKind.TYPE_ID_TARGET and result is not None and new:
                new = result.map_id(d.target_btf, new)
            out.append((prog, idx, d.kind, d.outcome, d.poison, d.orig_val, new))
    return out


def assert_same(full: PreparedObject, mini: PreparedObject, result: MinBtf) -> None:
    """Identical instructions and CO-RE outcomes (ids translated, see the module doc)."""
    assert list(full.programs) == list(mini.programs)
    for name, fp in full.programs.items():
        expected = list(fp.insns)
        for rec in fp.core_log:
            if rec.kind == "target_type_id" and rec.outcome == "patched" and rec.new:
                new_id = result.map_id(rec.target_btf, rec.new)
                assert new_id, f"{rec.target_spec} was not kept"
                expected[rec.insn] = expected[rec.insn].replace(imm=new_id)
        order = full.spec.byteorder
        got = b"".join(i.to_bytes(order) for i in mini.programs[name].insns)  # type: ignore[arg-type]
        want = b"".join(i.to_bytes(order) for i in expected)  # type: ignore[arg-type]
        assert got == want, f"program {name}: instructions differ"
    assert [_key(r, result) for r in full.core_log] == [_key(r, None) for r in mini.core_log]
    for f, m in zip(full.core_log, mini.core_log, strict=True):
        assert _same_target(f, m, result), f"{f.target_spec} != {m.target_spec}"


def _bpftool(src: Path | str, objs: Sequence[Path | str], out: Path) -> bytes | None:
    """bpftool gen min_core_btf's output, None if it fails."""
    run = subprocess.run(
        ["bpftool", "gen", "min_core_btf", str(src), str(out), *map(str, objs)],
        capture_output=True,
        text=True,
    )
    return out.read_bytes() if run.returncode == 0 else None


def acceptance(
    obj: Path, src: Path, tmp: Path, *, compare_bpftool: bool = True, identical: bool = False
) -> tuple[int, int | None]:
    """The whole check for one (object, source): returns (our size, bpftool's size).
    `identical`: bpftool's output is right for this pair, so ours must be the same bytes."""
    disabled = _working_set(obj, src)
    full = _prepare(obj, src, disabled=disabled)
    out = tmp / f"{obj.stem}.min.btf"
    if disabled:
        # libbpf fails on this object against `src`: so do bpftool and we on the whole
        # object; the rest of the object is checked with those programs switched off.
        with pytest.raises(CoreError):
            minimize(src, [obj])
        if HAVE_BPFTOOL and compare_bpftool:
            assert _bpftool(src, [obj], tmp / "bpftool.btf") is None
        result = minimize(src, [_open(obj, disabled)])
    else:
        result = minimize(src, [obj])
    result.write(out)
    mini = _prepare(obj, out, disabled=disabled)
    assert_same(full, mini, result)
    theirs = None
    if HAVE_BPFTOOL and compare_bpftool and not disabled:
        data = _bpftool(src, [obj], tmp / "bpftool.btf")
        assert data is not None
        theirs = len(data)
        assert len(result.vmlinux) <= theirs, f"{obj.name}: {len(result.vmlinux)} > {theirs}"
        if identical:
            assert result.vmlinux == data, f"{obj.name}: not bpftool's bytes"
    return len(result.vmlinux), theirs


# ---------------------------------------------------------------------------------------
# Acceptance: real programs, CO-RE test programs, the example
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_objects(bpf_build: Any) -> list[Path]:
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux to build vmlinux.h from")
    return [bpf_build(f"real_{n}.c", vmlinux=True) for n in REAL]


@pytest.mark.parametrize("src", SOURCES, ids=[_src_id(s) for s in SOURCES])
def test_real_programs(src: Path, real_objects: list[Path], tmp_path: Path) -> None:
    for obj in real_objects:
        acceptance(obj, src, tmp_path)


@pytest.mark.parametrize("src", SOURCES, ids=[_src_id(s) for s in SOURCES])
def test_example_execsnoop(src: Path, tmp_path: Path) -> None:
    if not EXECSNOOP.exists():
        pytest.skip("examples/build/execsnoop.bpf.o is not built (examples/build.sh)")
    acceptance(EXECSNOOP, src, tmp_path)


@pytest.mark.parametrize("src", SOURCES, ids=[_src_id(s) for s in SOURCES])
def test_every_test_object(src: Path, bpf_build: Any, tmp_path: Path) -> None:
    """Every other test object with CO-RE relocations against every source: prepare
    against the minimised BTF is prepare against the source, and the file is bpftool's,
    byte for byte (each relocation has one candidate in kernel BTF: bpftool is right)."""
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux to build vmlinux.h from")
    for name, vmlinux_h in OTHER.items():
        obj = bpf_build(f"{name}.c", vmlinux=vmlinux_h)
        if name not in KSYMS:
            acceptance(obj, src, tmp_path, identical=True)
            continue
        result = minimize(src, [obj])
        result.write(tmp_path / "min.btf")
        assert _decisions(obj, src, result) == _decisions(obj, tmp_path / "min.btf", None)
        if HAVE_BPFTOOL:
            assert result.vmlinux == _bpftool(src, [obj], tmp_path / "b.btf")


@pytest.mark.parametrize("src", SOURCES, ids=[_src_id(s) for s in SOURCES])
def test_real_programs_identical_to_bpftool(
    src: Path, real_objects: list[Path], tmp_path: Path
) -> None:
    """Where bpftool is right (one candidate per relocation), the same bytes as bpftool,
    for this kernel and every corpus kernel (the types and the string table alike)."""
    if not HAVE_BPFTOOL:
        pytest.skip("bpftool is not installed")
    for obj in [*real_objects, *([EXECSNOOP] if EXECSNOOP.exists() else [])]:
        assert minimize(src, [obj]).vmlinux == _bpftool(src, [obj], tmp_path / "b"), obj.name


@pytest.mark.parametrize("name", CORE)
def test_core_programs(name: str, bpf_build: Any, tmp_path: Path) -> None:
    obj = bpf_build(f"{name}.c")
    src = bpf_build(f"{name}.c", defines=("TARGET=1",), tag="TARGET1")
    acceptance(obj, src, tmp_path)


@pytest.mark.parametrize("name", ["core_types", "core_fields"])
def test_big_endian(name: str, bpf_build: Any, tmp_path: Path) -> None:
    """bpfeb objects against big-endian BTF (bpftool 7.1 cannot read their .BTF.ext)."""
    obj = bpf_build(f"{name}.c", target="bpfeb")
    src = bpf_build(f"{name}.c", target="bpfeb", defines=("TARGET=1",), tag="bpfeb-T1")
    acceptance(obj, src, tmp_path, compare_bpftool=False)
    assert Btf.parse(minimize(src, [_open(obj, _working_set(obj, src))]).vmlinux).byteorder == (
        "big"
    )


def test_core_ambig_fails_like_bpftool(bpf_build: Any, tmp_path: Path) -> None:
    obj = bpf_build("core_ambig.c")
    src = bpf_build("core_ambig.c", defines=("TARGET=1",), tag="TARGET1")
    with pytest.raises(CoreError) as err:
        minimize(src, [obj])
    assert "ambiguity" in str(err.value)
    assert getattr(err.value, "record", None) is not None
    if HAVE_BPFTOOL:
        assert _bpftool(src, [obj], tmp_path / "b.btf") is None


def test_identical_to_bpftool_on_this_kernel(real_objects: list[Path], tmp_path: Path) -> None:
    """With one candidate per relocation, the rules are bpftool's: the same bytes."""
    if not HAVE_BPFTOOL:
        pytest.skip("bpftool is not installed")
    for obj in real_objects:
        assert minimize(VMLINUX, [obj]).vmlinux == _bpftool(VMLINUX, [obj], tmp_path / "b")
    # several objects at once
    both = minimize(VMLINUX, real_objects)
    assert both.vmlinux == _bpftool(VMLINUX, real_objects, tmp_path / "b")


def test_several_objects_in_one_file(real_objects: list[Path], tmp_path: Path) -> None:
    result = minimize(VMLINUX, real_objects)
    out = tmp_path / "all.btf"
    result.write(out)
    for obj in real_objects:
        assert_same(_prepare(obj, VMLINUX), _prepare(obj, out), result)


def _path(spec: str | None) -> str:
    """ "gp___a.x" of "<byte_off> [6] struct gp___a.x (0:1 @ offset 8)"."""
    assert spec is not None
    return spec.split(" struct ", 1)[1].split(" ", 1)[0]


def _gen_prune(bpf_build: Any) -> tuple[Path, Path]:
    return bpf_build("gen_prune.c"), bpf_build("gen_prune.c", defines=("TARGET=1",), tag="TARGET1")


def test_pruning_keeps_the_surviving_candidate(bpf_build: Any, tmp_path: Path) -> None:
    """Two flavors match the first relocation, one the second (tests/progs/gen_prune.c):
    the flavor libbpf's pruning ends on is kept, with both fields; the result is correct
    and smaller than bpftool's (which is wrong: see the next two tests)."""
    obj, src = _gen_prune(bpf_build)
    size, theirs = acceptance(obj, src, tmp_path)  # <= bpftool's when bpftool is there
    result = minimize(src, [obj])
    btf = Btf.parse(result.vmlinux)
    kept = {btf.type(t).name: btf.type(t) for t in btf.own_ids()}
    assert sorted(kept) == ["gp___b", "int"]
    assert [m.name for m in kept["gp___b"].members] == ["x", "y"]  # type: ignore[attr-defined]
    assert size == 92
    if theirs is not None:
        assert theirs == 111  # gp___a{x}, gp___b{y}, int
    # the first relocation names gp___b where the full BTF names gp___a (both matched
    # there, with the same offset); the values and instructions are the same
    full = _prepare(obj, src)
    out = tmp_path / "min.btf"
    result.write(out)
    mini = _prepare(obj, out)
    assert [_path(r.target_spec) for r in full.core_log] == ["gp___a.x", "gp___b.y"]
    assert [_path(r.target_spec) for r in mini.core_log] == ["gp___b.x", "gp___b.y"]
    assert [r.new for r in mini.core_log] == [r.new for r in full.core_log] == [8, 12]
    assert [r.outcome for r in mini.core_log] == ["patched", "patched"]


def test_bpftool_prune_output_is_wrong(bpf_build: Any, tmp_path: Path) -> None:
    """bpftool keeps the first matching candidate of each relocation (gp___a.x, then
    gp___b.y): against its file the first relocation matches gp___a only, libbpf prunes
    the list to [gp___a], and the second relocation is poisoned. That is why bpfobj's
    output differs from bpftool's on this program."""
    if not HAVE_BPFTOOL:
        pytest.skip("bpftool is not installed")
    obj, src = _gen_prune(bpf_build)
    theirs = _bpftool(src, [obj], tmp_path / "bpftool.btf")
    assert theirs is not None
    btf = Btf.parse(theirs)
    members = {
        btf.type(t).name: [m.name for m in btf.type(t).members]  # type: ignore[attr-defined]
        for t in btf.own_ids()
        if btf.type(t).kind.name == "STRUCT"
    }
    assert members == {"gp___a": ["x"], "gp___b": ["y"]}
    outcomes = [r.outcome for r in _prepare(obj, tmp_path / "bpftool.btf").core_log]
    assert outcomes == ["patched", "poisoned"]
    assert [r.outcome for r in _prepare(obj, src).core_log] == ["patched", "patched"]


def test_bpftool_prune_output_is_wrong_for_libbpf(bpf_build: Any, tmp_path: Path) -> None:
    """The same, decided by libbpf itself (tests/harness/libbpf_core_log.c): against
    bpftool's file libbpf poisons the second relocation, against bpfobj's it patches both
    as against the full BTF."""
    from core_btf import libbpf

    if not HAVE_BPFTOOL:
        pytest.skip("bpftool is not installed")
    reason = libbpf.missing_reason()
    if reason is not None:
        pytest.skip(reason)
    obj, src = _gen_prune(bpf_build)
    assert _bpftool(src, [obj], tmp_path / "bpftool.btf") is not None
    minimize(src, [obj]).write(tmp_path / "bpfobj.btf")

    def patched(target: Path) -> list[str]:
        lines = libbpf.libbpf_core_lines(obj, target)
        return [ln.split(": ", 1)[1] for ln in lines if "patched insn" in ln or "substituting" in ln]

    want = ["relo #0: patched insn #0 (ALU/ALU64) imm 0 -> 8",
            "relo #1: patched insn #4 (ALU/ALU64) imm 4 -> 12"]
    assert patched(src) == want
    assert patched(tmp_path / "bpfobj.btf") == want
    assert patched(tmp_path / "bpftool.btf") == [
        "relo #0: patched insn #0 (ALU/ALU64) imm 0 -> 8",
        "relo #1: substituting insn #4 w/ invalid insn",
    ]


def test_type_tags_are_followed(bpf_build: Any, tmp_path: Path) -> None:
    """A type relocation reaching a TYPE_TAG (kernel BTF has them: ``__rcu``, ``__user``):
    followed like a modifier, where bpftool 7.1 stops with "unsupported kind"."""
    obj = bpf_build("core_types.c")
    target = target_for(bpf_build("core_types.c", defines=("TARGET=1",), tag="TARGET1"))
    b = BtfBuilder.from_btf(target.vmlinux)
    fn = next(t for t in b.find("ct_fn_t"))
    ptr = b.type(b.type(fn).type)  # type: ignore[attr-defined]
    tag = b.add_type_tag("rcu", ptr.type)  # type: ignore[attr-defined]
    b.set_type(ptr.id, records.evolve(ptr, type=tag))
    src = tmp_path / "tagged.btf"
    src.write_bytes(b.encode())
    acceptance(obj, src, tmp_path, compare_bpftool=False)
    kept = Btf.parse(minimize(src, [obj]).vmlinux)
    assert any(kept.type(t).kind.name == "TYPE_TAG" for t in kept.own_ids())
    if HAVE_BPFTOOL:
        assert _bpftool(src, [obj], tmp_path / "b.btf") is None


def test_type_ids_are_mapped(real_objects: list[Path]) -> None:
    sched = next(o for o in real_objects if "schedstat" in o.name)
    result = minimize(VMLINUX, [sched])
    full = _prepare(sched, VMLINUX)
    rec = next(r for r in full.core_log if r.kind == "target_type_id")
    assert rec.new is not None
    new_id = result.map_id("vmlinux", rec.new)
    btf = Btf.parse(result.vmlinux)
    assert btf.type(new_id).name == "task_struct"
    assert btf.type(new_id).size == load_kernel_btf().type(rec.new).size  # type: ignore[attr-defined]


def test_struct_layout_is_kept(real_objects: list[Path]) -> None:
    """Kept members keep their bit offsets; composites keep their size; pointers whose
    pointee was not kept point to void; names in id order as bpftool writes them."""
    src = load_kernel_btf()
    result = minimize(VMLINUX, real_objects)
    btf = Btf.parse(result.vmlinux)
    inverse = {new: old for old, new in result.id_map.items()}
    for tid in btf.own_ids():
        t, orig = btf.type(tid), src.type(inverse[tid])
        assert (t.kind, t.name) == (orig.kind, orig.name)
        if hasattr(t, "members"):
            assert t.size == orig.size  # type: ignore[attr-defined]
            by_name = {m.name: m for m in orig.members}  # type: ignore[attr-defined]
            for m in t.members:  # type: ignore[attr-defined]
                if m.name:
                    assert m.bit_offset == by_name[m.name].bit_offset
    assert sorted(inverse.values()) == [inverse[i] for i in btf.own_ids()]


# ---------------------------------------------------------------------------------------
# Module BTF
# ---------------------------------------------------------------------------------------


def make_module(vmlinux: Btf) -> bytes:
    """A module BTF, split on `vmlinux`, with a struct and an enum only it has; the struct
    points at vmlinux's task_struct."""
    b = BtfBuilder(vmlinux.byteorder, base=vmlinux)
    int_id = vmlinux.find("int")[0]
    long_id = vmlinux.find("long int")[0]
    task = next(t for t in vmlinux.find("task_struct") if vmlinux.type(t).kind.name == "STRUCT")
    ptr = b.add_ptr(task)
    b.add_struct(
        "gen_mod_state",
        32,
        [("pad", long_id, 0), ("counter", int_id, 64), ("flags", long_id, 128), ("owner", ptr, 192)],
    )
    b.add_enum("gen_mod_mode", 4, [("GEN_MOD_OFF", 0), ("GEN_MOD_ON", 3)])
    b.add_struct("gen_mod_holder", vmlinux.type(task).size, [("t", task, 0)])  # type: ignore[attr-defined]
    b.add_struct("gen_mod_unused", 8, [("z", long_id, 0)])
    return b.encode()


@pytest.fixture
def module_case(bpf_build: Any, tmp_path: Path) -> tuple[Path, Path, Path]:
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    mod = tmp_path / "gen_mod.btf"
    mod.write_bytes(make_module(load_kernel_btf()))
    return bpf_build("gen_module.c"), VMLINUX, mod


def test_module_relocations_resolve(module_case: tuple[Path, Path, Path]) -> None:
    obj, src, mod = module_case
    full = BpfObject.open(obj).prepare(str(src), module_btf={"gen_mod": str(mod)})
    by_kind = {(r.kind, r.local_spec): r for r in full.core_log}
    in_module = [r for r in full.core_log if r.target_btf == "gen_mod"]
    assert len(in_module) >= 6
    assert all(r.outcome == "patched" for r in full.core_log)
    off = next(r for (k, s), r in by_kind.items() if k == "byte_off" and s and ".flags" in s)
    assert (off.target_btf, off.new) == ("gen_mod", 16)
    enum = next(r for r in full.core_log if r.kind == "enumval_value")
    assert enum.new == 3
    pid = next(r for r in full.core_log if r.local_spec and ".pid" in r.local_spec)
    assert pid.target_btf == "vmlinux"


def test_module_min_btf(module_case: tuple[Path, Path, Path], tmp_path: Path) -> None:
    obj, src, mod = module_case
    full = _prepare(obj, src, {"gen_mod": str(mod)})
    result = minimize(src, [obj], modules={"gen_mod": str(mod)})
    assert set(result.modules) == {"gen_mod"}
    out = tmp_path / "min.btf"
    written = result.write(out)
    assert written == [str(out), f"{out}.gen_mod"]
    mini = _prepare(obj, out, {"gen_mod": f"{out}.gen_mod"})
    assert_same(full, mini, result)
    # the split BTF continues the minimised base's ids and refers to its types
    base = Btf.parse(result.vmlinux)
    split = Btf.parse(result.modules["gen_mod"], base=base)
    assert split.start_id == len(base) + 1
    names = {split.type(t).name for t in split.own_ids()}
    # + the pointer to task_struct
    assert names == {"gen_mod_state", "gen_mod_mode", "gen_mod_holder", ""}
    state = split.type(split.find("gen_mod_state")[0])
    assert [m.name for m in state.members] == ["counter", "flags", "owner"]  # type: ignore[attr-defined]
    owner = state.members[2]  # type: ignore[attr-defined]
    assert split.type(split.type(owner.type).type).name == "task_struct"  # type: ignore[attr-defined]
    assert split.type(owner.type).type < split.start_id  # type: ignore[attr-defined]
    assert "gen_mod_unused" not in names


def test_module_cli(module_case: tuple[Path, Path, Path], tmp_path: Path) -> None:
    obj, src, mod = module_case
    out = tmp_path / "cli.btf"
    assert cli(["gen", "min-btf", "--btf", str(src), "--module-btf", f"gen_mod={mod}",
                str(out), str(obj)]) == 0
    expected = minimize(src, [obj], modules={"gen_mod": str(mod)})
    assert out.read_bytes() == expected.vmlinux
    assert Path(f"{out}.gen_mod").read_bytes() == expected.modules["gen_mod"]


def _kernels_with(module: str) -> list[Path]:
    return sorted(p.parent.parent for p in CORPUS.glob(f"*/*/modules/{module}"))


@pytest.mark.skipif(
    not _kernels_with("veth"),
    reason="no kernel with the veth module's BTF under build/btf-corpus "
    "(`python -m integration.vm matrix` saves it)",
)
@pytest.mark.parametrize("kernel", _kernels_with("veth"), ids=lambda p: str(p.relative_to(CORPUS)))
def test_real_module_min_btf(kernel: Path, bpf_build: Any, tmp_path: Path) -> None:
    """Real module BTF (the veth module of a Debian kernel): relocations into the module's
    types get a minimised split BTF for it, and prepare against the minimised pair equals
    prepare against the real pair."""
    obj = bpf_build("gen_real_module.c")
    src, mod = kernel / "vmlinux", kernel / "modules" / "veth"
    full = _prepare(obj, src, {"veth": str(mod)})
    in_module = [r for r in full.core_log if r.target_btf == "veth"]
    assert len(in_module) >= 5 and all(r.outcome == "patched" for r in full.core_log)
    assert any(r.target_btf == "vmlinux" and r.local_spec and ".mtu" in r.local_spec
               for r in full.core_log)
    result = minimize(src, [obj], modules={"veth": str(mod)})
    assert set(result.modules) == {"veth"}
    out = tmp_path / "min.btf"
    result.write(out)
    mini = _prepare(obj, out, {"veth": f"{out}.veth"})
    assert_same(full, mini, result)
    base = Btf.parse(result.vmlinux)
    split = Btf.parse(result.modules["veth"], base=base)
    names = {split.type(t).name for t in split.own_ids()}
    assert {"veth_priv", "veth_rq", "veth_rq_stats", "veth_stats"} <= names
    assert "net_device" not in names and base.find("net_device")  # the base's, not copied
    assert len(result.modules["veth"]) < mod.stat().st_size // 4


def test_vmlinux_candidates_without_match_keep_modules_unsearched(
    bpf_build: Any, tmp_path: Path
) -> None:
    """A relocation whose type vmlinux has, without the field, is poisoned and libbpf does
    not look in modules; the minimised vmlinux must still have that type."""
    vmlinux = load_kernel_btf()
    # gen_module.c reads task_struct.pid and .tgid: give it a vmlinux whose task_struct
    # has neither, and a module with a decoy task_struct that has both
    src = BtfBuilder(vmlinux.byteorder)
    i = src.add_int("int", 4, signed=True)
    src.add_struct("task_struct", 16, [("other", i, 32)])
    srcp = tmp_path / "nopid.btf"
    srcp.write_bytes(src.encode())
    m2 = BtfBuilder(vmlinux.byteorder, base=Btf.parse(src.encode()))
    decoy = m2.add_struct("task_struct", 8, [("pid", i, 0), ("tgid", i, 32)])
    m2.add_struct("gen_mod_state", 8, [("counter", i, 0), ("flags", i, 32)])
    # through the holder's field relocation, the decoy is kept in the minimised module
    m2.add_struct("gen_mod_holder", 8, [("t", decoy, 0)])
    modp = tmp_path / "m2.btf"
    modp.write_bytes(m2.encode())
    obj = bpf_build("gen_module.c")
    spec = _open(obj)
    full = prepare(spec, target_for(srcp, {"m2": str(modp)}))
    pid = next(r for r in full.core_log if r.local_spec and ".pid" in r.local_spec)
    assert pid.outcome == "poisoned"  # vmlinux has task_struct: modules not searched
    result = minimize(srcp, [obj], modules={"m2": str(modp)})
    out = tmp_path / "min.btf"
    result.write(out)
    mini = prepare(_open(obj), target_for(out, {"m2": f"{out}.m2"}))
    assert_same(full, mini, result)


# ---------------------------------------------------------------------------------------
# The command line, batch mode
# ---------------------------------------------------------------------------------------


def test_cli_single_matches_api(real_objects: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "o.btf"
    assert cli(["gen", "min-btf", "--btf", str(VMLINUX), str(out),
                *map(str, real_objects[:2])]) == 0
    assert out.read_bytes() == minimize(VMLINUX, real_objects[:2]).vmlinux


def test_cli_usage_errors(tmp_path: Path) -> None:
    assert cli(["gen", "min-btf", "--btf", str(VMLINUX), str(tmp_path / "x")]) == 2
    assert cli(["gen", "min-btf", "--btf-dir", str(tmp_path), "o.o"]) == 2
    assert cli(["gen", "min-btf", str(tmp_path / "x"), "o.o"]) == 2


def _tar_xz(path: Path, member: str, data: bytes) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w:xz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("jobs", [1, 2])
def test_batch_tree(real_objects: list[Path], tmp_path: Path, jobs: int) -> None:
    """--btf-dir/--out-dir keeps the layout: raw files, btfhub archives, a corpus-style
    kernel directory with modules/; -j N forks workers that share the parsed objects."""
    objs = real_objects[:3]
    tree = tmp_path / "in"
    (tree / "ubuntu" / "22.04" / "x86_64").mkdir(parents=True)
    (tree / "raw").mkdir()
    host = VMLINUX.read_bytes()
    small = minimize(VMLINUX, real_objects).vmlinux  # a second, different "kernel"
    (tree / "raw" / "host.btf").write_bytes(host)
    (tree / "raw" / "small.btf").write_bytes(small)
    _tar_xz(tree / "ubuntu" / "22.04" / "x86_64" / "5.15.0-1-generic.btf.tar.xz",
            "5.15.0-1-generic.btf", small)
    (tree / "README").write_text("not BTF\n")
    out = tmp_path / "out"
    args = ["gen", "min-btf", "--btf-dir", str(tree), "--out-dir", str(out), "-j", str(jobs),
            *map(str, objs)]
    assert cli(args) == 0
    expected_host = minimize(VMLINUX, objs).vmlinux
    expected_small = minimize(tree / "raw" / "small.btf", objs).vmlinux
    assert (out / "raw" / "host.btf").read_bytes() == expected_host
    assert (out / "raw" / "small.btf").read_bytes() == expected_small
    assert (out / "ubuntu" / "22.04" / "x86_64" / "5.15.0-1-generic.btf").read_bytes() == (
        expected_small
    )
    assert not (out / "README").exists()
    # --xz writes archives back as archives, readable as a target
    out2 = tmp_path / "out2"
    assert cli([*args[:5], str(out2), "--xz", *map(str, objs)]) == 0
    arch = out2 / "ubuntu" / "22.04" / "x86_64" / "5.15.0-1-generic.btf.tar.xz"
    assert target_for(arch).vmlinux.raw == expected_small


def test_batch_modules_dir(bpf_build: Any, tmp_path: Path) -> None:
    """A corpus-style kernel (vmlinux + modules/NAME): the module used is minimised into
    out/.../modules/NAME, split on the minimised vmlinux."""
    vmlinux = load_kernel_btf()
    kdir = tmp_path / "in" / "x86_64" / "6.12-test"
    (kdir / "modules").mkdir(parents=True)
    shutil.copyfile(VMLINUX, kdir / "vmlinux")
    (kdir / "modules" / "gen_mod").write_bytes(make_module(vmlinux))
    (kdir / "modules" / "other").write_bytes(
        BtfBuilder(vmlinux.byteorder, base=vmlinux).encode()
    )
    obj = bpf_build("gen_module.c")
    out = tmp_path / "out"
    assert cli(["gen", "min-btf", "--btf-dir", str(tmp_path / "in"), "--out-dir", str(out),
                str(obj)]) == 0
    okdir = out / "x86_64" / "6.12-test"
    assert sorted(p.name for p in (okdir / "modules").iterdir()) == ["gen_mod"]
    full = _prepare(obj, kdir / "vmlinux", {"gen_mod": str(kdir / "modules" / "gen_mod")})
    mini = _prepare(obj, okdir / "vmlinux", {"gen_mod": str(okdir / "modules" / "gen_mod")})
    gen = BtfGen(target_for(kdir / "vmlinux", {"gen_mod": str(kdir / "modules" / "gen_mod")}))
    gen.record(_open(obj))
    assert_same(full, mini, gen.build())


def test_batch_reports_failures(bpf_build: Any, tmp_path: Path) -> None:
    obj = bpf_build("core_ambig.c")
    src = bpf_build("core_ambig.c", defines=("TARGET=1",), tag="TARGET1")
    tree = tmp_path / "in"
    tree.mkdir()
    Path(tree / "t.btf").write_bytes(target_for(src).vmlinux.raw)
    assert cli(["gen", "min-btf", "--btf-dir", str(tree), "--out-dir", str(tmp_path / "o"),
                str(obj)]) == 1


def test_min_btf_of_no_relocations(bpf_build: Any) -> None:
    obj = bpf_build("obj_minimal.c")
    result = minimize(VMLINUX, [obj])
    assert Btf.parse(result.vmlinux).own_count == 0
    assert result.modules == {}


def test_errors_are_bpfobj_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.btf"
    bad.write_bytes(b"nope")
    with pytest.raises(BpfObjError):
        minimize(bad, [])

