"""Boot Debian kernels under qemu and run a command inside them: the kernel matrix.

    python -m integration.vm --arch arm64 --kernel 6.1 -- pytest integration/guest
    python -m integration.vm matrix [-- CMD ...]     # x86_64 and arm64 x 5.10, 6.1, 6.12, 7.3
    python -m integration.vm fetch [--arch A] [--kernel K]   # only fill the caches
    python -m integration.vm prebuild                # only compile the guest's BPF objects

Everything is cached under build/vm/, keyed so that a rerun downloads and rebuilds nothing:

- ``apt/``: a private apt configuration (own sources list, lists and archive dirs; /etc/apt is
  only read for the mirror URL) used to download Debian's kernel and Python packages.
- ``kernels/<arch>/<package>/``: ``vmlinuz``, ``config``, the modules needed to mount 9p
  (decompressed, dependencies from each module's ``.modinfo`` since the .debs ship no
  modules.dep) and ``meta.json``; ``kernels/<arch>-<line>.json`` records which package a kernel
  line resolved to (pinned name first, else the newest name of the line that downloads).
- ``pyroot/<arch>-<key>.cpio``: a guest root with busybox and Python 3.11 from Debian bookworm
  (``dpkg-deb -x``, no maintainer scripts), pure-Python wheels (pytest, the project's runtime
  dependencies) and byte-compiled with unchecked-hash pycs.
- ``initramfs/<arch>-<line>-<key>.cpio``: the guest root plus the kernel part (init script,
  modules, kernel config). Each run appends a small per-run cpio (command, exit token).
- ``prebuilt.json``: what the guests need compiled, since they have no compiler: the named
  objects of the offline guest test (PREBUILT), every object the kernel-layer tests build
  (`guest_objects`, per arch: objects reading pt_regs are compiled with
  ``-D__TARGET_ARCH_arm64`` and a vmlinux.h dumped from an arm64 kernel's BTF, taken from its
  image) into build/test-objs, and the uprobe/USDT target programs (tests/userprogs) per arch
  into build/test-bin/<arch>/ (gcc, aarch64-linux-gnu-gcc). In a guest,
  integration/conftest.py's ``bpf_build`` returns these (`prebuilt_object`).
- ``runs/<arch>-<line>/``: ``console.log``, ``run.json`` and ``results/`` (shared read-write
  with the guest as /results: junit.xml, the guest's BTF).

The guest sees the checkout read-only at /src (9p, cache=loose) and runs the command there with
``PYTEST_ADDOPTS`` pointing junit XML at /results; the default command is the curated guest
suite (DEFAULT_COMMAND). Kernels with CONFIG_BPF_LSM boot with the BPF LSM enabled (lsm=).
Exit status: the command's, 124 on timeout, 125 when the guest printed no exit marker (kernel
panic, init failure); ``matrix`` exits 1 when a pair fails and names it on its last line. The
guest's /sys/kernel/btf files land in build/btf-corpus/<arch>/<release>/ (index.json lists
them). ``BPFOBJ_VM_BREAK=arm64/6.1`` (comma-separated pairs) makes
integration/guest/test_guest_break.py fail on those pairs: a check that a broken pair fails
the matrix.

Stdlib only: the host needs apt-get, dpkg-deb, qemu-system-x86 / qemu-system-arm and pip, and
for the guest objects clang-19, bpftool, gcc and gcc-aarch64-linux-gnu (.ci/setup installs
them).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import gzip
import hashlib
import importlib.util
import io
import json
import lzma
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import threading
import time
import tomllib
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
VM_DIR = ROOT / "build" / "vm"
CORPUS_DIR = ROOT / "build" / "btf-corpus"
PREBUILT_MANIFEST = VM_DIR / "prebuilt.json"
CACHE_VERSION = "2"
"""Part of every cache key: bump it to rebuild every artefact."""

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEFAULT_MIRRORS = {
    "debian": "http://deb.debian.org/debian",
    "debian-security": "http://deb.debian.org/debian-security",
}

EXIT_TIMEOUT = 124
EXIT_NO_MARKER = 125
DEFAULT_TIMEOUT = 900.0
GUEST_TESTS = (
    "integration/guest", "integration/test_load.py", "integration/test_maps.py",
    "integration/test_attach.py", "integration/test_core_modes.py", "integration/test_ringbuf.py",
    "integration/test_perfbuf.py", "integration/test_storage.py",
    "integration/test_user_ringbuf.py", "integration/test_arena.py",
    "integration/test_arena_globals.py",
    "integration/test_struct_ops.py", "integration/test_freplace.py",
)
GUEST_DESELECT = (
    "test_open_load_close_1000_times_leaks_no_fd",  # fd hygiene, not the kernel: 80 s in TCG
    "test_no_loss_while_the_producer_is_the_limit",  # a throughput race TCG cannot keep up with
)
DEFAULT_COMMAND = ("pytest", "-q", *(t for t in GUEST_TESTS if (ROOT / t).exists()),
                   "-k", " and ".join(f"not {name}" for name in GUEST_DESELECT))
"""The curated guest suite of the matrix (and of .ci/run): every kernel-layer test module
(those of this checkout) but test_examples, whose fixture runs examples/build.sh, which needs
clang; without the two tests that measure the emulator rather than the kernel."""
GUEST_SRC = "/src"
GUEST_RESULTS = "/results"
MARKER = "VMEXIT"


class VmError(Exception):
    """A set-up step failed (download, extraction, build): reported as one line."""


_START = time.monotonic()


def log(msg: str) -> None:
    print(f"vm [{time.monotonic() - _START:6.1f}s] {msg}", file=sys.stderr, flush=True)


# -- architectures and kernel lines -------------------------------------------------------


@dataclass(frozen=True)
class Arch:
    name: str
    """bpfobj's name (x86_64, arm64)."""
    deb: str
    """Debian's architecture (amd64, arm64)."""
    uname: str
    """`uname -m` of such a host (x86_64, aarch64)."""
    qemu: str
    console: str
    tcg: tuple[str, ...]
    kvm: tuple[str, ...]


ARCHES: dict[str, Arch] = {
    "x86_64": Arch(
        "x86_64", "amd64", "x86_64", "qemu-system-x86_64", "ttyS0",
        tcg=("-machine", "q35,accel=tcg", "-cpu", "max"),
        kvm=("-machine", "q35,accel=kvm", "-cpu", "host"),
    ),
    "arm64": Arch(
        "arm64", "arm64", "aarch64", "qemu-system-aarch64", "ttyAMA0",
        # pauth-impdef: the architected QARMA pointer authentication is slow under TCG
        tcg=("-machine", "virt,gic-version=3", "-accel", "tcg,thread=multi",
             "-cpu", "max,pauth-impdef=on"),
        kvm=("-machine", "virt,gic-version=host", "-accel", "kvm", "-cpu", "host"),
    ),
}
ARCH_ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64"}


def arch_named(name: str) -> Arch:
    try:
        return ARCHES[ARCH_ALIASES.get(name, name)]
    except KeyError:
        raise VmError(f"unknown arch {name!r} (choose from {', '.join(ARCHES)})") from None


@dataclass(frozen=True)
class KernelLine:
    """A kernel line and the Debian package names that provide it.

    Security updates retire ABI names, so `pinned` is tried first and then every name matching
    `pattern` (``{arch}`` is the Debian arch; its groups are the version numbers), newest first.
    `companions` are package prefixes that replace the main package's prefix for split kernels
    (7.x: linux-binary has vmlinuz, linux-modules the modules, linux-base modules.builtin).
    """

    line: str
    pinned: Mapping[str, str]
    pattern: str
    companions: tuple[str, ...] = ()

    def regex(self, deb_arch: str) -> re.Pattern[str]:
        return re.compile(self.pattern.replace("{arch}", re.escape(deb_arch)))

    def companion_names(self, main: str) -> tuple[str, ...]:
        m = re.match(r"linux-[a-z]+-", main)
        assert m, main
        flavour = main[m.end():]
        return tuple(prefix + flavour for prefix in self.companions)


def _both(template: str) -> dict[str, str]:
    return {deb: template.format(arch=deb) for deb in ("amd64", "arm64")}


KERNELS: dict[str, KernelLine] = {
    # bullseye-security has no downloadable arm64 .debs (404): arm64 stays on bullseye's -32.
    "5.10": KernelLine(
        "5.10",
        {"amd64": "linux-image-5.10.0-46-amd64", "arm64": "linux-image-5.10.0-32-arm64"},
        r"linux-image-5\.10\.0-(\d+)-{arch}",
    ),
    "6.1": KernelLine("6.1", _both("linux-image-6.1.0-56-{arch}"), r"linux-image-6\.1\.0-(\d+)-{arch}"),
    "6.12": KernelLine(
        "6.12", _both("linux-image-6.12.117+deb12-{arch}"), r"linux-image-6\.12\.(\d+)\+deb12-{arch}"
    ),
    "7.3": KernelLine(
        "7.3",
        _both("linux-binary-7.3.4+deb13-{arch}"),
        r"linux-binary-7\.3\.(\d+)\+deb13-{arch}",
        companions=("linux-modules-", "linux-base-"),
    ),
}


