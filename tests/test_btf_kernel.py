"""The running kernel's BTF (/sys/kernel/btf): vmlinux against bpftool, module (split) BTF,
and the on-disk index cache on the real thing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_btf_builder import bpftool_json

from bpfobj.btf import Btf, load_kernel_btf, load_raw_file, reader
from bpfobj.btf import types as T
from bpfobj.btf.writer import BtfBuilder
from bpfobj.errors import BtfError, NotSupportedError
from bpfobj.uapi import BtfKind

VMLINUX = Path("/sys/kernel/btf/vmlinux")
pytestmark = pytest.mark.skipif(not VMLINUX.exists(), reason="kernel has no BTF")
needs_bpftool = pytest.mark.skipif(shutil.which("bpftool") is None, reason="needs bpftool")
MODULES = (
    sorted(p for p in VMLINUX.parent.iterdir() if p.name != "vmlinux") if VMLINUX.exists() else []
)


def bpftool(*args: str) -> str:
    return subprocess.run(["bpftool", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def vmlinux(tmp_path_factory: pytest.TempPathFactory) -> Btf:
    return Btf.parse(VMLINUX.read_bytes(), name="vmlinux", cache=False)


@pytest.fixture(scope="module")
def bpftool_types() -> list[dict[str, object]]:
    return json.loads(bpftool("-j", "btf", "dump", "file", str(VMLINUX)))["types"]  # type: ignore[no-any-return]


@needs_bpftool
def test_type_count_matches_bpftool(vmlinux: Btf) -> None:
    count = sum(
        1
        for line in bpftool("btf", "dump", "file", str(VMLINUX)).splitlines()
        if line.startswith("[")
    )
    assert len(vmlinux) == vmlinux.type_count == count
    assert vmlinux.start_id == 1 and vmlinux.base is None


@needs_bpftool
def test_kinds_and_names_match_bpftool(
    vmlinux: Btf, bpftool_types: list[dict[str, object]]
) -> None:
    assert len(bpftool_types) == len(vmlinux)
    for entry in bpftool_types:
        tid = entry["id"]
        assert isinstance(tid, int)
        assert vmlinux.kind(tid).name == entry["kind"], tid
        assert (vmlinux.name(tid) or "(anon)") == entry["name"], tid


@needs_bpftool
def test_every_type_decodes_like_bpftool(bpftool_types: list[dict[str, object]]) -> None:
    btf = Btf.parse(VMLINUX.read_bytes(), cache=False)  # its own: 126k decoded types
    for entry in bpftool_types:
        tid = entry["id"]
        assert isinstance(tid, int)
        assert bpftool_json(btf.type(tid)) == entry, tid


def test_task_struct(vmlinux: Btf, bpftool_types: list[dict[str, object]]) -> None:
    ids = vmlinux.find("task_struct")
    structs = vmlinux.find("task_struct", BtfKind.STRUCT)
    assert len(structs) == 1 and structs[0] in ids
    t = vmlinux.type(structs[0])
    assert isinstance(t, T.Struct) and t.name == "task_struct"
    assert vmlinux.size_of(structs[0]) == t.size
    assert t.size == bpftool_types[structs[0] - 1]["size"]
    pid = t.member("pid")
    assert pid is not None and vmlinux.size_of(pid.type) == 4
    assert vmlinux.pointer_size == 8
    assert vmlinux.find("no_such_type_hopefully") == []
    (fn,) = vmlinux.find("bpf_prog_load", BtfKind.FUNC) or [None]
    if fn is not None:
        assert isinstance(vmlinux.type(fn), T.Func)
        assert vmlinux.kind(vmlinux.type(fn).type) is BtfKind.FUNC_PROTO  # type: ignore[attr-defined]


def test_find_agrees_with_a_scan(vmlinux: Btf) -> None:
    names = [
        "int",
        "u8",
        "pid",
        "sk_buff",
        "file",
        "list_head",
        "__u32",
        "bpf_map",
        "trace_event_raw_sys_enter",
        "__bpf_trace_sys_enter",
        "task_struct",
    ]
    wanted = set(names)
    scan: dict[str, list[int]] = {n: [] for n in names}
    for tid in vmlinux:
        nm = vmlinux.name(tid)
        if nm in wanted:
            scan[nm].append(tid)
    for n in names:
        assert vmlinux.find(n) == scan[n], n


def test_resolve_and_size_of_everything(vmlinux: Btf) -> None:
    sized = 0
    for tid in vmlinux:
        vmlinux.resolve(tid)
        try:
            vmlinux.size_of(tid)
            sized += 1
        except BtfError as exc:
            assert "has no size" in exc.message, exc
    assert sized > len(vmlinux) // 4


def test_load_kernel_btf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFOBJ_CACHE_DIR", str(tmp_path))
    cold = load_kernel_btf()
    reader.flush_caches()  # the snapshot is written at exit
    warm = load_kernel_btf()
    assert cold.label == "vmlinux" and len(cold) == len(warm)
    assert list(cold._offs) == list(warm._offs)
    # The index, and the per-boot snapshot of the BTF with its content key.
    assert sorted(p.suffix for p in (tmp_path / "btf").iterdir()) == [".btf", ".idx", ".key"]
    with pytest.raises(BtfError, match="cannot read"):
        load_kernel_btf(tmp_path / "nope")
    # A kernel without BTF at all is "not supported", not "bad input".
    missing = str(tmp_path / "vmlinux")
    monkeypatch.setattr(reader, "VMLINUX_BTF", missing)
    with pytest.raises(NotSupportedError, match="CONFIG_DEBUG_INFO_BTF"):
        load_kernel_btf(missing)


def test_kernel_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second load maps the per-boot copy instead of reading sysfs; a copy of another
    size or another boot is never used, and another boot's copy is deleted."""
    import mmap

    from bpfobj.btf import index

    monkeypatch.setenv("BPFOBJ_CACHE_DIR", str(tmp_path))
    cache = tmp_path / "btf"
    cache.mkdir()
    (cache / "vmlinux-old-boot.btf").write_bytes(b"stale")
    (cache / "vmlinux-old-boot.key").write_bytes(b"k" * 16)
    cold = load_kernel_btf()
    assert isinstance(cold._buf, mmap.mmap) and (cache / "vmlinux-old-boot.btf").exists()
    reader.flush_caches()  # what the process's exit does
    assert not (cache / "vmlinux-old-boot.btf").exists()
    snap = index.KernelSnapshot.for_running_kernel(str(VMLINUX))
    assert snap is not None and Path(snap.btf_path).read_bytes() == VMLINUX.read_bytes()
    assert Path(snap.key_path).read_bytes() == cold._content_key()
    warm = load_kernel_btf()
    loaded = snap.load()
    assert loaded is not None and loaded[1] == cold._content_key()
    assert warm._buf[:] == cold._buf[:] and len(warm) == len(cold)
    (tid,) = warm.find("task_struct", BtfKind.STRUCT)
    assert warm.type(tid) == cold.type(tid) and warm.type(tid).name == "task_struct"
    # A snapshot whose size differs from the sysfs file (a truncated copy) is ignored.
    with open(snap.btf_path, "r+b") as f:
        f.truncate(100)
    assert snap.load() is None
    assert len(load_kernel_btf()) == len(cold)
    # Without a key (a writer interrupted between the two files) it is ignored too.
    Path(snap.key_path).unlink()
    assert snap.load() is None
    assert len(load_kernel_btf(cache=False)) == len(cold)


