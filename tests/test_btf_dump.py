"""`bpfobj btf dump` raw listing (bpfobj.btf.dump) against `bpftool btf dump file`, byte for
byte: the running kernel's vmlinux, every test object (both byte orders), split BTF, btfhub
archives, and the CLI.

The bpftool used is ``$BPFOBJ_BPFTOOL`` (default ``bpftool``); ``$BPFOBJ_EXTRA_BPFTOOLS``
(colon-separated paths) adds more builds to compare against (e.g. a bpftool 7.5).
Helpers here are shared with test_btf_cdump.py.
"""

from __future__ import annotations

import difflib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import objects
from core_btf.builder import std_ints

from bpfobj.btf import Btf
from bpfobj.btf.dump import dump_raw, dump_raw_text, format_type, open_btf
from bpfobj.btf.writer import BtfBuilder
from bpfobj.cli.main import main
from bpfobj.errors import BtfError
from bpfobj.uapi import BtfFuncLinkage, BtfVarLinkage

VMLINUX = Path("/sys/kernel/btf/vmlinux")
PROGS = Path(__file__).parent / "progs"


def bpftools() -> list[str]:
    """The bpftool builds to compare against (those that exist)."""
    names = [os.environ.get("BPFOBJ_BPFTOOL", "bpftool")]
    names += [p for p in os.environ.get("BPFOBJ_EXTRA_BPFTOOLS", "").split(":") if p]
    return [n for n in names if shutil.which(n)]


BPFTOOLS = bpftools()
needs_bpftool = pytest.mark.skipif(not BPFTOOLS, reason="bpftool is not installed")
needs_vmlinux = pytest.mark.skipif(not VMLINUX.exists(), reason="no /sys/kernel/btf/vmlinux")


