"""The attach layer without the kernel: the dispatch table against the SEC() table, section
name parsing (libbpf's attach_* rules), kprobe / uprobe perf_event_attr building, the
syscall-wrapper prefix per architecture, uprobe offsets from ELF symbols (a gcc-built test
binary and the host's libc, checked against pyelftools), /etc/ld.so.cache parsing, glob
matching, the extra bpf_attr layouts (checked against the C compiler), and `Link`'s
bookkeeping. No bpf(2), no root."""

from __future__ import annotations

import ctypes
import fnmatch
import os
import shutil
import struct
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bpfobj.arch import ARM64, X86_64
from bpfobj.attach import (
    ATTACHERS,
    AUTO_TARGET,
    attach,
    auto_attachable,
    elfsyms,
    ldcache,
    usdt,
)
from bpfobj.attach.kprobe import (
    KprobeMultiTarget,
    KprobeTarget,
    kprobe_perf_attr,
    kprobe_pmu_type,
    legacy_event_name,
    legacy_kprobe_definition,
    parse_kprobe_multi_section,
    parse_kprobe_section,
    parse_ksyscall_section,
    retprobe_bit,
    syscall_function,
)
from bpfobj.attach.tracing import parse_raw_tp_section, parse_tracepoint_section
from bpfobj.attach.uprobe import (
    UprobeTarget,
    legacy_uprobe_definition,
    parse_uprobe_multi_section,
    parse_uprobe_section,
    uprobe_perf_attr,
)
from bpfobj.elf.secdefs import SECTION_DEFS, AttachKind, find_sec_def
from bpfobj.errors import InputError, NotSupportedError, PhaseError, SpecError
from bpfobj.links import Link
from bpfobj.sys import attach_attr
from bpfobj.sys.perf import PERF_ATTR_SIZE_VER7
from bpfobj.sys.syscall import Fd

ROOT = Path(__file__).resolve().parent.parent
PROGS = ROOT / "tests" / "progs"
USERPROGS = ROOT / "tests" / "userprogs"
UAPI = Path("/work/src/linux-source-6.12/include/uapi")


# --------------------------------------------------------------------------------------
# the dispatch table
# --------------------------------------------------------------------------------------


def test_dispatch_table_covers_every_attach_kind() -> None:
    assert set(ATTACHERS) == set(AttachKind)
    assert {d.attach_kind for d in SECTION_DEFS} <= set(ATTACHERS)
    assert all(callable(fn) for fn in ATTACHERS.values())


def test_auto_target_covers_the_auto_attach_kinds() -> None:
    auto = {d.attach_kind for d in SECTION_DEFS if d.auto_attach}
    assert set(AUTO_TARGET) == auto


def fake_program(section: str, **kw: Any) -> Any:
    """What the attach layer reads of a `Program`, without a kernel."""
    sd = find_sec_def(section.removeprefix("?"))
    assert sd is not None, section
    target = section.split("/", 1)[1] if "/" in section else None
    spec = SimpleNamespace(section=section, sec_def=sd, autoload=True, attach_target=target)
    attrs = dict(name="prog", spec=spec, type=sd.prog_type,
                 expected_attach_type=sd.expected_attach_type)
    attrs.update(kw)
    return SimpleNamespace(**attrs)


@pytest.mark.parametrize("section,auto", [
    ("kprobe/do_sys_open", True), ("kprobe", False), ("kretprobe/vfs_read", True),
    ("ksyscall/openat", True), ("kretsyscall", False),
    ("uprobe/libc.so.6:malloc", True), ("uprobe", False), ("uretprobe//bin/sh:main", True),
    ("uprobe.multi/libc.so.6:mem*", True), ("uprobe.multi", False),
    ("kprobe.multi/vfs_*", True), ("kprobe.session/vfs_*", True),
    ("tp/syscalls/sys_enter_openat", True), ("tp", False), ("tracepoint/sched/sched_switch", True),
    ("raw_tp/sys_enter", True), ("raw_tp", False), ("raw_tracepoint.w/x", True),
    ("fentry/do_nanosleep", True), ("lsm/file_open", True), ("iter/task", True),
    ("usdt/libc.so.6:libc:setjmp", True),
    ("xdp", False), ("tc", False), ("tcx/ingress", False), ("cgroup_skb/egress", False),
    ("perf_event", False), ("socket", False), ("sk_lookup", False), ("netfilter", False),
    ("syscall", False), ("struct_ops/x", False), ("lwt_xmit", False), ("sk_msg", False),
])
def test_auto_attachable(section: str, auto: bool) -> None:
    assert auto_attachable(fake_program(section)) is auto


def test_auto_attachable_malformed_section() -> None:
    with pytest.raises(SpecError, match="missing the ':function"):
        auto_attachable(fake_program("uprobe/libc.so.6"))
    with pytest.raises(SpecError, match="not tp/<category>/<name>"):
        auto_attachable(fake_program("tp/syscalls"))


@pytest.mark.parametrize("section,error,match", [
    ("syscall", NotSupportedError, "never attached"),
    ("struct_ops/init", NotSupportedError, "struct_ops map"),
    ("usdt", SpecError, "names no probe"),
    ("kprobe", SpecError, "names no function"),
    ("uprobe", SpecError, "names no binary"),
    ("tp", SpecError, "names no tracepoint"),
    ("raw_tp", SpecError, "names no tracepoint"),
    ("xdp", SpecError, "needs an interface"),
    ("tc", SpecError, "needs an interface"),
    ("socket", SpecError, "needs a socket"),
    ("cgroup_skb/egress", SpecError, "needs a cgroup"),
    ("cgroup/skb", SpecError, "needs a cgroup"),
    ("lirc_mode2", SpecError, "needs a device"),
    ("sk_msg", SpecError, "needs the map"),
    ("lwt_in", SpecError, "needs a route"),
    ("lwt_seg6local", NotSupportedError, "seg6local"),
    ("xdp/devmap", NotSupportedError, "devmap"),
    ("action", SpecError, "tc actions"),
])
def test_attach_refuses_before_any_syscall(section: str, error: type[Exception],
                                           match: str) -> None:
    """Dispatch reaches the kind's function, which checks its inputs first (no kernel)."""
    with pytest.raises(error, match=match) as info:
        attach(fake_program(section))
    assert getattr(info.value, "program", None) == "prog"


