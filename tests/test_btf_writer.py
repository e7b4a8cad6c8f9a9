"""bpfobj.btf.writer.BtfBuilder: every kind, string dedup, both byte orders, split BTF,
copy-and-edit, byte identity with libbpf's own builder (btf__add_*), and the round trip
of this machine's kernel BTF (/sys/kernel/btf/vmlinux)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_btf_fixup import fixup_harness

from bpfobj import records
from bpfobj.btf import types as T
from bpfobj.btf.reader import Btf
from bpfobj.btf.writer import BtfBuilder
from bpfobj.errors import BtfError
from bpfobj.uapi import BtfFuncLinkage, BtfKind, BtfVarLinkage

VMLINUX = Path("/sys/kernel/btf/vmlinux")


def roundtrip(b: BtfBuilder, **kw: object) -> Btf:
    return Btf.parse(b.encode(**kw), base=b.base, cache=False)  # type: ignore[arg-type]


def words(raw: bytes) -> list[int]:
    """The u32 words of a little-endian blob's type section."""
    (hdr_len,) = struct.unpack_from("<I", raw, 4)
    type_off, type_len = struct.unpack_from("<II", raw, 8)
    start = hdr_len + type_off
    return list(struct.unpack_from(f"<{type_len // 4}I", raw, start))


# ---------------------------------------------------------------------------------------
# Each kind


def test_int_and_float() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4, signed=True)
    c = b.add_int("char", 1, char=True, signed=True)
    bo = b.add_int("_Bool", 1, bool_=True)
    u = b.add_int("u24", 4, bit_offset=0, nr_bits=24)
    d = b.add_float("double", 8)
    assert (i, c, bo, u, d) == (1, 2, 3, 4, 5)
    btf = roundtrip(b)
    assert btf.type(i) == T.Int(1, "int", 4, T.INT_SIGNED, 0, 32)
    assert btf.type(c) == T.Int(2, "char", 1, T.INT_SIGNED | T.INT_CHAR, 0, 8)
    assert btf.type(bo) == T.Int(3, "_Bool", 1, T.INT_BOOL, 0, 8)
    assert btf.type(u) == T.Int(4, "u24", 4, 0, 0, 24)
    assert btf.type(d) == T.Float(5, "double", 8)
    raw = b.encode()
    assert words(raw)[:4] == [1, 0x01000000, 4, (1 << 24) | 32]
    with pytest.raises(BtfError):
        b.add_int("bad", 3)
    with pytest.raises(BtfError):
        b.add_int("", 4)
    with pytest.raises(BtfError):
        b.add_float("f", 3)


def test_refs_array_fwd_typedef() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4, signed=True)
    p = b.add_ptr(i)
    a = b.add_array(i, i, 10)
    fs = b.add_fwd("later")
    fu = b.add_fwd("later_u", union=True)
    td = b.add_typedef("myint", i)
    v = b.add_volatile(i)
    c = b.add_const(v)
    r = b.add_restrict(p)
    tt = b.add_type_tag("user", i)
    btf = roundtrip(b)
    assert btf.type(p) == T.Ptr(p, "", i)
    assert btf.type(a) == T.Array(a, "", i, i, 10)
    assert btf.type(fs) == T.Fwd(fs, "later", False)
    assert btf.type(fu) == T.Fwd(fu, "later_u", True)
    assert btf.type(td) == T.Typedef(td, "myint", i)
    assert btf.type(v) == T.Volatile(v, "", i)
    assert btf.type(c) == T.Const(c, "", v)
    assert btf.type(r) == T.Restrict(r, "", p)
    assert btf.type(tt) == T.TypeTag(tt, "user", i)
    assert btf.resolve(td) == i
    assert btf.size_of(a) == 40


