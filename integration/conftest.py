"""Integration tests: objects really loaded into the running kernel.

They need root, kernel BTF, a working bpf(2) and the BPF filesystem (mounted here when
missing); without them every test is skipped with a message naming what is missing.
The `bpf_build` fixture compiles like the one of tests/conftest.py (BPF C sources under
tests/progs, compiled with clang-19 and cached). In a kernel-matrix guest (integration/vm.py,
``BPFOBJ_VM=1``), which has no compiler, it returns the object the host compiled for the same
(source, options) beforehand (`vm.prebuilt_object`) and skips naming "not prebuilt" when
there is none. Modules in HOST_ONLY test the VM runner itself: no kernel needed.
"""

from __future__ import annotations

import itertools
import os
import platform
import re
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
PROGS = TESTS / "progs"
for _path in (TESTS, ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from integration import vm  # noqa: E402

if TYPE_CHECKING:
    from bpfobj import BpfObject

IN_VM = os.environ.get("BPFOBJ_VM") == "1"
HOST_ONLY = {"test_vm_unit.py"}
"""Test modules of integration/ that need no kernel (nor root): the VM runner's unit tests."""


def _kernel_version() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


KERNEL = _kernel_version()
"""(major, minor) of the running kernel (a matrix guest's own)."""
ARCH = vm.running_arch()


# -- what the tests need from the kernel ------------------------------------------------------
# Facts of kernel history, so that a kernel that cannot run a test skips it naming the feature
# and the version that brings it (the test modules' own skips cover the rest).

OBJECT_NEEDS: dict[str, tuple[tuple[int, int], str]] = {
    "load_syscall.c": ((5, 14), 'a SEC("syscall") program (BPF_PROG_TYPE_SYSCALL)'),
    "obj_bloom.c": ((5, 16), "a BPF_MAP_TYPE_BLOOM_FILTER map"),
    "attach_cookie.c": ((5, 15), "BPF cookies (bpf_get_attach_cookie)"),
    "attach_usdt.c": ((5, 15), "BPF cookies (USDT attach passes each site's spec as cookie)"),
    "real_subprogs.c": ((5, 17), "bpf_loop()"),
    "load_storage.c": ((6, 2), "a BPF_MAP_TYPE_CGRP_STORAGE map"),
    "load_storage_lsm.c": ((5, 10), "a BPF_MAP_TYPE_INODE_STORAGE map"),
    "load_user_ringbuf.c": ((6, 1), "a BPF_MAP_TYPE_USER_RINGBUF map"),
    "load_arena.c": ((6, 9), "a BPF_MAP_TYPE_ARENA map"),
    "obj_arena_globals.c": ((6, 9), "a BPF_MAP_TYPE_ARENA map (for its __arena globals)"),
    "struct_ops_cc.c": ((6, 4), "a .struct_ops.link map (struct_ops with BPF_F_LINK)"),
    "freplace_xdp.c": ((5, 10), "freplace links (BPF_LINK_CREATE of BPF_PROG_TYPE_EXT)"),
}
"""Objects (by source name) that no kernel before the version can load, and why: every
test building one skips there, from `bpf_build`."""


@dataclass(frozen=True)
class KernelLimit:
    """A test (node id; without parameters: every parametrisation) a kernel cannot run."""

    nodeid: str
    applies: Callable[[str, tuple[int, int]], bool]
    """Whether a kernel of this (arch, (major, minor)) cannot run it."""
    reason: str


KERNEL_LIMITS: tuple[KernelLimit, ...] = (
    KernelLimit("integration/test_attach.py::test_iter_task_one_process",
                lambda arch, v: v < (6, 1),
                "a task iterator over one process (bpf_iter_link_info.task, Linux 6.1+; "
                "older kernels ignore it and walk every task)"),
)
# (BPF trampolines on arm64 before 6.4 load but cannot attach: bpfobj raises
# NotSupportedError naming them, and test_trampoline / test_lsm_cgroup skip themselves)


@dataclass(frozen=True)
class KnownFailure:
    """A test that fails on some kernels for a reason outside the kernel (a bug in bpfobj or
    in the test, reported to its owner): marked xfail there, so that the kernel matrix stays
    green and still shows it. Strict in the matrix guests, whose kernels the bounds were
    checked on (once it passes there, the entry must go); lenient on other kernels."""

    nodeid: str
    applies: Callable[[str, tuple[int, int]], bool]
    reason: str
    raises: type[BaseException] | None = None


KNOWN_FAILURES: tuple[KnownFailure, ...] = ()
# (none at present: the kernel-layer bugs once listed here are fixed)


def _version(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def _matches(item: pytest.Item, nodeid: str) -> bool:
    return item.nodeid == nodeid or item.nodeid.split("[", 1)[0] == nodeid


def _mark_kernel_limits(items: list[pytest.Item]) -> None:
    for needs in KERNEL_LIMITS:
        if needs.applies(ARCH, KERNEL):
            for item in items:
                if _matches(item, needs.nodeid):
                    item.add_marker(pytest.mark.skip(
                        reason=f"{needs.reason}; this kernel is {platform.release()}"))
    for known in KNOWN_FAILURES:
        if known.applies(ARCH, KERNEL):
            for item in items:
                if _matches(item, known.nodeid):
                    item.add_marker(pytest.mark.xfail(reason=known.reason, raises=known.raises,
                                                      strict=IN_VM))


def _check_object_needs(source: str | Path) -> None:
    needs = OBJECT_NEEDS.get(Path(source).name)
    if needs is not None and needs[0] > KERNEL:
        pytest.skip(f"{Path(source).name} needs {needs[1]} (Linux {_version(needs[0])}+); "
                    f"this kernel is {platform.release()}")


# -- building objects ------------------------------------------------------------------------


def source_key(source: str | Path) -> str:
    """How prebuilt.json names a source: a name under tests/progs, else a path relative to
    the checkout (the guest sees it at /src, the host elsewhere)."""
    path = Path(source)
    if not path.is_absolute():
        return str(source)
    if path.parent == PROGS:
        return path.name
    if ROOT in path.parents:
        return path.relative_to(ROOT).as_posix()
    return str(source)


def _prebuilt(source: str | Path, **options: Any) -> Path:
    try:
        return vm.prebuilt_object(source_key(source), **options)
    except LookupError as exc:
        pytest.skip(f"not prebuilt for the guest (it has no compiler): {exc}")


@pytest.fixture(scope="session")
def bpf_build() -> Callable[..., Path]:
    """``bpf_build(source, **options)``: tests/bpfbuild.py's `build` on the host (skipped
    without clang-19, as tests/conftest.py's fixture), the host's prebuilt object in a
    guest. Either way an object the running kernel cannot load (OBJECT_NEEDS) skips."""
    if IN_VM:
        build: Callable[..., Path] = _prebuilt
    else:
        import bpfbuild

        if not bpfbuild.have_clang():
            pytest.skip("clang-19 is not installed (apt-get install clang-19)")
        build = bpfbuild.build

    def checked(source: str | Path, **options: Any) -> Path:
        _check_object_needs(source)
        return build(source, **options)

    return checked


GENERATED_SRC = ROOT / "build" / "integration-src"
"""Where tests write BPF C sources they hold as strings (vm.GENERATED_SOURCES prebuilds
them for the guests from the same path)."""


@pytest.fixture(scope="session")
def bpf_build_text(bpf_build: Callable[..., Path]) -> Callable[[str, str], Path]:
    """``bpf_build_text(name, text)``: the BPF C source `text` written to GENERATED_SRC/`name`
    (atomically, only when it changed) and built against vmlinux.h by `bpf_build`."""

    def build(name: str, text: str) -> Path:
        GENERATED_SRC.mkdir(parents=True, exist_ok=True)
        src = GENERATED_SRC / name
        if not src.exists() or src.read_text() != text:
            tmp = src.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.rename(src)
        return bpf_build(src, vmlinux=True)

    return build


@pytest.fixture
def attached_source(bpf_build_text: Callable[[str, str], Path],
                    pin_root: str) -> Iterator[Callable[[str, str], BpfObject]]:
    """``attached_source(name, text)``: the object `bpf_build_text` builds, opened, loaded
    (pinned maps under `pin_root`) and every program attached; the links and the object are
    closed after the test."""
    from bpfobj import BpfObject
    from bpfobj.attach import attach_all

    with ExitStack() as stack:

        def load(name: str, text: str) -> BpfObject:
            obj = stack.enter_context(BpfObject.open(bpf_build_text(name, text)))
            obj.load(pin_root=pin_root)
            for link in reversed(attach_all(obj)):  # closed in attach order, then obj
                stack.callback(link.close)
            return obj

        yield load


@pytest.fixture
def alarm() -> Iterator[None]:
    """Turn a test blocked for good (a consumer waiting for records that never come) into
    a failure: SIGALRM after 60 s raises in the blocked epoll_wait."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError("blocked for 60 s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def bpf_arch_options() -> dict[str, Any]:
    """``bpf_build`` options for objects whose programs read pt_regs (bpf_tracing.h's
    BPF_KPROBE, BPF_KSYSCALL, PT_REGS_*): the running kernel's arch (empty on x86_64)."""
    return vm.bpf_arch_options()


@pytest.fixture(scope="session")
def helper_program() -> Callable[[str], Path]:
    """``helper_program(name)``: the helper program `name` of `integration.vm.HELPERS`
    (tests/userprogs) that uprobes and USDT attach to: in a guest the one the host built for
    the guest's arch, on the host built here with gcc; skipping, naming it, when it is
    missing or cannot be built."""

    def lookup(name: str) -> Path:
        try:
            return vm.prebuilt_helper(name) if IN_VM else vm.host_helper(name)
        except LookupError as exc:
            pytest.skip(str(exc))

    return lookup


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
    ours = [
        item for item in items
        if here in (path := Path(str(item.fspath)).resolve()).parents
        and not (path.parent == here and path.name in HOST_ONLY)
    ]
    if not ours:
        return
    _mark_kernel_limits(ours)
    if _MISSING is None:
        _MISSING = _missing()
    if _MISSING:
        marker = pytest.mark.skip(reason="integration tests need " + "; ".join(_MISSING))
        for item in ours:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def info_attach_btf_id() -> Callable[[int], int]:
    """What bpf_prog_info.attach_btf_id reports for a program loaded with `attach_btf_id`:
    the field is filled from Linux 5.16 on (0 before: 5.10 leaves it out)."""
    reported = KERNEL >= (5, 16)
    return lambda attach_btf_id: attach_btf_id if reported else 0


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


@pytest.fixture
def test_cgroup(request: pytest.FixtureRequest) -> Iterator[str]:
    """A cgroup v2 directory of its own for the test (removed afterwards); skips naming the
    missing cgroup2 mount."""
    import contextlib

    from bpfobj.attach import cgroup as cgroup_mod
    from bpfobj.errors import NotSupportedError

    try:
        root = cgroup_mod.cgroup2_mount()
    except NotSupportedError as exc:
        pytest.skip(str(exc))
    module = request.module.__name__.rsplit(".", 1)[-1]
    path = os.path.join(root, f"bpfobj-{module}-{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(path)
