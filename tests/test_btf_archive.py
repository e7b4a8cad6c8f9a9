"""btfhub-style archives (bpfobj.btf.archive): a tree built in tmp_path holding this
machine's vmlinux BTF as ``<distro>/<version>/<arch>/<release>.btf.tar.xz``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import objects
import pytest
from test_btf_dump import VMLINUX, make_tar_xz

from bpfobj.btf import archive as archive_mod
from bpfobj.btf.archive import (
    ArchivedKernel,
    BtfArchive,
    HostIdentity,
    arch_name,
    host_identity,
    parse_os_release,
)
from bpfobj.btf.target import TargetBtf
from bpfobj.cli.main import main
from bpfobj.errors import BtfError

needs_vmlinux = pytest.mark.skipif(not VMLINUX.exists(), reason="no /sys/kernel/btf/vmlinux")


@pytest.fixture(scope="module")
def vmlinux_raw() -> bytes:
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    return VMLINUX.read_bytes()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, vmlinux_raw: bytes) -> Path:
    """An archive holding the vmlinux BTF for this host's identity and for a few others."""
    root = tmp_path_factory.mktemp("btfhub-archive")
    host = host_identity()
    entries = [
        ("ubuntu", "20.04", "x86_64", "5.4.0-1009-aws", ".btf.tar.xz"),
        ("ubuntu", "20.04", "x86_64", "5.4.0-42-generic", ".btf.tar.xz"),
        ("ubuntu", "20.04", "arm64", "5.4.0-42-generic", ".btf.tar.xz"),
        ("centos", "7", "x86_64", "3.10.0-1160.el7.x86_64", ".btf.tar.xz"),
        ("fedora", "38", "arm64", "6.5.0-test", ".btf"),
        ("fedora", "38", "arm64", "6.5.0-test", ".btf.tar.xz"),  # both: .btf preferred
    ]
    if host.distro and host.version:
        entries.append((host.distro, host.version, host.arch, host.release, ".btf.tar.xz"))
    for distro, version, arch, release, suffix in entries:
        d = root / distro / version / arch
        d.mkdir(parents=True, exist_ok=True)
        if suffix == ".btf":
            (d / f"{release}.btf").write_bytes(vmlinux_raw)
        else:
            make_tar_xz(d / f"{release}.btf.tar.xz", f"{release}.btf", vmlinux_raw)
    (root / "ubuntu" / "20.04" / "x86_64" / "README").write_text("not a kernel\n")
    (root / ".git").mkdir()
    return root


def test_kernels_listing(tree: Path) -> None:
    archive = BtfArchive(tree)
    kernels = archive.kernels()
    keys = [k.key for k in kernels]
    assert "ubuntu/20.04/x86_64/5.4.0-1009-aws" in keys
    assert "centos/7/x86_64/3.10.0-1160.el7.x86_64" in keys
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys))  # fedora's .btf and .btf.tar.xz listed once
    fedora = [k for k in kernels if k.distro == "fedora"]
    assert len(fedora) == 1 and fedora[0].path.name == "6.5.0-test.btf"
    arm = archive.kernels(arch="aarch64")  # uname -m names are mapped
    assert {k.distro for k in arm} == {"ubuntu", "fedora"}
    assert [k.release for k in archive.kernels(distro="centos")] == ["3.10.0-1160.el7.x86_64"]
    assert archive.kernels(distro="nope") == []
    assert list(archive) == kernels
    k = kernels[0]
    assert isinstance(k, ArchivedKernel) and k.path.is_file()


def test_lookup_explicit(tree: Path) -> None:
    archive = BtfArchive(tree)
    p = archive.lookup("5.4.0-1009-aws", os_release="ubuntu/20.04", arch="x86_64")
    assert p == tree / "ubuntu/20.04/x86_64/5.4.0-1009-aws.btf.tar.xz"
    # the other spellings of os_release and arch
    assert archive.lookup("5.4.0-42-generic", ("ubuntu", "20.04"), "aarch64") == (
        tree / "ubuntu/20.04/arm64/5.4.0-42-generic.btf.tar.xz"
    )
    assert archive.lookup(
        "5.4.0-42-generic", {"ID": "ubuntu", "VERSION_ID": "20.04"}, "amd64"
    ) == (tree / "ubuntu/20.04/x86_64/5.4.0-42-generic.btf.tar.xz")
    assert archive.lookup("5.4.0-42-generic", "ubuntu:20.04", "x86_64").parent.name == "x86_64"
    assert archive.lookup("6.5.0-test", "fedora/38", "arm64").name == "6.5.0-test.btf"


def test_lookup_defaults_to_this_machine(tree: Path) -> None:
    host = host_identity()
    if not (host.distro and host.version):
        pytest.skip("this machine's /etc/os-release has no ID/VERSION_ID")
    path = BtfArchive(tree).lookup()
    assert path == tree / host.distro / host.version / host.arch / f"{host.release}.btf.tar.xz"
    assert host.release == os.uname().release
    assert host.arch == arch_name(os.uname().machine) in ("x86_64", "arm64", os.uname().machine)