def test_struct_union_bitfields() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4, signed=True)
    s = b.add_struct("pair", 8, [("a", i, 0), ("b", i, 32)])
    bf = b.add_struct("bits", 4, [("x", i, 0, 3), T.Member("y", i, 3, 5), ("z", i, 8)])
    u = b.add_union("u", 4, [("i", i, 0), ("s", bf, 0)])
    anon = b.add_struct("", 4)
    b.add_member(anon, "late", i, 0)
    b.add_member(anon, "bit", i, 0, 1)  # a bitfield switches the kind_flag on
    btf = roundtrip(b)
    assert btf.type(s) == T.Struct(s, "pair", 8, (T.Member("a", i, 0), T.Member("b", i, 32)))
    t = btf.type(bf)
    assert isinstance(t, T.Struct) and t.kind_flag
    assert t.members == (T.Member("x", i, 0, 3), T.Member("y", i, 3, 5), T.Member("z", i, 8))
    assert btf.type(u) == T.Union(u, "u", 4, (T.Member("i", i, 0), T.Member("s", bf, 0)))
    t = btf.type(anon)
    assert isinstance(t, T.Struct) and t.kind_flag and t.name == ""
    assert t.members[1].bitfield_size == 1
    raw_words = words(b.encode())
    # bits: info has kind_flag, members' offset word is size << 24 | bit offset
    start = 4 + 3 + 3 * 2
    assert raw_words[start + 1] == (1 << 31) | (4 << 24) | 3
    assert raw_words[start + 3 + 2] == (3 << 24) | 0
    assert raw_words[start + 6 + 2] == (5 << 24) | 3
    with pytest.raises(BtfError):
        b.add_struct("bad", 4, [("x", i, 0, 3)], kind_flag=False)


def test_enums() -> None:
    b = BtfBuilder()
    e = b.add_enum("color", 4, [("RED", 0), ("GREEN", 5)])
    s = b.add_enum("small", 4, [("NEG", -1), ("POS", 2)])
    e64 = b.add_enum64("big", 8, [("LO", 1), ("HI", 1 << 32)])
    s64 = b.add_enum64("sbig", 8, [("NEG", -(1 << 32))])
    fe = b.add_enum("fwd_enum", 4)
    b.add_enum_value(fe, "LATE", -3)
    btf = roundtrip(b)
    V = T.EnumValue
    assert btf.type(e) == T.Enum(e, "color", 4, (V("RED", 0), V("GREEN", 5)), False)
    assert btf.type(s) == T.Enum(s, "small", 4, (V("NEG", -1), V("POS", 2)), True)
    assert btf.type(e64) == T.Enum64(e64, "big", 8, (V("LO", 1), V("HI", 1 << 32)), False)
    assert btf.type(s64) == T.Enum64(s64, "sbig", 8, (V("NEG", -(1 << 32)),), True)
    assert btf.type(fe) == T.Enum(fe, "fwd_enum", 4, (V("LATE", -3),), True)
    w = words(b.encode())
    assert w[3:8] == [b.find_string("RED"), 0, b.find_string("GREEN"), 5, b.find_string("small")]
    with pytest.raises(BtfError):
        b.add_enum("x", 3)
    with pytest.raises(BtfError):
        b.add_enum("x", 4, [("TOO_BIG", 1 << 32)])
    with pytest.raises(BtfError):  # -1 makes it signed: 2**31 would read back negative
        b.add_enum("x", 4, [("NEG", -1), ("BIG", 1 << 31)])
    hi = b.add_enum("hi", 4, [("HI", 1 << 31)])
    with pytest.raises(BtfError):
        b.add_enum_value(hi, "NEG", -1)  # would make HI read back as -2**31
    with pytest.raises(BtfError):
        b.add_enum_value(s64, "HUGE", 1 << 63)


