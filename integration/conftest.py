"""Integration tests: objects really loaded into the running kernel.

They need root, kernel BTF, a working bpf(2) and the BPF filesystem (mounted here when
missing); without them every test is skipped with a message naming what is missing.
The `bpf_build` fixture is the one of tests/conftest.py (BPF C sources under tests/progs,
compiled with clang-19 and cached).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def _load_tests_conftest() -> object:
    spec = importlib.util.spec_from_file_location("bpfobj_tests_conftest", TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bpf_build = _load_tests_conftest().bpf_build  # type: ignore[attr-defined]

BPFFS = "/sys/fs/bpf"
_counter = itertools.count()


def _missing() -> list[str]:
    """What this machine lacks for the integration tests (empty: all there)."""
    missing: list[str] = []
    if os.geteuid() != 0:
        return ["root (run as euid 0: bpf(2), bpffs and tracing need it)"]
    if not Path("/sys/kernel/btf/vmlinux").exists():
        missing.append("kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF=y)")
    try:
        from bpfobj.kernel.features import probe

        if not probe().global_data:
            missing.append("a kernel with global data (5.2+)")
    except Exception as exc:  # any failure means bpf(2) does not work
        missing.append(f"a working bpf(2) ({exc})")
        return missing
    try:
        from bpfobj.sys import bpffs

        bpffs.ensure_mounted(BPFFS)
    except Exception as exc:
        missing.append(f"the BPF filesystem at {BPFFS} ({exc})")
    return missing


_MISSING: list[str] | None = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    global _MISSING
    here = Path(__file__).resolve().parent
    ours = [item for item in items if here in Path(str(item.fspath)).resolve().parents]
    if not ours:
        return
    if _MISSING is None:
        _MISSING = _missing()
    if _MISSING:
        marker = pytest.mark.skip(reason="integration tests need " + "; ".join(_MISSING))
        for item in ours:
            item.add_marker(marker)


@pytest.fixture
def pin_root() -> Iterator[str]:
    """A fresh directory on bpffs for LIBBPF_PIN_BY_NAME maps, removed afterwards."""
    path = os.path.join(BPFFS, f"bpfobj-test-{os.getpid()}-{next(_counter)}")
    os.makedirs(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fd_count() -> int:
    """Open file descriptors of this process (/proc/self/fd)."""
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def count_fds() -> Callable[[], int]:
    """`fd_count` as a fixture, for test modules that cannot import this conftest by name
    (tests/conftest.py may own the module name ``conftest``)."""
    return fd_count
