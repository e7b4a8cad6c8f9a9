"""BTF archives laid out like btfhub-archive: kernel BTF for kernels built without it.

The tree is ``<root>/<distro>/<version>/<arch>/<kernel-release>.btf[.tar.xz]``, where
``distro`` and ``version`` are the ID and VERSION_ID of os-release(5) (``ubuntu/20.04``,
``centos/7``, ``amzn/2``), ``arch`` is btfhub's name for the machine (``x86_64``, ``arm64``)
and ``kernel-release`` is ``uname -r``::

    archive = BtfArchive("/var/lib/btfhub-archive")
    path = archive.lookup()                         # this machine's kernel
    path = archive.lookup("5.4.0-1009-aws", os_release="ubuntu/20.04", arch="x86_64")
    obj.prepare(btf=archive.load("5.4.0-1009-aws", os_release="ubuntu/20.04"))

Reading an archive is pure file access: a target for another machine can be looked up and
prepared anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from bpfobj import records
from bpfobj.errors import BtfError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from bpfobj.btf.target import TargetBtf

# File name endings of an archived kernel, in the order `lookup` prefers them (a plain .btf
# needs no decompression).
SUFFIXES = (".btf", ".btf.tar.xz")
# `uname -m` -> btfhub's architecture directory.
ARCH_NAMES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "arm64",
    "arm64": "arm64",
}
OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")

OsRelease = str | tuple[str, str] | Mapping[str, str]


@records.frozen(order=True)
class ArchivedKernel:
    """One kernel's BTF in an archive."""

    distro: str
    version: str
    arch: str
    release: str
    path: Path = records.field(order=False)

    @property
    def key(self) -> str:
        """``distro/version/arch/release`` (the path without the root and suffix)."""
        return f"{self.distro}/{self.version}/{self.arch}/{self.release}"


@records.frozen
class HostIdentity:
    """What `BtfArchive.lookup` searches for by default: this machine's kernel release,
    os-release ID / VERSION_ID / VERSION_CODENAME and btfhub architecture name."""

    release: str
    distro: str
    version: str
    codename: str
    arch: str


def parse_os_release(text: str) -> dict[str, str]:
    """The KEY=value pairs of an os-release(5) file (quotes and escapes removed)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
            for esc in ('\\"', "\\'", "\\$", "\\`", "\\\\"):
                value = value.replace(esc, esc[1])
        out[key.strip()] = value
    return out


def arch_name(machine: str) -> str:
    """btfhub's directory name for a `uname -m` machine name (unknown names unchanged)."""
    return ARCH_NAMES.get(machine, machine)


def host_identity(os_release_files: tuple[str, ...] = OS_RELEASE_FILES) -> HostIdentity:
    """This machine's identity: uname -r, os-release ID/VERSION_ID and the arch name."""
    uname = os.uname()
    info: dict[str, str] = {}
    for path in os_release_files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                info = parse_os_release(f.read())
            break
        except OSError:
            continue
    return HostIdentity(
        release=uname.release,
        distro=info.get("ID", ""),
        version=info.get("VERSION_ID", ""),
        codename=info.get("VERSION_CODENAME", ""),
        arch=arch_name(uname.machine),
    )


