"""Prepare for another architecture, another byte order, and other kernels' real module BTF.

* big-endian objects (clang -target bpfeb) are patched in their own byte order: where the
  compiler emitted the same code for both byte orders, the prepared programs are equal;
* an arm64 object prepared on this x86_64 host against arm64 kernel BTF gets arm64's
  pt_regs layout (and is poisoned against x86_64 BTF, which has no user_pt_regs);
* module BTF saved from real kernels (split on their vmlinux) loads on its own vmlinux and
  is recognised as mismatched on another kernel's.

Kernel BTF of other kernels comes from the corpus the VM matrix saves
(`python -m integration.vm matrix` writes build/btf-corpus/<arch>/<release>/).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bpfobj import BpfObject
from bpfobj.btf.module import ModuleBtfMismatch, load_module_btf
from bpfobj.btf.reader import Btf

CORPUS = Path(__file__).resolve().parent.parent / "build" / "btf-corpus"
VMLINUX = Path("/sys/kernel/btf/vmlinux")
NO_CORPUS = (
    "no kernel BTF corpus for other kernels: run `python -m integration.vm matrix` "
    "(it boots Debian kernels and saves their /sys/kernel/btf into build/btf-corpus)"
)


def corpus(arch: str) -> list[Path]:
    return sorted(CORPUS.glob(f"{arch}/*/vmlinux"))


@pytest.mark.skipif(not VMLINUX.exists(), reason="needs kernel BTF (CONFIG_DEBUG_INFO_BTF)")
@pytest.mark.parametrize("source", ["real_schedstat.c", "real_subprogs.c", "real_execsnoop.c",
                                    "real_biolatency.c"])
def test_big_endian_object_is_prepared_like_its_little_endian_twin(
    source: str, bpf_build: Callable[..., Path]
) -> None:
    le = BpfObject.open(bpf_build(source, vmlinux=True))
    be = BpfObject.open(bpf_build(source, vmlinux=True, target="bpfeb"))
    assert be.spec.byteorder == "big"
    a, b = le.prepare(), be.prepare()
    compared = 0
    for name, prog in a.programs.items():
        if le.spec.programs[name].instructions != be.spec.programs[name].instructions:
            continue  # clang emitted different code for the two byte orders
        assert b.programs[name].insns == prog.insns, name
        compared += 1
    assert compared, "no program compiled the same for both byte orders"
    decisions = sorted((r.program, r.kind, r.target_spec or "", r.outcome) for r in a.core_log)
    assert decisions == sorted(
        (r.program, r.kind, r.target_spec or "", r.outcome) for r in b.core_log
    )
    # And the bytes really are big-endian: the first prepared instruction encodes differently.
    doc = b.to_json()
    first = b.programs[doc["programs"][0]["name"]].insns[0]
    assert doc["programs"][0]["insns"][0] == first.to_bytes("big").hex()


@pytest.mark.skipif(not corpus("arm64"), reason=NO_CORPUS)
@pytest.mark.parametrize("btf", corpus("arm64"), ids=lambda p: p.parent.name)
def test_arm64_object_against_arm64_kernel_btf(btf: Path, bpf_build: Callable[..., Path]) -> None:
    obj = bpf_build("obj_kprobes.c", defines=("__TARGET_ARCH_arm64",), tag="arm64")
    prepared = BpfObject.open(obj).prepare(btf)
    assert prepared.core_log
    assert {r.outcome for r in prepared.core_log} == {"patched"}
    by_spec = {r.target_spec.split(" (")[0].split("] ", 1)[1]: r.new
               for r in prepared.core_log if r.target_spec}
    # struct user_pt_regs { u64 regs[31]; u64 sp; u64 pc; u64 pstate; }: regs[i] at 8*i.
    assert by_spec.get("struct user_pt_regs.regs[1]") == 8
    assert by_spec.get("struct pt_regs.orig_x0") == 272  # arm64's pt_regs, after user_pt_regs


@pytest.mark.skipif(not corpus("x86_64"), reason=NO_CORPUS)
def test_arm64_object_against_x86_64_btf_is_poisoned(bpf_build: Callable[..., Path]) -> None:
    obj = bpf_build("obj_kprobes.c", defines=("__TARGET_ARCH_arm64",), tag="arm64")
    prepared = BpfObject.open(obj).prepare(corpus("x86_64")[0])
    assert prepared.core_log
    assert {r.outcome for r in prepared.core_log} == {"poisoned"}


def _module_files() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*/*/modules/*") if p.is_file())


@pytest.mark.skipif(not _module_files(), reason=NO_CORPUS)
def test_real_module_btf_fits_its_own_vmlinux_and_not_another() -> None:
    mods = _module_files()
    checked = 0
    for mod in mods[:6]:
        own = Btf.parse((mod.parent.parent / "vmlinux").read_bytes(), cache=False)
        btf = load_module_btf(mod.read_bytes(), own, mod.name)
        assert btf.start_id == len(own) + 1
        assert len(btf) > len(own)
        # The same module on another kernel build of the same arch: detected, not used.
        others = [p for p in corpus(mod.parent.parent.parent.name)
                  if p.parent != mod.parent.parent]
        if others:
            other = Btf.parse(others[0].read_bytes(), cache=False)
            with pytest.raises(ModuleBtfMismatch):
                load_module_btf(mod.read_bytes(), other, mod.name)
            checked += 1
    assert checked