def test_funcs_vars_datasec_decl_tag() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4, signed=True)
    p = b.add_ptr(i)
    fp = b.add_func_proto(i, [("a", i), ("", p)])
    f = b.add_func("f", fp, BtfFuncLinkage.GLOBAL)
    vp = b.add_func_proto(0, [("fmt", p)])
    b.add_param(vp, "", 0)  # variadic
    h = b.add_func("h", vp, BtfFuncLinkage.EXTERN)
    v = b.add_var("counter", i, BtfVarLinkage.GLOBAL_ALLOCATED)
    sv = b.add_var("s", i)
    ds = b.add_datasec(".data", 8, [(v, 0, 4)])
    b.add_var_secinfo(ds, sv, 4, 4)
    dt = b.add_decl_tag("tag", f, -1)
    dt1 = b.add_decl_tag("arg", f, 1)
    btf = roundtrip(b)
    assert btf.type(fp) == T.FuncProto(fp, "", i, (T.Param("a", i), T.Param("", p)))
    assert btf.type(f) == T.Func(f, "f", fp, BtfFuncLinkage.GLOBAL)
    t = btf.type(vp)
    assert isinstance(t, T.FuncProto) and t.is_variadic
    assert btf.type(h) == T.Func(h, "h", vp, BtfFuncLinkage.EXTERN)
    assert btf.type(v) == T.Var(v, "counter", i, BtfVarLinkage.GLOBAL_ALLOCATED)
    assert btf.type(sv) == T.Var(sv, "s", i, BtfVarLinkage.STATIC)
    assert btf.type(ds) == T.Datasec(
        ds, ".data", 8, (T.VarSecinfo(v, 0, 4), T.VarSecinfo(sv, 4, 4))
    )
    assert btf.type(dt) == T.DeclTag(dt, "tag", f, -1)
    assert btf.type(dt1) == T.DeclTag(dt1, "arg", f, 1)
    assert words(b.encode())[-1] == 1
    assert words(b.encode())[-5] == 0xFFFFFFFF
    btf.validate()


def test_unknown_kind_with_layout() -> None:
    """A kind only described by a layout section survives a copy, in both byte orders."""
    layout = [(0, 0)] * 20 + [(4, 8)]  # kind 20: one u32, then vlen * 2 u32
    for order, fmt in (("little", "<"), ("big", ">")):
        b = BtfBuilder(order)
        i = b.add_int("int", 4)
        b.layout = tuple((a, e, 0) for a, e in layout)
        raw = bytearray(b.encode())
        # append a kind-20 record by hand: name "", info, size_or_type, u32, 2 x (u32, u32)
        hdr_len, _, type_len, str_off, str_len, lay_off, lay_len = struct.unpack_from(
            f"{fmt}I6I", raw, 4
        )
        rec = struct.pack(f"{fmt}8I", 0, (20 << 24) | 2, i, 7, 1, 2, 3, 4)
        t0 = hdr_len + type_len
        raw[t0:t0] = rec
        struct.pack_into(
            f"{fmt}6I", raw, 8, 0, type_len + 32, str_off + 32, str_len, lay_off + 32, lay_len
        )
        src = Btf.parse(bytes(raw), cache=False)
        assert src.type(2).kind == BtfKind.UNKN
        for lazy in (True, False):
            out = BtfBuilder.from_btf(src, lazy=lazy).encode()
            assert out == bytes(raw)
        other = "big" if order == "little" else "little"
        swapped = Btf.parse(BtfBuilder.from_btf(src, lazy=False).encode(byteorder=other))
        t = swapped.type(2)
        assert isinstance(t, T.Unknown) and t.raw_kind == 20 and t.vlen == 2
        assert struct.unpack(("<" if other == "little" else ">") + "5I", t.data) == (7, 1, 2, 3, 4)


# ---------------------------------------------------------------------------------------
# Strings


def test_string_dedup() -> None:
    b = BtfBuilder()
    assert b.add_string("") == 0
    a = b.add_string("abc")
    assert a == 1
    assert b.add_string("abc") == a
    assert b.add_string(b"abc") == a
    assert b.add_string("ab") == 5  # no suffix/prefix sharing, like libbpf's strset
    assert b.find_string("nope") is None
    i = b.add_int("abc", 4)
    s = b.add_struct("abc", 4, [("abc", i, 0)])
    raw = b.encode()
    hdr = struct.unpack_from("<HBBI4I", raw)
    strs = raw[hdr[3] + hdr[6] : hdr[3] + hdr[6] + hdr[7]]
    assert strs == b"\0abc\0ab\0"
    btf = Btf.parse(raw)
    assert btf.name(s) == "abc" and btf.type(s).members[0].name == "abc"  # type: ignore[attr-defined]
    assert b.string(a) == "abc"
    with pytest.raises(BtfError):
        b.add_string("a\0b")


