"""What a matrix guest needs from the host was built: every object the kernel-layer tests
build for this arch (`vm.guest_objects`) and the uprobe/USDT target programs for this arch.
Without this check a host lacking, say, the arm64 cross gcc would only turn tests into skips.
Also: the guest runs with the BPF LSM active where the kernel has it (vm.py's lsm=).

On the host these run against build/vm/prebuilt.json when it exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from integration import vm

if TYPE_CHECKING:
    from conftest import GuestKernel

ELF_MACHINE = {"x86_64": 62, "arm64": 183}  # EM_X86_64, EM_AARCH64


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(vm.PREBUILT_MANIFEST.read_text())
    except (OSError, ValueError):
        pytest.skip("no build/vm/prebuilt.json: run `python -m integration.vm prebuild`")
    if data.get("error"):
        pytest.skip(f"the host could not prebuild the objects: {data['error']}")
    return data


def test_every_guest_object_was_built(manifest: dict[str, Any],
                                      guest_kernel: GuestKernel) -> None:
    for obj in vm.guest_objects(vm.ARCHES[guest_kernel.arch]):
        path = vm.prebuilt_object(obj.source, **obj.options)  # LookupError says why not
        assert path.is_file(), path


def test_helpers_for_this_arch(manifest: dict[str, Any], guest_kernel: GuestKernel) -> None:
    for name in vm.HELPERS:
        path = vm.prebuilt_helper(name, guest_kernel.arch)
        head = Path(path).read_bytes()[:20]
        assert head[:4] == b"\x7fELF", path
        assert int.from_bytes(head[18:20], "little") == ELF_MACHINE[guest_kernel.arch], path


def test_bpf_lsm_is_active(guest_kernel: GuestKernel) -> None:
    if not guest_kernel.in_vm:
        pytest.skip("the host's boot parameters are its own")
    if not guest_kernel.config("BPF_LSM"):
        pytest.skip("the kernel is built without CONFIG_BPF_LSM")
    assert "bpf" in Path("/sys/kernel/security/lsm").read_text().split(",")
