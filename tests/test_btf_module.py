"""Module BTF in its three forms, and module BTF built against another vmlinux.

Each module BTF is built here for the test with the BTF writer, on top of this machine's
vmlinux BTF: split (the normal form), standalone (its own ids from 1), and split on a
distilled base (.BTF.base, pahole's distilled_base), plus one built on a different base.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bpfobj import BpfObject
from bpfobj.btf.module import ModuleBtfMismatch, check_base, load_module_btf
from bpfobj.btf.reader import Btf, load_kernel_btf
from bpfobj.btf.target import TargetBtf
from bpfobj.btf.writer import BtfBuilder
from bpfobj.uapi import BtfKind

VMLINUX = Path("/sys/kernel/btf/vmlinux")
pytestmark = pytest.mark.skipif(
    not VMLINUX.exists(), reason="needs kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)"
)
MOD_STRUCT = "bpfobj_testmod_state"


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    return load_kernel_btf()


def _int_id(btf: Btf) -> int:
    return next(i for i in btf.find("int", BtfKind.INT))


def _add_state(b: BtfBuilder, int_id: int, long_id: int, extra: list[tuple[str, int, int]]) -> int:
    members = [("counter", int_id, 0), ("flags", long_id, 64), *extra]
    return b.add_struct(MOD_STRUCT, 16 + 8 * len(extra), members)


def split_module(vmlinux: Btf) -> bytes:
    b = BtfBuilder(base=vmlinux)
    long_id = next(iter(vmlinux.find("long int", BtfKind.INT)))
    task = vmlinux.find("task_struct", BtfKind.STRUCT)[0]
    ptr = b.add_ptr(task)
    _add_state(b, _int_id(vmlinux), long_id, [("owner", ptr, 128)])
    return b.encode()


def standalone_module() -> bytes:
    b = BtfBuilder()
    i = b.add_int("int", 4, signed=True)
    lg = b.add_int("long int", 8, signed=True)
    _add_state(b, i, lg, [])
    return b.encode()


def distilled_module(vmlinux: Btf) -> tuple[bytes, bytes]:
    """(.BTF split on the distilled base, .BTF.base): the base keeps named types only,
    composites without members but with their size, as pahole's distilled_base does."""
    dist = BtfBuilder()
    d_int = dist.add_int("int", 4, signed=True)
    d_long = dist.add_int("long int", 8, signed=True)
    lh = vmlinux.find("list_head", BtfKind.STRUCT)[0]
    d_lh = dist.add_struct("list_head", vmlinux.size_of(lh), [])
    d_task = dist.add_struct("task_struct", vmlinux.size_of(vmlinux.find("task_struct", BtfKind.STRUCT)[0]), [])
    base_raw = dist.encode()
    dist_btf = Btf.parse(base_raw, name="dist", cache=False)
    b = BtfBuilder(base=dist_btf)
    ptr = b.add_ptr(d_task)
    _add_state(b, d_int, d_long, [("owner", ptr, 128), ("node", d_lh, 192)])
    return b.encode(), base_raw


def test_split_module_is_used_as_is(vmlinux: Btf) -> None:
    mod = load_module_btf(split_module(vmlinux), vmlinux, "testmod")
    (sid,) = mod.find(MOD_STRUCT)
    assert sid == len(vmlinux) + 2  # after the pointer the module adds first
    check_base(mod, vmlinux, "testmod")


def test_standalone_module_is_renumbered_after_vmlinux(vmlinux: Btf) -> None:
    mod = load_module_btf(standalone_module(), vmlinux, "testmod")
    assert mod.start_id == len(vmlinux) + 1
    (sid,) = mod.find(MOD_STRUCT)
    assert sid == len(vmlinux) + 3
    st = mod.type(sid)
    assert [m.name for m in st.members] == ["counter", "flags"]  # type: ignore[attr-defined]
    assert mod.name(st.members[0].type) == "int"  # type: ignore[attr-defined]
    assert mod.size_of(sid) == 16


