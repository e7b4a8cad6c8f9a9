"""The pure parts of integration/vm.py, on the host, without booting anything: package name
selection, module dependencies, cpio writing, the init script, the exit marker, junit parsing
and the summary table."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import shutil
import stat
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from integration import vm  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("BPFOBJ_VM") == "1", reason="host-side unit tests of the VM runner"
)

# -- package names ---------------------------------------------------------------------------

LISTS = {
    "linux-image-5.10.0-30-amd64", "linux-image-5.10.0-46-amd64", "linux-image-5.10.0-45-amd64",
    "linux-image-5.10.0-46-cloud-amd64", "linux-image-5.10.0-46-rt-amd64",
    "linux-image-5.10.0-46-amd64-dbg", "linux-image-5.10.0-46-amd64-unsigned",
    "linux-image-5.10.0-32-arm64", "linux-image-5.10.0-46-arm64", "linux-image-5.10.0-9-arm64",
    "linux-image-6.1.0-0.deb11.52-amd64", "linux-image-6.1.0-56-amd64", "linux-image-6.1.0-55-amd64",
    "linux-image-6.1-amd64", "linux-image-6.1.0-57-amd64",
    "linux-image-6.12.117+deb12-amd64", "linux-image-6.12.99+deb12-amd64",
    "linux-image-6.12.120+deb12-amd64",
    "linux-binary-7.3.4+deb13-amd64", "linux-modules-7.3.4+deb13-amd64",
    "linux-base-7.3.4+deb13-amd64", "linux-binary-7.3.10+deb13-amd64",
    "linux-modules-7.3.10+deb13-amd64",  # no linux-base-7.3.10: an incomplete set
    "linux-binary-7.3.2+deb13-amd64", "linux-modules-7.3.2+deb13-amd64",
    "linux-base-7.3.2+deb13-amd64", "linux-binary-7.3.4+deb13-cloud-amd64",
}


def test_pinned_name_first_then_newest() -> None:
    sets = vm.package_sets(vm.KERNELS["6.1"], "amd64", LISTS)
    assert sets == [
        ("linux-image-6.1.0-56-amd64",),
        ("linux-image-6.1.0-57-amd64",),
        ("linux-image-6.1.0-55-amd64",),
    ]  # not the bullseye-backports 6.1.0-0.deb11.N names nor the linux-image-6.1-amd64 meta


def test_pinned_per_arch_and_flavours_left_out() -> None:
    assert vm.package_sets(vm.KERNELS["5.10"], "amd64", LISTS) == [
        ("linux-image-5.10.0-46-amd64",), ("linux-image-5.10.0-45-amd64",),
        ("linux-image-5.10.0-30-amd64",),
    ]
    # arm64 pins bullseye's -32 (bullseye-security's arm64 .debs 404): -46 is the fallback
    assert vm.package_sets(vm.KERNELS["5.10"], "arm64", LISTS) == [
        ("linux-image-5.10.0-32-arm64",), ("linux-image-5.10.0-46-arm64",),
        ("linux-image-5.10.0-9-arm64",),
    ]


def test_fallback_when_the_pinned_name_is_retired() -> None:
    lists = LISTS - {"linux-image-6.12.117+deb12-amd64"}
    sets = vm.package_sets(vm.KERNELS["6.12"], "amd64", lists)
    assert sets == [("linux-image-6.12.120+deb12-amd64",), ("linux-image-6.12.99+deb12-amd64",)]
    assert vm.package_sets(vm.KERNELS["6.12"], "arm64", lists) == []


def test_split_kernels_come_with_their_companions() -> None:
    kl = vm.KERNELS["7.3"]
    assert kl.companion_names("linux-binary-7.3.4+deb13-amd64") == (
        "linux-modules-7.3.4+deb13-amd64", "linux-base-7.3.4+deb13-amd64",
    )
    assert vm.package_sets(kl, "amd64", LISTS) == [
        ("linux-binary-7.3.4+deb13-amd64", "linux-modules-7.3.4+deb13-amd64",
         "linux-base-7.3.4+deb13-amd64"),
        ("linux-binary-7.3.2+deb13-amd64", "linux-modules-7.3.2+deb13-amd64",
         "linux-base-7.3.2+deb13-amd64"),
    ]  # 7.3.10 lacks linux-base: skipped


def test_every_line_pins_a_name_its_pattern_matches() -> None:
    for kl in vm.KERNELS.values():
        for deb, name in kl.pinned.items():
            assert kl.regex(deb).fullmatch(name), (kl.line, name)
            assert vm.package_sets(kl, deb, {name, *kl.companion_names(name)})[0][0] == name


def test_arch_and_line_names() -> None:
    assert vm.arch_named("aarch64") is vm.ARCHES["arm64"]
    assert vm.arch_named("amd64") is vm.ARCHES["x86_64"]
    with pytest.raises(vm.VmError, match="unknown arch"):
        vm.arch_named("riscv64")
    with pytest.raises(vm.VmError, match="unknown kernel line"):
        vm.kernel_line("4.19")


# -- apt sources -----------------------------------------------------------------------------

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security/
Suites: bookworm-security
Components: main
"""