def kernel_line(name: str) -> KernelLine:
    try:
        return KERNELS[name]
    except KeyError:
        raise VmError(f"unknown kernel line {name!r} (choose from {', '.join(KERNELS)})") from None


def package_sets(kl: KernelLine, deb_arch: str, available: Collection[str]) -> list[tuple[str, ...]]:
    """The package sets to try for a kernel line, best first: the pinned name when the lists
    have it, then the other names of the line, newest first; sets with a missing companion
    are left out."""
    rx = kl.regex(deb_arch)
    found: list[tuple[tuple[int, ...], str]] = []
    for name in available:
        m = rx.fullmatch(name)
        if m:
            found.append((tuple(int(g) for g in m.groups()), name))
    names = [name for _, name in sorted(found, reverse=True)]
    pinned = kl.pinned[deb_arch]
    if pinned in names:
        names.remove(pinned)
        names.insert(0, pinned)
    sets = []
    for name in names:
        group = (name, *kl.companion_names(name))
        if all(c in available for c in group[1:]):
            sets.append(group)
    return sets


# -- kernel modules -------------------------------------------------------------------------

BOOT_MODULES = ("virtio_pci", "virtio_rng", "9pnet_virtio", "9p")
"""Needed to boot: the PCI transport, entropy (Python's getrandom blocks without it on 5.10)
and the 9p file system. Their dependencies (virtio, virtio_ring, virtio_pci_*_dev, 9pnet,
fscache, netfs) come from .modinfo."""
EXTRA_MODULES = ("veth", "dummy", "sch_ingress", "cls_bpf", "act_bpf")
"""Loaded when the kernel ships them as modules, for the kernel-layer tests (tc, xdp)."""

_MODULE_SUFFIX = re.compile(r"\.ko(\.xz|\.gz|\.zst)?$")


def module_name(path: str) -> str:
    """The module name of a path in a kernel tree: ``.../9pnet_virtio.ko.xz`` -> 9pnet_virtio."""
    base = path.rsplit("/", 1)[-1]
    return _MODULE_SUFFIX.sub("", base).replace("-", "_")


def decompress_module(path: str, data: bytes) -> bytes:
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        if shutil.which("zstd") is None:
            raise VmError(f"{path}: zstd-compressed module and no zstd on this host")
        return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    return data