def test_rename_string_in_place() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4)
    ds = b.add_datasec(".data", 4, [])
    off = b.name_offset(ds)
    b.rename_string(off, "_data")
    assert b.find_string("_data") == off and b.find_string(".data") is None
    btf = roundtrip(b)
    assert btf.name(ds) == ".data"  # the decoded type still names the old string ...
    b.set_type(ds, records.evolve(b.type(ds), name="_data"))
    assert roundtrip(b).name(ds) == "_data"  # ... until it is set to the new one
    assert b.name_offset(ds) == off
    with pytest.raises(BtfError):
        b.rename_string(off, "longer_name")
    assert i == 1


# ---------------------------------------------------------------------------------------
# Byte orders and headers


def sample_builder(order: str = "little") -> BtfBuilder:
    b = BtfBuilder(order)
    i = b.add_int("int", 4, signed=True)
    p = b.add_ptr(i)
    s = b.add_struct("s", 16, [("a", i, 0), ("b", p, 64), ("c", i, 32, 4)])
    b.add_enum64("e", 8, [("A", -5), ("B", 1 << 40)])
    fp = b.add_func_proto(i, [("x", s)])
    b.add_func("fn", fp, BtfFuncLinkage.GLOBAL)
    b.add_decl_tag("t", s, 2)
    return b


def test_both_byte_orders() -> None:
    le = sample_builder("little").encode()
    be = sample_builder("big").encode()
    assert le[:2] == b"\x9f\xeb" and be[:2] == b"\xeb\x9f"
    assert len(le) == len(be)
    a, c = Btf.parse(le), Btf.parse(be)
    assert c.byteorder == "big"
    assert [a.type(t) for t in a] == [c.type(t) for t in c]
    # encoding another order than the builder's
    assert sample_builder("little").encode(byteorder="big") == be
    # and copying swaps back to identical bytes
    assert BtfBuilder.from_btf(c, byteorder="little").encode() == le
    assert BtfBuilder.from_btf(c, byteorder="little", lazy=False).encode() == le


def test_header_lengths() -> None:
    b = sample_builder()
    raw = b.encode()
    assert struct.unpack_from("<I", raw, 4)[0] == 24
    raw32 = b.encode(hdr_len=32)
    hdr = Btf.parse(raw32).header
    assert hdr.hdr_len == 32 and hdr.layout_off == hdr.layout_len == 0
    assert raw32[32:] == raw[24:]
    with pytest.raises(BtfError):
        b.encode(hdr_len=20)


# ---------------------------------------------------------------------------------------
# Split BTF


def test_split_btf() -> None:
    base_b = BtfBuilder()
    i = base_b.add_int("int", 4, signed=True)
    base_b.add_struct("base_s", 4, [("a", i, 0)])
    base = Btf.parse(base_b.encode())
    b = BtfBuilder(base=base)
    assert b.start_id == 3 and len(b) == 2
    assert b.start_str_off == base.header.str_len
    assert b.add_string("int") == base_b.find_string("int")  # the base's string is reused
    p = b.add_ptr(i)
    s = b.add_struct("split_s", 8, [("a", i, 0), ("new_member", p, 32)])
    assert (p, s) == (3, 4)
    assert b.find_string("split_s") == base.header.str_len  # own strings follow the base's
    raw = b.encode()
    split = Btf.parse(raw, base=base)
    assert split.start_id == 3 and len(split) == 4
    assert split.type(s) == T.Struct(
        s, "split_s", 8, (T.Member("a", i, 0), T.Member("new_member", p, 32))
    )
    assert split.type(1) == base.type(1)
    # an empty split BTF has an empty string section
    assert Btf.parse(BtfBuilder(base=base).encode(), base=base).header.str_len == 0
    # copying split BTF keeps the bytes
    assert BtfBuilder.from_btf(split).encode() == raw
    assert BtfBuilder.from_btf(split, lazy=False).encode() == raw
    assert b.type(1) == base.type(1)
    with pytest.raises(BtfError):
        b.set_type(1, T.Int(1, "int", 8, 0, 0, 64))  # base types are read-only