def test_distilled_base_is_relocated_onto_vmlinux(vmlinux: Btf) -> None:
    split, base = distilled_module(vmlinux)
    mod = load_module_btf(split, vmlinux, "testmod", base_data=base)
    assert mod.start_id == len(vmlinux) + 1
    (sid,) = mod.find(MOD_STRUCT)
    st = mod.type(sid)
    by_name = {m.name: m.type for m in st.members}  # type: ignore[attr-defined]
    assert by_name["counter"] == _int_id(vmlinux)
    assert by_name["node"] == vmlinux.find("list_head", BtfKind.STRUCT)[0]
    owner = mod.type(by_name["owner"])
    assert owner.type == vmlinux.find("task_struct", BtfKind.STRUCT)[0]  # type: ignore[attr-defined]


def test_distilled_base_with_wrong_embedded_size_is_a_mismatch(vmlinux: Btf) -> None:
    dist = BtfBuilder()
    d_lh = dist.add_struct("list_head", 999, [])
    base_raw = dist.encode()
    b = BtfBuilder(base=Btf.parse(base_raw, cache=False))
    b.add_struct(MOD_STRUCT, 999, [("node", d_lh, 0)])
    with pytest.raises(ModuleBtfMismatch, match="list_head"):
        load_module_btf(b.encode(), vmlinux, "testmod", base_data=base_raw)


def test_module_built_against_another_vmlinux_is_detected(vmlinux: Btf) -> None:
    # A different "vmlinux": few types, a string table of another layout.
    other = BtfBuilder()
    for n in range(40):
        other.add_int(f"other_kernel_type_{n}", 4)
    other_fn = other.add_func_proto(0, [])
    other.add_func("some_kernel_function", other_fn)
    other_btf = Btf.parse(other.encode(), cache=False)
    b = BtfBuilder(base=other_btf)
    b.add_struct(MOD_STRUCT, 8, [("counter", 3, 0), ("flags", 4, 32)])
    raw = b.encode()
    with pytest.raises(ModuleBtfMismatch, match="does not match"):
        load_module_btf(raw, vmlinux, "othermod")


def test_mismatched_module_is_skipped_not_fatal(
    vmlinux: Btf, bpf_build: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "testmod.btf"
    good.write_bytes(split_module(vmlinux))
    other = BtfBuilder()
    for n in range(40):
        other.add_int(f"other_kernel_type_{n}", 4)
    b = BtfBuilder(base=Btf.parse(other.encode(), cache=False))
    b.add_struct("bad_state", 8, [("x", 3, 0)])
    bad = tmp_path / "badmod.btf"
    bad.write_bytes(b.encode())
    caplog.set_level(logging.WARNING, logger="bpfobj")
    target = TargetBtf.from_btf(vmlinux, modules={"badmod": str(bad), "testmod": str(good)})
    assert set(target.modules()) == {"testmod"}
    assert "badmod" in target.skipped
    assert any("badmod" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("form", ["split", "standalone", "distilled"])
def test_core_relocation_resolves_into_module(
    form: str, vmlinux: Btf, bpf_build: object, tmp_path: Path
) -> None:
    obj_path = bpf_build("module_core.c")  # type: ignore[operator]
    mod = tmp_path / "testmod.btf"
    base_data = None
    if form == "split":
        mod.write_bytes(split_module(vmlinux))
    elif form == "standalone":
        mod.write_bytes(standalone_module())
    else:
        split, base_data = distilled_module(vmlinux)
        mod.write_bytes(split)
    if base_data is not None:
        module_btf = {"testmod": load_module_btf(mod.read_bytes(), vmlinux, "testmod",
                                                 base_data=base_data)}
        prepared = BpfObject.open(obj_path).prepare(vmlinux, module_btf=module_btf)
    else:
        prepared = BpfObject.open(obj_path).prepare(vmlinux, module_btf={"testmod": str(mod)})
    by_kind = {r.kind: r for r in prepared.core_log}
    assert {r.outcome for r in prepared.core_log} == {"patched"}
    assert {r.target_btf for r in prepared.core_log} == {"testmod"}
    assert by_kind["byte_off"].new == 8
    assert by_kind["field_exists"].new == 1
    modbtf = TargetBtf.from_btf(vmlinux, modules={"testmod": str(mod)}).modules().get("testmod")
    if modbtf is not None:
        assert by_kind["target_type_id"].new == modbtf.find(MOD_STRUCT)[0]