def parse_modinfo(elf: bytes) -> dict[str, list[str]]:
    """The key=value strings of a module's ``.modinfo`` section (an ELF64 or ELF32 file of
    either byte order); a key may appear several times (alias=)."""
    if elf[:4] != b"\x7fELF":
        raise VmError("not an ELF file")
    is64 = elf[4] == 2
    end = "<" if elf[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", elf, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", elf, 0x3A)
        sh_fmt = end + "IIQQQQ"
    else:
        shoff, = struct.unpack_from(end + "I", elf, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", elf, 0x2E)
        sh_fmt = end + "IIIIII"

    def section(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, off, size = struct.unpack_from(sh_fmt, elf, shoff + i * shentsize)
        return name, off, size

    _, stroff, strsize = section(shstrndx)
    strtab = elf[stroff:stroff + strsize]
    info: dict[str, list[str]] = {}
    for i in range(shnum):
        name_off, off, size = section(i)
        name = strtab[name_off:strtab.index(b"\0", name_off)]
        if name != b".modinfo":
            continue
        for item in elf[off:off + size].split(b"\0"):
            key, sep, value = item.decode("utf-8", "replace").partition("=")
            if sep:
                info.setdefault(key, []).append(value)
    return info


def module_depends(info: Mapping[str, Sequence[str]]) -> list[str]:
    deps: list[str] = []
    for value in info.get("depends", ()):
        deps += [d.replace("-", "_") for d in value.split(",") if d]
    return deps


def builtin_modules(text: str) -> set[str]:
    """Module names from a modules.builtin file (one path a line)."""
    return {module_name(line.strip()) for line in text.splitlines() if line.strip()}


def resolve_modules(
    required: Sequence[str],
    optional: Sequence[str],
    depends: Callable[[str], list[str] | None],
    builtin: Collection[str],
) -> list[str]:
    """The modules to insmod, dependencies first. `depends(name)` gives a shipped module's
    dependencies, None when the kernel does not ship it. A required module (or a dependency)
    that is neither built in nor shipped is an error; a missing optional one is left out."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in builtin or state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise VmError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        deps = depends(name)
        if deps is None:
            via = f" (needed by {chain[-1]})" if chain else ""
            raise VmError(f"module {name}{via} is neither built in nor shipped")
        state[name] = "visiting"
        for dep in deps:
            visit(dep, (*chain, name))
        state[name] = "done"
        order.append(name)

    for name in required:
        visit(name, ())
    for name in optional:
        if name in builtin or depends(name) is None:
            continue
        visit(name, ())
    return order


def modules_dep(order: Sequence[str], depends: Callable[[str], list[str] | None]) -> str:
    """A modules.dep for busybox modprobe (paths relative to /lib/modules/<release>/): each
    module's shipped dependencies, transitively, the one to load first last (as depmod)."""
    shipped = set(order)

    def closure(name: str, seen: list[str]) -> list[str]:
        for dep in depends(name) or []:
            if dep in shipped and dep not in seen:
                closure(dep, seen)
                seen.append(dep)
        return seen

    lines = []
    for name in order:
        deps = " ".join(f"{d}.ko" for d in reversed(closure(name, [])))
        lines.append(f"{name}.ko:{' ' + deps if deps else ''}")
    return "\n".join(lines) + "\n"


# -- cpio (newc) ----------------------------------------------------------------------------


def pad4(n: int) -> int:
    """Bytes of padding after `n` bytes to reach a multiple of 4."""
    return (4 - n % 4) % 4


class CpioWriter:
    """Writes a newc ("070701") cpio archive as the kernel's initramfs unpacker reads it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.ino = 300000
        self.written = 0
        self.names: set[str] = set()

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.written += len(data)

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1,
               rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.lstrip("/") or "."
        self.ino += 1
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._write(header + name.encode() + b"\0")
        self._write(b"\0" * pad4(len(header) + len(name) + 1))
        self._write(data)
        self._write(b"\0" * pad4(len(data)))
        self.names.add(name)

    def dir(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode, nlink=2)

    def dirs(self, name: str) -> None:
        """`name` and its missing parents."""
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in self.names:
                self.dir(sub)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def tree(self, top: Path, prefix: str = "") -> None:
        """Everything under `top` (sorted, owners root, times 0), placed under `prefix`."""
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            rel = os.path.relpath(dirpath, top)
            base = prefix.strip("/") if rel == "." else f"{prefix.strip('/')}/{rel}".strip("/")
            if base and base not in self.names:
                self.dir(base, stat.S_IMODE(os.lstat(dirpath).st_mode))
            for entry in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = os.path.join(dirpath, entry)
                name = f"{base}/{entry}" if base else entry
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    self.symlink(name, os.readlink(path))
                elif stat.S_ISREG(st.st_mode):
                    self.file(name, Path(path).read_bytes(), stat.S_IMODE(st.st_mode))

    def trailer(self) -> None:
        self._entry("TRAILER!!!", 0)


def cpio_bytes(build: Callable[[CpioWriter], None]) -> bytes:
    buf = io.BytesIO()
    w = CpioWriter(buf)
    build(w)
    w.trailer()
    return buf.getvalue()


def read_cpio(data: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, data) of every entry of a concatenation of newc archives (tests and
    debugging; stops at a member that is not newc, e.g. a compressed one)."""
    out: dict[str, tuple[int, bytes]] = {}
    pos = 0
    while pos + 110 <= len(data):
        if data[pos:pos + 4] == b"\0\0\0\0":  # padding between archives
            pos += 4
            continue
        if data[pos:pos + 6] != b"070701":
            raise ValueError(f"bad cpio magic at {pos}")
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode()
        body = name_start + namesize + pad4(110 + namesize)
        if name != "TRAILER!!!":
            out[name] = (mode, data[body:body + size])
        pos = body + size + pad4(size)
    return out


# -- the guest's init -----------------------------------------------------------------------

INIT_TEMPLATE = r"""#!/bin/busybox sh
# bpfobj integration VM init (generated by integration/vm.py; runs as PID 1)
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root
mkdir -p /proc /sys /dev /tmp /run /root /var
[ -e /var/run ] || ln -s /run /var/run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t securityfs securityfs /sys/kernel/security
ulimit -l unlimited
ip link set lo up 2>/dev/null
hostname {hostname}
while read -r mod; do
    insmod "/lib/modules/{release}/$mod.ko" || echo "vm-init: insmod $mod failed"
done < /etc/vm/modules
mkdir -p {src} {results}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro src {src} || echo "vm-init: cannot mount {src}"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results {results} || echo "vm-init: cannot mount {results}"
. /run/vm/env
if [ "$VM_COLLECT_BTF" = 1 ] && [ -r /sys/kernel/btf/vmlinux ]; then
    mkdir -p {results}/btf
    for f in /sys/kernel/btf/*; do cp "$f" "{results}/btf/${{f##*/}}"; done
fi
uname -r > {results}/release
cd {src}
sh /run/vm/command < /dev/null
rc=$?
sync
printf '\n%s:%s:%s\n' {marker} "$VM_TOKEN" "$rc"
reboot -f
"""


def init_script(release: str, hostname: str) -> str:
    return INIT_TEMPLATE.format(
        release=release, hostname=hostname, src=GUEST_SRC, results=GUEST_RESULTS, marker=MARKER
    )


PASS_ENV = ("BPFOBJ_VM_BREAK",)
"""Host variables handed to the guest's command when set (BPFOBJ_VM_BREAK=arm64/6.1 makes
integration/guest/test_guest_break.py fail on that pair: a check of the failure path)."""


def guest_env(arch: Arch, line: str) -> dict[str, str]:
    """The environment of the guest's command."""
    return {
        "PYTHONPATH": GUEST_SRC,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUTF8": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTEST_ADDOPTS": f"--color=no -p no:cacheprovider --junitxml={GUEST_RESULTS}/junit.xml",
        "HYPOTHESIS_STORAGE_DIRECTORY": "/tmp/hypothesis",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "COLUMNS": "160",
        "USER": "root",
        "BPFOBJ_VM": "1",
        "BPFOBJ_VM_ARCH": arch.name,
        "BPFOBJ_VM_KERNEL": line,
        "BPFOBJ_VM_RESULTS": GUEST_RESULTS,
        **{k: os.environ[k] for k in PASS_ENV if os.environ.get(k)},
    }


def run_cpio(token: str, command: Sequence[str], env: Mapping[str, str], collect_btf: bool) -> bytes:
    """The per-run cpio appended to the cached initramfs: /run/vm/{env,command}."""
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    script = f"{exports}{shlex.join(command)}\n"
    vm_env = f"VM_TOKEN={token}\nVM_COLLECT_BTF={int(collect_btf)}\n"

    def build(w: CpioWriter) -> None:
        w.dirs("run/vm")
        w.file("run/vm/env", vm_env.encode())
        w.file("run/vm/command", script.encode(), 0o755)

    return cpio_bytes(build)


def parse_marker(line: str, token: str) -> int | None:
    """The exit status in a console line carrying this run's marker, else None."""
    m = re.search(rf"{MARKER}:{re.escape(token)}:(\d+)", line)
    return int(m.group(1)) if m else None


# -- apt ------------------------------------------------------------------------------------


def parse_sources(text: str) -> dict[str, str]:
    """suite -> archive URI from a deb822 .sources file or one-line sources.list text."""
    out: dict[str, str] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "uris" in fields and "suites" in fields:
            for suite in fields["suites"].split():
                out.setdefault(suite, fields["uris"].split()[0])
    for line in text.splitlines():
        m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m:
            out.setdefault(m.group(2), m.group(1))
    return out


def mirrors(sources: Mapping[str, str]) -> dict[str, str]:
    """The main archive and the security archive URIs (Debian's defaults where unknown)."""
    main = sources.get("bookworm") or next(
        (u for s, u in sources.items() if "security" not in s), DEFAULT_MIRRORS["debian"]
    )
    security = sources.get("bookworm-security") or next(
        (u for s, u in sources.items() if "security" in s), DEFAULT_MIRRORS["debian-security"]
    )
    return {"debian": main.rstrip("/"), "debian-security": security.rstrip("/")}


def sources_list(m: Mapping[str, str], keyring: Path | None) -> str:
    opts = "arch=amd64,arm64" + (f" signed-by={keyring}" if keyring else "")
    lines = [
        ("debian", "bookworm"),
        ("debian-security", "bookworm-security"),
        ("debian", "bullseye"),
        ("debian-security", "bullseye-security"),
        ("debian", "trixie-backports"),
    ]
    return "".join(f"deb [{opts}] {m[archive]} {suite} main\n" for archive, suite in lines)


class Apt:
    """apt-get with a private configuration under `base` (never /etc/apt or /var/lib/apt)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.lock = threading.Lock()
        self.updated = False
        self._names: set[str] | None = None
        host = HOST_SOURCES.read_text() if HOST_SOURCES.exists() else ""
        if not host and Path("/etc/apt/sources.list").exists():
            host = Path("/etc/apt/sources.list").read_text()
        self.sources = sources_list(mirrors(parse_sources(host)), KEYRING if KEYRING.exists() else None)

    def options(self) -> list[str]:
        b = self.base
        return [
            "-o", f"Dir::Etc::SourceList={b / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::State::Lists={b / 'lists'}",
            "-o", f"Dir::Cache::Archives={b / 'archives'}",
            "-o", "APT::Architectures::=amd64",
            "-o", "APT::Architectures::=arm64",
            "-o", "APT::Sandbox::User=root",
        ]

    def update(self) -> None:
        with self.lock:
            if self.updated:
                return
            for sub in ("lists/partial", "archives/partial"):
                (self.base / sub).mkdir(parents=True, exist_ok=True)
            (self.base / "sources.list").write_text(self.sources)
            log("apt-get update (private lists under build/vm/apt)")
            proc = subprocess.run(
                ["apt-get", *self.options(), "-q", "update"], capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise VmError(f"apt-get update failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
            self.updated = True
            self._names = None

    def names(self) -> set[str]:
        """Every package name the private lists know (all architectures)."""
        self.update()
        with self.lock:
            if self._names is None:
                proc = subprocess.run(
                    ["apt-cache", *self.options(), "pkgnames"], capture_output=True, text=True,
                    check=True,
                )
                self._names = set(proc.stdout.split())
            return self._names

    def download(self, packages: Sequence[str], deb_arch: str, dest: Path) -> list[Path]:
        """Download `packages` for `deb_arch` into `dest`; raises VmError when one fails."""
        self.update()
        dest.mkdir(parents=True, exist_ok=True)
        with self.lock:
            tmp = dest / f".download-{os.getpid()}-{threading.get_ident()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                proc = subprocess.run(
                    ["apt-get", *self.options(), "-q", "download",
                     *(f"{p}:{deb_arch}" for p in packages)],
                    cwd=tmp, capture_output=True, text=True,
                )
                if proc.returncode != 0:
                    raise VmError(
                        f"apt-get download {' '.join(packages)} ({deb_arch}) failed: "
                        f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}"
                    )
                paths = []
                for pkg in packages:
                    (deb,) = tmp.glob(f"{pkg}_*_{deb_arch}.deb") or tmp.glob(f"{pkg}_*_all.deb")
                    target = dest / deb.name
                    deb.replace(target)
                    paths.append(target)
                return paths
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


_apt: Apt | None = None
_apt_lock = threading.Lock()


def apt() -> Apt:
    global _apt
    with _apt_lock:
        if _apt is None:
            _apt = Apt(VM_DIR / "apt")
        return _apt


# -- small file helpers ---------------------------------------------------------------------


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between vm.py processes (build steps, runs of one pair)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def deb_members(deb: Path) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """Stream the data members of a .deb (``dpkg-deb --fsys-tarfile``), in archive order."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                yield member, tar.extractfile(member) if member.isfile() else None
    finally:
        proc.stdout.close()
        if proc.wait() != 0:
            raise VmError(f"dpkg-deb --fsys-tarfile {deb.name} failed")


# -- kernels --------------------------------------------------------------------------------


@dataclass
class Kernel:
    """An extracted kernel in the cache."""

    arch: Arch
    line: str
    dir: Path
    packages: list[str]
    version: str
    release: str
    modules: list[str]
    """Module names in load order (each in dir/modules/<name>.ko)."""
    depends: dict[str, list[str]]
    builtin: list[str]
    """The boot modules this kernel has built in."""

    @property
    def vmlinuz(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def boot_image(self) -> Path:
        """What qemu's -kernel gets: the PVH vmlinux when there is one, else vmlinuz."""
        vmlinux = self.dir / "vmlinux"
        return vmlinux if vmlinux.exists() else self.vmlinuz

    @property
    def pair(self) -> str:
        return f"{self.arch.name}-{self.line}"

    @classmethod
    def load(cls, arch: Arch, line: str, d: Path) -> Kernel | None:
        meta = read_json(d / "meta.json")
        if not isinstance(meta, dict) or meta.get("cache") != CACHE_VERSION:
            return None
        if not (d / "vmlinuz").exists():
            return None
        return cls(arch, line, d, meta["packages"], meta["version"], meta["release"],
                   meta["modules"], meta["depends"], meta["builtin"])


def extract_kernel(debs: Sequence[Path], dest: Path, pvh: bool = False) -> dict[str, Any]:
    """Keep from the kernel .debs only vmlinuz, config and the modules the guest loads; with
    `pvh` (x86) also the uncompressed vmlinux when the kernel has a PVH entry (CONFIG_PVH)."""
    kos: dict[str, tuple[str, bytes]] = {}
    vmlinuz = config = builtin_text = None
    release = ""
    for deb in debs:
        for member, f in deb_members(deb):
            name = member.name.lstrip("./")
            m = re.match(r"(?:usr/)?lib/modules/([^/]+)/", name)
            if m and not release:
                release = m.group(1)
            if f is None:
                continue
            if re.fullmatch(r"boot/vmlinu[xz]-.*|(?:usr/)?lib/modules/[^/]+/vmlinuz", name):
                vmlinuz = f.read()
            elif re.fullmatch(r"boot/config-.*|(?:usr/)?lib/modules/[^/]+/config", name):
                config = f.read()
            elif re.fullmatch(r"(?:usr/)?lib/modules/[^/]+/modules\.builtin", name):
                builtin_text = f.read().decode()
            elif _MODULE_SUFFIX.search(name):
                kos[module_name(name)] = (name, f.read())
    if vmlinuz is None or not release:
        raise VmError(f"no vmlinuz in {', '.join(d.name for d in debs)}")
    builtin = builtin_modules(builtin_text or "")
    elf: dict[str, bytes] = {}
    depends: dict[str, list[str]] = {}

    def deps_of(name: str) -> list[str] | None:
        if name not in kos:
            return None
        if name not in depends:
            path, data = kos[name]
            elf[name] = decompress_module(path, data)
            depends[name] = module_depends(parse_modinfo(elf[name]))
        return depends[name]

    order = resolve_modules(BOOT_MODULES, EXTRA_MODULES, deps_of, builtin)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "modules").mkdir(parents=True)
    (tmp / "vmlinuz").write_bytes(vmlinuz)
    if config is not None:
        (tmp / "config").write_bytes(config)
    if pvh and config is not None and b"\nCONFIG_PVH=y\n" in config:
        elf_image = pvh_vmlinux(vmlinuz)
        if elf_image is not None:
            (tmp / "vmlinux").write_bytes(elf_image)
    for name in order:
        (tmp / "modules" / f"{name}.ko").write_bytes(elf[name])
    return {
        "tmp": tmp,
        "release": release,
        "modules": order,
        "depends": {n: depends[n] for n in order},
        "builtin": sorted(m for m in (*BOOT_MODULES, *EXTRA_MODULES) if m in builtin),
    }


_PAYLOAD_MAGICS = (b"\xfd7zXZ\x00", b"\x1f\x8b\x08", b"\x28\xb5\x2f\xfd")


def _decompress_at(data: bytes, magic: bytes) -> bytes | None:
    try:
        if magic.startswith(b"\xfd7zXZ"):
            return lzma.LZMADecompressor().decompress(data)
        if magic.startswith(b"\x1f\x8b"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        if shutil.which("zstd") is not None:
            proc = subprocess.run(["zstd", "-dc"], input=data, capture_output=True)
            return proc.stdout or None
    except (lzma.LZMAError, zlib.error):
        pass
    return None


def pvh_vmlinux(bzimage: bytes) -> bytes | None:
    """The uncompressed ELF vmlinux inside an x86 bzImage (as scripts/extract-vmlinux finds
    it), or None. qemu boots it through its PVH entry: the guest then skips decompressing
    itself, which takes ~9 s of an emulated CPU for Debian's xz-compressed kernels."""
    for magic in _PAYLOAD_MAGICS:
        pos = bzimage.find(magic)
        while pos >= 0:
            out = _decompress_at(bzimage[pos:], magic)
            if out is not None and out[:4] == b"\x7fELF":
                return out
            pos = bzimage.find(magic, pos + 1)
    return None


def deb_version(deb: Path) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def ensure_kernel(arch: Arch, line: str) -> Kernel:
    """The cached kernel of (arch, line), downloaded and extracted when missing."""
    kl = kernel_line(line)
    kdir = VM_DIR / "kernels"
    selection = kdir / f"{arch.name}-{line}.json"
    sel = read_json(selection)
    if isinstance(sel, dict) and sel.get("pinned") == kl.pinned[arch.deb]:
        k = Kernel.load(arch, line, kdir / arch.name / sel["package"])
        if k is not None:
            return k
    a = apt()
    sets = package_sets(kl, arch.deb, a.names())
    if not sets:
        raise VmError(f"no package of kernel line {line} for {arch.deb} in the lists")
    errors = []
    for pkgs in sets:
        dest = kdir / arch.name / pkgs[0]
        k = Kernel.load(arch, line, dest)
        if k is None:
            debdir = VM_DIR / "apt" / "debs"
            try:
                log(f"{arch.name} {line}: downloading {' '.join(pkgs)}")
                debs = a.download(pkgs, arch.deb, debdir)
            except VmError as exc:
                errors.append(str(exc))
                log(f"{exc}; trying the next name of the line")
                continue
            log(f"{arch.name} {line}: extracting {pkgs[0]}")
            meta = extract_kernel(debs, dest, pvh=arch.name == "x86_64")
            tmp: Path = meta.pop("tmp")
            meta.update(cache=CACHE_VERSION, packages=list(pkgs), version=deb_version(debs[0]))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
            shutil.rmtree(dest, ignore_errors=True)
            tmp.replace(dest)
            for deb in debs:
                deb.unlink()
            k = Kernel.load(arch, line, dest)
            assert k is not None
        atomic_write(selection, json.dumps({"pinned": kl.pinned[arch.deb], "package": pkgs[0]}).encode())
        return k
    raise VmError(f"kernel line {line} for {arch.deb}: no package set downloads:\n" + "\n".join(errors))


# -- the guest's Python root ----------------------------------------------------------------

PY_DEBS = (
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libgcc-s1",
    "libssl3", "libexpat1", "zlib1g", "libffi8", "libbz2-1.0", "liblzma5", "libcrypt1",
    "libuuid1", "libmpdec3", "busybox-static",
    # ip and tc for the network attach tests (veth pairs, netns, clsact, xdp)
    "iproute2", "libbpf1", "libbsd0", "libmd0", "libcap2", "libelf1", "libmnl0", "libxtables12",
    # sqlite3 for pyroute2 (its NDB imports it)
    "libsqlite3-0",
)
"""Debian bookworm packages of the guest root (the guest's architecture)."""
GUEST_EXTRA_REQUIREMENTS = ("pytest", "hypothesis")
GUEST_SKIP_REQUIREMENTS = ("rich",)
"""Runtime dependencies the guest does without: rich (and its 8 MB of pygments) serves only
the CLI's pretty output, and every MiB of initramfs costs boot time under TCG."""
PRUNE = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/bug",
    "usr/share/locale", "usr/lib/python3.11/ensurepip", "usr/lib/python3.11/idlelib",
    "usr/lib/python3.11/tkinter", "usr/lib/python3.11/turtledemo", "usr/lib/python3.11/lib2to3",
    "usr/lib/python3.11/pydoc_data",
)
"""Paths of the extracted packages the guest never uses."""
PRUNE_GLOBS = ("usr/lib/*/gconv", "lib/*/gconv")


def guest_requirements() -> list[str]:
    """The project's runtime dependencies (pyproject.toml) plus the test tools."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [
        d for d in project.get("dependencies", [])
        if re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0].lower() not in GUEST_SKIP_REQUIREMENTS
    ]
    return [*deps, *GUEST_EXTRA_REQUIREMENTS]


_wheels_lock = threading.Lock()


def ensure_wheels() -> tuple[Path, list[str]]:
    """Pure-Python wheels of the guest requirements (any platform), cached by the list."""
    reqs = guest_requirements()
    d = VM_DIR / "wheels" / digest(CACHE_VERSION, reqs)
    with _wheels_lock:
        if not (d / "done").exists():
            _download_wheels(reqs, d)
    return d, sorted(p.name for p in d.glob("*.whl"))


def _download_wheels(reqs: Sequence[str], d: Path) -> None:
    log(f"pip download {' '.join(reqs)} (pure-Python wheels for the guest)")
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
         "--only-binary=:all:", "--platform", "any", "--python-version", "3.11",
         "--implementation", "py", "--dest", str(tmp), *reqs],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise VmError(f"pip download failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    (tmp / "done").write_text("\n".join(reqs) + "\n")
    shutil.rmtree(d, ignore_errors=True)
    tmp.replace(d)


def console_scripts(entry_points: str) -> dict[str, str]:
    """The scripts pip would write for a wheel's [console_scripts] (entry_points.txt)."""
    out: dict[str, str] = {}
    section = ""
    for raw in entry_points.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
        elif section == "console_scripts" and "=" in line:
            name, _, target = (part.strip() for part in line.partition("="))
            module, _, func = target.partition(":")
            func = func.split("[", 1)[0].strip()
            head, _, attr = func.partition(".")
            out[name] = (
                "#!/usr/bin/python3\nimport sys\n"
                f"from {module.strip()} import {head}\n"
                f"sys.exit({head}{'.' + attr if attr else ''}())\n"
            )
    return out


def host_python311() -> str | None:
    """A host Python 3.11 to write the guest's pycs (same magic number as the guest's)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    return shutil.which("python3.11")


def ensure_pyroot(arch: Arch) -> Path:
    """The guest root cpio for `arch`: busybox, Python 3.11 from bookworm, the wheels."""
    wheels, wheel_names = ensure_wheels()
    key = digest(CACHE_VERSION, arch.deb, PY_DEBS, wheel_names, PRUNE, PRUNE_GLOBS)
    out = VM_DIR / "pyroot" / f"{arch.name}-{key}.cpio"
    if out.exists():
        return out
    start = time.monotonic()
    debs = apt().download(PY_DEBS, arch.deb, VM_DIR / "apt" / "debs" / f"py-{arch.deb}")
    work = VM_DIR / "pyroot" / f"{arch.name}-{key}.tree"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work)], check=True)
    for rel in PRUNE:
        shutil.rmtree(work / rel, ignore_errors=True)
    for pattern in PRUNE_GLOBS:
        for p in work.glob(pattern):
            shutil.rmtree(p, ignore_errors=True)
    site = work / "usr/lib/python3/dist-packages"
    site.mkdir(parents=True, exist_ok=True)
    bindir = work / "usr/bin"
    (bindir / "python3").symlink_to("python3.11")
    (bindir / "python").symlink_to("python3.11")
    for whl in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            names = z.namelist()
            z.extractall(site, [n for n in names if not n.split("/", 1)[0].endswith(".data")])
            for ep in (n for n in names if n.endswith(".dist-info/entry_points.txt")):
                for script, text in console_scripts(z.read(ep).decode()).items():
                    (bindir / script).write_text(text)
                    (bindir / script).chmod(0o755)
    py = host_python311()
    if py is None:
        log("no host python3.11: the guest will compile its imports itself (slower)")
    else:
        subprocess.run(
            [py, "-m", "compileall", "-q", "-q", "-j", "0", "--invalidation-mode",
             "unchecked-hash", "-s", str(work), "-p", "/",
             str(work / "usr/lib/python3.11"), str(site)],
            check=False,
        )
    manifest = {"debs": [d.name for d in debs], "wheels": wheel_names}
    (work / "etc").mkdir(exist_ok=True)
    (work / "etc" / "vm-pyroot.json").write_text(json.dumps(manifest, indent=1) + "\n")
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.tree(work)
    w.trailer()
    atomic_write(out, buf.getvalue())
    for old in out.parent.glob(f"{arch.name}-*.cpio"):
        if old != out:
            old.unlink()
    shutil.rmtree(work)
    shutil.rmtree(debs[0].parent, ignore_errors=True)
    log(f"{arch.name}: guest root {out.stat().st_size >> 20} MiB in {time.monotonic() - start:.1f}s")
    return out


# -- initramfs ------------------------------------------------------------------------------

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def kernel_cpio(kernel: Kernel) -> bytes:
    """The kernel part of the initramfs: init, modules (+ modules.dep), config, /etc, /dev."""
    rel = kernel.release
    modules = kernel.dir / "modules"

    def build(w: CpioWriter) -> None:
        for d in ("dev", "proc", "sys", "tmp", "run", "root", "etc/vm", f"lib/modules/{rel}",
                  "boot", GUEST_SRC, GUEST_RESULTS):
            w.dirs(d)
        w.chardev("dev/console", 5, 1)
        w.chardev("dev/null", 1, 3, 0o666)
        w.file("init", init_script(rel, f"vm-{kernel.pair}").encode(), 0o755)
        w.file("etc/vm/modules", "".join(f"{m}\n" for m in kernel.modules).encode())
        w.file("etc/passwd", PASSWD.encode())
        w.file("etc/group", GROUP.encode())
        for name in kernel.modules:
            w.file(f"lib/modules/{rel}/{name}.ko", (modules / f"{name}.ko").read_bytes())
        w.file(f"lib/modules/{rel}/modules.dep",
               modules_dep(kernel.modules, kernel.depends.get).encode())
        if (kernel.dir / "config").exists():
            w.file(f"boot/config-{rel}", (kernel.dir / "config").read_bytes())

    return cpio_bytes(build)


def ensure_initramfs(arch: Arch, kernel: Kernel) -> Path:
    """The cached initramfs of (arch, kernel): guest root + kernel part (both newc, so the
    concatenation is one valid initramfs; each part is a multiple of 4 bytes long)."""
    pyroot = ensure_pyroot(arch)
    part = kernel_cpio(kernel)
    key = digest(CACHE_VERSION, pyroot.name, hashlib.sha256(part).hexdigest())
    out = VM_DIR / "initramfs" / f"{kernel.pair}-{key}.cpio"
    if not out.exists():
        with open(pyroot, "rb") as f:
            data = f.read()
        atomic_write(out, data + b"\0" * pad4(len(data)) + part)
        for old in out.parent.glob(f"{kernel.pair}-*.cpio"):
            if old != out:
                old.unlink()
    return out


# -- BPF objects for the guest --------------------------------------------------------------


@dataclass(frozen=True)
class Prebuilt:
    name: str
    source: str
    options: Mapping[str, Any] = field(default_factory=dict)
    arch: str | None = None
    """The arch whose pt_regs layout the object was compiled for (None: arch-neutral)."""


PREBUILT = (
    Prebuilt("minimal", "obj_minimal.c"),
    Prebuilt("core", "obj_core.c", {"vmlinux": True}, arch="x86_64"),
    Prebuilt("externs", "obj_externs.c", {"vmlinux": True}),
    Prebuilt("kprobes", "obj_kprobes.c", {}, arch="x86_64"),
    Prebuilt("kprobes-arm64", "obj_kprobes.c",
             {"defines": ("__TARGET_ARCH_arm64",), "tag": "arm64"}, arch="arm64"),
    Prebuilt("execsnoop", "real_execsnoop.c", {"vmlinux": True}, arch="x86_64"),
    Prebuilt("exitsnoop", "real_exitsnoop.c", {"vmlinux": True}, arch="x86_64"),
    Prebuilt("opensnoop", "real_opensnoop.c", {"vmlinux": True}, arch="x86_64"),
    Prebuilt("biolatency", "real_biolatency.c", {"vmlinux": True}, arch="x86_64"),
    Prebuilt("schedstat", "real_schedstat.c", {"vmlinux": True}, arch="x86_64"),
    Prebuilt("subprogs", "real_subprogs.c", {"vmlinux": True}, arch="x86_64"),
)
"""Named objects of the offline guest test (integration/guest/test_guest_offline.py, one
expectation each), compiled on the host. CO-RE ones use the host's vmlinux.h (the point of
CO-RE); `arch` is the pt_regs layout bpf_tracing.h compiled in (x86 by default)."""


def running_arch() -> str:
    """bpfobj's name of the arch the tests run on: a matrix guest's (BPFOBJ_VM_ARCH), else
    this machine's."""
    value = os.environ.get("BPFOBJ_VM_ARCH") or platform.machine()
    return ARCH_ALIASES.get(value, value)


def bpf_arch_options(arch: str | None = None) -> dict[str, Any]:
    """``bpfbuild.build`` options for an object whose programs read registers through
    bpf_tracing.h (BPF_KPROBE, BPF_KRETPROBE, BPF_KSYSCALL, PT_REGS_*): its target arch, the
    running kernel's by default. x86_64 is tests/progs/common.h's default, so the host's
    objects stay as they are; arm64 gets ``-D__TARGET_ARCH_arm64`` (and a tag). The host
    compiles an arm64 guest's copy with an arm64 vmlinux.h (see `arch_btf`)."""
    name = running_arch() if arch is None else ARCH_ALIASES.get(arch, arch)
    if name == "x86_64":
        return {}
    return {"defines": (f"__TARGET_ARCH_{name}",), "tag": name}


@dataclass(frozen=True)
class GuestObject:
    """An object the kernel-layer tests build with ``bpf_build(source, **options)``."""

    source: str
    """A name under tests/progs, or a path relative to the checkout."""
    options: Mapping[str, Any] = field(default_factory=dict)
    btf_arch: str | None = None
    """With ``vmlinux``: the arch whose kernel BTF gives vmlinux.h (None: the host's)."""
    text_from: tuple[str, str] | None = None
    """(Python file, variable): a source the tests write themselves (from a string
    constant of their module) before building it; prebuild writes the same text first."""


REAL_SOURCES = ("real_execsnoop.c", "real_opensnoop.c", "real_exitsnoop.c",
                "real_biolatency.c", "real_schedstat.c", "real_subprogs.c")
SANITIZE_SOURCE = "integration/guest/progs/btf_new_kinds.c"
"""The BTF sanitisation test's object (integration/guest/test_guest_btf.py)."""
REGS_SOURCE = "integration/guest/progs/regs_args.c"
"""The pt_regs argument test's object (integration/guest/test_guest_regs.py)."""
GENERATED_SOURCES = (
    ("build/integration-src/ringbuf_test.bpf.c", ("integration/test_ringbuf.py", "BPF_SRC")),
    ("build/integration-src/perfbuf_test.bpf.c", ("integration/test_perfbuf.py", "BPF_SRC")),
)

HELPERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "uprobe_target": ("uprobe_target.c", ("-O1", "-g")),
    "usdt_target": ("usdt_target.c", ("-O2", "-g")),
}
"""User-space programs the uprobe/USDT tests attach to: tests/userprogs/<source>, built with
gcc for each guest arch (a cross gcc for a foreign arch: gcc-aarch64-linux-gnu)."""


