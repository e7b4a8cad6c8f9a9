from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bpfbuild


@pytest.fixture(scope="session")
def bpf_build():  # type: ignore[no-untyped-def]
    """The `bpfbuild.build` function; skips when clang-19 is missing."""
    if not bpfbuild.have_clang():
        pytest.skip("clang-19 is not installed (apt-get install clang-19)")
    return bpfbuild.build
