"""The offline phases inside each guest of the kernel matrix (integration/vm.py).

Objects compiled once on the host with the host's vmlinux.h (that is the point of CO-RE) are
opened and prepared against the guest's own /sys/kernel/btf. Every CO-RE relocation must be
patched, or poisoned exactly where the guest's kernel lacks what the object reads: the
expectations below are facts of kernel history (task_struct::state became __state in 5.14,
request::rq_disk went in 5.17, ...) and of the arch the object's pt_regs accessors were
compiled for, not a replay of bpfobj's own answers. A poisoned instruction must be libbpf's
``call 0xbad2310``.

Also run outside the VMs (against the host's kernel) when build/vm/prebuilt.json exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import pytest

from bpfobj import BpfObject
from bpfobj.errors import LinkError
from bpfobj.uapi import CORE_POISON_IMM

if TYPE_CHECKING:
    from conftest import GuestKernel

BPF_CALL = 0x85

Rule: TypeAlias = "tuple[str, Callable[[GuestKernel], bool | None]]"
"""(relocated type.member, whether the guest's kernel lacks it)."""


def older(major: int, minor: int) -> Callable[[GuestKernel], bool]:
    return lambda k: k.version[:2] < (major, minor)


def since(major: int, minor: int) -> Callable[[GuestKernel], bool]:
    return lambda k: k.version[:2] >= (major, minor)


def not_on(arch: str) -> Callable[[GuestKernel], bool]:
    return lambda k: k.arch != arch


def always(k: GuestKernel) -> bool:
    return True


@dataclass(frozen=True)
class Expect:
    poisoned: tuple[Rule, ...] = ()
    missing_kfunc: tuple[str, Callable[[GuestKernel], bool]] | None = None
    """A strong kfunc extern that fails prepare (LinkError) on the kernels the rule selects."""
    notes: str = field(default="", compare=False)


EXPECTED: dict[str, Expect] = {
    "minimal": Expect(),
    "core": Expect(
        poisoned=(
            ("task_struct.__state", older(5, 14)),
            ("task_struct___pre514.state", since(5, 14)),
            # BPF_KPROBE compiled for x86 (bpf_tracing.h default): pt_regs->di is x86's
            ("pt_regs.di", not_on("x86_64")),
        ),
    ),
    "externs": Expect(missing_kfunc=("bpf_task_acquire", older(6, 2))),
    "kprobes": Expect(
        # Built from the UAPI headers, bpf_tracing.h reads the syscall wrapper's regs as
        # pt_regs.rdi / .rsi, which no kernel BTF has (libbpf poisons them the same way).
        poisoned=(("pt_regs.rdi", always), ("pt_regs.rsi", always)),
    ),
    "kprobes-arm64": Expect(
        poisoned=(
            ("pt_regs___arm64.orig_x0", not_on("arm64")),
            ("user_pt_regs.regs[1]", not_on("arm64")),
        ),
    ),
    "execsnoop": Expect(),
    "exitsnoop": Expect(poisoned=(("task_struct___o.real_start_time", since(5, 5)),)),
    "opensnoop": Expect(),
    "biolatency": Expect(
        poisoned=(
            ("request_queue___x.disk", older(5, 15)),
            ("request___x.rq_disk", since(5, 17)),
            # the block_rq_completion event class (6.1 has it, 5.10 has block_rq_complete)
            ("trace_event_raw_block_rq_completion___x.dev", older(6, 0)),
            ("trace_event_raw_block_rq_completion___x.nr_sector", older(6, 0)),
            ("trace_event_raw_block_rq_complete___x.dev", since(6, 0)),
            ("trace_event_raw_block_rq_complete___x.nr_sector", since(6, 0)),
        ),
    ),
    "schedstat": Expect(
        poisoned=(("cgroup_subsys_id::rdma_cgrp_id", lambda k: not k.config("CGROUP_RDMA")),),
    ),
    "subprogs": Expect(),
}

_SPEC_NAME = re.compile(r"\] (?:struct |union |enum |typedef )?(\S+)")


def relocated(local_spec: str | None) -> str:
    """``<byte_off> [13] struct task_struct.__state (0:1 @ offset 24)`` -> task_struct.__state"""
    m = _SPEC_NAME.search(local_spec or "")
    return m.group(1) if m else str(local_spec)


def expected_poison(expect: Expect, kernel: GuestKernel) -> set[str]:
    out = set()
    for spec, lacks in expect.poisoned:
        verdict = lacks(kernel)
        if verdict is None:
            pytest.skip(f"cannot tell whether {kernel.release} has {spec} (no kernel config)")
        if verdict:
            out.add(spec)
    return out


def test_every_prebuilt_object_has_expectations(prebuilt: dict[str, Path]) -> None:
    assert set(prebuilt) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_prepare_against_the_kernel_btf(
    name: str, prebuilt: dict[str, Path], guest_kernel: GuestKernel
) -> None:
    if name not in prebuilt:
        pytest.skip(f"{name} was not prebuilt on the host")
    expect = EXPECTED[name]
    obj = BpfObject.open(prebuilt[name])
    if expect.missing_kfunc is not None and expect.missing_kfunc[1](guest_kernel):
        kfunc = expect.missing_kfunc[0]
        with pytest.raises(LinkError, match=rf"extern kfunc '{kfunc}' is not in the target BTF"):
            obj.prepare()
        return
    prepared = obj.prepare()
    assert prepared.programs
    bad = [r for r in prepared.core_log if r.outcome not in ("patched", "poisoned")]
    assert not bad, [(r.program, r.kind, r.local_spec, r.reason) for r in bad]
    poisoned = [r for r in prepared.core_log if r.outcome == "poisoned"]
    assert {relocated(r.local_spec) for r in poisoned} == expected_poison(expect, guest_kernel)
    for r in poisoned:
        assert r.program is not None
        insn = prepared.programs[r.program].insns[r.insn]
        assert (insn.code, insn.imm) == (BPF_CALL, CORE_POISON_IMM), (r.program, r.insn, insn)
    for r in prepared.core_log:
        if r.outcome == "patched":
            assert r.target_type_id is not None or r.kind.endswith("exists"), r


def test_kernel_and_module_btf(guest_kernel: GuestKernel) -> None:
    """The guest's vmlinux BTF parses and its module BTFs split on it (5.11+)."""
    from bpfobj.btf.target import TargetBtf

    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    target = TargetBtf.running_kernel()
    assert target.vmlinux.find("task_struct")
    modules = target.modules()
    assert not target.skipped, target.skipped
    if guest_kernel.in_vm and guest_kernel.version[:2] >= (5, 11):
        # vm.py's init loads the 9p modules; 6.12+ builds virtio in, so look for 9pnet
        assert "9pnet" in modules, sorted(modules)
        assert modules["9pnet"].find("p9_client_create")


def test_results_dir_is_writable(results_dir: Path | None) -> None:
    """The guest writes junit XML and its BTF to the results share: it must be read-write
    while the checkout is read-only."""
    if results_dir is None:
        pytest.skip("not in a matrix guest")
    probe = results_dir / "probe"
    probe.write_text("ok")
    assert probe.read_text() == "ok"
    probe.unlink()
    with pytest.raises(OSError):
        (Path(__file__).parent / "probe").write_text("read-only")