def helper_path(arch: str, name: str, root: Path | None = None) -> Path:
    """Where the prebuilt helper `name` for `arch` lives (under `root`, the checkout's by
    default: a guest passes /src)."""
    return (root or ROOT) / "build" / "test-bin" / arch / f"attach_{name}"


def guest_objects(arch: Arch) -> list[GuestObject]:
    """The objects the kernel-layer tests in a guest of `arch` build, with the options the
    tests pass (test_load, test_maps, test_storage, test_user_ringbuf, test_arena(_globals),
    test_struct_ops, test_freplace, test_attach, test_core_modes, test_ringbuf, test_perfbuf, guest/test_guest_btf). Tests
    keep their C sources under tests/progs (or in a module constant, GENERATED_SOURCES): one
    written into a temporary directory could not be prebuilt, and the test would skip in the
    guests."""
    regs = bpf_arch_options(arch.name)
    regs_btf = arch.name if regs else None
    usdt_target = helper_path(arch.name, "usdt_target", Path(GUEST_SRC))
    objects = [GuestObject(source, {"vmlinux": True}) for source in REAL_SOURCES]
    objects += [
        GuestObject("load_maps.c"),
        GuestObject("load_syscall.c"),
        GuestObject("load_externs.c"),
        GuestObject("load_fail.c", {"vmlinux": True}),
        GuestObject("load_tracepoints.c"),
        GuestObject("load_missing_ksym.c"),
        GuestObject("obj_minimal.c", {"target": "bpfeb", "tag": "bpfeb"}),
        GuestObject("obj_maps.c"),
        GuestObject("obj_bloom.c"),
        GuestObject("load_storage.c", {"vmlinux": True}),
        GuestObject("load_storage_lsm.c", {"vmlinux": True}),
        GuestObject("load_user_ringbuf.c"),
        GuestObject("load_arena.c", {"vmlinux": True}),
        GuestObject("load_arena.c", {"vmlinux": True, "defines": ("ARENA_BASE=0",)}),
        GuestObject("obj_arena_globals.c", {"vmlinux": True}),
        GuestObject("obj_arena_globals.c",
                    {"vmlinux": True, "defines": ("ARENA_PAGES=262144",)}),
        GuestObject("attach_trace.c", {"vmlinux": True, **regs}, regs_btf),
        GuestObject("attach_cookie.c", {"vmlinux": True}),
        GuestObject("attach_kprobe.c", {"vmlinux": True, **regs}, regs_btf),
        GuestObject("attach_net.c", {"vmlinux": True}),
        GuestObject("attach_tramp.c", {"vmlinux": True}),
        GuestObject("attach_usdt.c", {
            "vmlinux": True, **regs,
            "defines": (f'USDT_TARGET="{usdt_target}"', *regs.get("defines", ())),
        }, regs_btf),
        GuestObject("struct_ops_cc.c"),
        GuestObject("struct_ops_cc.c", {"defines": ("SWAP_MAP",), "tag": "swap"}),
        GuestObject("struct_ops_kernel.c"),
        GuestObject("freplace_target.c"),
        GuestObject("freplace_xdp.c"),
        GuestObject(SANITIZE_SOURCE),
        GuestObject(REGS_SOURCE, {"vmlinux": True, **regs}, regs_btf),
    ]
    objects += [GuestObject(path, {"vmlinux": True}, text_from=text_from)
                for path, text_from in GENERATED_SOURCES if (ROOT / text_from[0]).exists()]
    return objects


