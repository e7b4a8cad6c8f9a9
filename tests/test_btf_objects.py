""".BTF and .BTF.ext of objects compiled by clang-19 from tests/progs/btf_*.c, little- and
big-endian, checked against bpftool's dump of the same object and against the source."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from test_btf_builder import bpftool_json

from bpfobj.btf import Btf, BtfExt
from bpfobj.btf import types as T
from bpfobj.errors import BtfError
from bpfobj.uapi import BtfKind, CoreReloKind

SOURCE = Path(__file__).parent / "progs" / "btf_kinds.c"
needs_bpftool = pytest.mark.skipif(shutil.which("bpftool") is None, reason="needs bpftool")


def sections(path: Path) -> dict[str, bytes]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s.data() for s in elf.iter_sections() if s.name in (".BTF", ".BTF.ext")}


def bpftool_dump(path: Path) -> tuple[list[dict[str, object]], int]:
    """(bpftool -j types, count of '[id]' lines of the plain dump)."""
    js = subprocess.run(
        ["bpftool", "-j", "btf", "dump", "file", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    text = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(path)], check=True, capture_output=True, text=True
    ).stdout
    count = sum(1 for line in text.splitlines() if line.startswith("["))
    return json.loads(js)["types"], count


@pytest.fixture(scope="module", params=["bpf", "bpfeb"])
def obj(bpf_build, request: pytest.FixtureRequest) -> Path:  # type: ignore[no-untyped-def]
    return bpf_build("btf_kinds.c", target=request.param)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def parsed(obj: Path) -> tuple[Btf, BtfExt]:
    secs = sections(obj)
    btf = Btf.parse(secs[".BTF"], name=obj.name)
    return btf, BtfExt.parse(secs[".BTF.ext"], btf, name=obj.name)


@needs_bpftool
def test_types_match_bpftool(obj: Path, parsed: tuple[Btf, BtfExt]) -> None:
    btf, _ = parsed
    expected, count = bpftool_dump(obj)
    assert len(btf) == count == len(expected)
    for entry in expected:
        tid = entry["id"]
        assert isinstance(tid, int)
        assert btf.kind(tid).name == entry["kind"]
        assert (btf.name(tid) or "(anon)") == entry["name"]
        assert bpftool_json(btf.type(tid)) == entry


def test_byte_order(obj: Path, parsed: tuple[Btf, BtfExt]) -> None:
    btf, ext = parsed
    want = "big" if "bpfeb" in obj.name or _is_big(obj) else "little"
    assert btf.byteorder == ext.byteorder == want


def _is_big(path: Path) -> bool:
    with open(path, "rb") as f:
        return ELFFile(f).little_endian is False


def test_every_kind_present(parsed: tuple[Btf, BtfExt]) -> None:
    btf, _ = parsed
    kinds = {btf.kind(i) for i in btf}
    assert kinds == set(BtfKind) - {BtfKind.UNKN}
    btf.validate()


def test_lookups_and_sizes(parsed: tuple[Btf, BtfExt]) -> None:
    btf, _ = parsed
    (sid,) = btf.find("all_fields", BtfKind.STRUCT)
    s = btf.type(sid)
    assert isinstance(s, T.Struct) and s.kind_flag
    assert btf.size_of(sid) == s.size == 176
    assert [m.bitfield_size for m in s.members[:3]] == [3, 5, 7]
    (var,) = btf.find("global_fields", BtfKind.VAR)
    assert btf.size_of(var) == 176
    (ro,) = btf.find("rodata_val")
    ro_t = btf.type(ro)
    assert isinstance(ro_t, T.Var)
    assert btf.kind(btf.resolve(ro_t.type)) is BtfKind.INT  # const volatile int
    assert btf.pointer_size == 8
    (m,) = btf.find("matrix") or [None]  # member names are not type names
    assert m is None
    matrix = s.member("matrix")
    assert matrix is not None and btf.size_of(matrix.type) == 24
    (proto_ptr,) = [x.type for x in s.members if x.name == "callback"]
    proto = btf.type(btf.type(proto_ptr).type)  # type: ignore[attr-defined]
    assert isinstance(proto, T.FuncProto) and proto.is_variadic
    (e64,) = btf.find("sbig64", BtfKind.ENUM64)
    assert btf.type(e64).values[0] == ("SBIG_NEG", -(1 << 32))  # type: ignore[attr-defined]
    unsized = 0
    for tid in btf:
        btf.resolve(tid)
        try:
            assert btf.size_of(tid) >= 0
        except BtfError as exc:  # func, func_proto, fwd, void, and what leads to them
            assert "has no size" in exc.message
            unsized += 1
    assert 0 < unsized < len(btf)


def test_btf_ext_func_info(parsed: tuple[Btf, BtfExt]) -> None:
    btf, ext = parsed
    assert ext.func_info_rec_size == 8
    got = {
        sec: [(fi.insn_idx, btf.name(fi.type_id)) for fi in recs]
        for sec, recs in ext.func_info.items()
    }
    assert got["tracepoint/syscalls/sys_enter_execve"] == [(0, "handle_exec")]
    assert got["xdp"] == [(0, "handle_xdp")]
    assert sorted(name for _, name in got[".text"]) == ["global_helper", "static_helper"]
    for recs in ext.func_info.values():
        for fi in recs:
            assert btf.kind(fi.type_id) is BtfKind.FUNC
            assert fi.insn_off == fi.insn_idx * 8


def test_btf_ext_line_info(parsed: tuple[Btf, BtfExt]) -> None:
    _, ext = parsed
    assert ext.line_info_rec_size == 16
    lines = SOURCE.read_text().splitlines()
    assert set(ext.line_info) == set(ext.func_info)
    total = 0
    for recs in ext.line_info.values():
        offs = [li.insn_off for li in recs]
        assert offs == sorted(offs)
        for li in recs:
            total += 1
            assert li.file_name.endswith("btf_kinds.c")
            assert 1 <= li.line_num <= len(lines)
            assert li.line.strip() == lines[li.line_num - 1].strip()
            assert li.raw_line_col == (li.line_num << 10) | li.line_col
    assert total > 10


def test_btf_ext_core_relos(parsed: tuple[Btf, BtfExt]) -> None:
    btf, ext = parsed
    assert ext.core_relo_rec_size == 16
    relos = ext.core_relos["tracepoint/syscalls/sys_enter_execve"]
    seen = {(btf.name(r.type_id), r.access_str, r.kind) for r in relos}
    assert ("task_struct___local", "0:0", CoreReloKind.FIELD_BYTE_OFFSET) in seen  # t->pid
    assert ("task_struct___local", "0:2", CoreReloKind.FIELD_BYTE_OFFSET) in seen  # ->parent
    assert ("task_struct___local", "0:1", CoreReloKind.FIELD_BYTE_OFFSET) in seen  # ->tgid
    assert ("task_struct___local", "0:1", CoreReloKind.FIELD_EXISTS) in seen
    assert ("all_fields", "0", CoreReloKind.TYPE_EXISTS) in seen
    assert ("all_fields", "0", CoreReloKind.TYPE_SIZE) in seen
    assert ("pid_type___local", "1", CoreReloKind.ENUMVAL_EXISTS) in seen
    assert ("pid_type___local", "1", CoreReloKind.ENUMVAL_VALUE) in seen
    assert "xdp" not in ext.core_relos
    for r in relos:
        assert r.insn_idx * 8 == r.insn_off and btf.string(r.access_str_off) == r.access_str


def test_both_byte_orders_agree(bpf_build) -> None:  # type: ignore[no-untyped-def]
    le, be = (sections(bpf_build("btf_kinds.c", target=t)) for t in ("bpfel", "bpfeb"))
    btf_le, btf_be = Btf.parse(le[".BTF"]), Btf.parse(be[".BTF"])
    assert (btf_le.byteorder, btf_be.byteorder) == ("little", "big")
    assert [btf_le.type(i) for i in btf_le] == [btf_be.type(i) for i in btf_be]
    ext_le, ext_be = BtfExt.parse(le[".BTF.ext"], btf_le), BtfExt.parse(be[".BTF.ext"], btf_be)
    assert ext_le.func_info == ext_be.func_info
    assert ext_le.core_relos == ext_be.core_relos
    assert ext_le.line_info.keys() == ext_be.line_info.keys()