def test_mirrors_from_deb822_and_one_line_sources() -> None:
    parsed = vm.parse_sources(DEB822)
    assert parsed["bookworm"] == "http://mirror.example/debian"
    assert vm.mirrors(parsed) == {
        "debian": "http://mirror.example/debian",
        "debian-security": "http://mirror.example/debian-security",
    }
    one_line = "deb [arch=amd64] http://m.example/debian bookworm main\n# deb http://x y z\n"
    assert vm.mirrors(vm.parse_sources(one_line))["debian"] == "http://m.example/debian"
    assert vm.mirrors({}) == vm.DEFAULT_MIRRORS


def test_private_sources_list() -> None:
    text = vm.sources_list(vm.mirrors(vm.parse_sources(DEB822)), Path("/k.gpg"))
    lines = text.splitlines()
    assert "deb [arch=amd64,arm64 signed-by=/k.gpg] http://mirror.example/debian bookworm main" in lines
    assert any(line.endswith("debian-security bullseye-security main") for line in lines)
    assert any(line.endswith("/debian trixie-backports main") for line in lines)
    assert "signed-by" not in vm.sources_list(vm.DEFAULT_MIRRORS, None)


def test_apt_options_never_touch_etc_apt(tmp_path: Path) -> None:
    opts = vm.Apt(tmp_path).options()
    values = [opts[i + 1] for i in range(0, len(opts), 2)]
    assert f"Dir::Etc::SourceList={tmp_path / 'sources.list'}" in values
    assert "Dir::Etc::SourceParts=/nonexistent" in values
    assert f"Dir::State::Lists={tmp_path / 'lists'}" in values
    assert f"Dir::Cache::Archives={tmp_path / 'archives'}" in values


# -- modules ---------------------------------------------------------------------------------