def extract_btf(image: bytes) -> bytes | None:
    """The raw vmlinux BTF a kernel image carries (the .BTF section sits in the image as it
    is: an arm64 Image, an x86 vmlinux ELF), or None. The largest consistent header wins."""
    best: bytes | None = None
    pos = image.find(b"\x9f\xeb\x01\x00")
    while pos >= 0:
        if pos + 24 <= len(image):
            hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<5I", image, pos + 4)
            end = pos + hdr_len + str_off + str_len
            if (hdr_len == 24 and type_off == 0 and str_off == type_len and type_len > 0
                    and str_len > 0 and end <= len(image)
                    and image[pos + 24 + str_off] == 0 and image[end - 1] == 0
                    and (best is None or end - pos > len(best))):
                best = image[pos:end]
        pos = image.find(b"\x9f\xeb\x01\x00", pos + 1)
    return best


BTF_LINE = "6.12"
"""The kernel line whose BTF gives the vmlinux.h of objects built for a foreign arch."""


def arch_btf(arch: Arch) -> Path:
    """The vmlinux BTF of `arch`'s BTF_LINE kernel (from its image, cached beside it)."""
    with file_lock(VM_DIR / ".lock"):
        kernel = ensure_kernel(arch, BTF_LINE)
        out = kernel.dir / "vmlinux.btf"
        if not out.exists():
            data = extract_btf(kernel.boot_image.read_bytes())
            if data is None:
                raise VmError(f"no BTF found in {kernel.boot_image.relative_to(ROOT)}")
            atomic_write(out, data)
    return out