# ---------------------------------------------------------------------------------------
# Copy and edit


def test_from_btf_edit() -> None:
    src = Btf.parse(sample_builder().encode())
    b = BtfBuilder.from_btf(src)
    assert b.encode() == src.raw
    sid = b.find("s", BtfKind.STRUCT)[0]
    t = b.type(sid)
    assert isinstance(t, T.Struct)
    b.set_type(sid, records.evolve(t, name="renamed", size=24))
    new_id = b.add_typedef("alias", sid)
    assert b.find("renamed") == [sid] and b.find("s") == []
    assert b.find("alias", BtfKind.TYPEDEF) == [new_id] and b.find("alias", BtfKind.INT) == []
    assert b.find("int") == src.find("int")
    out = Btf.parse(b.encode())
    assert out.name(sid) == "renamed" and out.size_of(sid) == 24
    assert out.type(new_id) == T.Typedef(new_id, "alias", sid)
    for tid in src:
        if tid != sid:
            assert out.type(tid) == src.type(tid)
    # a type can be replaced by another kind
    b.set_type(sid, T.Int(0, "now_int", 4, 0, 0, 32))
    assert Btf.parse(b.encode()).kind(sid) == BtfKind.INT
    # fresh string table: only the names in use, in type order
    fresh = BtfBuilder.from_btf(src, keep_strings=False)
    out = Btf.parse(fresh.encode())
    assert [out.type(t) for t in out] == [src.type(t) for t in src]


def test_validation_errors() -> None:
    b = BtfBuilder()
    with pytest.raises(BtfError):
        BtfBuilder("middle")
    with pytest.raises(BtfError):
        b.add_ptr(-1)
    with pytest.raises(BtfError):
        b.type(5)
    i = b.add_int("int", 4)
    with pytest.raises(BtfError):
        b.add_member(i, "x", i, 0)
    with pytest.raises(BtfError):
        b.add_func_proto(0, [("p", 0)] * 0x10000)


# ---------------------------------------------------------------------------------------
# Byte identity with libbpf's builder


def replay_libbpf_sequence(order: str = "little") -> BtfBuilder:
    """The types tests/harness/libbpf_btf_fixup.c `builder` adds, in the same order."""
    b = BtfBuilder(order)
    i = b.add_int("int", 4, signed=True)
    uc = b.add_int("unsigned char", 1)
    b.add_int("_Bool", 1, bool_=True)
    b.add_int("char", 1, char=True, signed=True)
    b.add_int("__int128", 16, signed=True)
    p = b.add_ptr(i)
    arr = b.add_array(i, i, 16)
    s = b.add_struct("pair", 16, [("a", i, 0), ("b", i, 32), ("ptr", p, 64)])
    b.add_struct("flags", 4, [("x", i, 0, 3), ("y", i, 3, 5), ("z", uc, 8)])
    b.add_union("num", 8, [("i", i, 0), ("p", p, 0)])
    b.add_struct("", 64, [("arr", arr, 0)])
    b.add_enum("color", 4, [("RED", 0), ("GREEN", 5)])
    b.add_enum("small", 4, [("NEG", -1), ("POS", 2)])
    b.add_enum64("big", 8, [("BIG_LO", 1), ("BIG_HI", 1 << 32)], signed=False)
    b.add_enum64("sbig", 8, [("SBIG_NEG", -(1 << 32))], signed=True)
    b.add_fwd("fwd_struct")
    b.add_fwd("fwd_union", union=True)
    b.add_enum("fwd_enum", 4)
    td = b.add_typedef("myint", i)
    vol = b.add_volatile(i)
    b.add_const(vol)
    b.add_restrict(p)
    b.add_type_tag("user", i)
    fp = b.add_func_proto(i, [("a", i), ("", p)])
    b.add_func("f", fp, BtfFuncLinkage.GLOBAL)
    b.add_func("g", fp, BtfFuncLinkage.STATIC)
    fp2 = b.add_func_proto(0, [("fmt", p), ("", 0)])
    b.add_func("h", fp2, BtfFuncLinkage.EXTERN)
    var = b.add_var("counter", i, BtfVarLinkage.GLOBAL_ALLOCATED)
    var2 = b.add_var("static_v", td, BtfVarLinkage.STATIC)
    b.add_var("ext_v", i, BtfVarLinkage.GLOBAL_EXTERN)
    b.add_datasec(".data", 8, [(var, 0, 4), (var2, 4, 4)])
    b.add_float("double", 8)
    b.add_float("long double", 16)
    b.add_decl_tag("tag1", s, -1)
    b.add_decl_tag("tag2", s, 1)
    b.add_typedef("pair", s)
    b.add_string("just a string")
    return b