def make_elf(modinfo: bytes, *, bits: int = 64, order: str = "<") -> bytes:
    """A minimal relocatable ELF with a .modinfo section (and .shstrtab)."""
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    ehsize, shentsize = (64, 64) if bits == 64 else (52, 40)
    data_off = ehsize
    str_off = data_off + len(modinfo)
    shoff = str_off + len(shstrtab)
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if order == "<" else 2, 1]) + bytes(9)
    word = "Q" if bits == 64 else "I"
    header = ident + struct.pack(
        f"{order}HHI{word}{word}{word}IHHHHHH", 1, 0xF7, 1, 0, 0, shoff, 0, ehsize, 0, 0,
        shentsize, 3, 2,
    )
    sh_fmt = f"{order}II{word}{word}{word}{word}II{word}{word}"
    sections = [
        struct.pack(sh_fmt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        struct.pack(sh_fmt, 1, 1, 2, 0, data_off, len(modinfo), 0, 0, 1, 0),
        struct.pack(sh_fmt, 10, 3, 0, 0, str_off, len(shstrtab), 0, 0, 1, 0),
    ]
    return header + modinfo + shstrtab + b"".join(sections)


@pytest.mark.parametrize(("bits", "order"), [(64, "<"), (64, ">"), (32, "<")])
def test_parse_modinfo(bits: int, order: str) -> None:
    info = vm.parse_modinfo(make_elf(
        b"alias=virtio:d00000009v*\0alias=fs-9p\0depends=9pnet,netfs\0name=9p\0"
        b"vermagic=6.1.0 SMP mod_unload\0", bits=bits, order=order,
    ))
    assert info["alias"] == ["virtio:d00000009v*", "fs-9p"]
    assert info["name"] == ["9p"]
    assert vm.module_depends(info) == ["9pnet", "netfs"]


def test_empty_depends_and_hyphens() -> None:
    assert vm.module_depends(vm.parse_modinfo(make_elf(b"depends=\0name=virtio\0"))) == []
    assert vm.module_depends({"depends": ["virtio-ring,nd-virtio"]}) == ["virtio_ring", "nd_virtio"]
    with pytest.raises(vm.VmError):
        vm.parse_modinfo(b"not an elf")


def test_module_names_and_builtin_list() -> None:
    assert vm.module_name("lib/modules/6.12/kernel/net/9p/9pnet_virtio.ko.xz") == "9pnet_virtio"
    assert vm.module_name("kernel/drivers/char/hw_random/virtio-rng.ko") == "virtio_rng"
    assert vm.module_name("x/y.ko.zst") == "y"
    text = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko\n\n"
    assert vm.builtin_modules(text) == {"virtio", "virtio_pci"}


DEPS = {
    "virtio_ring": [], "virtio": ["virtio_ring"], "virtio_pci_modern_dev": [],
    "virtio_pci_legacy_dev": [], "virtio_pci": ["virtio_ring", "virtio", "virtio_pci_modern_dev",
                                                "virtio_pci_legacy_dev"],
    "rng_core": [], "virtio_rng": ["rng_core", "virtio", "virtio_ring"],
    "9pnet": [], "9pnet_virtio": ["9pnet", "virtio_ring", "virtio"], "netfs": [],
    "fscache": ["netfs"], "9p": ["9pnet", "fscache", "netfs"], "veth": [],
}


def test_resolve_modules_orders_dependencies_first() -> None:
    order = vm.resolve_modules(vm.BOOT_MODULES, vm.EXTRA_MODULES, DEPS.get, set())
    assert sorted(order) == sorted(DEPS)  # every needed module once; absent extras skipped
    for name in order:
        for dep in DEPS[name]:
            assert order.index(dep) < order.index(name), (dep, name)
    assert order[-1] == "veth"  # extras after the boot chain


def test_builtin_modules_are_not_loaded() -> None:
    builtin = {"virtio", "virtio_ring", "virtio_pci", "virtio_pci_modern_dev",
               "virtio_pci_legacy_dev", "fscache"}
    order = vm.resolve_modules(vm.BOOT_MODULES, (), DEPS.get, builtin)
    assert order == ["rng_core", "virtio_rng", "9pnet", "9pnet_virtio", "netfs", "9p"]


def test_missing_modules() -> None:
    deps = dict(DEPS)
    del deps["netfs"]
    with pytest.raises(vm.VmError, match=r"module netfs \(needed by fscache\) is neither"):
        vm.resolve_modules(vm.BOOT_MODULES, (), deps.get, set())
    with pytest.raises(vm.VmError, match="module 9p is neither built in nor shipped"):
        vm.resolve_modules(["9p"], (), dict[str, list[str]]().get, set())
    cyclic = {"a": ["b"], "b": ["a"]}
    with pytest.raises(vm.VmError, match="cycle: a -> b -> a"):
        vm.resolve_modules(["a"], (), cyclic.get, set())


def test_modules_dep_for_busybox_modprobe() -> None:
    order = vm.resolve_modules(["9p"], (), DEPS.get, {"fscache"})
    text = vm.modules_dep(order, DEPS.get)
    lines = dict(line.split(":", 1) for line in text.splitlines())
    assert lines["9pnet.ko"] == ""
    assert lines["9p.ko"].split() == ["netfs.ko", "9pnet.ko"]  # fscache is built in


# -- extracting a kernel from .debs ----------------------------------------------------------


def _deb(tmp: Path, name: str, files: dict[str, bytes]) -> Path:
    root = tmp / name
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: t <t@t>\n"
        "Description: test\n"
    )
    out = tmp / f"{name}_1.0-1_amd64.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--build", str(root), str(out)], check=True,
                   capture_output=True)
    return out


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_extract_kernel_keeps_only_what_the_guest_loads(tmp_path: Path) -> None:
    def ko(name: str, depends: str) -> bytes:
        return make_elf(f"depends={depends}\0name={name}\0".encode())

    mods = "usr/lib/modules/7.3.4+deb13-amd64"
    files = {
        f"{mods}/vmlinuz": b"KERNEL",
        f"{mods}/kernel/drivers/virtio/virtio_ring.ko.xz": lzma.compress(ko("virtio_ring", "")),
        f"{mods}/kernel/drivers/virtio/virtio.ko.xz": lzma.compress(ko("virtio", "virtio_ring")),
        f"{mods}/kernel/drivers/virtio/virtio_pci.ko.gz": gzip.compress(
            ko("virtio_pci", "virtio,virtio_ring")),
        f"{mods}/kernel/net/9p/9pnet.ko": ko("9pnet", ""),
        f"{mods}/kernel/net/9p/9pnet_virtio.ko.xz": lzma.compress(
            ko("9pnet_virtio", "9pnet,virtio,virtio_ring")),
        f"{mods}/kernel/fs/netfs/netfs.ko.xz": lzma.compress(ko("netfs", "")),
        f"{mods}/kernel/fs/9p/9p.ko.xz": lzma.compress(ko("9p", "9pnet,netfs")),
        f"{mods}/kernel/fs/ext4/ext4.ko.xz": lzma.compress(ko("ext4", "")),
        f"{mods}/kernel/drivers/net/veth.ko.xz": lzma.compress(ko("veth", "")),
    }
    base = {
        f"{mods}/modules.builtin": b"kernel/drivers/char/hw_random/virtio-rng.ko\n",
        f"{mods}/config": b"CONFIG_PVH=y\n",
    }
    debs = [_deb(tmp_path, "linux-binary-t", files), _deb(tmp_path, "linux-base-t", base)]
    meta = vm.extract_kernel(debs, tmp_path / "k")
    tmp: Path = meta["tmp"]
    assert meta["release"] == "7.3.4+deb13-amd64"
    assert meta["modules"] == ["virtio_ring", "virtio", "virtio_pci", "9pnet", "9pnet_virtio",
                               "netfs", "9p", "veth"]
    assert meta["builtin"] == ["virtio_rng"]
    assert (tmp / "vmlinuz").read_bytes() == b"KERNEL"
    assert (tmp / "config").read_bytes() == b"CONFIG_PVH=y\n"
    assert sorted(p.name for p in (tmp / "modules").iterdir()) == sorted(
        f"{m}.ko" for m in meta["modules"])
    assert vm.parse_modinfo((tmp / "modules" / "9p.ko").read_bytes())["name"] == ["9p"]