def test_scan_flavors_like_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lookups by scanning give what the name index gives, flavors (NAME___x) included,
    and find_prefix after find of the same name (what CO-RE does) reuses the first scan."""
    b = BtfBuilder()
    i = b.add_int("int", 4)
    names = ["foo", "foo___a", "foo___b", "foobar", "foo_x", "xfoo", "foo___a___b", "bar"]
    for n in names:
        b.add_struct(n, 4, [("v", i, 0)])
    raw = b.encode()
    indexed = Btf.parse(raw)
    scanned = Btf.parse(raw, cache=True, cache_dir=tmp_path)
    scanned._defer_index = True
    monkeypatch.setattr(reader, "_SCANS_BEFORE_INDEX", 1000)
    for n in [*names, "fo", "nope"]:
        assert scanned.find(n) == indexed.find(n), n
        assert scanned.find_prefix(n + "___") == indexed.find_prefix(n + "___"), n
        assert scanned.find_prefix(n) == indexed.find_prefix(n), n
    assert scanned._name_ids is None and scanned._scans == 30


def deferred_vmlinux() -> Btf:
    """This kernel's BTF parsed as load_kernel_btf() parses it (scan first, index at
    exit), from a bytes copy."""
    return Btf._from_buffer(VMLINUX.read_bytes(), None, "vmlinux", True, None, defer_index=True)


def test_cold_lookups_scan_then_index_at_exit(
    vmlinux: Btf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a cached name index, kernel BTF answers its first lookups by scanning, with
    the same answers as the index; the index is built and cached when the process exits
    (or after enough scans), and a later load reads it from the cache."""
    import random

    monkeypatch.setenv("BPFOBJ_CACHE_DIR", str(tmp_path))
    cold = deferred_vmlinux()
    names = sorted({vmlinux.type(t).name for t in random.Random(7).sample(range(1, len(vmlinux)), 60)})
    names = [*[n for n in names if n][:13], "task_struct", "no_such_type_xyz"]
    assert len(names) == 15
    for name in names:
        assert cold.find(name) == vmlinux.find(name), name
    assert cold.find_prefix("task_struct") == vmlinux.find_prefix("task_struct")
    assert cold._name_ids is None and cold._scans == 16  # all answered by scanning
    assert cold.find("sk_buff") == vmlinux.find("sk_buff")  # the 17th builds the index
    assert cold._name_ids is not None
    again = Btf.parse(VMLINUX.read_bytes(), name="vmlinux", cache=True)
    assert again._name_ids is not None  # read from the cache
    # A fresh process's exit hook builds and stores it.
    for idx in (tmp_path / "btf").glob("*.idx"):
        idx.unlink()
    third = deferred_vmlinux()
    assert third.find("task_struct") == vmlinux.find("task_struct") and third._name_ids is None
    reader.flush_caches()
    assert third._name_ids is not None
    assert Btf.parse(VMLINUX.read_bytes(), name="vmlinux", cache=True)._name_ids is not None


