"""Compatibility rules of CO-RE (relo_core.c): types_are_compat, fields_are_compat and the
TYPE_MATCHES relation (__bpf_core_types_match), on hand-built local and target BTF."""

from __future__ import annotations

from typing import Any

import pytest
from core_btf.builder import std_ints

from bpfobj.btf.writer import BtfBuilder
from bpfobj.core import fields_are_compat, names_match, types_are_compat, types_match


def _side(variant: str) -> tuple[Any, dict[str, int]]:
    """The same names on both sides, with `variant` ("local"/"target") differences."""
    b = BtfBuilder()
    t = std_ints(b)
    loc = variant == "local"
    i: dict[str, int] = dict(t)
    i["bitint"] = b.add_int("bitint", 4, nr_bits=3, bit_offset=0 if loc else 2)  # deprecated int bitfield
    i["ptr_int"] = b.add_ptr(t["int"])
    i["ptr_long"] = b.add_ptr(t["long"])
    fwd_s = b.add_fwd("thing")
    fwd_u = b.add_fwd("uthing", union=True)
    i["thing"] = b.add_struct("thing", 8, [("a", t["int"], 0), ("b", t["uint"], 32)])
    i["uthing"] = b.add_union("uthing", 4, [("a", t["int"], 0)])
    i["fwd_thing"] = fwd_s
    i["fwd_uthing"] = fwd_u
    # pointer to struct on the local side, to a forward declaration on the target side
    i["ptr_thing"] = b.add_ptr(i["thing"] if loc else fwd_s)
    i["ptr_uthing"] = b.add_ptr(i["uthing"] if loc else fwd_u)
    i["arr4"] = b.add_array(t["int"], t["int"], 4)
    i["arr8"] = b.add_array(t["int"], t["int"], 8 if loc else 4)
    i["color"] = b.add_enum("color", values=[("RED", 0), ("GREEN", 1)] if loc else [("GREEN", 7), ("RED", 1), ("BLUE", 2)])
    i["color64"] = (
        b.add_enum64("color64", values=[("RED", 0)]) if not loc else b.add_enum("color64", values=[("RED", 0)], size=8)
    )
    i["small_enum"] = b.add_enum("small_enum", values=[("X", 1)], size=4 if loc else 2)
    i["fp"] = b.add_func_proto(t["int"], [("a", t["int"]), ("b", t["long"] if loc else t["ulong"])])
    i["fp3"] = b.add_func_proto(t["int"], [("a", t["int"])] * (2 if loc else 3))
    i["ptr_fp"] = b.add_ptr(i["fp"])
    i["td_thing"] = b.add_typedef("td_thing", i["thing"])
    i["c_td_thing"] = b.add_const(i["td_thing"])
    i["flt"] = b.add_float("float", 4)
    i["outer"] = b.add_struct(
        "outer",
        24,
        [
            ("x", t["int"], 0),
            ("p", i["ptr_thing"], 64),
            ("s", i["thing"], 128),
        ]
        if loc
        else [
            ("s", i["thing"], 0),
            ("extra", t["long"], 64),
            ("p", i["ptr_thing"], 128),
            ("x", t["int"], 192),
        ],
    )
    i["signs"] = b.add_struct("signs", 4, [("v", t["int"] if loc else t["uint"], 0)])
    return b.to_btf(), i


LOCAL, L = _side("local")
TARGET, T = _side("target")


def compat(name: str, tname: str | None = None) -> int:
    return types_are_compat(LOCAL, L[name], TARGET, T[tname or name])


def fields(name: str, tname: str | None = None) -> int:
    return fields_are_compat(LOCAL, L[name], TARGET, T[tname or name])


def match(name: str, tname: str | None = None) -> int:
    return types_match(LOCAL, L[name], TARGET, T[tname or name])


@pytest.mark.parametrize(
    ("local", "target", "expected"),
    [
        ("thing", None, 1),
        ("thing", "uthing", 0),  # struct vs union
        ("int", "long", 1),  # int size and sign are ignored
        ("bitint", None, 0),  # a non-zero BTF_INT_OFFSET is rejected
        ("ptr_int", "ptr_long", 1),
        ("ptr_int", "ptr_thing", 0),
        ("arr8", None, 1),  # dimensions ignored
        ("color", "color64", 1),  # ENUM and ENUM64 mix
        ("small_enum", None, 1),  # enum size ignored
        ("fp", None, 1),
        ("fp3", None, 0),  # parameter count differs
        ("td_thing", None, 1),
        ("c_td_thing", "thing", 0),  # root kinds are compared before skipping modifiers
        ("c_td_thing", None, 1),
        ("flt", None, 0),  # libbpf: "unexpected kind float relocated"
        ("ptr_thing", None, 0),  # struct vs fwd behind the pointer
    ],
)
def test_types_are_compat(local: str, target: str | None, expected: int) -> None:
    assert compat(local, target) == expected