def test_pvh_vmlinux_is_found_inside_a_bzimage() -> None:
    elf = b"\x7fELF" + bytes(range(256)) * 64
    for packed in (lzma.compress(elf, format=lzma.FORMAT_XZ), gzip.compress(elf)):
        bzimage = b"MZ" + b"\0" * 500 + b"\x1f\x8b\x08junk" + packed + b"\0" * 64
        assert vm.pvh_vmlinux(bzimage) == elf
    assert vm.pvh_vmlinux(b"MZ" + b"\0" * 1000) is None


# -- cpio ------------------------------------------------------------------------------------


def test_pad4() -> None:
    assert [vm.pad4(n) for n in range(6)] == [0, 3, 2, 1, 0, 3]


def test_cpio_entries_are_aligned_and_round_trip(tmp_path: Path) -> None:
    def build(w: vm.CpioWriter) -> None:
        w.dirs("a/b")
        w.file("a/b/odd", b"x" * 5, 0o755)
        w.file("a/empty", b"")
        w.symlink("a/link", "b/odd")
        w.chardev("dev/console", 5, 1)

    data = vm.cpio_bytes(build)
    assert len(data) % 4 == 0
    assert data.startswith(b"070701")
    entries = vm.read_cpio(data)
    assert list(entries) == ["a", "a/b", "a/b/odd", "a/empty", "a/link", "dev/console"]
    mode, body = entries["a/b/odd"]
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755 and body == b"xxxxx"
    assert stat.S_ISLNK(entries["a/link"][0]) and entries["a/link"][1] == b"b/odd"
    assert stat.S_ISCHR(entries["dev/console"][0])
    # walk the headers: each is 110 bytes ("070701" + 13 eight-digit hex fields) at a
    # multiple of 4, its name + NUL and its data each padded to the next multiple of 4
    pos, names = 0, list[str]()
    while True:
        assert pos % 4 == 0 and data[pos:pos + 6] == b"070701", pos
        size, namesize = int(data[pos + 54:pos + 62], 16), int(data[pos + 94:pos + 102], 16)
        names.append(data[pos + 110:pos + 110 + namesize - 1].decode())
        assert data[pos + 110 + namesize - 1] == 0
        start = pos + 110 + namesize + vm.pad4(110 + namesize)
        assert start % 4 == 0
        pos = start + size + vm.pad4(size)
        if names[-1] == "TRAILER!!!":
            break
    assert pos == len(data)
    assert names[-1] == "TRAILER!!!" and names[:-1] == list(entries)
    if shutil.which("cpio"):
        listing = subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True,
                                 check=True).stdout.decode().split()
        assert listing == ["a", "a/b", "a/b/odd", "a/empty", "a/link", "dev/console"]