def test_cache_cold_warm_identical_on_vmlinux(tmp_path: Path) -> None:
    raw = VMLINUX.read_bytes()
    cold = Btf.parse(raw, cache=True, cache_dir=tmp_path)
    sample = ["task_struct", "sk_buff", "int", "pid"]
    cold_finds = [cold.find(n) for n in sample]  # answered by scanning, no index yet
    reader.flush_caches()  # what the process's exit does: build and store it
    warm = Btf.parse(raw, cache=True, cache_dir=tmp_path)
    assert warm._name_ids is not None
    assert warm._offs == cold._offs
    assert warm._name_ids == cold._name_ids and warm._name_offs == cold._name_offs
    assert [warm.find(n) for n in sample] == cold_finds
    for tid in range(1, len(cold) + 1, 997):
        assert warm.type(tid) == cold.type(tid)
    # A corrupt cache file is ignored and replaced.
    (path,) = tmp_path.iterdir()
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x55
    path.write_bytes(bytes(blob))
    again = Btf.parse(raw, cache=True, cache_dir=tmp_path)
    assert again._offs == cold._offs and [again.find(n) for n in sample] == cold_finds
    reader.flush_caches()
    assert Btf.parse(raw, cache=True, cache_dir=tmp_path)._name_ids == cold._name_ids