def test_lookup_codename_fallback(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some archives name Debian versions by codename: os-release's VERSION_CODENAME is
    tried after VERSION_ID when the defaults come from os-release."""
    d = tree / "debian" / "bookworm" / "x86_64"
    d.mkdir(parents=True, exist_ok=True)
    (d / "6.1.0-99-amd64.btf").write_bytes(VMLINUX.read_bytes())
    fake = HostIdentity("6.1.0-99-amd64", "debian", "12", "bookworm", "x86_64")
    monkeypatch.setattr(archive_mod, "host_identity", lambda: fake)
    assert BtfArchive(tree).lookup() == d / "6.1.0-99-amd64.btf"


def test_lookup_errors_name_what_was_searched(tree: Path) -> None:
    archive = BtfArchive(tree)
    with pytest.raises(BtfError) as exc:
        archive.lookup("9.9.9-missing", "ubuntu/20.04", "x86_64")
    msg = str(exc.value)
    assert "no BTF for kernel 9.9.9-missing (ubuntu/20.04/x86_64)" in msg
    assert str(tree / "ubuntu/20.04/x86_64/9.9.9-missing.btf.tar.xz") in msg
    assert str(tree / "ubuntu/20.04/x86_64/9.9.9-missing.btf") in msg
    assert "holds 2 kernel(s): 5.4.0-1009-aws, 5.4.0-42-generic" in msg

    with pytest.raises(BtfError) as exc:  # right release, wrong distro
        archive.lookup("5.4.0-1009-aws", "centos/7", "x86_64")
    assert "archived as: ubuntu/20.04/x86_64/5.4.0-1009-aws" in str(exc.value)

    with pytest.raises(BtfError) as exc:
        archive.lookup("1.0", "slackware/15", "x86_64")
    assert "has no slackware/15/x86_64 directory" in str(exc.value)
    assert "centos/7/x86_64" in str(exc.value)

    with pytest.raises(BtfError, match="distribution is unknown"):
        archive.lookup("1.0", "", "x86_64")
    with pytest.raises(BtfError, match="version is unknown"):
        archive.lookup("1.0", "ubuntu", "x86_64")
    with pytest.raises(BtfError, match="not a directory"):
        BtfArchive(tree / "nope").lookup("1.0", "ubuntu/20.04", "x86_64")


@needs_vmlinux
def test_load_is_a_target_btf(tree: Path) -> None:
    target = BtfArchive(tree).load("5.4.0-1009-aws", os_release="ubuntu/20.04", arch="x86_64")
    assert isinstance(target, TargetBtf)
    assert target.vmlinux.raw == VMLINUX.read_bytes()
    assert target.source.endswith("5.4.0-1009-aws.btf.tar.xz")
    assert target.modules() == {}


@needs_vmlinux
def test_prepare_with_archive_matches_running_kernel(
    tree: Path, bpf_build: Callable[..., Path]
) -> None:
    from bpfobj.object import BpfObject

    case = next(c for c in objects.OBJECTS if c.name == "core")
    path = objects.build_case(case, bpf_build)
    archive = BtfArchive(tree)
    via_archive = BpfObject.open(path).prepare(
        btf=archive.load("5.4.0-42-generic", "ubuntu/20.04", "x86_64")
    )
    direct = BpfObject.open(path).prepare(str(VMLINUX))
    a, b = via_archive.to_json(), direct.to_json()
    assert [p["insns"] for p in a["programs"]] == [p["insns"] for p in b["programs"]]
    assert len(a["core_relos"]) == len(b["core_relos"]) > 0


def test_parse_os_release() -> None:
    text = '# comment\nNAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n' \
        "VERSION_CODENAME=bookworm\nPRETTY_NAME='x \\\"y\\\"'\n\nBROKEN\n"
    info = parse_os_release(text)
    assert info["ID"] == "debian" and info["VERSION_ID"] == "12"
    assert info["NAME"] == "Debian GNU/Linux"
    assert info["VERSION_CODENAME"] == "bookworm"
    assert info["PRETTY_NAME"] == 'x "y"'
    assert "BROKEN" not in info
    assert arch_name("aarch64") == "arm64" and arch_name("x86_64") == "x86_64"
    assert arch_name("riscv64") == "riscv64"


def test_host_identity_reads_files(tmp_path: Path) -> None:
    f = tmp_path / "os-release"
    f.write_text("ID=ubuntu\nVERSION_ID=22.04\nVERSION_CODENAME=jammy\n")
    host = host_identity((str(tmp_path / "missing"), str(f)))
    assert (host.distro, host.version, host.codename) == ("ubuntu", "22.04", "jammy")
    assert host.release == os.uname().release


def test_cli_archive(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["btf", "archive", "list", str(tree), "--distro", "ubuntu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("ubuntu\t20.04\tarm64\t5.4.0-42-generic\t")
    assert main(["btf", "archive", "lookup", str(tree), "--release", "5.4.0-1009-aws",
                 "--os-release", "ubuntu/20.04", "--arch", "x86_64"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip().endswith("5.4.0-1009-aws.btf.tar.xz")
    assert main(["btf", "archive", "lookup", str(tree), "--release", "0.0",
                 "--os-release", "ubuntu/20.04", "--arch", "x86_64"]) == 1  # fmt: skip
    assert "searched" in capsys.readouterr().err
    assert main(["btf", "archive", "list", str(tree), "--distro", "none"]) == 1