@pytest.mark.parametrize("section,kw,feature,since", [
    ("uprobe.multi", {"binary": "/bin/sh", "pattern": "main"}, "uprobe_multi_link", "6.6"),
    ("kprobe.multi/vfs_*", {}, "kprobe_multi_link", "5.18"),
    ("sk_msg", {"map_fd": 1, "mode": "link"}, "sockmap_link", "6.10"),
])
def test_missing_link_type_is_not_supported(monkeypatch: pytest.MonkeyPatch, section: str,
                                            kw: dict[str, Any], feature: str,
                                            since: str) -> None:
    """A kernel whose feature probe says it lacks the link type: NotSupportedError naming
    the link type, the version it came with and what to do, before any syscall (the
    kernel would answer a bare EINVAL)."""
    from bpfobj.attach import common
    from bpfobj.kernel.features import Features

    feats = Features(kernel_release="5.10.0-test", **{feature: False})
    monkeypatch.setattr(common, "features", lambda: feats)
    for module in ("kprobe", "uprobe", "net"):
        monkeypatch.setattr(f"bpfobj.attach.{module}.features", lambda: feats)
    with pytest.raises(NotSupportedError) as info:
        attach(fake_program(section), **kw)
    text = str(info.value)
    kind = feature.removesuffix("_link")
    assert f"{kind} links" in text and f"Linux {since}+" in text and "5.10.0-test" in text
    assert info.value.program == "prog" and info.value.hint
    if kind == "sockmap":  # without mode="link": BPF_PROG_ATTACH, as libbpf's fallback
        assert "mode=\"legacy\"" in info.value.hint


# --------------------------------------------------------------------------------------
# section names (libbpf attach_kprobe / attach_uprobe / attach_tp / ... rules)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,want", [
    ("kprobe", None),
    ("kretprobe", None),
    ("kprobe/do_unlinkat", KprobeTarget("do_unlinkat")),
    ("kprobe/foo.isra.0+0x10", KprobeTarget("foo.isra.0", 16)),
    ("kprobe/foo+16", KprobeTarget("foo", 16)),
    ("kprobe/foo+010", KprobeTarget("foo", 8)),  # %li: octal
    ("kprobe/foo+", KprobeTarget("foo")),
    ("kprobe/foo-bar", KprobeTarget("foo")),  # %m[a-zA-Z0-9_.] stops at '-'
    ("kretprobe/vfs_read", KprobeTarget("vfs_read", retprobe=True)),
])
def test_parse_kprobe_section(name: str, want: KprobeTarget | None) -> None:
    assert parse_kprobe_section(name) == want