def _load_bpfbuild() -> Any:
    spec = importlib.util.spec_from_file_location("bpfbuild_vm", ROOT / "tests" / "bpfbuild.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_text(text_from: tuple[str, str]) -> str:
    """The string constant `name` of Python file `path` (read with ast, not imported)."""
    import ast

    path, name = text_from
    tree = ast.parse((ROOT / path).read_text(), path)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and node.value is not None
                and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)):
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise ValueError(f"{path} has no string constant {name}")


def _write_generated(source: str, text_from: tuple[str, str]) -> None:
    text = source_text(text_from)
    path = ROOT / source
    if not path.exists() or path.read_text() != text:
        atomic_write(path, text.encode())


def _build_helper(arch: Arch, name: str) -> dict[str, Any]:
    source, flags = HELPERS[name]
    native = arch.uname == platform.machine()
    candidates = ("gcc", "cc") if native else (f"{arch.uname}-linux-gnu-gcc",)
    entry: dict[str, Any] = {"name": name, "arch": arch.name}
    cc = next((c for c in candidates if shutil.which(c)), None)
    out = helper_path(arch.name, name)
    if cc is None:
        entry["error"] = (f"no {candidates[0]} on the host"
                          + ("" if native else f" (apt-get install gcc-{arch.uname}-linux-gnu)"))
        return entry
    src = ROOT / "tests" / "userprogs" / source
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}")
        proc = subprocess.run([cc, *flags, "-o", str(tmp), str(src)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            entry["error"] = f"{cc} failed: {proc.stderr.strip()[-500:]}"
            return entry
        tmp.replace(out)
    entry["path"] = str(out.relative_to(ROOT))
    return entry


def prebuild() -> Path:
    """Compile PREBUILT and the guest objects of every arch with tests/bpfbuild.py into
    build/test-objs, the helper programs into build/test-bin/<arch>, and write the manifest
    (paths relative to the checkout). Without clang-19 the manifest says why, and the guest
    tests skip; an object or helper the host cannot build is listed with the reason."""
    arch_list = list(ARCHES.values())
    bpfbuild = _load_bpfbuild()
    host_arch = ARCH_ALIASES.get(platform.machine(), platform.machine())
    host_btf = bpfbuild.VMLINUX_BTF
    manifest: dict[str, Any] = {"host_release": platform.release(), "objects": [],
                                "tests": [], "helpers": []}

    def build(source: str, options: Mapping[str, Any], btf: Path | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {"source": source, "options": _options_key(options)}
        bpfbuild.VMLINUX_BTF = host_btf if btf is None else btf
        try:
            src = source if "/" not in source else str(ROOT / source)
            entry["path"] = str(Path(bpfbuild.build(src, **options)).relative_to(ROOT))
        except (subprocess.CalledProcessError, OSError, ValueError, VmError) as exc:
            entry["error"] = str(exc)
        finally:
            bpfbuild.VMLINUX_BTF = host_btf
        return entry

    if not bpfbuild.have_clang():
        manifest["error"] = f"{bpfbuild.CLANG} is not installed on the host"
    else:
        for p in PREBUILT:
            entry = build(p.source, p.options)
            manifest["objects"].append({"name": p.name, "arch": p.arch, **entry})
        done: dict[tuple[str, str], dict[str, Any]] = {}
        for arch in arch_list:
            for obj in guest_objects(arch):
                key = (obj.source, json.dumps(_options_key(obj.options)))
                if key not in done:
                    btf: Path | None = None
                    try:
                        if obj.text_from is not None:
                            _write_generated(obj.source, obj.text_from)
                        if obj.btf_arch not in (None, host_arch) and obj.options.get("vmlinux"):
                            btf = arch_btf(ARCHES[str(obj.btf_arch)])
                    except (OSError, ValueError, SyntaxError, VmError) as exc:
                        done[key] = {"source": obj.source, "options": _options_key(obj.options),
                                     "error": str(exc)}
                    else:
                        done[key] = build(obj.source, obj.options, btf)
                    if "error" in done[key]:
                        log(f"prebuild: {obj.source} {done[key]['options']}: {done[key]['error']}")
                    manifest["tests"].append({**done[key], "btf_arch": obj.btf_arch})
        if any(p.options.get("vmlinux") for p in PREBUILT):
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                manifest["vmlinux_h"] = str(Path(bpfbuild.vmlinux_h()).relative_to(ROOT))
    for arch in arch_list:
        for name in HELPERS:
            entry = _build_helper(arch, name)
            if "error" in entry:
                log(f"prebuild: helper {name} for {arch.name}: {entry['error']}")
            manifest["helpers"].append(entry)
    atomic_write(PREBUILT_MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    py = host_python311()
    if py is not None:
        # The checkout is read-only in the guest: give it the pycs the host can write.
        subprocess.run([py, "-m", "compileall", "-q", "-q", "-j", "0",
                        *(str(ROOT / d) for d in ("bpfobj", "integration", "tests"))],
                       check=False)
    return PREBUILT_MANIFEST


def _options_key(options: Mapping[str, Any]) -> dict[str, Any]:
    """bpfbuild.build keyword arguments as JSON compares them (tuples become lists)."""
    key: dict[str, Any] = json.loads(json.dumps({k: v for k, v in sorted(options.items()) if v}))
    return key


def prebuilt_object(source: str, **options: Any) -> Path:
    """In a guest (which has no compiler): the object the host compiled for
    ``bpfbuild.build(source, **options)``, from an entry of PREBUILT or `guest_objects`.
    `source` is a name under tests/progs or a path relative to the checkout. Raises
    LookupError when there is none: add the object to PREBUILT or `guest_objects` so that
    the host builds it before booting."""
    manifest = read_json(PREBUILT_MANIFEST)
    if not isinstance(manifest, dict):
        raise LookupError(f"no {PREBUILT_MANIFEST}: run `python -m integration.vm prebuild`")
    want = _options_key(options)
    errors = []
    for entry in [*manifest.get("objects", []), *manifest.get("tests", [])]:
        if entry.get("source") == source and entry.get("options") == want:
            if "path" in entry:
                return ROOT / str(entry["path"])
            errors.append(str(entry.get("error")))
    if errors:
        raise LookupError(f"{source} {want}: the host could not build it: {errors[0]}")
    raise LookupError(f"{source} {want} was not prebuilt: add it to PREBUILT in integration/vm.py")


def prebuilt_helper(name: str, arch: str | None = None) -> Path:
    """In a guest: the helper program `name` (HELPERS) the host built for `arch` (the
    running one by default). Raises LookupError naming what is missing."""
    arch_name = running_arch() if arch is None else ARCH_ALIASES.get(arch, arch)
    manifest = read_json(PREBUILT_MANIFEST)
    entries = manifest.get("helpers", []) if isinstance(manifest, dict) else []
    for entry in entries:
        if entry.get("name") == name and entry.get("arch") == arch_name:
            path = ROOT / str(entry.get("path", ""))
            if "path" in entry and path.exists():
                return path
            raise LookupError(f"the prebuilt helper binary {helper_path(arch_name, name).relative_to(ROOT)} "
                              f"for {arch_name} is missing: {entry.get('error', 'not built')}")
    raise LookupError(f"the prebuilt helper binary {helper_path(arch_name, name).relative_to(ROOT)} "
                      f"for {arch_name} is missing: run `python -m integration.vm prebuild`")


def host_helper(name: str) -> Path:
    """On the host: the helper program `name` (HELPERS) built for this machine's arch with
    its gcc, as `prebuild` builds it (cached by source mtime). Raises LookupError when
    there is no gcc, RuntimeError when it fails."""
    if not (shutil.which("gcc") or shutil.which("cc")):
        raise LookupError(f"gcc is not installed (the helper binary {name}, "
                          f"tests/userprogs/{HELPERS[name][0]}, is built with it)")
    entry = _build_helper(arch_named(running_arch()), name)
    if "path" not in entry:
        raise RuntimeError(f"cannot build the helper binary {name}: {entry['error']}")
    return ROOT / str(entry["path"])


# -- booting --------------------------------------------------------------------------------


def lsm_param(config: str) -> str | None:
    """``lsm=`` with the BPF LSM added to the kernel's default list (CONFIG_LSM), for the
    lsm/ and lsm_cgroup/ tests; None when the kernel has no BPF LSM or already enables it."""
    if "\nCONFIG_BPF_LSM=y" not in f"\n{config}":
        return None
    m = re.search(r'^CONFIG_LSM="([^"]*)"', config, re.M)
    lsms = [x for x in (m.group(1) if m else "").split(",") if x]
    if "bpf" in lsms:
        return None
    return "lsm=" + ",".join([*lsms, "bpf"])


def kernel_params(kernel: Kernel) -> list[str]:
    """Kernel parameters of a guest beyond the console and init ones."""
    try:
        config = (kernel.dir / "config").read_text()
    except OSError:
        return []
    lsm = lsm_param(config)
    return [lsm] if lsm else []


def kvm_usable(
    arch: Arch,
    machine: str | None = None,
    sys_module: Path = Path("/sys/module"),
    dev_kvm: Path = Path("/dev/kvm"),
) -> bool:
    """Whether qemu should use KVM for `arch` here. A /dev/kvm served by kvm_pvm (a nested
    hypervisor without VMX/SVM) accepts the ioctls but hangs Debian kernels: TCG there."""
    if (machine or platform.machine()) != arch.uname:
        return False
    if not os.access(dev_kvm, os.R_OK | os.W_OK):
        return False
    if arch.name == "x86_64":
        return (sys_module / "kvm_intel").exists() or (sys_module / "kvm_amd").exists()
    return not (sys_module / "kvm_pvm").exists()


def qemu_command(
    arch: Arch,
    kernel: Path,
    initrd: Path,
    shares: Sequence[tuple[str, Path, bool]],
    *,
    kvm: bool = False,
    memory: int = 1024,
    smp: int = 1,
    cmdline: Sequence[str] = (),
) -> list[str]:
    """The qemu command line: serial console on stdio, 9p shares (tag, host dir, read-only),
    `cmdline`: more kernel parameters."""
    append = " ".join((f"console={arch.console} panic=-1 oops=panic quiet loglevel=3 "
                       "rdinit=/init", *cmdline))
    cmd = [
        arch.qemu, *(arch.kvm if kvm else arch.tcg),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
        "-m", str(memory), "-smp", str(smp), "-device", "virtio-rng-pci",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
    ]
    for tag, path, readonly in shares:
        ro = ",readonly=on" if readonly else ""
        cmd += [
            "-fsdev", f"local,id={tag},path={path},security_model=none,multidevs=remap{ro}",
            "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}",
        ]
    return cmd


@dataclass
class Junit:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped


def parse_junit(text: str) -> Junit:
    """Counts of a pytest junit XML report (errors count as failed)."""
    root = ET.fromstring(text)
    out = Junit()
    cases = list(root.iter("testcase"))
    for case in cases:
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            out.failed += 1
        elif "skipped" in tags:
            out.skipped += 1
        else:
            out.passed += 1
    if not cases:  # a suite that errored before collecting anything
        for suite in root.iter("testsuite"):
            out.failed += int(suite.get("errors", 0)) + int(suite.get("failures", 0))
    return out


@dataclass
class RunResult:
    arch: str
    line: str
    rc: int
    seconds: float
    release: str = ""
    junit: Junit | None = None
    tail: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def pair(self) -> str:
        return f"{self.arch}/{self.line}"

    @property
    def status(self) -> str:
        if self.error:
            return f"error: {self.error}"
        if self.rc == 0:
            return "ok"
        if self.rc == EXIT_TIMEOUT:
            return "timeout"
        if self.rc == EXIT_NO_MARKER:
            return "no exit marker (panic?)"
        return f"failed (exit {self.rc})"


def run_vm(
    arch: Arch,
    kernel: Kernel,
    initramfs: Path,
    command: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    stream: bool = False,
    accel: str = "auto",
    collect_btf: bool | None = None,
) -> RunResult:
    """Boot `kernel` with `initramfs`, run `command` in /src, return its exit status.

    `collect_btf`: copy the guest's /sys/kernel/btf into the BTF corpus (default: when the
    corpus lacks this kernel; the copy costs a few seconds over 9p under TCG)."""
    if collect_btf is None:
        collect_btf = not corpus_has(arch, kernel.release)
    run_dir = VM_DIR / "runs" / kernel.pair
    results = run_dir / "results"
    with file_lock(VM_DIR / "runs" / f"{kernel.pair}.lock"):
        shutil.rmtree(run_dir, ignore_errors=True)
        results.mkdir(parents=True)
        token = secrets.token_hex(8)
        initrd = run_dir / "initrd.img"
        with open(initrd, "wb") as out, open(initramfs, "rb") as base:
            shutil.copyfileobj(base, out, 1 << 20)
            out.write(run_cpio(token, command, guest_env(arch, kernel.line), collect_btf))
        use_kvm = accel == "kvm" or (accel == "auto" and kvm_usable(arch))
        cmd = qemu_command(
            arch, kernel.boot_image, initrd,
            [("src", ROOT, True), ("results", results, False)],
            kvm=use_kvm, smp=2 if use_kvm else 1, cmdline=kernel_params(kernel),
        )
        start = time.monotonic()
        rc, tail = _boot(cmd, token, run_dir / "console.log", timeout, stream, kernel.pair)
        seconds = time.monotonic() - start
        initrd.unlink()
        result = RunResult(arch.name, kernel.line, rc, seconds, tail=tail)
        with contextlib.suppress(OSError):
            result.release = (results / "release").read_text().strip()
        with contextlib.suppress(OSError, ET.ParseError):
            result.junit = parse_junit((results / "junit.xml").read_text())
        if result.release and (results / "btf" / "vmlinux").exists():
            save_btf_corpus(arch, kernel, result.release, results / "btf")
        (run_dir / "run.json").write_text(json.dumps({
            "arch": arch.name, "kernel": kernel.line, "release": result.release,
            "packages": kernel.packages, "version": kernel.version, "command": list(command),
            "rc": rc, "status": result.status, "seconds": round(seconds, 1),
            "accel": "kvm" if use_kvm else "tcg",
            "junit": None if result.junit is None else vars(result.junit),
        }, indent=1) + "\n")
        return result


_LIVE: set[subprocess.Popen[bytes]] = set()
"""The qemu processes running now (killed on SIGTERM)."""
_LIVE_LOCK = threading.Lock()


def _boot(cmd: Sequence[str], token: str, console: Path, timeout: float, stream: bool,
          label: str) -> tuple[int, list[str]]:
    """Run qemu, watch the console for the exit marker; (status, last console lines)."""
    tail: deque[str] = deque(maxlen=60)
    status: list[int] = []
    seen = threading.Event()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    with _LIVE_LOCK:
        _LIVE.add(proc)
    assert proc.stdout is not None
    out = proc.stdout

    def reader() -> None:
        with open(console, "w", buffering=1) as logf:  # line-buffered: tail -f works
            for raw in iter(out.readline, b""):
                line = raw.decode("utf-8", "replace").replace("\r", "").rstrip("\n")
                logf.write(line + "\n")
                tail.append(line)
                rc = parse_marker(line, token)
                if rc is not None and not status:
                    status.append(rc)
                    seen.set()
                elif stream:
                    print(line, flush=True)

    thread = threading.Thread(target=reader, name=f"console-{label}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while proc.poll() is None:
            if seen.wait(0.2):
                # the guest reboots right after the marker; give qemu a moment to exit
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(30)
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
    finally:  # also on Ctrl-C / SIGTERM (main() turns it into SystemExit): no stray qemu
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with _LIVE_LOCK:
            _LIVE.discard(proc)
    thread.join(10)
    lines = list(tail)
    if status:
        return status[0], lines
    return (EXIT_TIMEOUT if timed_out else EXIT_NO_MARKER), lines


def corpus_has(arch: Arch, release: str) -> bool:
    meta = read_json(CORPUS_DIR / arch.name / release / "meta.json")
    return isinstance(meta, dict) and "vmlinux" in meta.get("files", {})


def save_btf_corpus(arch: Arch, kernel: Kernel, release: str, btf_dir: Path) -> None:
    """Copy a guest's /sys/kernel/btf files to build/btf-corpus/<arch>/<release>/ and index."""
    dest = CORPUS_DIR / arch.name / release
    files = {}
    for src in sorted(btf_dir.iterdir()):
        data = src.read_bytes()
        rel = "vmlinux" if src.name == "vmlinux" else f"modules/{src.name}"
        target = dest / rel
        if not target.exists() or target.read_bytes() != data:
            atomic_write(target, data)
        files[rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    entry = {"arch": arch.name, "kernel_line": kernel.line, "release": release,
             "package": kernel.packages[0], "version": kernel.version, "files": files}
    atomic_write(dest / "meta.json", (json.dumps(entry, indent=1) + "\n").encode())
    with file_lock(CORPUS_DIR / ".lock"):
        index = read_json(CORPUS_DIR / "index.json")
        entries = index.get("kernels", []) if isinstance(index, dict) else []
        entries = [e for e in entries if (e.get("arch"), e.get("release")) != (arch.name, release)]
        entries.append({**entry, "path": f"{arch.name}/{release}"})
        entries.sort(key=lambda e: (e["arch"], e["kernel_line"], e["release"]))
        atomic_write(CORPUS_DIR / "index.json",
                     (json.dumps({"kernels": entries}, indent=1) + "\n").encode())


# -- driver ---------------------------------------------------------------------------------


def prepare_pairs(pairs: Sequence[tuple[Arch, str]], jobs: int) -> dict[tuple[str, str], tuple[Kernel, Path]]:
    """Fetch kernels and build initramfs images for `pairs` (serialised against other vm.py
    processes); the guest roots build in parallel."""
    with file_lock(VM_DIR / ".lock"):
        arches = sorted({a.name for a, _ in pairs})
        with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
            # downloads are serialised by the Apt lock; extraction and builds run in parallel
            roots = [pool.submit(ensure_pyroot, ARCHES[name]) for name in arches]
            kernels = dict(zip(((a.name, line) for a, line in pairs),
                               pool.map(lambda pair: ensure_kernel(*pair), pairs)))
            for f in roots:
                f.result()
            images = dict(zip(kernels, pool.map(
                lambda key: ensure_initramfs(ARCHES[key[0]], kernels[key]), kernels)))
    return {key: (kernels[key], images[key]) for key in kernels}


def summary_table(results: Sequence[RunResult]) -> str:
    header = ("pair", "release", "time", "passed", "failed", "skipped", "status")
    rows = [header]
    for r in results:
        j = r.junit
        rows.append((
            r.pair, r.release or "-", f"{r.seconds:.1f}s",
            *((str(j.passed), str(j.failed), str(j.skipped)) if j else ("-", "-", "-")),
            r.status,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if i in (0, 1, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def matrix_pairs(arches: Iterable[str], lines: Iterable[str]) -> list[tuple[Arch, str]]:
    arch_list = [arch_named(a) for a in arches]
    return [(a, kernel_line(line).line) for line in lines for a in arch_list]


def cmd_run(args: argparse.Namespace) -> int:
    arch = arch_named(args.arch)
    (kernel, image), = prepare_pairs([(arch, args.kernel)], 1).values()
    if not args.no_prebuild:
        prebuild()
    log(f"booting {kernel.pair} ({kernel.packages[0]} {kernel.version}): {shlex.join(args.command)}")
    r = run_vm(arch, kernel, image, args.command, timeout=args.timeout, stream=not args.quiet,
               accel=args.accel)
    if args.quiet and r.rc != 0:  # otherwise the console was already on stdout
        print("\n".join(r.tail[-40:]), file=sys.stderr)
    print(summary_table([r]))
    return r.rc


def cmd_matrix(args: argparse.Namespace) -> int:
    pairs = matrix_pairs(args.arch or list(ARCHES), args.kernel or list(KERNELS))
    start = time.monotonic()
    prepared = prepare_pairs(pairs, args.jobs)
    if not args.no_prebuild:
        prebuild()
    log(f"caches ready in {time.monotonic() - start:.1f}s; {len(pairs)} VMs, {args.jobs} at a time")

    def one(pair: tuple[Arch, str]) -> RunResult:
        arch, line = pair
        kernel, image = prepared[(arch.name, line)]
        r = run_vm(arch, kernel, image, args.command, timeout=args.timeout, accel=args.accel)
        log(f"{r.pair}: {r.status} in {r.seconds:.1f}s")
        if r.rc != 0:
            print(f"--- {r.pair}: last console lines ---\n" + "\n".join(r.tail[-30:]),
                  file=sys.stderr, flush=True)
        return r

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one, pairs))
    print(summary_table(results))
    print(f"total {time.monotonic() - start:.1f}s")
    failing = [f"{r.pair} ({r.status})" for r in results if r.rc != 0]
    if failing:
        print(f"failing: {', '.join(failing)}", file=sys.stderr)
        return 1
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    pairs = matrix_pairs(args.arch or list(ARCHES), args.kernel or list(KERNELS))
    for (arch, line), (kernel, image) in zip(pairs, prepare_pairs(pairs, args.jobs).values()):
        print(f"{arch.name:7} {line:5} {kernel.packages[0]} {kernel.version} "
              f"modules={','.join(kernel.modules)} initramfs={image.relative_to(ROOT)}")
    return 0


def cmd_prebuild(args: argparse.Namespace) -> int:
    print(prebuild().read_text(), end="")
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    command: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:]
    sub = argv[0] if argv and argv[0] in ("matrix", "fetch", "prebuild", "run") else "run"
    if argv and argv[0] == sub:
        argv = argv[1:]
    p = argparse.ArgumentParser(
        prog="python -m integration.vm",
        description="Boot Debian kernels under qemu and run a command in them "
                    "(subcommands: run (default), matrix, fetch, prebuild).",
    )
    if sub == "run":
        p.add_argument("--arch", default=ARCH_ALIASES.get(platform.machine(), platform.machine()))
        p.add_argument("--kernel", default="6.1", choices=list(KERNELS))
        p.add_argument("--quiet", action="store_true", help="do not echo the guest console")
    else:
        p.add_argument("--arch", action="append", help="limit to this arch (repeatable)")
        p.add_argument("--kernel", action="append", choices=list(KERNELS),
                       help="limit to this kernel line (repeatable)")
        p.add_argument("--jobs", type=int, default=2, help="VMs at a time (default 2)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per VM")
    p.add_argument("--accel", choices=("auto", "tcg", "kvm"),
                   default=os.environ.get("BPFOBJ_VM_ACCEL", "auto"))
    p.add_argument("--no-prebuild", action="store_true",
                   help="do not compile the guest tests' BPF objects first")
    args = p.parse_args(argv)
    args.sub = sub
    args.command = command or list(DEFAULT_COMMAND)
    return args


def _terminate(signum: int, frame: object) -> None:
    with _LIVE_LOCK:
        for proc in _LIVE:
            proc.kill()  # the workers' _boot() then returns at once
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)  # unwind: qemu children are killed
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": cmd_run, "matrix": cmd_matrix, "fetch": cmd_fetch, "prebuild": cmd_prebuild,
    }
    try:
        return handlers[args.sub](args)
    except VmError as exc:
        log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