def run_bpftool(bpftool: str, *args: str | Path) -> str:
    res = subprocess.run([bpftool, *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 0, f"{bpftool} {args}: {res.stderr}"
    return res.stdout


def assert_same_text(ours: str, ref: str, what: str) -> None:
    """Equal strings, or a failure showing the first differing lines."""
    if ours == ref:
        return
    diff = difflib.unified_diff(
        ref.splitlines(), ours.splitlines(), "bpftool", "bpfobj", lineterm="", n=2
    )
    shown = "\n".join(line for _, line in zip(range(60), diff))
    pytest.fail(f"{what}: output differs from bpftool\n{shown}")


@pytest.fixture(scope="session")
def vmlinux_btf() -> Btf:
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    return open_btf(VMLINUX)


def dump_objects(bpf_build: Callable[..., Path]) -> dict[str, Path]:
    """Every catalogue object plus the BTF-focused ones, in both byte orders."""
    paths = objects.build_all(bpf_build)
    for src in ("dump_layouts.c", "btf_kinds.c"):
        for target in ("bpfel", "bpfeb"):
            paths[f"{Path(src).stem}-{target}"] = bpf_build(src, target=target, tag=target)
    return paths


@pytest.fixture(scope="session")
def test_objects(bpf_build: Callable[..., Path]) -> dict[str, Path]:
    return dump_objects(bpf_build)


# ---------------------------------------------------------------------------------------
# vmlinux and objects against bpftool
# ---------------------------------------------------------------------------------------


@needs_bpftool
@needs_vmlinux
@pytest.mark.parametrize("bpftool", BPFTOOLS)
def test_raw_vmlinux_identical(bpftool: str, vmlinux_btf: Btf) -> None:
    ref = run_bpftool(bpftool, "btf", "dump", "file", VMLINUX)
    assert_same_text(dump_raw_text(vmlinux_btf), ref, "vmlinux raw")


@needs_bpftool
@pytest.mark.parametrize("bpftool", BPFTOOLS)
def test_raw_objects_identical(bpftool: str, test_objects: dict[str, Path]) -> None:
    assert len(test_objects) > 10
    for name, path in sorted(test_objects.items()):
        ref = run_bpftool(bpftool, "btf", "dump", "file", path)
        assert_same_text(dump_raw_text(open_btf(path)), ref, f"{name} raw")


@needs_bpftool
def test_raw_type_selection(test_objects: dict[str, Path]) -> None:
    path = test_objects["dump_layouts-bpfel"]
    btf = open_btf(path)
    full = run_bpftool(BPFTOOLS[0], "btf", "dump", "file", path)
    chunks = [format_type(btf, t) for t in btf.own_ids()]
    assert "".join(chunks) == full
    assert "".join(dump_raw(btf, [3, 1])) == chunks[2] + chunks[0]


# ---------------------------------------------------------------------------------------
# Split BTF, archives, sources
# ---------------------------------------------------------------------------------------


def _split_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A small base BTF and split BTF on it (every kind the split part can hold)."""
    base = BtfBuilder()
    ints = std_ints(base)
    node = base.add_struct("node", 16)
    base.add_member(node, "next", base.add_ptr(node), 0)
    base.add_member(node, "val", ints["int"], 64)
    base_raw = base.encode()
    split = BtfBuilder(base=Btf.parse(base_raw, cache=False))
    s = split.add_struct(
        "mod_state",
        24,
        [("head", node, 0), ("flags", ints["uint"], 128, 3), ("more", ints["uint"], 131, 5)],
    )
    split.add_typedef("mod_state_t", s)
    e = split.add_enum("mod_mode", values=[("MOD_A", 0), ("MOD_B", -2)], signed=True)
    split.add_enum64("mod_big", values=[("MOD_HUGE", 1 << 40)])
    proto = split.add_func_proto(ints["int"], [("st", split.add_ptr(s)), ("mode", e)])
    func = split.add_func("mod_fn", proto, BtfFuncLinkage.GLOBAL)
    split.add_decl_tag("mod_tag", func)
    var = split.add_var("mod_var", s, BtfVarLinkage.GLOBAL_ALLOCATED)
    split.add_datasec(".data", 24, [(var, 0, 24)])
    split.add_fwd("mod_fwd", union=True)
    split.add_float("double", 8)
    bpath, spath = tmp_path / "base.btf", tmp_path / "split.btf"
    bpath.write_bytes(base_raw)
    spath.write_bytes(split.encode())
    return bpath, spath


@needs_bpftool
@pytest.mark.parametrize("bpftool", BPFTOOLS)
def test_raw_split_identical(bpftool: str, tmp_path: Path) -> None:
    bpath, spath = _split_pair(tmp_path)
    ref = run_bpftool(bpftool, "-B", bpath, "btf", "dump", "file", spath)
    btf = open_btf(spath, base=bpath)
    assert btf.base is not None and btf.start_id == len(btf.base) + 1
    assert_same_text(dump_raw_text(btf), ref, "split raw")
    assert ref.startswith(f"[{btf.start_id}] STRUCT 'mod_state'")


@needs_vmlinux
def test_kernel_module_path_is_split_on_vmlinux(
    monkeypatch: pytest.MonkeyPatch, vmlinux_btf: Btf
) -> None:
    """/sys/kernel/btf/<module> gets vmlinux as its base (bpftool's do_dump), unless
    --base is given; a real module is compared with bpftool when this kernel has one."""
    import bpfobj.btf.dump as dump_mod

    calls: list[str] = []

    def fake_load(path: str) -> Btf:
        calls.append(path)
        return vmlinux_btf

    monkeypatch.setattr(dump_mod, "load_kernel_btf", fake_load)
    assert open_btf("/sys/kernel/btf/some_module") is vmlinux_btf
    assert calls == ["/sys/kernel/btf/some_module"]
    monkeypatch.undo()

    modules = sorted(p for p in Path("/sys/kernel/btf").iterdir() if p.name != "vmlinux")
    if not modules or not BPFTOOLS:
        pytest.skip("this kernel exposes no module BTF (or bpftool is missing)")
    mod = open_btf(modules[0])
    assert mod.base is not None and mod.start_id == len(vmlinux_btf) + 1
    ref = run_bpftool(BPFTOOLS[0], "btf", "dump", "file", modules[0])
    assert_same_text(dump_raw_text(mod), ref, f"{modules[0]} raw")


def make_tar_xz(path: Path, member: str, data: bytes) -> Path:
    """A btfhub-style archive: one ``<release>.btf`` member, xz-compressed."""
    with tarfile.open(path, "w:xz", preset=0) as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@needs_bpftool
def test_raw_tar_xz_and_elf(tmp_path: Path, test_objects: dict[str, Path]) -> None:
    """A .btf.tar.xz holding raw BTF dumps like bpftool dumps the raw file; an object's
    .BTF section extracted to raw BTF dumps like the object itself."""
    obj = test_objects["dump_layouts-bpfel"]
    ref = run_bpftool(BPFTOOLS[0], "btf", "dump", "file", obj)
    raw = open_btf(obj).raw
    (tmp_path / "raw.btf").write_bytes(raw)
    assert run_bpftool(BPFTOOLS[0], "btf", "dump", "file", tmp_path / "raw.btf") == ref
    xz = make_tar_xz(tmp_path / "6.1.0-test.btf.tar.xz", "6.1.0-test.btf", raw)
    assert dump_raw_text(open_btf(xz)) == ref
    assert dump_raw_text(open_btf(tmp_path / "raw.btf")) == ref


def test_open_btf_errors(tmp_path: Path) -> None:
    with pytest.raises(BtfError, match="cannot read"):
        open_btf(tmp_path / "missing.btf")
    (tmp_path / "junk").write_bytes(b"not btf at all")
    with pytest.raises(BtfError, match="not BTF"):
        open_btf(tmp_path / "junk")


# ---------------------------------------------------------------------------------------
# Formatting details (no bpftool needed)
# ---------------------------------------------------------------------------------------


def test_format_every_kind() -> None:
    b = BtfBuilder()
    ints = std_ints(b)
    b.add_int("_Bool", 1, bool_=True)
    b.add_int("weird", 4, signed=True, char=True)  # two encoding bits: bpftool says UNKN
    arr = b.add_array(ints["char"], ints["int"], 16)
    s = b.add_struct("s", 24, [("a", ints["int"], 0, 3), ("", ints["int"], 3, 5), ("buf", arr, 64)])
    e = b.add_enum("neg", values=[("N", -1), ("P", 7)], signed=True)
    b.add_enum("pos", values=[("U", 0xFFFFFFFF)])
    b.add_enum64("e64s", values=[("S", -(1 << 40))], signed=True)
    b.add_enum64("e64u", values=[("U64", (1 << 64) - 1)])
    proto = b.add_func_proto(ints["int"], [("x", e), ("", 0)])
    b.add_func("f", proto, linkage=2)
    var = b.add_var("v", s, linkage=2)
    b.add_datasec(".bss", 24, [(var, 0, 24), (0, 0, 0)])
    b.add_decl_tag("t", s, 1)
    b.add_type_tag("user", ints["int"])
    b.add_fwd("fu", union=True)
    b.add_float("float", 4)
    btf = b.to_btf()
    text = dump_raw_text(btf)
    expected_lines = [
        "[10] INT 'weird' size=4 bits_offset=0 nr_bits=32 encoding=UNKN",
        "[11] ARRAY '(anon)' type_id=5 index_type_id=1 nr_elems=16",
        "[12] STRUCT 's' size=24 vlen=3\n\t'a' type_id=1 bits_offset=0 bitfield_size=3\n"
        "\t'(anon)' type_id=1 bits_offset=3 bitfield_size=5\n\t'buf' type_id=11 bits_offset=64",
        "[13] ENUM 'neg' encoding=SIGNED size=4 vlen=2\n\t'N' val=-1\n\t'P' val=7",
        "[14] ENUM 'pos' encoding=UNSIGNED size=4 vlen=1\n\t'U' val=4294967295",
        "[15] ENUM64 'e64s' encoding=SIGNED size=8 vlen=1\n\t'S' val=-1099511627776LL",
        "[16] ENUM64 'e64u' encoding=UNSIGNED size=8 vlen=1\n\t'U64' val=18446744073709551615ULL",
        "[17] FUNC_PROTO '(anon)' ret_type_id=1 vlen=2\n\t'x' type_id=13\n\t'(anon)' type_id=0",
        "[18] FUNC 'f' type_id=17 linkage=extern",
        "[19] VAR 'v' type_id=12, linkage=extern",
        "[20] DATASEC '.bss' size=24 vlen=2\n\ttype_id=19 offset=0 size=24 (VAR 'v')\n"
        "\ttype_id=0 offset=0 size=0 (UNKNOWN '(anon)')",
        "[21] DECL_TAG 't' type_id=12 component_idx=1",
        "[22] TYPE_TAG 'user' type_id=1",
        "[23] FWD 'fu' fwd_kind=union",
        "[24] FLOAT 'float' size=4",
    ]
    for line in expected_lines:
        assert line + "\n" in text
    assert text.startswith("[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED\n")
    assert "[9] INT '_Bool' size=1 bits_offset=0 nr_bits=8 encoding=BOOL\n" in text


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


@needs_bpftool
def test_cli_raw(capsys: pytest.CaptureFixture[str], test_objects: dict[str, Path]) -> None:
    obj = test_objects["maps"]
    ref = run_bpftool(BPFTOOLS[0], "btf", "dump", "file", obj)
    assert main(["btf", "dump", str(obj)]) == 0
    assert capsys.readouterr().out == ref
    assert main(["btf", "dump", str(obj), "--format", "raw", "--type", "1"]) == 0
    assert capsys.readouterr().out == ref[: ref.index("\n[2] ")] + "\n"


def test_cli_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["btf", "dump", str(tmp_path / "nope.btf")]) == 1
    assert "cannot read" in capsys.readouterr().err
    b = BtfBuilder()
    std_ints(b)
    (tmp_path / "x.btf").write_bytes(b.encode())
    assert main(["btf", "dump", str(tmp_path / "x.btf"), "--type", "99"]) == 2
    assert "out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["btf", "dump", str(tmp_path / "x.btf"), "--format", "json"])


def test_cli_split_base(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bpath, spath = _split_pair(tmp_path)
    assert main(["btf", "dump", str(spath), "--base", str(bpath)]) == 0
    out = capsys.readouterr().out
    assert out == dump_raw_text(open_btf(spath, base=bpath))
    assert out.startswith("[11] STRUCT 'mod_state' size=24 vlen=3\n")