@pytest.mark.parametrize("name,match", [
    ("kprobe/", "invalid"), ("kprobe/+4", "invalid"), ("kprobe/x+-4", "non-negative"),
    ("kretprobe/x+4", "do not support offset"),
])
def test_parse_kprobe_section_errors(name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_kprobe_section(name)


def test_parse_ksyscall_and_multi_sections() -> None:
    assert parse_ksyscall_section("ksyscall") is None
    assert parse_ksyscall_section("ksyscall/openat") == ("openat", False)
    assert parse_ksyscall_section("kretsyscall/openat") == ("openat", True)
    assert parse_kprobe_multi_section("kprobe.multi") is None
    assert parse_kprobe_multi_section("kprobe.multi/vfs_*") == KprobeMultiTarget("vfs_*")
    assert parse_kprobe_multi_section("kretprobe.multi/x?y") == KprobeMultiTarget(
        "x?y", retprobe=True)
    assert parse_kprobe_multi_section("kprobe.session/bpf_fentry_test*") == \
        KprobeMultiTarget("bpf_fentry_test*", session=True)
    with pytest.raises(ValueError):
        parse_kprobe_multi_section("kprobe.multi/+x")


@pytest.mark.parametrize("name,want", [
    ("uprobe", None),
    ("uretprobe.s", None),
    ("uprobe/", None),
    ("uprobe/libc.so.6:malloc", UprobeTarget("libc.so.6", "malloc")),
    ("uprobe//usr/lib/libc.so.6:malloc", UprobeTarget("/usr/lib/libc.so.6", "malloc")),
    ("uprobe//proc/self/exe:main+0x20", UprobeTarget("/proc/self/exe", "main", 0x20)),
    ("uprobe/bin:func+12", UprobeTarget("bin", "func", 12)),
    ("uprobe/bin:func+x", UprobeTarget("bin", "func+x")),  # not an offset: kept in the name
    ("uprobe/libc.so.6:printf@@GLIBC_2.2.5", UprobeTarget("libc.so.6", "printf@@GLIBC_2.2.5")),
    ("uretprobe/libc.so.6:getpid", UprobeTarget("libc.so.6", "getpid", retprobe=True)),
    ("uretprobe.s/libc.so.6:getpid", UprobeTarget("libc.so.6", "getpid", retprobe=True)),
    ("uprobe.s/libc.so.6:getpid", UprobeTarget("libc.so.6", "getpid")),
])
def test_parse_uprobe_section(name: str, want: UprobeTarget | None) -> None:
    assert parse_uprobe_section(name) == want


def test_parse_uprobe_section_errors() -> None:
    with pytest.raises(ValueError, match="missing the ':function"):
        parse_uprobe_section("uprobe/libc.so.6")
    with pytest.raises(ValueError, match="missing the ':function"):
        parse_uprobe_section("uprobe/libc.so.6:")
    with pytest.raises(ValueError, match="do not support offset"):
        parse_uprobe_section("uretprobe/libc.so.6:getpid+4")


def test_parse_uprobe_multi_section() -> None:
    assert parse_uprobe_multi_section("uprobe.multi") is None
    assert parse_uprobe_multi_section("uprobe.multi/libc.so.6:mem*") == (
        "libc.so.6", "mem*", False)
    assert parse_uprobe_multi_section("uretprobe.multi.s//bin/sh:f?") == ("/bin/sh", "f?", True)
    with pytest.raises(ValueError):
        parse_uprobe_multi_section("uprobe.multi/libc.so.6")


def test_parse_tracepoint_and_raw_tp_sections() -> None:
    assert parse_tracepoint_section("tp") is None
    assert parse_tracepoint_section("tracepoint") is None
    assert parse_tracepoint_section("tp/syscalls/sys_enter_openat") == (
        "syscalls", "sys_enter_openat")
    assert parse_tracepoint_section("tracepoint/sched/sched_switch") == (
        "sched", "sched_switch")
    with pytest.raises(ValueError):
        parse_tracepoint_section("tp/syscalls")
    assert parse_raw_tp_section("raw_tp") is None
    assert parse_raw_tp_section("raw_tp/sys_enter") == "sys_enter"
    assert parse_raw_tp_section("raw_tracepoint/sched_switch") == "sched_switch"
    assert parse_raw_tp_section("raw_tp.w/bpf_test_finish") == "bpf_test_finish"
    assert parse_raw_tp_section("raw_tracepoint.w/x") == "x"


# --------------------------------------------------------------------------------------
# ksyscall: the arch prefix
# --------------------------------------------------------------------------------------


def test_syscall_prefix_per_arch() -> None:
    assert syscall_function("openat", arch=X86_64) == "__x64_sys_openat"
    assert syscall_function("openat", arch=ARM64) == "__arm64_sys_openat"
    # kernels without syscall wrappers (CONFIG_ARCH_HAS_SYSCALL_WRAPPER off)
    assert syscall_function("openat", arch=X86_64, wrappers=False) == "sys_openat"
    assert syscall_function("openat", arch=ARM64, wrappers=False) == "sys_openat"


# --------------------------------------------------------------------------------------
# kprobe / uprobe perf_event_attr
# --------------------------------------------------------------------------------------


def test_kprobe_perf_attr() -> None:
    a = kprobe_perf_attr("do_sys_openat2", 0x10, pmu_type=6)
    assert (a.type, a.size) == (6, PERF_ATTR_SIZE_VER7)
    assert a.config == 0  # not a retprobe
    assert ctypes.string_at(a.config1) == b"do_sys_openat2"  # kprobe_func
    assert a.config2 == 0x10  # probe_offset
    r = kprobe_perf_attr("vfs_read", retprobe=True, pmu_type=6, retprobe_bit=0)
    assert r.config == 1 and r.config2 == 0
    assert kprobe_perf_attr("f", retprobe=True, pmu_type=9, retprobe_bit=3).config == 8


def test_uprobe_perf_attr() -> None:
    a = uprobe_perf_attr("/usr/lib/libc.so.6", 0x9a6d0, pmu_type=7, retprobe=True,
                         retprobe_bit=0, ref_ctr_offset=0x1234)
    assert (a.type, a.size) == (7, PERF_ATTR_SIZE_VER7)
    assert a.config == 1 | (0x1234 << 32)  # PERF_UPROBE_REF_CTR_OFFSET_SHIFT
    assert ctypes.string_at(a.config1) == b"/usr/lib/libc.so.6"
    assert a.config2 == 0x9a6d0
    with pytest.raises(ValueError):
        uprobe_perf_attr("/x", 0, pmu_type=7, ref_ctr_offset=1 << 32)


def test_pmu_files(tmp_path: Path) -> None:
    (tmp_path / "kprobe" / "format").mkdir(parents=True)
    (tmp_path / "kprobe" / "type").write_text("6\n")
    (tmp_path / "kprobe" / "format" / "retprobe").write_text("config:0\n")
    (tmp_path / "uprobe" / "format").mkdir(parents=True)
    (tmp_path / "uprobe" / "format" / "retprobe").write_text("config:5\n")
    assert kprobe_pmu_type(str(tmp_path)) == 6
    assert kprobe_pmu_type(str(tmp_path / "none")) is None
    assert retprobe_bit("kprobe", str(tmp_path)) == 0
    assert retprobe_bit("uprobe", str(tmp_path)) == 5
    with pytest.raises(NotSupportedError, match="CONFIG_KPROBES"):
        retprobe_bit("kprobe", str(tmp_path / "none"))


def test_legacy_probe_events() -> None:
    name = legacy_event_name("foo.isra.0", 0x10, pid=42, index=3)
    assert name == "bpfobj_42_3_foo_isra_0_0x10"
    assert legacy_kprobe_definition(name, "foo.isra.0", 0x10, False) == (
        f"p:kprobes/{name} foo.isra.0+0x10")
    assert legacy_kprobe_definition("e", "vfs_read", 0, True) == "r:kretprobes/e vfs_read+0x0"
    assert legacy_uprobe_definition("e", "/bin/sh", 0x4f0, False) == "p:uprobes/e /bin/sh:0x4f0"
    assert legacy_uprobe_definition("e", "/bin/sh", 0x4f0, True) == (
        "r:uretprobes/e /bin/sh:0x4f0")


# --------------------------------------------------------------------------------------
# uprobe offsets from ELF symbols
# --------------------------------------------------------------------------------------


def _expected_offsets(path: str, names: list[str]) -> dict[str, int]:
    """Offsets computed independently with pyelftools: st_value - sh_addr + sh_offset of the
    symbol's section (libbpf 6.12 elf_sym_offset())."""
    from elftools.elf.elffile import ELFFile

    out: dict[str, int] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for table in (".dynsym", ".symtab"):
            sec = elf.get_section_by_name(table)
            if sec is None:
                continue
            for sym in sec.iter_symbols():
                base = sym.name.split("@")[0]
                if base in names and base not in out and sym["st_info"]["type"] == "STT_FUNC" \
                        and sym["st_shndx"] != "SHN_UNDEF":
                    shdr = elf.get_section(sym["st_shndx"])
                    out[base] = sym["st_value"] - shdr["sh_addr"] + shdr["sh_offset"]
    return out


@pytest.fixture(scope="module")
def gcc() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("gcc is not installed")
    return cc


TARGET_FUNCS = ["bpfobj_uprobe_target", "bpfobj_multi_one", "bpfobj_multi_two", "main"]


@pytest.mark.parametrize("flags", [
    ["-O1", "-g"],                      # PIE (ET_DYN), .symtab and .dynsym
    ["-O1", "-no-pie"],                 # ET_EXEC: absolute addresses
    ["-O1", "-rdynamic", "-s"],         # stripped: .dynsym only
    ["-O2", "-shared", "-fPIC"],        # a shared library
])
def test_uprobe_offsets_in_test_binary(gcc: str, tmp_path: Path, flags: list[str]) -> None:
    out = tmp_path / "target"
    src = USERPROGS / "uprobe_target.c"
    subprocess.run([gcc, *flags, "-o", str(out), str(src)], check=True)
    names = [n for n in TARGET_FUNCS if not ("-shared" in flags and n == "main")]
    want = _expected_offsets(str(out), names)
    assert set(want) == set(names)
    with elfsyms.NativeElf(str(out)) as elf:
        elfsyms.check_machine(elf, X86_64.elf_machine if os.uname().machine == "x86_64"
                              else ARM64.elf_machine)
        for name in names:
            off = elfsyms.find_func_offset(elf, name)
            assert off == want[name], name
            # the segment translation agrees with the section one
            sym = next(s for t in (elfsyms.SHT_DYNSYM, elfsyms.SHT_SYMTAB)
                       for s in elf.symbols(t) if s.name == name)
            assert elf.section_offset(sym) == off
        multi = dict(elfsyms.resolve_pattern(elf, "bpfobj_multi_*"))
        assert multi == {"bpfobj_multi_one": want["bpfobj_multi_one"],
                         "bpfobj_multi_two": want["bpfobj_multi_two"]}
        assert elfsyms.resolve_names(elf, ["bpfobj_multi_two", "bpfobj_uprobe_target"]) == [
            want["bpfobj_multi_two"], want["bpfobj_uprobe_target"]]
        with pytest.raises(InputError, match="no function 'bpfobj_nope'"):
            elfsyms.find_func_offset(elf, "bpfobj_nope")
        with pytest.raises(InputError):
            elfsyms.find_func_offset(elf, "bpfobj_multi")  # a prefix is not a match


def test_uprobe_offsets_in_libc() -> None:
    libc = ldcache.lookup("libc.so.6")
    if libc is None:
        pytest.skip("no libc.so.6 in ld.so.cache (not a glibc system)")
    names = ["malloc", "free", "getpid", "nanosleep", "puts", "open"]
    want = _expected_offsets(libc, names)
    with elfsyms.NativeElf(libc) as elf:
        for name in names:
            assert elfsyms.find_func_offset(elf, name) == want[name], name
        getpid = next(s for s in elf.symbols(elfsyms.SHT_DYNSYM) if s.name == "getpid")
        assert getpid.version and getpid.version.startswith("GLIBC_")
        # name@@VERSION and name@VERSION select by the dynsym version (libbpf symbol_match)
        assert elfsyms.find_func_offset(elf, f"getpid@@{getpid.version}") == want["getpid"]
        assert elfsyms.find_func_offset(elf, f"getpid@{getpid.version}") == want["getpid"]
        with pytest.raises(InputError):
            elfsyms.find_func_offset(elf, "getpid@@GLIBC_0.0")


class _FakeElf:
    """Duck-typed NativeElf for libbpf's multiple-match rules."""

    path = "fake"
    e_type = elfsyms.ET_DYN

    def __init__(self, dynsym: list[elfsyms.NativeSymbol], symtab: list[elfsyms.NativeSymbol]):
        self.tables = {elfsyms.SHT_DYNSYM: dynsym, elfsyms.SHT_SYMTAB: symtab}

    def symbols(self, table: int, st_type: int | None = elfsyms.STT_FUNC) -> list[Any]:
        return self.tables[table]

    def sym_offset(self, sym: elfsyms.NativeSymbol) -> int:
        return sym.value


def _sym(name: str, value: int, bind: int = elfsyms.STB_GLOBAL,
         table: int = elfsyms.SHT_SYMTAB) -> elfsyms.NativeSymbol:
    return elfsyms.NativeSymbol(name, value, 8, bind, elfsyms.STT_FUNC, 1, table)


def test_find_func_offset_match_rules() -> None:
    G, W = elfsyms.STB_GLOBAL, elfsyms.STB_WEAK
    find = elfsyms.find_func_offset
    # the same offset twice is fine; a strong symbol beats a weak one, in either order
    assert find(_FakeElf([], [_sym("f", 0x10), _sym("f", 0x10)]), "f") == 0x10  # type: ignore[arg-type]
    assert find(_FakeElf([], [_sym("f", 0x10, W), _sym("f", 0x20, G)]), "f") == 0x20  # type: ignore[arg-type]
    assert find(_FakeElf([], [_sym("f", 0x20, G), _sym("f", 0x10, W)]), "f") == 0x20  # type: ignore[arg-type]
    with pytest.raises(InputError, match="ambiguous"):
        find(_FakeElf([], [_sym("f", 0x10), _sym("f", 0x20)]), "f")  # type: ignore[arg-type]
    # .dynsym is searched first and wins
    fake = _FakeElf([_sym("f", 0x30, table=elfsyms.SHT_DYNSYM)], [_sym("f", 0x40)])
    assert find(fake, "f") == 0x30  # type: ignore[arg-type]
    # "f2" is not "f"; "f@VER" in .symtab is
    assert find(_FakeElf([], [_sym("f2", 0x50), _sym("f@V1", 0x60)]), "f") == 0x60  # type: ignore[arg-type]
    assert find(_FakeElf([], [_sym("f@V1", 0x60), _sym("f@@V2", 0x70)]), "f@@V2") == 0x70  # type: ignore[arg-type]
    # a 0 offset is "not found" (libbpf: try the shared library instead)
    with pytest.raises(InputError):
        find(_FakeElf([], [_sym("f", 0)]), "f")  # type: ignore[arg-type]


def test_native_elf_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    # section headers said to be at 0x1000, past the end of a 64-byte file
    bad.write_bytes(ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, 0x1000, 0, 64, 56,
                                        0, 64, 5, 0))
    with pytest.raises(InputError, match="past the end"):
        elfsyms.NativeElf(str(bad))
    empty = tmp_path / "empty"
    empty.write_bytes(ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, 0, 0, 64, 56, 0,
                                          64, 0, 0))
    with elfsyms.NativeElf(str(empty)) as elf:  # no sections: no symbols, no error
        assert list(elf.symbols(elfsyms.SHT_DYNSYM)) == []
        with pytest.raises(InputError, match="no function"):
            elfsyms.find_func_offset(elf, "main")
    (tmp_path / "text").write_text("hello world, not an ELF file at all" * 3)
    with pytest.raises(InputError, match="not an ELF"):
        elfsyms.NativeElf(str(tmp_path / "text"))
    with pytest.raises(InputError, match="cannot read"):
        elfsyms.NativeElf(str(tmp_path / "missing"))
    truncated = tmp_path / "trunc"
    data = Path("/bin/sh").resolve().read_bytes()[:4096]
    truncated.write_bytes(data)
    with pytest.raises(InputError), elfsyms.NativeElf(str(truncated)) as elf:
        list(elf.symbols(elfsyms.SHT_DYNSYM))