def test_split_on_vmlinux(vmlinux: Btf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hand-built split blob on the real vmlinux, read back from a raw file."""
    monkeypatch.setenv("BPFOBJ_CACHE_DIR", str(tmp_path / "cache"))
    (task,) = vmlinux.find("task_struct", BtfKind.STRUCT)
    (int_id,) = vmlinux.find("int", BtfKind.INT)
    sb = BtfBuilder(base=vmlinux)
    p = sb.add_ptr(task)
    s = sb.add_struct("my_mod_struct", 16, [("task", p, 0), ("count", int_id, 64)])
    td = sb.add_typedef("task_struct", task)  # shares the base's name
    path = tmp_path / "split.btf"
    path.write_bytes(sb.encode())
    split = load_raw_file(path, base=vmlinux)
    assert split.start_id == len(vmlinux) + 1 and len(split) == len(vmlinux) + 3
    assert split.type(s) == T.Struct(
        s, "my_mod_struct", 16, (T.Member("task", p, 0), T.Member("count", int_id, 64))
    )
    assert split.size_of(s) == 16 and split.size_of(td) == vmlinux.size_of(task)
    assert split.find("task_struct") == [*vmlinux.find("task_struct"), td]
    assert split.find("my_mod_struct") == [s]
    split.validate()
    # The same lookups by scanning (a split blob whose index is not cached yet): its name
    # offsets continue the base's strings.
    scanned = load_raw_file(path, base=vmlinux, cache=True)
    scanned._defer_index = True  # as the running kernel's BTF is
    assert scanned._cache_path is not None and scanned._name_ids is None
    assert scanned.find("task_struct") == [*vmlinux.find("task_struct"), td]
    assert scanned.find("my_mod_struct") == [s] and scanned.find_prefix("my_mod") == [s]
    assert scanned._scans == 3 and scanned._name_ids is None


@pytest.mark.skipif(not MODULES, reason="no module BTF in /sys/kernel/btf")
@needs_bpftool
@pytest.mark.parametrize("module", MODULES[:5], ids=lambda p: p.name)
def test_module_btf(module: Path, vmlinux: Btf) -> None:
    btf = load_kernel_btf(module, base=vmlinux)
    assert btf.base is vmlinux and btf.start_id == len(vmlinux) + 1
    entries = json.loads(bpftool("-j", "btf", "dump", "file", str(module)))["types"]
    assert btf.own_count == len(entries)
    for entry in entries:
        tid = entry["id"]
        assert isinstance(tid, int)
        assert bpftool_json(btf.type(tid)) == entry
    for tid in btf.own_ids():
        btf.resolve(tid)
    by_name = load_kernel_btf(module.name, cache=False)  # bare name, base loaded for it
    assert len(by_name) == len(btf)


def test_load_raw_file_big_and_small(vmlinux: Btf, tmp_path: Path) -> None:
    big = tmp_path / "vmlinux.btf"
    big.write_bytes(VMLINUX.read_bytes())  # > 1 MiB: read through a populated mmap
    btf = load_raw_file(big, cache=False)
    assert btf.label == str(big) and len(btf) == len(vmlinux)
    assert btf.raw == VMLINUX.read_bytes() and isinstance(btf.raw, bytes)
    assert btf.find("task_struct") == vmlinux.find("task_struct")
    small_b = BtfBuilder()
    small_b.add_int("int", 4)
    small = tmp_path / "small.btf"
    small.write_bytes(small_b.encode())
    assert load_raw_file(small).raw == small.read_bytes()
    with pytest.raises(BtfError, match="cannot read BTF file"):
        load_raw_file(tmp_path / "missing.btf")


def test_bare_module_name_missing() -> None:
    with pytest.raises(BtfError, match="cannot read kernel BTF"):
        load_kernel_btf("definitely_not_a_module_xyz", base=None)


def test_no_cache_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFOBJ_CACHE_DIR", "off")
    btf = load_kernel_btf()
    assert btf._cache_path is None and len(btf) > 0
    assert os.environ["BPFOBJ_CACHE_DIR"] == "off"
