"""`bpfobj check`: dry-run prepare of objects against a directory of kernel BTFs.

The BTF directory is built in tmp_path: this kernel's BTF, the minimised BTF of the
object, a hand-built BTF lacking a field (a poisoned relocation: "would fail in the
verifier if reached", not a hard error), one making a relocation ambiguous (a hard
error: exit 1), a btfhub archive, and a corpus-style kernel directory with a module.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from bpfobj import records
from bpfobj.btf import types as T
from bpfobj.btf.reader import Btf, load_kernel_btf
from bpfobj.btf.writer import BtfBuilder
from bpfobj.btfgen import minimize, target_for
from bpfobj.check import KernelReport, check, check_kernel, check_object, discover, to_json
from bpfobj.cli.main import main as cli
from bpfobj.errors import CoreError
from bpfobj.object import BpfObject
from bpfobj.prepare import prepare

VMLINUX = Path("/sys/kernel/btf/vmlinux")


def _struct(btf: Btf | BtfBuilder, name: str) -> int:
    return next(t for t in btf.find(name) if isinstance(btf.type(t), T.Struct))


def _without_field(raw: bytes, struct: str, field: str) -> bytes:
    b = BtfBuilder.from_btf(Btf.parse(raw))
    tid = _struct(b, struct)
    t = b.type(tid)
    assert isinstance(t, T.Struct)
    b.set_type(tid, records.evolve(t, members=tuple(m for m in t.members if m.name != field)))
    return b.encode()


def _ambiguous(raw: bytes, struct: str, field: str) -> bytes:
    """A ``struct___2`` flavor like `struct` but with `field` 64 bytes further: both
    candidates match, with different offsets."""
    b = BtfBuilder.from_btf(Btf.parse(raw))
    t = b.type(_struct(b, struct))
    assert isinstance(t, T.Struct)
    members = [
        records.evolve(m, bit_offset=m.bit_offset + 512) if m.name == field else m
        for m in t.members
    ]
    b.add_struct(f"{struct}___2", t.size + 64, members)
    return b.encode()


def _tar_xz(path: Path, member: str, data: bytes) -> None:
    with tarfile.open(path, "w:xz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def execsnoop(bpf_build: Any) -> Path:
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    return bpf_build("real_execsnoop.c", vmlinux=True)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def btf_dir(execsnoop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("btf")
    (root / "host").mkdir()
    shutil.copyfile(VMLINUX, root / "host" / "vmlinux.btf")
    small = minimize(VMLINUX, [execsnoop]).vmlinux
    (root / "min").mkdir()
    (root / "min" / "execsnoop.btf").write_bytes(small)
    (root / "variants").mkdir()
    (root / "variants" / "no-tgid.btf").write_bytes(_without_field(small, "task_struct", "tgid"))
    (root / "variants" / "ambiguous.btf").write_bytes(_ambiguous(small, "task_struct", "pid"))
    (root / "hub" / "ubuntu" / "22.04" / "x86_64").mkdir(parents=True)
    _tar_xz(root / "hub" / "ubuntu" / "22.04" / "x86_64" / "5.15.0-1-generic.btf.tar.xz",
            "5.15.0-1-generic.btf", small)
    (root / "notes.txt").write_text("not BTF\n")
    return root


KERNELS = {
    "host/vmlinux.btf": ("ok", 9, 0, 0),
    "min/execsnoop.btf": ("ok", 9, 0, 0),
    "hub/ubuntu/22.04/x86_64/5.15.0-1-generic.btf.tar.xz": ("ok", 9, 0, 0),
    "variants/no-tgid.btf": ("poisoned", 8, 1, 0),
    "variants/ambiguous.btf": ("error", 8, 0, 1),
}


def test_discover(btf_dir: Path) -> None:
    kernels = discover(btf_dir)
    assert sorted(k.rel for k in kernels) == sorted(KERNELS)
    fmt = {k.rel: k.format for k in kernels}
    assert fmt["hub/ubuntu/22.04/x86_64/5.15.0-1-generic.btf.tar.xz"] == "xz"
    assert fmt["host/vmlinux.btf"] == "raw"


def test_check_verdicts(btf_dir: Path, execsnoop: Path) -> None:
    spec = BpfObject.open(execsnoop).spec
    reports = {k.kernel: k for k in check([("execsnoop", spec)], discover(btf_dir))}
    for rel, (status, patched, poisoned, failed) in KERNELS.items():
        (obj,) = reports[rel].objects
        assert (obj.patched, obj.poisoned, obj.failed) == (patched, poisoned, failed), rel
        enter = next(p for p in obj.programs if p.name == "execsnoop_enter")
        assert enter.status == status, rel
        assert reports[rel].hard_error == (status == "error")
        exit_ = next(p for p in obj.programs if p.name == "execsnoop_exit")
        assert exit_.status == "ok"
    poisoned = reports["variants/no-tgid.btf"].objects[0].programs[0].poisoned
    assert [p.spec for p in poisoned] == [
        "<byte_off> [42] struct task_struct.tgid (0:93 @ offset 1268)"
    ] or "tgid" in poisoned[0].spec
    errors = reports["variants/ambiguous.btf"].objects[0].programs[0].errors
    assert len(errors) == 1 and "ambiguity" in errors[0].reason and ".pid" in errors[0].spec


def test_check_agrees_with_prepare(btf_dir: Path, execsnoop: Path) -> None:
    """A hard error is exactly "prepare raises"; otherwise the counts are prepare's log."""
    spec = BpfObject.open(execsnoop).spec
    for kernel in discover(btf_dir):
        target = target_for(kernel.path)
        verdict = check_object(spec, target)
        try:
            prepared = prepare(BpfObject.open(execsnoop).spec, target)
        except CoreError:
            assert verdict.hard_error, kernel.rel
            continue
        assert not verdict.hard_error, kernel.rel
        outcomes = [r.outcome for r in prepared.core_log]
        assert (verdict.patched, verdict.poisoned) == (
            outcomes.count("patched"), outcomes.count("poisoned")
        )


