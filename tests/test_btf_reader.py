"""`bpfobj.btf.Btf` on hand-built blobs: every kind, both byte orders, header variants,
split BTF, lookups, resolution, the on-disk cache, and each validation error."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from test_btf_builder import KIND, RawBtf, info

from bpfobj.btf import Btf
from bpfobj.btf import index as btf_index
from bpfobj.btf import types as T
from bpfobj.btf.writer import BtfBuilder
from bpfobj.errors import BtfError
from bpfobj.uapi import BtfFuncLinkage, BtfKind, BtfVarLinkage


def all_kinds() -> tuple[BtfBuilder, dict[str, int]]:
    b = BtfBuilder()
    ids: dict[str, int] = {}
    ids["int"] = b.add_int("int", 4, signed=True)
    ids["char"] = b.add_int("char", 1, char=True, signed=True)
    ids["bool"] = b.add_int("_Bool", 1, bool_=True)
    ids["bits"] = b.add_int("u3", 1, nr_bits=3, bit_offset=2)
    ids["long"] = b.add_int("long int", 8, signed=True)
    ids["ptr"] = b.add_ptr(ids["int"])
    ids["array"] = b.add_array(ids["int"], ids["int"], 10)
    ids["struct"] = b.add_struct("s", 16, [("a", ids["int"], 0), ("p", ids["ptr"], 64)])
    ids["bitstruct"] = b.add_struct("bf", 4, [("x", ids["int"], 0, 3), ("y", ids["int"], 3, 5)])
    ids["union"] = b.add_union("u", 8, [("i", ids["int"], 0), ("l", ids["long"], 0)])
    ids["enum"] = b.add_enum("e", 4, [("A", 0), ("B", 0xFFFFFFFF)])
    ids["senum"] = b.add_enum("se", 4, [("NEG", -1), ("POS", 7)], signed=True)
    ids["fwd"] = b.add_fwd("fs")
    ids["fwdu"] = b.add_fwd("fu", union=True)
    ids["typedef"] = b.add_typedef("myint", ids["int"])
    ids["volatile"] = b.add_volatile(ids["int"])
    ids["const"] = b.add_const(ids["volatile"])
    ids["restrict"] = b.add_restrict(ids["ptr"])
    ids["proto"] = b.add_func_proto(ids["int"], [("x", ids["int"]), ("", 0)])
    ids["func"] = b.add_func("f", ids["proto"], 1)
    ids["var"] = b.add_var("v", ids["int"], 1)
    ids["datasec"] = b.add_datasec(".data", 4, [(ids["var"], 0, 4)])
    ids["float"] = b.add_float("double", 8)
    ids["decl_tag"] = b.add_decl_tag("tag", ids["struct"], 1)
    ids["type_tag"] = b.add_type_tag("user", ids["int"])
    ids["enum64"] = b.add_enum64("e64", 8, [("BIG", 1 << 40), ("MAX", (1 << 64) - 1)])
    ids["senum64"] = b.add_enum64("se64", 8, [("NEG", -(1 << 40))], signed=True)
    return b, ids


@pytest.fixture(params=["little", "big"])
def kinds_btf(request: pytest.FixtureRequest) -> tuple[Btf, dict[str, int]]:
    b, ids = all_kinds()
    return Btf.parse(b.encode(byteorder=request.param), cache=False), ids


def test_every_kind_decodes(kinds_btf: tuple[Btf, dict[str, int]]) -> None:
    btf, ids = kinds_btf
    assert len(btf) == btf.type_count == len(ids)
    assert list(btf) == list(range(1, len(ids) + 1))
    assert btf.type(0) == T.Void() and btf.kind(0) is BtfKind.UNKN and btf.name(0) == ""

    t = btf.type(ids["int"])
    assert t == T.Int(ids["int"], "int", 4, T.INT_SIGNED, 0, 32)
    assert t.is_signed and not t.is_char and not t.is_bool
    assert btf.type(ids["char"]).is_char  # type: ignore[attr-defined]
    assert btf.type(ids["bool"]).is_bool  # type: ignore[attr-defined]
    bits = btf.type(ids["bits"])
    assert isinstance(bits, T.Int) and (bits.bit_offset, bits.nr_bits) == (2, 3)
    assert btf.type(ids["ptr"]) == T.Ptr(ids["ptr"], "", ids["int"])
    assert btf.type(ids["array"]) == T.Array(ids["array"], "", ids["int"], ids["int"], 10)

    s = btf.type(ids["struct"])
    assert isinstance(s, T.Struct) and s.kind is BtfKind.STRUCT and not s.kind_flag
    assert s.members == (T.Member("a", ids["int"], 0, 0), T.Member("p", ids["ptr"], 64, 0))
    assert s.member("p") is s.members[1] and s.member("zz") is None
    bf = btf.type(ids["bitstruct"])
    assert isinstance(bf, T.Struct) and bf.kind_flag
    assert bf.members == (T.Member("x", ids["int"], 0, 3), T.Member("y", ids["int"], 3, 5))
    u = btf.type(ids["union"])
    assert isinstance(u, T.Union) and [m.name for m in u.members] == ["i", "l"]

    e = btf.type(ids["enum"])
    assert isinstance(e, T.Enum) and not e.signed
    assert e.values == (("A", 0), ("B", 0xFFFFFFFF))
    se = btf.type(ids["senum"])
    assert isinstance(se, T.Enum) and se.signed and se.values == (("NEG", -1), ("POS", 7))
    e64 = btf.type(ids["enum64"])
    assert isinstance(e64, T.Enum64) and e64.values == (("BIG", 1 << 40), ("MAX", (1 << 64) - 1))
    se64 = btf.type(ids["senum64"])
    assert isinstance(se64, T.Enum64) and se64.values == (("NEG", -(1 << 40)),)

    assert btf.type(ids["fwd"]) == T.Fwd(ids["fwd"], "fs", False)
    assert btf.type(ids["fwdu"]) == T.Fwd(ids["fwdu"], "fu", True)
    assert btf.type(ids["typedef"]) == T.Typedef(ids["typedef"], "myint", ids["int"])
    assert btf.type(ids["volatile"]) == T.Volatile(ids["volatile"], "", ids["int"])
    assert btf.type(ids["const"]) == T.Const(ids["const"], "", ids["volatile"])
    assert btf.type(ids["restrict"]) == T.Restrict(ids["restrict"], "", ids["ptr"])
    proto = btf.type(ids["proto"])
    assert isinstance(proto, T.FuncProto)
    assert proto.return_type == proto.type == ids["int"]
    assert proto.params == (("x", ids["int"]), ("", 0)) and proto.is_variadic
    assert btf.type(ids["func"]) == T.Func(ids["func"], "f", ids["proto"], BtfFuncLinkage.GLOBAL)
    assert btf.type(ids["var"]) == T.Var(
        ids["var"], "v", ids["int"], BtfVarLinkage.GLOBAL_ALLOCATED
    )
    ds = btf.type(ids["datasec"])
    assert ds == T.Datasec(ids["datasec"], ".data", 4, (T.VarSecinfo(ids["var"], 0, 4),))
    assert btf.type(ids["float"]) == T.Float(ids["float"], "double", 8)
    assert btf.type(ids["decl_tag"]) == T.DeclTag(ids["decl_tag"], "tag", ids["struct"], 1)
    assert btf.type(ids["type_tag"]) == T.TypeTag(ids["type_tag"], "user", ids["int"])

    for key, tid in ids.items():
        t = btf.type(tid)
        assert t.id == tid and btf.kind(tid) is t.kind and btf.name(tid) == t.name, key
        assert btf[tid] is t  # cached
        assert t.describe().startswith(f"[{tid}] {t.kind.name}")


def test_byte_orders_agree() -> None:
    b, ids = all_kinds()
    le = Btf.parse(b.encode(byteorder="little"), cache=False)
    be = Btf.parse(b.encode(byteorder="big"), cache=False)
    assert (le.byteorder, be.byteorder) == ("little", "big")
    assert [le.type(i) for i in le] == [be.type(i) for i in be]
    assert le.find("s") == be.find("s") == [ids["struct"]]


def test_accepts_bytearray_and_memoryview() -> None:
    b, _ = all_kinds()
    raw = b.encode()
    assert len(Btf.parse(bytearray(raw), cache=False)) == len(Btf.parse(memoryview(raw)))


def test_resolve_and_size_of(kinds_btf: tuple[Btf, dict[str, int]]) -> None:
    btf, ids = kinds_btf
    assert btf.resolve(ids["const"]) == ids["int"]
    assert btf.resolve(ids["typedef"]) == ids["int"]
    assert btf.resolve(ids["type_tag"]) == ids["int"]
    assert btf.resolve(ids["ptr"]) == ids["ptr"]
    assert btf.resolve(0) == 0
    assert btf.resolve_type(ids["restrict"]).kind is BtfKind.PTR
    assert btf.pointer_size == 8  # "long int" of size 8
    expect = {
        "int": 4,
        "ptr": 8,
        "array": 40,
        "struct": 16,
        "union": 8,
        "enum": 4,
        "typedef": 4,
        "const": 4,
        "restrict": 8,
        "var": 4,
        "datasec": 4,
        "float": 8,
        "decl_tag": 16,
        "type_tag": 4,
        "enum64": 8,
    }
    for key, size in expect.items():
        assert btf.size_of(ids[key]) == size, key
    for key in ("fwd", "proto", "func"):
        with pytest.raises(BtfError, match="has no size"):
            btf.size_of(ids[key])
    with pytest.raises(BtfError, match="void has no size"):
        btf.size_of(0)


def test_pointer_size_from_long() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4)
    b.add_int("long int", 4, signed=True)  # a 32-bit target
    p = b.add_ptr(i)
    btf = Btf.parse(b.encode())
    assert btf.pointer_size == 4 and btf.size_of(p) == 4
    b2 = BtfBuilder()
    p2 = b2.add_ptr(0)
    assert Btf.parse(b2.encode()).size_of(p2) == 8  # no long: BPF's 8


def test_multi_dimensional_array_size() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4)
    inner = b.add_array(i, i, 3)
    outer = b.add_array(inner, i, 2)
    td = b.add_typedef("m", outer)
    huge = b.add_array(outer, i, 0xFFFFFFFF)
    btf = Btf.parse(b.encode())
    assert btf.size_of(outer) == btf.size_of(td) == 24
    with pytest.raises(BtfError, match="32 bits"):
        btf.size_of(huge)


@pytest.mark.parametrize(
    "make",
    [
        lambda b: b.add_typedef("self", 1),  # [1] typedef -> [1]
        lambda b: (b.add_const(2), b.add_volatile(1))[0],  # [1] -> [2] -> [1]
        lambda b: b.add_array(1, 0, 2),  # array of itself
    ],
)
def test_cycles_are_errors(make: object) -> None:
    b = BtfBuilder()
    make(b)  # type: ignore[operator]
    btf = Btf.parse(b.encode())
    with pytest.raises(BtfError, match="cycle") as exc:
        btf.size_of(1)
    assert exc.value.type is not None and exc.value.type.startswith("[1]")
    if btf.kind(1) is not BtfKind.ARRAY:
        with pytest.raises(BtfError, match="cycle"):
            btf.resolve(1)


def test_find() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4)
    s = b.add_struct("task", 4, [("x", i, 0)])
    td = b.add_typedef("task", s)
    long_a = "a_very_long_name_that_shares_a_32_byte_prefix_one"
    long_b = "a_very_long_name_that_shares_a_32_byte_prefix_two"
    la = b.add_struct(long_a, 0)
    lb = b.add_struct(long_b, 0)
    uni = b.add_struct("ünïcode", 0)
    anon = b.add_struct("", 0)
    btf = Btf.parse(b.encode())
    assert btf.find("task") == [s, td]
    assert btf.find("task", BtfKind.STRUCT) == [s]
    assert btf.find("task", BtfKind.TYPEDEF) == [td]
    assert btf.find("task", int(BtfKind.TYPEDEF)) == [td]
    assert btf.find("tas") == [] and btf.find("taskk") == [] and btf.find("nope") == []
    assert btf.find(long_a) == [la] and btf.find(long_b) == [lb]
    assert btf.find(long_a[:40]) == []
    assert btf.find("ünïcode") == [uni]
    assert btf.find("int") == [i]
    assert btf.find("", BtfKind.STRUCT) == [anon]


def test_find_on_many_types() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4)
    ids = {f"t{n:05d}": b.add_typedef(f"t{n:05d}", i) for n in range(3000)}
    dup = b.add_typedef("t00042", i)
    btf = Btf.parse(b.encode())
    for name in ("t00000", "t01234", "t02999"):
        assert btf.find(name) == [ids[name]]
    assert btf.find("t00042") == [ids["t00042"], dup]


# ----------------------------------------------------------------------------------------
# Header variants and the layout section
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize(
    ("hdr_len", "tail"),
    [(24, b""), (32, b""), (40, b""), (40, b"\x01\x02\x03\x04\x05\x06\x07\x08"), (28, b"")],
)
def test_header_lengths(byteorder: str, hdr_len: int, tail: bytes) -> None:
    b, ids = all_kinds()
    raw = bytearray(b.encode(byteorder=byteorder, hdr_len=hdr_len))
    raw[32 : 32 + len(tail)] = tail  # bytes past the known fields
    btf = Btf.parse(bytes(raw))
    assert btf.header.hdr_len == hdr_len
    assert btf.header.layout_len == 0
    assert len(btf) == len(ids) and btf.find("s") == [ids["struct"]]


def test_layout_section_skips_unknown_kinds() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4)
    # kind 20 (unknown here): 4 bytes of info + 8 bytes per vlen element, vlen 2
    data = struct.pack("<5I", 0xAAAA, 1, 2, 3, 4)
    unk = b.add_type(T.Unknown(0, "mystery", 20, False, 2, 7, data))
    after = b.add_ptr(i)
    b.layout = ((0, 0, 0),) * 20 + ((4, 8, 0),)
    for order in ("little", "big"):
        btf = Btf.parse(b.encode(byteorder=order, hdr_len=32))
        assert btf.header.layout_len == 4 * len(b.layout)
        assert btf.kind(unk) is BtfKind.UNKN and btf.raw_kind(unk) == 20
        t = btf.type(unk)
        assert isinstance(t, T.Unknown)
        assert (t.name, t.raw_kind, t.vlen, t.size_or_type, len(t.data)) == (
            "mystery",
            20,
            2,
            7,
            20,
        )
        assert btf.type(after) == T.Ptr(after, "", i)
        with pytest.raises(BtfError, match="no size"):
            btf.size_of(unk)
    # Without the layout, the same blob is rejected at the unknown record.
    b.layout = None
    with pytest.raises(BtfError, match="unknown kind 20") as exc:
        Btf.parse(b.encode())
    assert exc.value.type == f"[{unk}]"


def test_layout_section_bad() -> None:
    b = BtfBuilder()
    b.add_type(T.Unknown(0, "", 21, False, 0, 0))
    b.layout = ((0, 0, 0),) * 21 + ((3, 0, 0),)
    with pytest.raises(BtfError, match="not a multiple of 4"):
        Btf.parse(b.encode(hdr_len=32))
    b.layout = ((0, 0, 0),) * 21  # too short to describe 21
    with pytest.raises(BtfError, match="unknown kind 21"):
        Btf.parse(b.encode(hdr_len=32))


# ----------------------------------------------------------------------------------------
# Validation errors
# ----------------------------------------------------------------------------------------


def good() -> bytes:
    b, _ = all_kinds()
    return b.encode()


def patch(raw: bytes, off: int, fmt: str, *values: int) -> bytes:
    out = bytearray(raw)
    struct.pack_into(fmt, out, off, *values)
    return bytes(out)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "truncated header"),
        (b"\x9f\xeb\x01\x00", "truncated header"),
        (good()[:20], "truncated header"),
        (b"\x00\x00" + good()[2:], "bad magic"),
        (patch(good(), 2, "<B", 2), "version 2"),
        (patch(good(), 4, "<I", 16), "shorter than 24"),
        (patch(good(), 4, "<I", 1 << 20), "truncated header"),
        (good()[:-1], "runs past the end"),
        (patch(good(), 12, "<I", 1 << 30), "runs past the end"),
        (patch(good(), 8, "<I", 2), "overlap|not 4-byte aligned"),
        (patch(good(), 12, "<I", struct.unpack_from("<I", good(), 12)[0] + 2), "overlap|aligned"),
        (patch(good(), 20, "<I", 0), "empty string section"),
        (good()[:-1] + b"x", "does not end with a NUL"),
    ],
    ids=[
        "empty",
        "4-bytes",
        "20-bytes",
        "magic",
        "version",
        "hdr-short",
        "hdr-long",
        "cut-last-byte",
        "type-len-huge",
        "type-off-odd",
        "type-len-odd",
        "no-strings",
        "no-final-nul",
    ],
)
def test_header_errors(data: bytes, match: str) -> None:
    with pytest.raises(BtfError, match=match) as exc:
        Btf.parse(data)
    assert exc.value.section == ".BTF" and exc.value.hint


def test_string_section_must_start_empty() -> None:
    raw = bytearray(good())
    soff = 24 + struct.unpack_from("<I", raw, 16)[0]
    raw[soff] = ord("x")
    with pytest.raises(BtfError, match="split BTF") as exc:
        Btf.parse(bytes(raw))
    assert "base=" in str(exc.value)


@pytest.mark.parametrize(
    ("words", "match", "bad_id"),
    [
        ([0, info(0), 0], "unknown kind 0", 2),
        ([0, info(25), 0], "unknown kind 25", 2),
        ([0, 0x20000000 | info(KIND["INT"]), 4, 32], "reserved bits", 2),
        ([0, 0x00010000 | info(KIND["PTR"]), 1], "reserved bits", 2),
        ([0, info(KIND["STRUCT"], 0xFFFF), 4, 0, 1, 0], "runs .* past the end", 2),
        ([0, info(KIND["INT"]), 4], "runs .* past the end", 2),
        ([0, info(KIND["PTR"]), 0, 7], "ends inside a type record", 3),
        ([0, info(KIND["PTR"]), 0, 7, 7], "unknown kind 0", 3),  # 2 words: info 7
    ],
)
@pytest.mark.parametrize("deferred", [False, True], ids=["parse", "running-kernel-walk"])
def test_record_errors_name_the_type(
    words: list[int], match: str, bad_id: int, deferred: bool, tmp_path: Path
) -> None:
    """The same errors from the walk that also collects name offsets (the running kernel's
    BTF on its first load)."""
    b = RawBtf()
    b.add("INT", "int", 4, [32])
    b.words.extend(words)
    with pytest.raises(BtfError, match=match) as exc:
        if deferred:
            Btf._from_buffer(b.build(), None, "vmlinux", True, tmp_path, defer_index=True)
        else:
            Btf.parse(b.build())
    assert exc.value.type == f"[{bad_id}]"
    assert f"[{bad_id}]" in str(exc.value)


def test_walk_collects_name_offsets() -> None:
    """The walk's name offsets equal a gather over its offsets, and NameOffsets finds every
    type of a name by its low 16 bits without false hits (name offsets that share them)."""
    b = BtfBuilder()
    i = b.add_int("int", 4)

    def name(n: int) -> str:
        return f"struct_number_{n:05d}_named_{'x' * (n * 7919 % 29)}"

    for n in range(3000):  # > 64 KiB of strings of several lengths: low halves repeat
        b.add_struct(name(n), 4, [("v", i, 0)])
    b.add_struct(name(7), 8, [("w", i, 0)])  # a second one
    btf = Btf.parse(b.encode())
    words = btf._w
    names = btf_index.array("I")
    offs = btf_index.walk(words, len(words), None, names)
    assert list(offs) == list(btf._offs)
    assert list(names) == list(btf_index.gather_name_offsets(offs, words))
    found = btf_index.NameOffsets(names)
    by_low: dict[int, set[int]] = {}
    for v in names:
        by_low.setdefault(v & 0xFFFF, set()).add(v)
    clash = next(vs for vs in by_low.values() if len(vs) > 1)  # same low half, two names
    for noff in [*clash, names[1], names[8], names[-1]]:
        tid = names.index(noff) + 1
        assert [k + 1 for k in found.indexes(noff)] == btf.find(btf.name(tid))
    assert len(found.indexes(names[8])) == 2  # both name(7)
    assert found.indexes(0xFFFFFF) == []


def test_lazy_errors_name_the_type() -> None:
    b = RawBtf()
    i = b.add("INT", "int", 4, [32])
    bad_name = b.raw([0x7777, info(KIND["PTR"]), i])
    bad_ref = b.add("PTR", "", 999)
    bad_member = b.raw([0, info(KIND["STRUCT"], 1), 4, 0, 555, 0])
    bad_member_name = b.raw([0, info(KIND["STRUCT"], 1), 4, 0x9999, i, 0])
    bad_func = b.add("FUNC", "f", i)  # FUNC must point at a FUNC_PROTO
    bad_linkage = b.raw([b.add_string("g"), info(KIND["FUNC"], 7), 0])
    bad_var = b.add("VAR", "v", i, [9])
    btf = Btf.parse(b.build())  # parsing does not decode
    assert len(btf) == bad_var
    cases = {
        bad_name: "name offset 0x7777",
        bad_ref: "type id 999 is past the last type",
        bad_member: "member type id 555",
        bad_member_name: "member name offset 0x9999",
        bad_func: "not a FUNC_PROTO",
        bad_linkage: "unknown function linkage 7",
        bad_var: "unknown variable linkage 9",
    }
    for tid, match in cases.items():
        with pytest.raises(BtfError, match=match) as exc:
            btf.type(tid)
        assert exc.value.type is not None and exc.value.type.startswith(f"[{tid}]")
    with pytest.raises(BtfError, match="name offset"):
        btf.name(bad_name)
    with pytest.raises(BtfError, match="name offset"):
        btf.find("int")  # the name index checks every name offset
    with pytest.raises(BtfError):
        btf.validate()
    assert btf.type(i).name == "int"  # the good ones still decode


def test_ids_out_of_range() -> None:
    btf = Btf.parse(good())
    for bad in (-1, len(btf) + 1, 1 << 40):
        for fn in (btf.type, btf.kind, btf.name, btf.size_of, btf.resolve):
            with pytest.raises(BtfError, match="out of range"):
                fn(bad)
    with pytest.raises(BtfError, match="string offset"):
        btf.string(1 << 20)
    with pytest.raises(BtfError, match="string offset"):
        btf.string(-1)
    assert btf.string(0) == ""
    assert len(btf) in btf and 0 in btf and len(btf) + 1 not in btf


def test_empty_type_section() -> None:
    btf = Btf.parse(BtfBuilder().encode())
    assert len(btf) == 0 and list(btf) == [] and btf.find("x") == []
    btf.validate()


# ----------------------------------------------------------------------------------------
# Split BTF
# ----------------------------------------------------------------------------------------


def split_pair() -> tuple[Btf, Btf, dict[str, int]]:
    base_b = BtfBuilder()
    i = base_b.add_int("int", 4, signed=True)
    base_s = base_b.add_struct("shared", 4, [("x", i, 0)])
    base_raw = base_b.encode()
    base = Btf.parse(base_raw)
    # The split part has its own copy of the base's strings it uses ("shared", "x"): the
    # writer would reuse the base's (test_split_strings_from_base reads those).
    sb = RawBtf(start_id=len(base) + 1, str_start=base_b.strings_size, split=True)
    p = sb.add("PTR", "", base_s)
    members = [sb.add_string("x"), i, 0, sb.add_string("ptr"), p, 32]
    own = sb.add("STRUCT", "mod_only", 8, members, vlen=2)
    dup = sb.add("TYPEDEF", "shared", base_s)  # same name as a base type
    split = Btf.parse(sb.build(), base=base, name="mod")
    assert sb._strs["shared"] >= base_b.strings_size  # split strings got their own copy
    return base, split, {"int": i, "base_s": base_s, "p": p, "own": own, "dup": dup}


def test_split_btf() -> None:
    base, split, ids = split_pair()
    assert split.base is base and split.start_id == len(base) + 1 == 3
    assert len(split) == 5 and split.own_count == 3
    assert list(split) == [1, 2, 3, 4, 5] and list(split.own_ids()) == [3, 4, 5]
    assert split.type(ids["int"]) is base.type(ids["int"])
    assert split.kind(ids["base_s"]) is BtfKind.STRUCT and split.name(ids["base_s"]) == "shared"
    own = split.type(ids["own"])
    assert isinstance(own, T.Struct) and own.members[0] == T.Member("x", ids["int"], 0, 0)
    assert split.size_of(ids["own"]) == 8 and split.size_of(ids["p"]) == 8
    assert split.find("shared") == [ids["base_s"], ids["dup"]]
    assert split.find("shared", BtfKind.TYPEDEF) == [ids["dup"]]
    assert split.find("mod_only") == [ids["own"]] and base.find("mod_only") == []
    assert split.find("int") == [ids["int"]]
    assert split.string(0) == ""
    split.validate()
    with pytest.raises(BtfError, match="out of range"):
        split.type(6)


def test_split_strings_from_base() -> None:
    base_b = BtfBuilder()
    i = base_b.add_int("int", 4)
    base = Btf.parse(base_b.encode())
    sb = RawBtf(start_id=2, str_start=base_b.strings_size, split=True)
    td = sb.raw([base_b.add_string("int"), info(KIND["TYPEDEF"]), i])  # a base string
    split = Btf.parse(sb.build(), base=base)
    assert split.name(td) == "int"
    assert split.find("int") == [i, td]


def test_split_without_base_is_reported() -> None:
    _, split, _ = split_pair()
    with pytest.raises(BtfError, match="split BTF"):
        Btf.parse(split.raw)


# ----------------------------------------------------------------------------------------
# The on-disk cache
# ----------------------------------------------------------------------------------------


def big_blob(n: int = 2000) -> bytes:
    b = BtfBuilder()
    i = b.add_int("int", 4)
    for k in range(n):
        b.add_struct(f"s{k}", 4, [("m", i, 0)])
    return b.encode()


def snapshot(btf: Btf) -> tuple[object, ...]:
    return (len(btf), [btf.type(i) for i in btf], btf.find("s1999"), btf.find("int"))


def test_cache_cold_and_warm_agree(tmp_path: Path) -> None:
    raw = big_blob()
    cold = Btf.parse(raw, cache=True, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".idx"
    first = snapshot(cold)  # builds the name index: stored too
    size_with_names = files[0].stat().st_size
    warm = Btf.parse(raw, cache=True, cache_dir=tmp_path)
    assert warm._name_ids is not None  # came from the cache
    assert snapshot(warm) == first
    assert list(warm._offs) == list(cold._offs)
    assert files[0].stat().st_size == size_with_names


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"",
        lambda b: b[:10],
        lambda b: b[:-3],
        lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:],
        lambda b: b[:-4] + bytes([b[-4] ^ 1]) + b[-3:],
        lambda b: b"garbage" * 100,
        lambda b: b + b"trailing",
    ],
)
def test_corrupt_cache_recovers(tmp_path: Path, damage: object) -> None:
    raw = big_blob(300)
    ref = snapshot(Btf.parse(raw, cache=False))
    Btf.parse(raw, cache=True, cache_dir=tmp_path).find("int")
    (path,) = tmp_path.iterdir()
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    again = Btf.parse(raw, cache=True, cache_dir=tmp_path)
    assert snapshot(again) == ref
    assert Btf.parse(raw, cache=True, cache_dir=tmp_path)._name_ids is not None  # rewritten


def test_cache_plausibility_check(tmp_path: Path) -> None:
    # A well-formed entry whose offsets do not fit this blob (same key forged) is ignored.
    raw = big_blob(50)
    btf = Btf.parse(raw, cache=True, cache_dir=tmp_path)
    assert btf._cache_key is not None and btf._cache_path is not None
    from array import array

    bogus = array("I", [0, 1, 2])
    btf_index.cache_store(btf._cache_path, btf._cache_key, len(btf._w), bogus, None, None)
    again = Btf.parse(raw, cache=True, cache_dir=tmp_path)
    assert snapshot(again) == snapshot(Btf.parse(raw, cache=False))


def test_cache_read_only_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        raw = big_blob(100)
        btf = Btf.parse(raw, cache=True, cache_dir=ro / "sub")
        assert btf.find("s5") == [7]
        btf2 = Btf.parse(raw, cache=True, cache_dir=ro)
        assert btf2.find("s5") == [7]
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("fail", ["open", "write", "replace", "read"])
def test_cache_io_errors_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    """Root ignores file modes, so fail the calls themselves (ENOSPC, EACCES...)."""
    import builtins
    import errno

    raw = big_blob(100)
    ref = snapshot(Btf.parse(raw, cache=False))

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if fail == "open":
        monkeypatch.setattr(btf_index.os, "open", boom)
    elif fail == "replace":
        monkeypatch.setattr(btf_index.os, "replace", boom)
    elif fail == "write":
        monkeypatch.setattr(btf_index.os, "write", boom)
    else:
        Btf.parse(raw, cache=True, cache_dir=tmp_path).find("int")  # a good entry exists
        real_open = builtins.open

        def open_fails_for_idx(file: object, *a: object, **k: object) -> object:
            if str(file).endswith(".idx"):
                raise PermissionError(errno.EACCES, "Permission denied")
            return real_open(file, *a, **k)  # type: ignore[call-overload]

        monkeypatch.setattr(builtins, "open", open_fails_for_idx)
    assert snapshot(Btf.parse(raw, cache=True, cache_dir=tmp_path)) == ref
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no litter


def test_cache_dir_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert Btf.parse(big_blob(10), cache=True, cache_dir=f).find("s1") == [3]


def test_cache_dir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BPFOBJ_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert btf_index.cache_dir() == str(tmp_path / "xdg" / "bpfobj" / "btf")
    monkeypatch.setenv("BPFOBJ_CACHE_DIR", str(tmp_path / "mine"))
    assert btf_index.cache_dir() == str(tmp_path / "mine" / "btf")
    Btf.parse(big_blob(10), cache=True)
    assert len(os.listdir(tmp_path / "mine" / "btf")) == 1
    monkeypatch.setenv("BPFOBJ_CACHE_DIR", "off")
    assert btf_index.cache_dir() is None
    btf = Btf.parse(big_blob(11), cache=True)
    assert btf._cache_path is None
    monkeypatch.delenv("BPFOBJ_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert btf_index.cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "bpfobj", "btf")


def test_cache_auto_threshold(tmp_path: Path) -> None:
    small = Btf.parse(big_blob(10), cache_dir=tmp_path)
    assert small._cache_path is None and not list(tmp_path.iterdir())


def test_split_cache_key_includes_base(tmp_path: Path) -> None:
    base_a = Btf.parse(big_blob(20), cache=True, cache_dir=tmp_path)
    base_b = Btf.parse(big_blob(21), cache=True, cache_dir=tmp_path)
    sb = RawBtf(start_id=len(base_a) + 1, str_start=10**6, split=True)
    sb.add("TYPEDEF", "t", 1)
    raw = sb.build()
    sa = Btf.parse(raw, base=base_a, cache=True, cache_dir=tmp_path)
    sbb = Btf.parse(raw, base=base_b, cache=True, cache_dir=tmp_path)
    assert sa._cache_key != sbb._cache_key
    # A base parsed without the cache still yields a key (hashed on demand).
    base_nc = Btf.parse(big_blob(20), cache=False)
    assert Btf.parse(raw, base=base_nc, cache=True, cache_dir=tmp_path)._cache_key == sa._cache_key


def test_parse_rejects_direct_construction() -> None:
    with pytest.raises(TypeError):
        Btf()