@pytest.mark.parametrize(
    ("local", "target", "expected"),
    [
        ("thing", "uthing", 1),  # any two composites
        ("int", "long", 1),
        ("bitint", None, 0),
        ("ptr_int", "ptr_thing", 1),  # any two pointers
        ("flt", None, 1),
        ("color", None, 1),
        ("color", "color64", 0),  # enum names must match (modulo flavors)
        ("arr8", None, 1),
        ("fwd_thing", None, 1),
        ("fwd_thing", "fwd_uthing", 0),  # names differ
        ("int", "thing", 0),
        ("fp", None, 0),  # functions are not fields
    ],
)
def test_fields_are_compat(local: str, target: str | None, expected: int) -> None:
    assert fields(local, target) == expected


@pytest.mark.parametrize(
    ("local", "target", "expected"),
    [
        ("thing", None, 1),
        ("int", "long", 0),  # size differs
        ("int", "uint", 0),  # names differ (checked at every level)
        ("signs", None, 0),  # member int vs unsigned int: name differs
        ("outer", None, 1),  # members by name; ptr to struct matches ptr to fwd
        ("ptr_thing", None, 1),
        ("ptr_uthing", None, 1),
        ("arr4", None, 1),
        ("arr8", None, 0),  # element counts differ
        ("color", None, 1),  # local enumerators exist in the target, values ignored
        ("color64", None, 1),  # ENUM (size 8) vs ENUM64 (size 8)
        ("small_enum", None, 0),  # sizes differ
        ("fp", None, 0),  # long vs unsigned long parameter
        ("fp3", None, 0),
        ("td_thing", None, 1),
        ("flt", None, 0),  # unexpected kind
    ],
)
def test_types_match(local: str, target: str | None, expected: int) -> None:
    assert match(local, target) == expected


def test_types_match_enum_needs_all_local_names() -> None:
    # target color has RED/GREEN/BLUE; a local enum with a name the target lacks fails
    b = BtfBuilder()
    e = b.add_enum("color", values=[("RED", 0), ("PURPLE", 1)])
    local = b.to_btf()
    assert types_match(local, e, TARGET, T["color"]) == 0
    # flavors of enumerator names are ignored
    b = BtfBuilder()
    e = b.add_enum("color", values=[("RED___v2", 0)])
    assert types_match(b.to_btf(), e, TARGET, T["color"]) == 1


def test_types_match_fwd_rules() -> None:
    # not behind a pointer, fwd only matches fwd of the same kind
    assert types_match(LOCAL, L["fwd_thing"], TARGET, T["fwd_thing"]) == 1
    assert types_match(LOCAL, L["fwd_thing"], TARGET, T["thing"]) == 0
    # behind a pointer a struct matches a struct fwd but not a union fwd
    b = BtfBuilder()
    s = b.add_struct("thing", 4, [])
    ps = b.add_ptr(s)
    u = b.add_union("uthing", 4, [])
    pu = b.add_ptr(u)
    pfs = b.add_ptr(b.add_fwd("thing"))
    local = b.to_btf()
    tb = BtfBuilder()
    tfs = tb.add_ptr(tb.add_fwd("thing"))
    tfu = tb.add_ptr(tb.add_fwd("uthing", union=True))
    ts = tb.add_ptr(tb.add_struct("thing", 8, []))
    target = tb.to_btf()
    assert types_match(local, ps, target, tfs) == 1
    assert types_match(local, pu, target, tfu) == 1
    assert types_match(local, pfs, target, ts) == 1  # fwd (struct) behind ptr vs struct
    assert types_match(local, ps, target, ts) == 1  # members not compared behind a pointer
    assert types_match(local, pu, target, tfs) == 0  # union vs struct fwd names differ


def test_deep_recursion_is_an_error() -> None:
    b = BtfBuilder()
    t = b.add_int("int", 4, signed=True)
    for _ in range(40):
        t = b.add_ptr(t)
    btf = b.to_btf()
    assert types_are_compat(btf, t, btf, t) < 0
    assert types_match(btf, t, btf, t) < 0


@pytest.mark.parametrize(
    ("local", "target", "expected"),
    [
        ("foo", "foo", True),
        ("foo___a", "foo___b", True),
        ("foo", "foo___b", True),
        ("foo", "bar", False),
        ("", "", True),
        ("", "foo", False),
        ("foo", "", False),
    ],
)
def test_names_match(local: str, target: str, expected: bool) -> None:
    assert names_match(local, target) is expected