def test_check_machine() -> None:
    with elfsyms.NativeElf("/bin/sh") as elf:
        host = X86_64 if os.uname().machine == "x86_64" else ARM64
        other = ARM64 if host is X86_64 else X86_64
        elfsyms.check_machine(elf, host.elf_machine)
        with pytest.raises(NotSupportedError, match="ELF machine"):
            elfsyms.check_machine(elf, other.elf_machine)


@pytest.mark.parametrize("pattern", ["*", "mem*", "*cpy", "m?mcpy", "*_chk*", "exact", "",
                                     "a*b*c", "**x", "?"])
def test_glob_match_like_libbpf(pattern: str) -> None:
    words = ["memcpy", "memmove", "__memcpy_chk", "exact", "exactly", "", "abc", "aXbYc",
             "ab", "x", "xx", "m"]
    for w in words:
        assert elfsyms.glob_match(w, pattern) == fnmatch.fnmatchcase(w, pattern), (w, pattern)


# --------------------------------------------------------------------------------------
# ld.so.cache
# --------------------------------------------------------------------------------------

X86_FLAGS = ldcache.LD_CACHE_FLAGS["x86_64"]
ARM_FLAGS = ldcache.LD_CACHE_FLAGS["arm64"]


def _new_cache(entries: list[tuple[int, str, str]]) -> bytes:
    """A glibc-ld.so.cache1.1 image; string offsets from the start of its header."""
    header_size = 48
    strings = b""
    recs = []
    base = header_size + 24 * len(entries)
    for flags, name, path in entries:
        k = base + len(strings)
        strings += name.encode() + b"\0"
        v = base + len(strings)
        strings += path.encode() + b"\0"
        recs.append(struct.pack("=iIIIQ", flags, k, v, 0, 0))
    header = struct.pack("=20sIIB3xI12x", b"glibc-ld.so.cache1.1", len(entries), len(strings),
                         2, 0)
    return header + b"".join(recs) + strings


