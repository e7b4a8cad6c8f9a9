"""CO-RE access specs: parsing (bpf_core_parse_spec) and libbpf's text (bpf_core_format_spec).

Expected texts are written the way libbpf prints them (relo_core.c), e.g.
``<byte_off> [3] struct s.a[3] (0:1:3 @ offset 20)``.
"""

from __future__ import annotations

import pytest
from core_btf.builder import std_ints

from bpfobj.btf.writer import BtfBuilder
from bpfobj.core import essential_name, essential_name_len, parse_access_string
from bpfobj.core.spec import SpecError, format_spec, parse_spec
from bpfobj.uapi import CoreReloKind as K


@pytest.mark.parametrize(
    ("name", "essential"),
    [
        ("task_struct", "task_struct"),
        ("task_struct___2", "task_struct"),
        ("task_struct___pre514", "task_struct"),
        ("a___b___c", "a___b"),
        ("a____b", "a____b"),  # four underscores: not a flavor separator
        ("a___", "a___"),  # nothing after ___
        ("___a", "___a"),  # nothing before ___
        ("_x___y", "_x"),
        ("x____", "x____"),
        ("", ""),
        ("ab", "ab"),
    ],
)
def test_essential_name(name: str, essential: str) -> None:
    assert essential_name(name) == essential
    assert essential_name_len(name) == len(essential)


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("0", [0]),
        ("0:1:2:3", [0, 1, 2, 3]),
        ("3", [3]),
        ("0: 7", [0, 7]),  # sscanf("%d") skips blanks
        ("0:+7", [0, 7]),
    ],
)
def test_parse_access_string(text: str, raw: list[int]) -> None:
    assert parse_access_string(text) == raw


