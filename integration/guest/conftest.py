"""Fixtures of the tests that run inside the kernel-matrix guests (integration/vm.py).

In a guest the checkout is read-only at /src, ``BPFOBJ_VM=1`` and ``BPFOBJ_VM_ARCH`` /
``BPFOBJ_VM_KERNEL`` / ``BPFOBJ_VM_RESULTS`` describe the run. The guest has no compiler: the
BPF objects are compiled on the host beforehand (``python -m integration.vm prebuild``, which
every ``vm.py`` run does first) and listed in build/vm/prebuilt.json. Outside a guest the same
tests run against the host's kernel when that manifest exists, and skip otherwise.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "build" / "vm" / "prebuilt.json"


@dataclass(frozen=True)
class GuestKernel:
    """The kernel the tests run on (a matrix guest's, or the host's)."""

    release: str
    version: tuple[int, int, int]
    arch: str
    """bpfobj's arch name (x86_64, arm64)."""
    line: str | None
    """The matrix kernel line (5.10, 6.1, ...) in a guest, None on the host."""
    in_vm: bool
    kconfig: Mapping[str, str] | None
    """CONFIG_* -> value from /boot/config-<release> or /proc/config.gz (None: unknown)."""

    def config(self, name: str) -> bool | None:
        """Whether CONFIG_`name` is y or m (None when the config is unknown)."""
        if self.kconfig is None:
            return None
        return self.kconfig.get(f"CONFIG_{name}") in ("y", "m")


def kernel_version(release: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a release string: 6.12.117+deb12-amd64 -> (6, 12, 117)."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not m:
        raise ValueError(f"not a kernel release: {release!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def parse_kconfig(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("CONFIG_"):
            out[key] = value.strip().strip('"')
    return out


def read_kconfig(release: str) -> dict[str, str] | None:
    boot = Path(f"/boot/config-{release}")
    try:
        if boot.exists():
            return parse_kconfig(boot.read_text())
        proc = Path("/proc/config.gz")
        if proc.exists():
            return parse_kconfig(gzip.decompress(proc.read_bytes()).decode())
    except OSError:
        return None
    return None


@pytest.fixture(scope="session")
def guest_kernel() -> GuestKernel:
    from bpfobj.arch import host

    release = platform.release()
    return GuestKernel(
        release=release,
        version=kernel_version(release),
        arch=host().name,
        line=os.environ.get("BPFOBJ_VM_KERNEL"),
        in_vm=os.environ.get("BPFOBJ_VM") == "1",
        kconfig=read_kconfig(release),
    )


@pytest.fixture(scope="session")
def prebuilt() -> dict[str, Path]:
    """name -> path of the objects vm.py compiled on the host for the guests."""
    try:
        manifest = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        pytest.skip(f"no {MANIFEST.relative_to(ROOT)}: run `python -m integration.vm prebuild`")
    if manifest.get("error"):
        pytest.skip(f"the host could not prebuild the objects: {manifest['error']}")
    return {o["name"]: ROOT / o["path"] for o in manifest["objects"] if "path" in o}


@pytest.fixture(scope="session")
def results_dir() -> Path | None:
    """The run's read-write results directory in a guest (None on the host)."""
    value = os.environ.get("BPFOBJ_VM_RESULTS")
    return Path(value) if value else None