def test_ld_so_cache_new_format() -> None:
    data = _new_cache([(X86_FLAGS, "libfoo.so.1", "/lib/x86_64-linux-gnu/libfoo.so.1"),
                       (ARM_FLAGS, "libfoo.so.1", "/lib/aarch64-linux-gnu/libfoo.so.1"),
                       (X86_FLAGS, "libbar.so", "/usr/lib/libbar.so")])
    entries = ldcache.parse_ld_so_cache(data)
    assert (entries[0].name, entries[0].path) == (
        "libfoo.so.1", "/lib/x86_64-linux-gnu/libfoo.so.1")
    assert ldcache.lookup("libfoo.so.1", arch=X86_64, entries=entries) == \
        "/lib/x86_64-linux-gnu/libfoo.so.1"
    assert ldcache.lookup("libfoo.so.1", arch=ARM64, entries=entries) == \
        "/lib/aarch64-linux-gnu/libfoo.so.1"
    assert ldcache.lookup("libbar.so", arch=ARM64, entries=entries) is None
    assert ldcache.lookup("libnope.so", arch=X86_64, entries=entries) is None


def test_ld_so_cache_old_and_compat_formats() -> None:
    old_entries = [(1 | 0x0300 | 2, "libold.so.1", "/lib/libold.so.1")]
    # old format only: strings count from the end of the entries
    strings = b"libold.so.1\0/lib/libold.so.1\0"
    old = b"ld.so-1.7.0\0" + struct.pack("=I", 1) + struct.pack("=iII", X86_FLAGS, 0, 12) \
        + strings
    assert [(e.name, e.path) for e in ldcache.parse_ld_so_cache(old)] == [
        ("libold.so.1", "/lib/libold.so.1")]
    # compat: the new format hides at the start of the old string table, 8-aligned
    new = _new_cache([(X86_FLAGS, "libnew.so.2", "/lib/libnew.so.2")])
    head = b"ld.so-1.7.0\0" + struct.pack("=I", 1) + struct.pack("=iII", X86_FLAGS, 0, 0)
    pad = b"\0" * (((len(head) + 7) & ~7) - len(head))
    compat = head + pad + new
    assert [(e.name, e.path) for e in ldcache.parse_ld_so_cache(compat)] == [
        ("libnew.so.2", "/lib/libnew.so.2")]
    assert old_entries  # (flags are per arch; see test_ld_so_cache_new_format)
    with pytest.raises(InputError):
        ldcache.parse_ld_so_cache(b"garbage")
    with pytest.raises(InputError):
        ldcache.parse_ld_so_cache(new[:60])