@pytest.fixture(scope="module")
def libbpf_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = fixup_harness()
    out = tmp_path_factory.mktemp("libbpf_builder")
    subprocess.run([str(exe), "builder", str(out)], check=True, capture_output=True, timeout=60)
    return out


def test_same_bytes_as_libbpf_builder(libbpf_built: Path) -> None:
    host = sys.byteorder
    assert replay_libbpf_sequence(host).encode() == (libbpf_built / "base.btf").read_bytes()
    other = "big" if host == "little" else "little"
    assert (
        replay_libbpf_sequence(host).encode(byteorder=other)
        == (libbpf_built / "base_be.btf").read_bytes()
    )


def test_same_bytes_as_libbpf_split(libbpf_built: Path) -> None:
    base = Btf.parse((libbpf_built / "base.btf").read_bytes())
    b = BtfBuilder(sys.byteorder, base=base)
    i = base.find("int", BtfKind.INT)[0]
    p = base.find("", BtfKind.PTR)[0]
    b.add_int("int", 4, signed=True)
    s = b.add_struct("split_only", 16, [("a", i, 0), ("new_member", p, 64)])
    b.add_ptr(s)
    assert b.encode() == (libbpf_built / "split.btf").read_bytes()


# ---------------------------------------------------------------------------------------
# Kernel BTF round trip

needs_vmlinux = pytest.mark.skipif(not VMLINUX.exists(), reason="no /sys/kernel/btf/vmlinux")


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    return Btf.parse(VMLINUX.read_bytes(), name="vmlinux", cache=False)


@needs_vmlinux
def test_vmlinux_lazy_copy_is_identical(vmlinux: Btf) -> None:
    t0 = time.perf_counter()
    raw = BtfBuilder.from_btf(vmlinux).encode()
    elapsed = time.perf_counter() - t0
    assert raw == vmlinux.raw
    assert elapsed < 5, f"lazy copy + encode took {elapsed:.2f}s"


@needs_vmlinux
def test_vmlinux_full_roundtrip(vmlinux: Btf) -> None:
    """Decode every type, encode every type from its decoded form, parse again: the same
    types for every id, and the same bytes (the string table is kept in its order)."""
    t0 = time.perf_counter()
    b = BtfBuilder.from_btf(vmlinux, lazy=False)
    t1 = time.perf_counter()
    raw = b.encode()
    t2 = time.perf_counter()
    assert raw == vmlinux.raw
    again = Btf.parse(raw, cache=False)
    mismatched = [tid for tid in vmlinux if again.type(tid) != vmlinux.type(tid)]
    t3 = time.perf_counter()
    assert not mismatched[:10]
    print(
        f"\nvmlinux {len(vmlinux)} types: decode+copy {t1 - t0:.2f}s, encode {t2 - t1:.2f}s, "
        f"parse+compare {t3 - t2:.2f}s"
    )
    assert t2 - t0 < 30


