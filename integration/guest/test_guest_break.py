"""A deliberate failure on chosen kernel-matrix pairs, to check that a failing pair fails
the matrix (and .ci/run) and is named in its summary.

    BPFOBJ_VM_BREAK=arm64/6.1 python -m integration.vm matrix

integration/vm.py hands BPFOBJ_VM_BREAK to the guests; this test fails on every pair it
lists (comma-separated ``arch/line``) and passes everywhere else. Unset (the default) it
passes on every pair.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import GuestKernel


def broken_pairs(value: str) -> set[str]:
    return {p.strip() for p in value.split(",") if p.strip()}


def test_pair_is_not_deliberately_broken(guest_kernel: GuestKernel) -> None:
    pair = f"{guest_kernel.arch}/{guest_kernel.line}"
    broken = broken_pairs(os.environ.get("BPFOBJ_VM_BREAK", ""))
    assert pair not in broken, f"{pair} is deliberately broken (BPFOBJ_VM_BREAK={','.join(sorted(broken))})"