def test_ld_so_cache_of_this_host_matches_ldconfig() -> None:
    ldconfig = shutil.which("ldconfig") or ("/sbin/ldconfig" if os.path.exists("/sbin/ldconfig")
                                            else None)
    if ldconfig is None or not os.path.exists(ldcache.LD_SO_CACHE):
        pytest.skip("no ldconfig or /etc/ld.so.cache")
    out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout
    listed = []
    for line in out.splitlines()[1:]:
        if " => " not in line:
            continue  # "Cache generated by: ..."
        name, _, path = line.strip().partition(" => ")
        listed.append((name.split(" (", 1)[0], path))
    entries = ldcache.read_ld_so_cache()
    assert [(e.name, e.path) for e in entries] == listed


def test_resolve_binary() -> None:
    libc = ldcache.resolve_binary("libc.so.6")
    assert os.path.isabs(libc) and os.path.exists(libc)
    assert ldcache.resolve_binary("sh") == shutil.which("sh")
    assert ldcache.resolve_binary("/opt/x/y") == "/opt/x/y"  # a path is used as is
    with pytest.raises(InputError, match=r"cannot find 'libnope-bpfobj\.so\.9'"):
        ldcache.resolve_binary("libnope-bpfobj.so.9")
    with pytest.raises(InputError, match="PATH"):
        ldcache.resolve_binary("no-such-binary-bpfobj")


def test_library_from_proc_maps() -> None:
    mapped = ldcache.library_from_maps(os.getpid(), "libc.so.6")
    assert mapped is not None and os.path.basename(mapped) == "libc.so.6"
    assert ldcache.library_from_maps(os.getpid(), "libc") == mapped  # a prefix finds it
    assert ldcache.library_from_maps(os.getpid(), "libnope-bpfobj") is None
    assert ldcache.resolve_binary("libc.so.6", pid=os.getpid()) == mapped


# --------------------------------------------------------------------------------------
# extra bpf_attr layouts, against the C compiler and the 6.12 UAPI header
# --------------------------------------------------------------------------------------

C_NAMES = {
    attach_attr.LinkCreateKprobeMultiAttr: {
        "kprobe_multi_flags": "link_create.kprobe_multi.flags",
        "cnt": "link_create.kprobe_multi.cnt", "syms": "link_create.kprobe_multi.syms",
        "addrs": "link_create.kprobe_multi.addrs",
        "cookies": "link_create.kprobe_multi.cookies"},
    attach_attr.LinkCreateNetfilterAttr: {
        "pf": "link_create.netfilter.pf", "hooknum": "link_create.netfilter.hooknum",
        "priority": "link_create.netfilter.priority", "nf_flags": "link_create.netfilter.flags"},
    attach_attr.ProgQueryAttr: {
        f: f"query.{f}" for f in ("target_fd", "attach_type", "query_flags", "attach_flags",
                                  "prog_ids", "prog_cnt", "prog_attach_flags", "link_ids",
                                  "link_attach_flags", "revision")},
}


def test_attach_attr_layouts_match_the_uapi_header(gcc: str, tmp_path: Path) -> None:
    if not (UAPI / "linux" / "bpf.h").exists():
        pytest.skip(f"no Linux 6.12 UAPI headers at {UAPI}")
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <linux/bpf.h>",
             "int main(void) {"]
    want: dict[str, int] = {}
    for cls, fields in C_NAMES.items():
        for py, c in fields.items():
            lines.append(f'printf("{c} %zu\\n", offsetof(union bpf_attr, {c}));')
            want[c] = getattr(cls, py).offset
    lines.append('printf("link_create %zu\\n", sizeof(((union bpf_attr *)0)->link_create));')
    lines.append('printf("iter %zu\\n", sizeof(union bpf_iter_link_info));')
    lines.append("return 0; }")
    src = tmp_path / "off.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "off"
    subprocess.run([gcc, "-I", str(UAPI), "-o", str(exe), str(src)], check=True)
    got = dict(line.rsplit(" ", 1) for line in subprocess.run(
        [str(exe)], capture_output=True, text=True, check=True).stdout.splitlines())
    for c, off in want.items():
        assert int(got[c]) == off, c
    assert int(got["link_create"]) == ctypes.sizeof(attach_attr.LinkCreateKprobeMultiAttr)
    assert int(got["iter"]) == attach_attr.ITER_LINK_INFO_SIZE


def test_kprobe_multi_attr() -> None:
    a = attach_attr.link_create_kprobe_multi(5, 42, syms=["vfs_read", "vfs_write"],
                                             cookies=[7, 8],
                                             kprobe_flags=attach_attr.BPF_F_KPROBE_MULTI_RETURN)
    assert (a.prog_fd, a.attach_type, a.cnt, a.kprobe_multi_flags) == (5, 42, 2, 1)
    names = ctypes.cast(a.syms, ctypes.POINTER(ctypes.c_char_p))
    assert [names[0], names[1]] == [b"vfs_read", b"vfs_write"]
    cookies = ctypes.cast(a.cookies, ctypes.POINTER(ctypes.c_uint64))
    assert [cookies[0], cookies[1]] == [7, 8]
    assert a.addrs == 0
    b = attach_attr.link_create_kprobe_multi(5, 42, addrs=[0xFFFF0000, 0xFFFF0010])
    addrs = ctypes.cast(b.addrs, ctypes.POINTER(ctypes.c_uint64))
    assert (b.cnt, b.syms, addrs[1]) == (2, 0, 0xFFFF0010)
    with pytest.raises(ValueError):
        attach_attr.link_create_kprobe_multi(5, 42)


def test_iter_link_info() -> None:
    assert attach_attr.iter_link_info_map(9) == struct.pack("=I12x", 9)
    assert attach_attr.iter_link_info_task(pid=77) == struct.pack("=III4x", 0, 77, 0)
    assert attach_attr.iter_link_info_cgroup(attach_attr.CgroupIterOrder.DESCENDANTS_PRE,
                                             cgroup_id=5) == struct.pack("=IIQ", 2, 0, 5)
    assert all(len(x) == attach_attr.ITER_LINK_INFO_SIZE for x in (
        attach_attr.iter_link_info_map(1), attach_attr.iter_link_info_task(),
        attach_attr.iter_link_info_cgroup()))


# --------------------------------------------------------------------------------------
# Link bookkeeping
# --------------------------------------------------------------------------------------


def test_link_without_fd_runs_its_undo_once() -> None:
    calls: list[str] = []
    link = Link(None, kind="tc", target="ifindex 3 ingress", undo=[lambda: calls.append("a"),
                                                                   lambda: calls.append("b")])
    assert not link.is_bpf_link and link.perf_fd is None
    with pytest.raises(NotSupportedError, match="no fd"):
        _ = link.fd
    with pytest.raises(NotSupportedError, match="cannot pin"):
        link.pin("/sys/fs/bpf/x")
    with link:
        pass
    assert calls == ["a", "b"] and link.closed
    link.close()
    link.detach()
    assert calls == ["a", "b"]
    with pytest.raises(PhaseError, match="closed"):
        _ = link.fd


def test_link_disconnect_keeps_the_attachment() -> None:
    calls: list[int] = []
    link = Link(None, kind="xdp", undo=[lambda: calls.append(1)])
    link.disconnect()
    link.close()
    assert calls == []


def test_link_group_and_errors() -> None:
    calls: list[str] = []

    def boom() -> None:
        raise RuntimeError("undo failed")

    parts = [Link(None, kind="perf_event", target="cpu 0", undo=[boom]),
             Link(None, kind="perf_event", target="cpu 1", undo=[lambda: calls.append("1")])]
    group = Link.group(parts, kind="perf_event", target="2 CPUs")
    assert "2 parts" in repr(group)
    with pytest.raises(NotSupportedError, match="group of links"):
        group.update(SimpleNamespace(fd=1, name="p"))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="undo failed"):
        group.close()  # every part is closed, then the first error raised
    assert all(p.closed for p in parts) and calls == ["1"]


def test_link_owns_its_fds() -> None:
    r, w = os.pipe()
    os.close(w)
    link = Link(Fd(r), kind="raw_tp", target="sys_enter")
    assert link.fd == r and link.is_bpf_link
    link.close()
    with pytest.raises(OSError):
        os.fstat(r)


# --------------------------------------------------------------------------------------
# USDT: notes, argument specs, the spec struct
# --------------------------------------------------------------------------------------


X86_REG = usdt.PT_REGS_OFFSETS["x86_64"]


@pytest.mark.parametrize("spec,want", [
    ("-4@%edi", [usdt.UsdtArg(usdt.ARG_REG, 0, 14 * 8, True, 32)]),
    ("8@%rax", [usdt.UsdtArg(usdt.ARG_REG, 0, 10 * 8, False, 0)]),
    ("1@%r10b", [usdt.UsdtArg(usdt.ARG_REG, 0, 7 * 8, False, 56)]),
    ("-4@-1204(%rbp)", [usdt.UsdtArg(usdt.ARG_REG_DEREF, -1204, 4 * 8, True, 32)]),
    ("8@(%rsp)", [usdt.UsdtArg(usdt.ARG_REG_DEREF, 0, 19 * 8, False, 0)]),
    ("-4@$-9", [usdt.UsdtArg(usdt.ARG_CONST, -9, 0, True, 32)]),
    ("2@$0x10", [usdt.UsdtArg(usdt.ARG_CONST, 16, 0, False, 48)]),
    ("1@-96(%rbp,%rax,8)", [usdt.UsdtArg(usdt.ARG_SIB, -96, 4 * 8, False, 56, 10 * 8, 3)]),
    ("1@(%rbp,%rax)", [usdt.UsdtArg(usdt.ARG_SIB, 0, 4 * 8, False, 56, 10 * 8, 0)]),
    ("-4@%edi -8@%rsi 4@$5", [usdt.UsdtArg(usdt.ARG_REG, 0, 14 * 8, True, 32),
                              usdt.UsdtArg(usdt.ARG_REG, 0, 13 * 8, True, 0),
                              usdt.UsdtArg(usdt.ARG_CONST, 5, 0, False, 32)]),
    ("", []),
])
def test_usdt_args_x86_64(spec: str, want: list[Any]) -> None:
    assert list(usdt.parse_args(spec, X86_64)) == want


@pytest.mark.parametrize("spec,want", [
    ("-4@[sp, 96]", [usdt.UsdtArg(usdt.ARG_REG_DEREF, 96, 31 * 8, True, 32)]),
    ("8@[x29, -16]", [usdt.UsdtArg(usdt.ARG_REG_DEREF, -16, 29 * 8, False, 0)]),
    ("4@[x1]", [usdt.UsdtArg(usdt.ARG_REG_DEREF, 0, 8, False, 32)]),
    ("-8@x0 8@5", [usdt.UsdtArg(usdt.ARG_REG, 0, 0, True, 0),
                   usdt.UsdtArg(usdt.ARG_CONST, 5, 0, False, 0)]),
])
def test_usdt_args_arm64(spec: str, want: list[Any]) -> None:
    assert list(usdt.parse_args(spec, ARM64)) == want