def test_cpio_tree(tmp_path: Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3.11").write_bytes(b"\x7fELF")
    (tmp_path / "usr/bin/python3.11").chmod(0o755)
    (tmp_path / "usr/bin/python3").symlink_to("python3.11")
    (tmp_path / "lib64").symlink_to("usr/lib")
    entries = vm.read_cpio(vm.cpio_bytes(lambda w: w.tree(tmp_path)))
    assert set(entries) == {"usr", "usr/bin", "usr/bin/python3.11", "usr/bin/python3", "lib64"}
    assert stat.S_IMODE(entries["usr/bin/python3.11"][0]) == 0o755
    assert entries["lib64"][1] == b"usr/lib"


def test_appended_run_cpio_after_a_gzip_member_is_padded() -> None:
    base = gzip.compress(vm.cpio_bytes(lambda w: w.file("init", b"#!/bin/sh\n", 0o755)))
    image = base + b"\0" * vm.pad4(len(base)) + vm.run_cpio("ab" * 8, ["true"], {}, False)
    run_at = len(base) + vm.pad4(len(base))
    assert run_at % 4 == 0
    assert image[run_at:run_at + 6] == b"070701"


def test_run_cpio_carries_token_command_and_env() -> None:
    env = {"PYTEST_ADDOPTS": "--color=no -p no:cacheprovider", "BPFOBJ_VM": "1"}
    entries = vm.read_cpio(vm.run_cpio("0123456789abcdef", ["pytest", "-k", "a b"], env, True))
    assert entries["run/vm/env"][1] == b"VM_TOKEN=0123456789abcdef\nVM_COLLECT_BTF=1\n"
    script = entries["run/vm/command"][1].decode()
    assert "export PYTEST_ADDOPTS='--color=no -p no:cacheprovider'\n" in script
    assert script.endswith("pytest -k 'a b'\n")


# -- init and the exit marker ----------------------------------------------------------------


def test_init_script() -> None:
    text = vm.init_script("6.1.0-56-arm64", "vm-arm64-6.1")
    assert text.startswith("#!/bin/busybox sh\n")
    for needle in (
        "mount -t proc proc /proc", "mount -t sysfs sysfs /sys", "mount -t devtmpfs devtmpfs /dev",
        "mount -t tmpfs tmpfs /tmp", "mount -t bpf bpf /sys/fs/bpf",
        "mount -t tracefs tracefs /sys/kernel/tracing", "mount -t debugfs debugfs /sys/kernel/debug",
        'insmod "/lib/modules/6.1.0-56-arm64/$mod.ko"', "cache=loose,ro src /src",
        "results /results", "/sys/kernel/btf/", "reboot -f",
    ):
        assert needle in text, needle
    assert text.index("insmod") < text.index("mount -t 9p") < text.index("sh /run/vm/command")
    assert "printf '\\n%s:%s:%s\\n' VMEXIT \"$VM_TOKEN\" \"$rc\"" in text
    if shutil.which("sh"):
        subprocess.run(["sh", "-n"], input=text.encode(), check=True)


def test_parse_marker() -> None:
    token = "0123456789abcdef"
    assert vm.parse_marker(f"VMEXIT:{token}:0", token) == 0
    assert vm.parse_marker(f"[   12.3] random: crng init doneVMEXIT:{token}:17", token) == 17
    assert vm.parse_marker(f"VMEXIT:{'f' * 16}:0", token) is None  # another run's token
    assert vm.parse_marker("VMEXIT:$VM_TOKEN:$rc", token) is None
    assert vm.parse_marker(f"VMEXIT:{token}:", token) is None


def test_guest_env_points_junit_at_results() -> None:
    env = vm.guest_env(vm.ARCHES["arm64"], "6.12")
    assert "--junitxml=/results/junit.xml" in env["PYTEST_ADDOPTS"]
    assert "--color=no" in env["PYTEST_ADDOPTS"]
    assert env["PYTHONPATH"] == "/src"
    assert (env["BPFOBJ_VM_ARCH"], env["BPFOBJ_VM_KERNEL"]) == ("arm64", "6.12")


# -- qemu ------------------------------------------------------------------------------------


def test_qemu_command_arm64_tcg(tmp_path: Path) -> None:
    cmd = vm.qemu_command(vm.ARCHES["arm64"], Path("/k"), Path("/i"),
                          [("src", Path("/co"), True), ("results", Path("/r"), False)])
    assert cmd[0] == "qemu-system-aarch64"
    assert "max,pauth-impdef=on" in cmd and "tcg,thread=multi" in cmd
    append = cmd[cmd.index("-append") + 1]
    assert "console=ttyAMA0" in append and "rdinit=/init" in append and "panic=-1" in append
    fsdevs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-fsdev"]
    assert fsdevs == [
        "local,id=src,path=/co,security_model=none,multidevs=remap,readonly=on",
        "local,id=results,path=/r,security_model=none,multidevs=remap",
    ]
    assert "virtio-9p-pci,fsdev=src,mount_tag=src" in cmd
    assert {"-nodefaults", "-no-reboot", "-no-user-config"} <= set(cmd)
    assert cmd[cmd.index("-serial") + 1] == "stdio"


def test_qemu_command_x86_64_kvm() -> None:
    cmd = vm.qemu_command(vm.ARCHES["x86_64"], Path("/k"), Path("/i"), [], kvm=True, smp=2)
    assert cmd[:5] == ["qemu-system-x86_64", "-machine", "q35,accel=kvm", "-cpu", "host"]
    assert "console=ttyS0" in cmd[cmd.index("-append") + 1]
    assert cmd[cmd.index("-smp") + 1] == "2"


def test_kvm_detection(tmp_path: Path) -> None:
    dev = tmp_path / "kvm"
    dev.write_text("")
    sysmod = tmp_path / "module"
    (sysmod / "kvm_pvm").mkdir(parents=True)
    x86, arm = vm.ARCHES["x86_64"], vm.ARCHES["arm64"]
    assert not vm.kvm_usable(x86, "x86_64", sysmod, dev)  # kvm_pvm alone: hangs, use TCG
    (sysmod / "kvm_intel").mkdir()
    assert vm.kvm_usable(x86, "x86_64", sysmod, dev)
    assert not vm.kvm_usable(arm, "x86_64", sysmod, dev)  # no cross-arch KVM
    assert not vm.kvm_usable(x86, "x86_64", sysmod, tmp_path / "absent")
    assert vm.kvm_usable(arm, "aarch64", tmp_path / "none", dev)


# -- results ---------------------------------------------------------------------------------

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="6">
<testcase classname="a" name="ok1"/><testcase classname="a" name="ok2"></testcase>
<testcase classname="a" name="bad"><failure message="x">tb</failure></testcase>
<testcase classname="a" name="err"><error message="setup">tb</error></testcase>
<testcase classname="a" name="s1"><skipped message="no"/></testcase>
<testcase classname="a" name="s2"><skipped type="pytest.xfail" message="x"/></testcase>
</testsuite></testsuites>"""


def test_parse_junit() -> None:
    j = vm.parse_junit(JUNIT)
    assert (j.passed, j.failed, j.skipped, j.total) == (2, 2, 2, 6)
    empty = '<testsuites><testsuite errors="1" failures="0" tests="0"/></testsuites>'
    assert (vm.parse_junit(empty).failed, vm.parse_junit(empty).passed) == (1, 0)
    with pytest.raises(ET.ParseError):
        vm.parse_junit("<testsuites>")


def test_summary_table() -> None:
    results = [
        vm.RunResult("x86_64", "5.10", 0, 12.34, "5.10.0-46-amd64", vm.Junit(14, 0, 1)),
        vm.RunResult("arm64", "7.3", vm.EXIT_NO_MARKER, 3.0),
        vm.RunResult("arm64", "6.1", vm.EXIT_TIMEOUT, 900.0, "6.1.0-56-arm64"),
        vm.RunResult("x86_64", "6.12", 1, 30.0, "6.12.117+deb12-amd64", vm.Junit(10, 3, 0)),
    ]
    lines = vm.summary_table(results).splitlines()
    assert lines[0].split() == ["pair", "release", "time", "passed", "failed", "skipped", "status"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["x86_64/5.10", "5.10.0-46-amd64", "12.3s", "14", "0", "1", "ok"]
    assert lines[3].split()[:6] == ["arm64/7.3", "-", "3.0s", "-", "-", "-"]
    assert lines[3].endswith("no exit marker (panic?)")
    assert lines[4].endswith("timeout")
    assert lines[5].endswith("failed (exit 1)")
    assert lines[0].index("release") == lines[2].index("5.10.0-46-amd64")  # columns line up
    assert lines[0].index("status") == lines[2].index("ok")


def test_matrix_pairs_and_cli() -> None:
    pairs = vm.matrix_pairs(vm.ARCHES, vm.KERNELS)
    assert len(pairs) == 8
    assert [(a.name, k) for a, k in pairs[:2]] == [("x86_64", "5.10"), ("arm64", "5.10")]
    args = vm.parse_args(["--arch", "arm64", "--kernel", "6.1", "--", "pytest", "-x", "integration"])
    assert (args.sub, args.arch, args.kernel) == ("run", "arm64", "6.1")
    assert args.command == ["pytest", "-x", "integration"]
    args = vm.parse_args(["matrix", "--kernel", "7.3"])
    assert (args.sub, args.kernel, args.jobs, args.command) == (
        "matrix", ["7.3"], 2, list(vm.DEFAULT_COMMAND))
    with pytest.raises(SystemExit):
        vm.parse_args(["--kernel", "4.19"])


def test_console_scripts_from_wheel_metadata() -> None:
    scripts = vm.console_scripts(
        "[console_scripts]\npytest = _pytest.config:_console_main\n"
        "tool = pkg.cli:App.run [extra]\n\n[pytest11]\nhypothesispytest = _hypothesis_pytestplugin\n"
    )
    assert set(scripts) == {"pytest", "tool"}
    assert scripts["pytest"].endswith("from _pytest.config import _console_main\n"
                                      "sys.exit(_console_main())\n")
    assert "from pkg.cli import App\nsys.exit(App.run())" in scripts["tool"]


def test_guest_requirements_come_from_pyproject() -> None:
    reqs = vm.guest_requirements()
    assert "pytest" in reqs and "hypothesis" in reqs
    assert any(r.startswith("pyelftools") for r in reqs)
    assert not any(r.startswith("rich") for r in reqs)


def test_prebuilt_object_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "prebuilt.json"
    monkeypatch.setattr(vm, "PREBUILT_MANIFEST", manifest)
    monkeypatch.setattr(vm, "ROOT", tmp_path)
    with pytest.raises(LookupError, match=r"run `python -m integration\.vm prebuild`"):
        vm.prebuilt_object("obj_core.c", vmlinux=True)
    manifest.write_text(json.dumps({"objects": [
        {"name": "core", "source": "obj_core.c", "options": {"vmlinux": True},
         "path": "build/test-objs/obj_core-1.o"},
        {"name": "kp", "source": "obj_kprobes.c",
         "options": vm._options_key({"defines": ("__TARGET_ARCH_arm64",), "tag": "arm64"}),
         "path": "build/test-objs/obj_kprobes-arm64-2.o"},
    ]}))
    assert vm.prebuilt_object("obj_core.c", vmlinux=True) == tmp_path / "build/test-objs/obj_core-1.o"
    assert vm.prebuilt_object(
        "obj_kprobes.c", tag="arm64", defines=("__TARGET_ARCH_arm64",), cpu=None
    ).name == "obj_kprobes-arm64-2.o"
    with pytest.raises(LookupError, match="add it to PREBUILT"):
        vm.prebuilt_object("obj_core.c")


def test_prebuilt_objects_have_expectations_in_the_guest_test() -> None:
    text = (ROOT / "integration" / "guest" / "test_guest_offline.py").read_text()
    for p in vm.PREBUILT:
        assert f'"{p.name}": Expect(' in text, p.name


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed")
def test_vagrantfile_validates(tmp_path: Path) -> None:
    """`vagrant validate` (provider blocks ignored: no libvirt or VirtualBox needed)."""
    env = {**os.environ, "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot"),
           "VAGRANT_CHECKPOINT_DISABLE": "1"}
    proc = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=ROOT / "vagrant",
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout
