"""CO-RE relocated by bpfobj (core="user", libbpf's way) and by the kernel (core="kernel",
PROG_LOAD core_relos, Linux 5.17+) give the same programs and the same results."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bpfobj import BpfObject, records
from bpfobj.errors import NotSupportedError
from bpfobj.kernel.features import probe

REAL = ["real_execsnoop.c", "real_exitsnoop.c", "real_biolatency.c", "real_subprogs.c",
        "real_opensnoop.c"]


@pytest.fixture(scope="module", autouse=True)
def _kernel_core() -> None:
    if not probe().core_relos:
        pytest.skip("in-kernel CO-RE (PROG_LOAD core_relos) needs Linux 5.17+")


def _load(path: Path, core: str) -> dict[str, dict[str, object]]:
    with BpfObject.open(path) as obj:
        obj.prepare(core=core)
        obj.load()
        return {name: p.info() for name, p in obj.programs.items()}


@pytest.mark.parametrize("source", REAL)
def test_kernel_and_user_core_load_the_same_program(
    source: str, bpf_build: Callable[..., Path]
) -> None:
    path = bpf_build(source, vmlinux=True)
    user = _load(path, "user")
    kernel = _load(path, "kernel")
    assert user.keys() == kernel.keys()
    for name in user:
        # The tag hashes the instructions the verifier kept: equal tags, equal programs.
        for key in ("tag", "xlated_prog_len", "verified_insns", "nr_line_info"):
            assert user[name][key] == kernel[name][key], (name, key)


def test_kernel_core_leaves_instructions_unpatched(bpf_build: Callable[..., Path]) -> None:
    path = bpf_build("real_schedstat.c", vmlinux=True)
    obj = BpfObject.open(path)
    kernel = obj.prepare(core="kernel")
    assert kernel.core_log == []
    relos = [r for p in kernel.programs.values() for r in p.kernel_core_relos]
    assert len(relos) == len(obj.spec.programs["sched_switch"].core_relos)
    user = BpfObject.open(path).prepare()
    changed = [r.insn for r in user.core_log if r.old != r.new or r.outcome == "poisoned"]
    assert changed, "real_schedstat is meant to need real patches"
    for i in changed:
        assert kernel.programs["sched_switch"].insns[i] != user.programs["sched_switch"].insns[i]


def test_execsnoop_events_are_the_same_in_both_modes() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "build" / "execsnoop.bpf.o"
    if not example.exists():
        pytest.skip("examples not built: run examples/build.sh")
    counts = {}
    for core in ("user", "kernel"):
        with BpfObject.open(example) as obj:
            obj.prepare(core=core)
            obj.attach_all()
            for _ in range(5):
                subprocess.run(["true"], check=True)
            counts[core] = obj.maps["exec_count"][0]
    assert counts["user"] >= 5 and counts["kernel"] >= 5


def test_old_kernel_without_in_kernel_core_gets_a_clear_error(
    bpf_build: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:

    from bpfobj import object as objmod

    path = bpf_build("real_execsnoop.c", vmlinux=True)
    obj = BpfObject.open(path)
    obj.prepare(core="kernel")
    old = records.evolve(obj.features, core_relos=False)
    monkeypatch.setattr(objmod.BpfObject, "features", property(lambda self: old))
    with pytest.raises(NotSupportedError, match=r"5\.17"):
        obj.load()
    obj.close()