@pytest.mark.parametrize("text", ["", ":0", "0:", "0::1", "a", "0:x", "0:-1", "0:1z"])
def test_parse_access_string_rejects(text: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_access_string(text)
    assert exc.value.errno == 22


def test_parse_access_string_too_long() -> None:
    with pytest.raises(SpecError) as exc:
        parse_access_string(":".join(["0"] * 65))
    assert exc.value.errno == 7  # E2BIG
    assert len(parse_access_string(":".join(["0"] * 64))) == 64


@pytest.fixture()
def sample() -> tuple[object, dict[str, int]]:
    """struct s { int a; int arr[4]; union { int u1; long u2; }; struct { short x, y; };
    struct inner in; int flex[]; }  and  struct bits { unsigned lo:3; int mid:7; }."""
    b = BtfBuilder()
    t = std_ints(b)
    arr4 = b.add_array(t["int"], t["int"], 4)
    anon_u = b.add_union("", 8, [("u1", t["int"], 0), ("u2", t["long"], 0)])
    anon_s = b.add_struct("", 4, [("x", t["short"], 0), ("y", t["short"], 16)])
    inner = b.add_struct("inner", 8, [("p", t["int"], 0), ("q", t["int"], 32)])
    flex = b.add_array(t["int"], t["int"], 0)
    s = b.add_struct(
        "s",
        48,
        [
            ("a", t["int"], 0),
            ("arr", arr4, 32),
            ("", anon_u, 192),
            ("", anon_s, 256),
            ("in", inner, 288),
            ("flex", flex, 352),
        ],
    )
    td = b.add_typedef("s_t", s)
    cs = b.add_const(td)
    bits = b.add_struct("bits", 4, [("lo", t["uint"], 0, 3), ("mid", t["int"], 3, 7)])
    color = b.add_enum("color", values=[("RED", 0), ("GREEN", 5), ("NEG", -3)], signed=True)
    ucolor = b.add_enum("ucolor", values=[("BIG", 0xFFFFFFF0)])
    e64 = b.add_enum64("e64", values=[("HUGE", 1 << 40), ("MINUS", -(1 << 40))], signed=True)
    u64 = b.add_enum64("u64e", values=[("TOP", 0xFFFF_FFFF_FFFF_FFFF)])
    fp = b.add_func_proto(t["int"], [("x", t["int"])])
    ids = dict(
        t,
        s=s,
        td=td,
        cs=cs,
        bits=bits,
        color=color,
        ucolor=ucolor,
        e64=e64,
        u64=u64,
        fp=fp,
        inner=inner,
    )
    return b.to_btf(), ids


def _fmt(btf: object, tid: int, access: str, kind: K) -> str:
    return format_spec(parse_spec(btf, tid, access, kind))


def test_field_specs(sample: tuple[object, dict[str, int]]) -> None:
    btf, i = sample
    s = i["s"]
    off = K.FIELD_BYTE_OFFSET
    assert _fmt(btf, s, "0:0", off) == f"<byte_off> [{s}] struct s.a (0:0 @ offset 0)"
    assert _fmt(btf, s, "0:1:3", off) == f"<byte_off> [{s}] struct s.arr[3] (0:1:3 @ offset 16)"
    # anonymous union / struct members are in the raw spec only
    assert _fmt(btf, s, "0:2:1", off) == f"<byte_off> [{s}] struct s.u2 (0:2:1 @ offset 24)"
    assert _fmt(btf, s, "0:3:1", off) == f"<byte_off> [{s}] struct s.y (0:3:1 @ offset 34)"
    assert _fmt(btf, s, "0:4:1", off) == f"<byte_off> [{s}] struct s.in.q (0:4:1 @ offset 40)"
    # the root index is pointer arithmetic: s[2].a
    assert _fmt(btf, s, "2:0", off) == f"<byte_off> [{s}] struct s[2].a (2:0 @ offset 96)"
    assert _fmt(btf, s, "0", off) == f"<byte_off> [{s}] struct s (0 @ offset 0)"
    # a flexible array member may be indexed past its (zero) length
    assert _fmt(btf, s, "0:5:9", off) == f"<byte_off> [{s}] struct s.flex[9] (0:5:9 @ offset 80)"
    # typedefs and modifiers are skipped; the root keeps its own name and kind
    td, cs = i["td"], i["cs"]
    assert _fmt(btf, td, "0:0", off) == f"<byte_off> [{td}] typedef s_t.a (0:0 @ offset 0)"
    assert _fmt(btf, cs, "0:0", off) == f"<byte_off> [{cs}] const <anon>.a (0:0 @ offset 0)"
    # bitfields print bit offsets as byte.bit
    bits = i["bits"]
    assert _fmt(btf, bits, "0:1", K.FIELD_LSHIFT_U64) == (
        f"<lshift_u64> [{bits}] struct bits.mid (0:1 @ offset 0.3)"
    )


def test_type_and_enum_specs(sample: tuple[object, dict[str, int]]) -> None:
    btf, i = sample
    s = i["s"]
    assert _fmt(btf, s, "0", K.TYPE_EXISTS) == f"<type_exists> [{s}] struct s"
    assert _fmt(btf, i["fp"], "0", K.TYPE_SIZE) == f"<type_size> [{i['fp']}] func_proto <anon>"
    c = i["color"]
    assert _fmt(btf, c, "1", K.ENUMVAL_VALUE) == f"<enumval_value> [{c}] enum color::GREEN = 5"
    assert _fmt(btf, c, "2", K.ENUMVAL_EXISTS) == f"<enumval_exists> [{c}] enum color::NEG = -3"
    u = i["ucolor"]  # unsigned ENUM prints %u
    assert (
        _fmt(btf, u, "0", K.ENUMVAL_VALUE) == f"<enumval_value> [{u}] enum ucolor::BIG = 4294967280"
    )
    e = i["e64"]
    assert (
        _fmt(btf, e, "0", K.ENUMVAL_VALUE) == f"<enumval_value> [{e}] enum64 e64::HUGE = {1 << 40}"
    )
    assert (
        _fmt(btf, e, "1", K.ENUMVAL_VALUE)
        == f"<enumval_value> [{e}] enum64 e64::MINUS = {-(1 << 40)}"
    )
    u64 = i["u64"]
    assert _fmt(btf, u64, "0", K.ENUMVAL_VALUE) == (
        f"<enumval_value> [{u64}] enum64 u64e::TOP = 18446744073709551615"
    )


@pytest.mark.parametrize(
    ("root", "access", "kind"),
    [
        ("s", "1", K.TYPE_EXISTS),  # type relocations need "0"
        ("s", "0:0", K.TYPE_SIZE),
        ("s", "0:6", K.FIELD_BYTE_OFFSET),  # no member 6
        ("s", "0:1:4", K.FIELD_BYTE_OFFSET),  # arr has 4 elements
        ("s", "0:0:0", K.FIELD_BYTE_OFFSET),  # int has no members
        ("s", "0", K.ENUMVAL_VALUE),  # not an enum
        ("color", "3", K.ENUMVAL_VALUE),  # no enumerator 3
        ("color", "0:0", K.ENUMVAL_EXISTS),  # one index only
        ("fp", "0", K.FIELD_BYTE_OFFSET),  # a func_proto has no size
        ("s", ":0", K.FIELD_BYTE_OFFSET),
        ("s", "", K.FIELD_BYTE_OFFSET),
    ],
)
def test_parse_spec_rejects(
    sample: tuple[object, dict[str, int]], root: str, access: str, kind: K
) -> None:
    btf, i = sample
    with pytest.raises(SpecError) as exc:
        parse_spec(btf, i[root], access, kind)
    assert exc.value.errno == 22


def test_parse_spec_accessors(sample: tuple[object, dict[str, int]]) -> None:
    btf, i = sample
    spec = parse_spec(btf, i["cs"], "0:4:1", K.FIELD_BYTE_OFFSET)
    assert spec.raw_spec == [0, 4, 1]
    assert [(a.type_id, a.idx, a.name) for a in spec.spec] == [
        (i["s"], 0, None),
        (i["s"], 4, "in"),
        (i["inner"], 1, "q"),
    ]
    assert spec.bit_offset == 320