def test_subprogram_relocations_count_for_each_caller(bpf_build: Any, btf_dir: Path) -> None:
    """real_subprogs.c: a relocation in a .text function is reported for every program
    that calls it, and counted once."""
    obj = bpf_build("real_subprogs.c", vmlinux=True)
    small = minimize(VMLINUX, [obj]).vmlinux
    spec = BpfObject.open(obj).spec
    full = check_object(spec, target_for(VMLINUX))
    assert not full.hard_error and full.poisoned == 0
    no_pid = check_object(spec, target_for(Btf.parse(_without_field(small, "task_struct", "pid"))))
    bad = sorted(p.name for p in no_pid.programs if p.status == "poisoned")
    assert bad == ["fork_prog", "rawtp_prog"]
    assert no_pid.poisoned == 1  # one relocation, in the shared subprogram


def test_cli_json_and_exit_code(btf_dir: Path, execsnoop: Path, capsys: Any) -> None:
    assert cli(["check", str(execsnoop), "--btf-dir", str(btf_dir), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["summary"] == {"kernels": 5, "failing_kernels": 1, "poisoned_kernels": 1}
    by = {k["kernel"]: k for k in doc["kernels"]}
    assert by["variants/ambiguous.btf"]["hard_error"] is True
    assert by["variants/no-tgid.btf"]["objects"][0]["poisoned"] == 1
    # without the ambiguous kernel the exit code is 0, poisoned or not
    clean = btf_dir.parent / (btf_dir.name + "-clean")
    shutil.copytree(btf_dir, clean)
    (clean / "variants" / "ambiguous.btf").unlink()
    assert cli(["check", str(execsnoop), "--btf-dir", str(clean), "--json"]) == 0
    capsys.readouterr()


def test_cli_parallel_same_result(btf_dir: Path, execsnoop: Path, capsys: Any) -> None:
    cli(["check", str(execsnoop), str(execsnoop), "--btf-dir", str(btf_dir), "--json"])
    serial = capsys.readouterr().out
    cli(["check", str(execsnoop), str(execsnoop), "--btf-dir", str(btf_dir), "--json", "-j", "2"])
    assert capsys.readouterr().out == serial
    cli(["check", str(execsnoop), "--btf-dir", str(btf_dir), "--json", "-j", "0"])
    assert json.loads(capsys.readouterr().out)["summary"]["kernels"] == 5


def test_cli_table(btf_dir: Path, execsnoop: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    assert cli(["check", str(execsnoop), "--btf-dir", str(btf_dir)]) == 1
    out = capsys.readouterr().out
    assert "would fail in the verifier if reached" in out
    assert "relocation decision ambiguity" in out or "field offset ambiguity" in out
    assert "5 kernels: 4 ok, 1 failing" in out
    for rel in KERNELS:
        assert rel in out


def test_bad_btf_is_reported_not_raised(tmp_path: Path, execsnoop: Path) -> None:
    (tmp_path / "broken.btf").write_bytes(b"\x9f\xeb\x01\x00" + b"\xff" * 40)
    (kernel,) = discover(tmp_path)
    report = check_kernel(kernel, [("x", BpfObject.open(execsnoop).spec)])
    assert isinstance(report, KernelReport) and report.error and report.hard_error
    assert to_json([report])["ok"] is False


def test_no_kernels(tmp_path: Path, execsnoop: Path) -> None:
    assert cli(["check", str(execsnoop), "--btf-dir", str(tmp_path)]) == 1


def test_modules_of_a_corpus_kernel(bpf_build: Any, tmp_path: Path) -> None:
    """vmlinux + modules/NAME (build/btf-corpus's layout): module relocations resolve;
    the minimised pair (vmlinux + vmlinux.NAME, what gen min-btf writes) too."""
    from test_btfgen import make_module

    vmlinux = load_kernel_btf()
    kdir = tmp_path / "x86_64" / "6.12-test"
    (kdir / "modules").mkdir(parents=True)
    shutil.copyfile(VMLINUX, kdir / "vmlinux")
    (kdir / "modules" / "gen_mod").write_bytes(make_module(vmlinux))
    obj = bpf_build("gen_module.c")
    result = minimize(kdir / "vmlinux", [obj],
                      modules={"gen_mod": str(kdir / "modules" / "gen_mod")})
    result.write(tmp_path / "min" / "k.btf")
    kernels = discover(tmp_path)
    assert [(k.rel, [m for m, _ in k.modules]) for k in kernels] == [
        ("min/k.btf", ["gen_mod"]),
        ("x86_64/6.12-test/vmlinux", ["gen_mod"]),
    ]
    spec = BpfObject.open(obj).spec
    for report in check([("gen_module", spec)], kernels):
        (o,) = report.objects
        assert not o.hard_error and o.poisoned == 0, report.kernel
        assert o.patched == 10
