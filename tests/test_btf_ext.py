"""`bpfobj.btf.BtfExt` on hand-built .BTF.ext blobs: records, record sizes, header
variants, byte orders and every validation error."""

from __future__ import annotations

import struct

import pytest
from test_btf_builder import build_ext

from bpfobj.btf import Btf, BtfExt, CoreRelo, FuncInfo, LineInfo
from bpfobj.btf.writer import BtfBuilder
from bpfobj.errors import BtfExtError
from bpfobj.uapi import CoreReloKind


def make(byteorder: str = "little", **kw: object) -> tuple[Btf, bytes, dict[str, int]]:
    b = BtfBuilder()
    i = b.add_int("int", 4)
    proto = b.add_func_proto(i, [("ctx", i)])
    f1 = b.add_func("prog_a", proto, 1)
    f2 = b.add_func("sub", proto, 0)
    s = b.add_struct("task", 4, [("pid", i, 0)])
    args: dict[str, object] = {
        "func_info": {"kprobe/x": [(0, f1)], ".text": [(0, f2)]},
        "line_info": {"kprobe/x": [(0, "a.c", "int x = 1;", 10, 5), (16, "a.c", "", 11, 0)]},
        "core_relos": {"kprobe/x": [(8, s, "0:0", 0), (24, s, "0", 9)]},
    }
    args.update(kw)
    ext = build_ext(b, byteorder=byteorder, **args)  # type: ignore[arg-type]
    return Btf.parse(b.encode(byteorder=byteorder)), ext, {"f1": f1, "f2": f2, "s": s}


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_records(byteorder: str) -> None:
    btf, raw, ids = make(byteorder)
    ext = BtfExt.parse(raw, btf)
    assert ext.byteorder == byteorder
    assert ext.header.hdr_len == 32
    assert (ext.func_info_rec_size, ext.line_info_rec_size, ext.core_relo_rec_size) == (8, 16, 16)
    assert ext.func_info == {
        "kprobe/x": [FuncInfo(0, ids["f1"])],
        ".text": [FuncInfo(0, ids["f2"])],
    }
    li = ext.line_info["kprobe/x"]
    assert li[0].file_name == "a.c" and li[0].line == "int x = 1;"
    assert (li[0].line_num, li[0].line_col, li[0].raw_line_col) == (10, 5, 10 << 10 | 5)
    assert btf.string(li[0].file_name_off) == "a.c" and btf.string(li[0].line_off) == "int x = 1;"
    assert li[1].insn_idx == 2 and li[1].line == ""
    cr = ext.core_relos["kprobe/x"]
    assert cr[0] == CoreRelo(
        8, ids["s"], "0:0", CoreReloKind.FIELD_BYTE_OFFSET, cr[0].access_str_off
    )
    assert cr[1].kind is CoreReloKind.TYPE_SIZE and cr[1].insn_idx == 3
    assert isinstance(li[0], LineInfo)


def test_bigger_records_are_skipped_over() -> None:
    btf, raw, _ = make(rec_sizes=(12, 24, 20))
    ext = BtfExt.parse(raw, btf)
    assert (ext.func_info_rec_size, ext.line_info_rec_size, ext.core_relo_rec_size) == (12, 24, 20)
    ref = BtfExt.parse(make()[1], btf)
    assert (ext.func_info, ext.line_info, ext.core_relos) == (
        ref.func_info,
        ref.line_info,
        ref.core_relos,
    )


def test_short_header_has_no_core_relos() -> None:
    btf, raw, _ = make(hdr_len=24, core_relos=None)
    ext = BtfExt.parse(raw, btf)
    assert ext.core_relos == {} and ext.header.core_relo_len == 0 and ext.func_info


def test_longer_header_and_other_order() -> None:
    btf, raw, _ = make(hdr_len=40, header_tail=b"\0" * 8, order=("core", "line", "func"))
    ref_btf, ref_raw, _ = make()
    ext, ref = BtfExt.parse(raw, btf), BtfExt.parse(ref_raw, ref_btf)
    assert ext.header.hdr_len == 40
    assert (ext.func_info, ext.line_info, ext.core_relos) == (
        ref.func_info,
        ref.line_info,
        ref.core_relos,
    )