@needs_vmlinux
def test_vmlinux_fresh_strings_and_big_endian(vmlinux: Btf) -> None:
    """A fresh string table (names in type order) and the other byte order: the bytes
    differ, the types do not."""
    b = BtfBuilder.from_btf(vmlinux, keep_strings=False)
    other = "big" if vmlinux.byteorder == "little" else "little"
    raw = b.encode(byteorder=other)
    again = Btf.parse(raw, cache=False)
    assert again.byteorder == other
    assert len(again) == len(vmlinux)
    assert again.header.str_len <= vmlinux.header.str_len
    step = 1 if os.environ.get("BPFOBJ_SLOW") else 7
    for tid in range(1, len(vmlinux) + 1, step):
        assert again.type(tid) == vmlinux.type(tid), tid
    assert BtfBuilder.from_btf(again, byteorder=vmlinux.byteorder).encode() != vmlinux.raw


@needs_vmlinux
def test_module_split_roundtrip(vmlinux: Btf) -> None:
    mods = sorted(p for p in VMLINUX.parent.iterdir() if p.name != "vmlinux")
    if not mods:
        pytest.skip("no module BTF under /sys/kernel/btf")
    for path in mods[:5]:
        raw = path.read_bytes()
        split = Btf.parse(raw, base=vmlinux, name=path.name, cache=False)
        assert BtfBuilder.from_btf(split).encode() == raw
        assert BtfBuilder.from_btf(split, lazy=False).encode() == raw


# ---------------------------------------------------------------------------------------
# Property: whatever is built comes back, in both byte orders

NAMES = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=12
)


@st.composite
def builders(draw: st.DrawFn) -> tuple[BtfBuilder, list[T.BtfType]]:
    b = BtfBuilder(draw(st.sampled_from(["little", "big"])))
    b.add_int("int", 4, signed=True)
    for _ in range(draw(st.integers(0, 25))):
        n = len(b)
        ref = st.integers(0, n)
        op = draw(st.integers(0, 9))
        name = draw(NAMES)
        nonempty = name or "x"
        if op == 0:
            b.add_ptr(draw(ref))
        elif op == 1:
            b.add_array(draw(ref), 1, draw(st.integers(0, 2**32 - 1)))
        elif op in (2, 3):
            ms = draw(
                st.lists(
                    st.tuples(NAMES, ref, st.integers(0, 2**24 - 1), st.integers(0, 255)),
                    max_size=5,
                )
            )
            add = b.add_struct if op == 2 else b.add_union
            add(name, draw(st.integers(0, 2**32 - 1)), ms)
        elif op in (4, 5):
            bits = 32 if op == 4 else 64
            signed = draw(st.booleans())
            lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
            vals = draw(st.lists(st.tuples(NAMES, st.integers(lo, hi)), max_size=4))
            add_enum = b.add_enum if op == 4 else b.add_enum64
            add_enum(name, bits // 8, [(v or "v", x) for v, x in vals], signed=signed)
        elif op == 6:
            ps = draw(st.lists(st.tuples(NAMES, ref), max_size=4))
            proto = b.add_func_proto(draw(ref), ps)
            b.add_func(nonempty, proto, draw(st.sampled_from(list(BtfFuncLinkage))))
        elif op == 7:
            v = b.add_var(nonempty, draw(ref), draw(st.sampled_from(list(BtfVarLinkage))))
            b.add_datasec("." + nonempty, 64, [(v, draw(st.integers(0, 60)), 4)])
        elif op == 8:
            b.add_decl_tag(nonempty, draw(ref), draw(st.integers(-1, 3)))
        else:
            kind = draw(st.sampled_from(["typedef", "const", "volatile", "restrict", "tag"]))
            if kind == "typedef":
                b.add_typedef(nonempty, draw(ref))
            elif kind == "tag":
                b.add_type_tag(nonempty, draw(ref))
            else:
                getattr(b, f"add_{kind}")(draw(ref))
    return b, [b.type(t) for t in b]


@settings(max_examples=150, deadline=None)
@given(builders())
def test_property_roundtrip(built: tuple[BtfBuilder, list[T.BtfType]]) -> None:
    b, types = built
    for order in ("little", "big"):
        raw = b.encode(byteorder=order)
        btf = Btf.parse(raw, cache=False)
        assert btf.byteorder == order
        assert [btf.type(t) for t in btf] == types
        assert BtfBuilder.from_btf(btf).encode() == raw
        assert BtfBuilder.from_btf(btf, lazy=False).encode() == raw