class BtfArchive:
    """A btfhub-style tree of kernel BTF files rooted at `root`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"BtfArchive({str(self.root)!r})"

    # ----------------------------------------------------------------------------------
    # Listing
    # ----------------------------------------------------------------------------------

    def kernels(
        self,
        *,
        distro: str | None = None,
        version: str | None = None,
        arch: str | None = None,
    ) -> list[ArchivedKernel]:
        """Every archived kernel (optionally of one distro / version / arch), sorted. A
        kernel archived both as .btf and .btf.tar.xz is listed once, with the .btf."""
        self._check_root()
        found: dict[tuple[str, str, str, str], ArchivedKernel] = {}
        for d in _subdirs(self.root, distro):
            for v in _subdirs(d, version):
                for a in _subdirs(v, arch_name(arch) if arch else None):
                    for entry in _files(a):
                        release = _release_of(entry.name)
                        if release is None:
                            continue
                        key = (d.name, v.name, a.name, release)
                        if key not in found or entry.name.endswith(".btf"):
                            found[key] = ArchivedKernel(d.name, v.name, a.name, release, entry)
        return sorted(found.values())

    def __iter__(self) -> Iterator[ArchivedKernel]:
        return iter(self.kernels())

    # ----------------------------------------------------------------------------------
    # Lookup
    # ----------------------------------------------------------------------------------

    def lookup(
        self,
        release: str | None = None,
        os_release: OsRelease | None = None,
        arch: str | None = None,
    ) -> Path:
        """The BTF file of kernel `release` for `os_release` on `arch`.

        Defaults are this machine's: ``uname -r``, /etc/os-release ID and VERSION_ID, and
        ``uname -m`` mapped to btfhub's names (x86_64, arm64). `os_release` is
        ``"ID/VERSION_ID"`` (``"ubuntu/20.04"``), an ``(ID, VERSION_ID)`` pair, or a
        mapping with ID and VERSION_ID keys (e.g. a parsed os-release file). A version
        directory named after VERSION_CODENAME is accepted too when the defaults come from
        os-release. Raises BtfError naming the paths searched and what the archive holds.
        """
        self._check_root()
        host = (
            host_identity()
            if release is None or os_release is None or arch is None
            else HostIdentity("", "", "", "", "")
        )
        rel = release if release is not None else host.release
        machine = arch_name(arch) if arch is not None else host.arch
        if os_release is None:
            distro, versions = host.distro, [host.version, host.codename]
        else:
            distro, version, codename = _split_os_release(os_release)
            versions = [version, codename]
        versions = [v for v in dict.fromkeys(versions) if v]
        if not distro:
            raise BtfError(
                "cannot look up kernel BTF: the distribution is unknown "
                "(no ID in /etc/os-release)",
                obj=str(self.root),
                hint='pass os_release="ID/VERSION_ID", e.g. "ubuntu/20.04"',
            )
        if not versions:
            raise BtfError(
                f"cannot look up kernel BTF: the {distro} version is unknown "
                "(no VERSION_ID in /etc/os-release)",
                obj=str(self.root),
                hint=f'pass os_release="{distro}/VERSION_ID"',
            )
        tried: list[Path] = []
        for version in versions:
            base = self.root / distro / version / machine
            for suffix in SUFFIXES:
                path = base / f"{rel}{suffix}"
                tried.append(path)
                if path.is_file():
                    return path
        raise self._not_found(rel, distro, versions, machine, tried)

    def load(
        self,
        release: str | None = None,
        os_release: OsRelease | None = None,
        arch: str | None = None,
    ) -> TargetBtf:
        """`lookup`, then read the file as a target BTF (usable as
        ``obj.prepare(btf=archive.load(...))``)."""
        from bpfobj.btf.target import TargetBtf

        return TargetBtf.from_path(self.lookup(release, os_release, arch))

    # ----------------------------------------------------------------------------------
    # Errors
    # ----------------------------------------------------------------------------------

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise BtfError(
                f"BTF archive {self.root} is not a directory",
                obj=str(self.root),
                hint="pass the root of a btfhub-archive checkout "
                "(<distro>/<version>/<arch>/<release>.btf.tar.xz)",
            )

    def _not_found(
        self, release: str, distro: str, versions: list[str], arch: str, tried: list[Path]
    ) -> BtfError:
        where = " or ".join(f"{distro}/{v}/{arch}" for v in versions)
        lines = [f"no BTF for kernel {release} ({where}) in {self.root}; searched:"]
        lines += [f"  {p}" for p in tried]
        elsewhere = [k.key for k in self.kernels() if k.release == release]
        if elsewhere:
            lines.append("the same release is archived as: " + ", ".join(elsewhere))
        else:
            here = [k.release for v in versions for k in self.kernels(
                distro=distro, version=v, arch=arch)]
            if here:
                shown = ", ".join(here[:8]) + (", ..." if len(here) > 8 else "")
                lines.append(f"{where} holds {len(here)} kernel(s): {shown}")
            else:
                dirs = sorted({f"{k.distro}/{k.version}/{k.arch}" for k in self.kernels()})
                shown = ", ".join(dirs[:12]) + (", ..." if len(dirs) > 12 else "")
                lines.append(
                    f"the archive has no {where} directory"
                    + (f"; it holds: {shown}" if dirs else "; it holds no kernels")
                )
        return BtfError(
            "\n".join(lines),
            obj=str(self.root),
            hint="pick a release with `bpfobj btf archive ROOT` or pass release=, "
            "os_release=, arch=",
        )


def _split_os_release(value: OsRelease) -> tuple[str, str, str]:
    """(ID, VERSION_ID, VERSION_CODENAME) of an `os_release` argument."""
    if isinstance(value, str):
        distro, sep, version = value.replace(":", "/").partition("/")
        return distro.strip(), version.strip() if sep else "", ""
    if isinstance(value, tuple):
        distro, version = value
        return distro, version, ""
    return value.get("ID", ""), value.get("VERSION_ID", ""), value.get("VERSION_CODENAME", "")


def _subdirs(parent: Path, only: str | None) -> list[Path]:
    if only is not None:
        p = parent / only
        return [p] if p.is_dir() else []
    try:
        return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _files(parent: Path) -> list[Path]:
    try:
        return sorted(p for p in parent.iterdir() if p.is_file())
    except OSError:
        return []


def _release_of(name: str) -> str | None:
    for suffix in SUFFIXES[::-1]:  # the longer suffix first
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


__all__ = [
    "ARCH_NAMES",
    "ArchivedKernel",
    "BtfArchive",
    "HostIdentity",
    "arch_name",
    "host_identity",
    "parse_os_release",
]