@pytest.mark.parametrize("spec,match", [
    ("-4@%xyz", "unrecognized register"),
    ("3@%eax", "unsupported arg #0 size 3"),
    ("4@what", "unrecognized arg spec"),
    ("1@(%rbp,%rax,3)", "invalid SIB scale"),
    (" ".join(["8@%rax"] * 13), "too many"),
])
def test_usdt_args_errors(spec: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        usdt.parse_args(spec, X86_64)


def test_usdt_spec_layout_matches_usdt_bpf_h(bpf_build) -> None:  # type: ignore[no-untyped-def]
    """pack_spec() against struct __bpf_usdt_spec as clang laid it out (the object's BTF)."""
    from bpfobj import BpfObject
    from bpfobj.uapi import BtfKind

    btf = BpfObject.open(bpf_build("attach_usdt.c", vmlinux=True)).spec.btf
    assert btf is not None
    spec = btf.type(btf.find("__bpf_usdt_spec", BtfKind.STRUCT)[0])
    arg = btf.type(btf.find("__bpf_usdt_arg_spec", BtfKind.STRUCT)[0])
    offsets = {m.name: m.byte_offset for m in spec.members}  # type: ignore[attr-defined]
    arg_offsets = {m.name: m.byte_offset for m in arg.members}  # type: ignore[attr-defined]
    args = usdt.parse_args("-4@-20(%rbp) 8@%rax", X86_64)
    raw = usdt.pack_spec(args, cookie=0x1122334455667788, byteorder="little")
    assert len(raw) == spec.size  # type: ignore[attr-defined]
    assert arg.size == 16  # type: ignore[attr-defined]
    first = raw[: arg.size]  # type: ignore[attr-defined]
    assert struct.unpack_from("<q", first, arg_offsets["val_off"])[0] == -20
    assert first[arg_offsets["arg_type"]] == usdt.ARG_REG_DEREF
    assert struct.unpack_from("<h", first, arg_offsets["reg_off"])[0] == X86_REG["rbp"]
    assert first[arg_offsets["arg_signed"]] == 1 and first[arg_offsets["arg_bitshift"]] == 32
    second = raw[arg.size : 2 * arg.size]  # type: ignore[attr-defined]
    assert second[arg_offsets["arg_type"]] == usdt.ARG_REG
    assert struct.unpack_from("<Q", raw, offsets["usdt_cookie"])[0] == 0x1122334455667788
    assert struct.unpack_from("<h", raw, offsets["arg_cnt"])[0] == 2


def _note(provider: bytes, name: bytes, args: bytes, loc: int, base: int, sema: int) -> bytes:
    desc = struct.pack("<QQQ", loc, base, sema) + provider + b"\0" + name + b"\0" + args + b"\0"
    pad = b"\0" * (-len(desc) % 4)
    return struct.pack("<III", 8, len(desc), 3) + b"stapsdt\0" + desc + pad


def test_usdt_notes_parse() -> None:
    data = (_note(b"prov", b"a", b"-4@%edi", 0x1000, 0x2000, 0)
            + struct.pack("<III", 4, 4, 1) + b"GNU\0" + b"\0" * 4  # another owner: skipped
            + _note(b"prov", b"b", b":", 0x1010, 0x2000, 0x4000))
    notes = usdt.parse_notes(data, byteorder="little", is64=True)
    assert notes == [usdt.UsdtNote("prov", "a", 0x1000, 0x2000, 0, "-4@%edi"),
                     usdt.UsdtNote("prov", "b", 0x1010, 0x2000, 0x4000, "")]
    with pytest.raises(InputError, match="truncated"):
        usdt.parse_notes(data[:-6], byteorder="little", is64=True)


def test_usdt_section_names() -> None:
    assert usdt.parse_usdt_section("usdt") is None
    assert usdt.parse_usdt_section("usdt/libc.so.6:libc:setjmp") == ("libc.so.6", "libc", "setjmp")
    assert usdt.parse_usdt_section("usdt//usr/bin/python3:python:function__entry") == (
        "/usr/bin/python3", "python", "function__entry")
    with pytest.raises(ValueError):
        usdt.parse_usdt_section("usdt/libc.so.6:libc")


def test_usdt_targets_of_test_binary(gcc: str, tmp_path: Path) -> None:
    """collect_targets() on the hand-written probes: offsets and the semaphore against
    pyelftools' view of the notes and segments."""
    if os.uname().machine != "x86_64":
        pytest.skip("the expected argument registers are x86_64's")
    from elftools.elf.elffile import ELFFile

    out = tmp_path / "usdt_target"
    subprocess.run([gcc, "-O2", "-o", str(out), str(USERPROGS / "usdt_target.c")],
                   check=True)
    with open(out, "rb") as f:
        elf = ELFFile(f)
        segs = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        notes = [n for n in elf.get_section_by_name(".note.stapsdt").iter_notes()]
        sema = elf.get_section_by_name(".symtab").get_symbol_by_name(
            "bpfobj_hit_semaphore")[0]["st_value"]

    def off(addr: int) -> int:
        seg = next(s for s in segs if s["p_vaddr"] <= addr < s["p_vaddr"] + s["p_memsz"])
        return addr - seg["p_vaddr"] + seg["p_offset"]

    with elfsyms.NativeElf(str(out)) as nelf:
        targets = usdt.collect_targets(nelf, "bpfobj", "hit", arch=X86_64)
        with pytest.raises(NotSupportedError, match="no USDT probe bpfobj:nope"):
            usdt.collect_targets(nelf, "bpfobj", "nope", arch=X86_64)
    assert len(targets) == len(notes) == 2
    for t in targets:
        assert t.sema_off == off(sema)
        assert len(t.args) == 3 and t.args[2] == usdt.UsdtArg(usdt.ARG_CONST, 7, 0, True, 32)
        assert t.args[0].signed and t.args[0].bitshift == 0
    assert sorted(t.rel_ip for t in targets) == sorted(
        off(n["n_desc"] if isinstance(n["n_desc"], int) else struct.unpack_from(
            "<Q", n["n_descdata"])[0]) for n in notes)