def test_repeated_section_merges() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4)
    f = b.add_func("f", b.add_func_proto(i), 1)
    fmt = "<"
    name = b.add_string("sec")
    sub = struct.pack(fmt + "I", 8)
    sub += struct.pack(fmt + "IIII", name, 1, 0, f) + struct.pack(fmt + "IIII", name, 1, 8, f)
    head = struct.pack(fmt + "HBBI4I", 0xEB9F, 1, 0, 24, 0, len(sub), len(sub), 0)
    ext = BtfExt.parse(head + sub, Btf.parse(b.encode()))
    assert ext.func_info == {"sec": [FuncInfo(0, f), FuncInfo(8, f)]}


def test_empty_subsections() -> None:
    btf, raw, _ = make(func_info={}, line_info={}, core_relos={})
    ext = BtfExt.parse(raw, btf)
    assert ext.func_info == ext.line_info == ext.core_relos == {}


def _set(raw: bytes, off: int, fmt: str, *v: int) -> bytes:
    out = bytearray(raw)
    struct.pack_into(fmt, out, off, *v)
    return bytes(out)


BTF, RAW, IDS = make()
FI_START = 32  # func_info subsection: rec_size at 32, then {name_off, num_info} at 36
_, LI_OFF, LI_LEN = 0, *struct.unpack_from("<II", RAW, 16)
CR_OFF = struct.unpack_from("<I", RAW, 24)[0]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "truncated header"),
        (RAW[:12], "truncated header"),
        (b"\x00\x00" + RAW[2:], "bad magic"),
        (_set(RAW, 2, "<B", 2), "version 2"),
        (_set(RAW, 3, "<B", 1), "flags"),
        (_set(RAW, 4, "<I", 20), "shorter than 24"),
        (_set(RAW, 4, "<I", 4096), "truncated header"),
        (_set(RAW, 8, "<I", 2), "not 4-byte aligned"),
        (_set(RAW, 12, "<I", 1 << 20), "runs past the end"),
        (RAW[:-4], "runs past the end"),
        (_set(RAW, 12, "<I", 2), "no record size"),
        (_set(RAW, 12, "<I", 4), "no records"),
        (_set(RAW, FI_START, "<I", 4), "record size 4 is invalid"),
        (_set(RAW, FI_START, "<I", 10), "record size 10 is invalid"),
        (_set(RAW, 32 + LI_OFF, "<I", 12), "record size 12 is invalid"),
        (_set(RAW, 32 + CR_OFF, "<I", 8), "record size 8 is invalid"),
        (_set(RAW, FI_START + 8, "<I", 0), "has no records"),
        (_set(RAW, FI_START + 8, "<I", 0xFFFFFFFF), "claims 4294967295 records"),
        (_set(RAW, 12, "<I", 4 + 8 + 8 + 4), "ends inside a section header"),
        (_set(RAW, FI_START + 4, "<I", 0xFFFFFF), "section name offset"),
        (_set(RAW, FI_START + 12, "<I", 3), "not at an instruction"),
        (_set(RAW, FI_START + 16, "<I", 999), "type id 999"),
        (_set(RAW, 32 + LI_OFF + 4 + 8 + 4, "<I", 0xFFFFF), "file name offset"),
        (_set(RAW, 32 + LI_OFF + 4 + 8 + 8, "<I", 0xFFFFF), "line offset"),
        (_set(RAW, 32 + CR_OFF + 4 + 8 + 4, "<I", 999), "type id 999"),
        (_set(RAW, 32 + CR_OFF + 4 + 8 + 8, "<I", 0xFFFFF), "access string offset"),
        (_set(RAW, 32 + CR_OFF + 4 + 8 + 12, "<I", 77), "unknown kind 77"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_errors(data: bytes, match: str) -> None:
    with pytest.raises(BtfExtError, match=match) as exc:
        BtfExt.parse(data, BTF)
    assert exc.value.section == ".BTF.ext" and exc.value.hint


def test_byte_order_mismatch() -> None:
    be_btf, be_raw, _ = make("big")
    with pytest.raises(BtfExtError, match=r"big-endian but its \.BTF is little-endian"):
        BtfExt.parse(be_raw, BTF)
    with pytest.raises(BtfExtError, match=r"little-endian but its \.BTF is big-endian"):
        BtfExt.parse(RAW, be_btf)


def test_error_context() -> None:
    with pytest.raises(BtfExtError) as exc:
        BtfExt.parse(_set(RAW, FI_START + 16, "<I", 999), BTF, name="prog.o")
    assert exc.value.obj == "prog.o" and exc.value.extra["subsection"] == "func_info"
    assert "prog.o" in str(exc.value)
