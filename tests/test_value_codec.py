"""Map keys and values (and ring buffer records) through BTF: `bpfobj.maps.Codec` against
the layout clang itself computes.

tests/progs/value_layouts.c initialises a `struct value` in .data (integers of each size and
sign, a bool, char and byte arrays, bitfields, a signed enum and an ENUM64, float and double,
an array of structs, an anonymous union and struct, a pointer, a const volatile member):
encoding the same Python values must give clang's bytes exactly, and decoding clang's bytes
must give the values back. No kernel: the codec is pure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfobj import BpfObject
from bpfobj.errors import SpecError
from bpfobj.maps import Codec
from bpfobj.uapi import BtfKind

# What value_layouts.c puts in `expected` (the union written through `word`).
VALUES: dict[str, Any] = {
    "u8": 200, "s16": -2, "u32": 0xDEADBEEF, "s64": -(1 << 40), "flag": True,
    "name": b"bpf", "raw": b"\x01\x02\x03\x04", "bf_u": 5, "bf_s": -7,
    "bf_wide": 0xABCDEF0123, "color": -3, "big": 0x1122334455667788, "f": 1.5, "d": -2.25,
    "pair": [{"a": 1, "b": -1}, {"a": 65535, "b": 127}], "word": 0x04030201, "x": 7, "y": 9,
    "ptr": 0, "cv": 42,
}


@pytest.fixture(scope="module")
def layout(bpf_build: Any) -> tuple[Codec, bytes]:
    path: Path = bpf_build("value_layouts.c")
    with BpfObject.open(path) as obj:
        btf = obj.spec.btf
        assert btf is not None
        (tid,) = btf.find("value", BtfKind.STRUCT)
        data = obj.spec.maps[".data"].data
        assert data is not None and len(data) == btf.size_of(tid)
        return Codec(btf, tid, btf.size_of(tid)), data


def test_encode_gives_clangs_bytes(layout: tuple[Codec, bytes]) -> None:
    codec, data = layout
    assert codec.encode(VALUES) == data


def test_decode_gives_the_values_back(layout: tuple[Codec, bytes]) -> None:
    codec, data = layout
    got = codec.decode(data)
    # the anonymous union's and struct's members appear at the top level, each union
    # member decoded from the same bytes
    assert got == {**VALUES, "bytes": b"\x01\x02\x03\x04"}
    assert list(got)[:4] == ["u8", "s16", "u32", "s64"]  # in member order


def test_partial_values_leave_the_rest_zero(layout: tuple[Codec, bytes]) -> None:
    codec, _ = layout
    got = codec.decode(codec.encode({"u32": 7, "pair": [{"b": -5}]}))
    assert got["u32"] == 7 and got["pair"] == [{"a": 0, "b": -5}, {"a": 0, "b": 0}]
    assert got["s64"] == 0 and got["name"] == b"" and got["flag"] is False


def test_conveniences(layout: tuple[Codec, bytes]) -> None:
    codec, data = layout
    # enumerator names, str into a char array, bytes through the union's byte view
    raw = codec.encode({**VALUES, "color": "BLUE", "big": "BIG", "name": "bpf"})
    assert raw == data
    via_bytes = {k: v for k, v in VALUES.items() if k != "word"} | {"bytes": b"\x01\x02\x03\x04"}
    assert codec.encode(via_bytes) == data
    # raw bytes stay available: the whole value, padded
    assert codec.encode(data[:10]) == data[:10] + bytes(len(data) - 10)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"u8": 256}, r"256 does not fit in .*1 bytes"),
        ({"s16": "x"}, r"wants an int, not str"),
        ({"color": "PURPLE"}, r"'PURPLE' is not a value of \[\d+\] ENUM 'color'"),
        ({"name": "12345678"}, r"string of 8 bytes does not fit .* with its NUL"),
        ({"raw": b"12345"}, r"5 bytes do not fit in 4 bytes"),
        ({"pair": [{}, {}, {}]}, r"3 elements do not fit in"),
        ({"pair": 3}, r"wants a list or bytes"),
        ({"pair": [{"c": 1}]}, r"has no member 'c'"),
        ({"nope": 1}, r"STRUCT 'value' has no member 'nope'.*members are u8, s16, .*"
                      r"word, bytes, x, y, ptr, cv"),
        ({"bf_s": 1.5}, r"bitfield 'bf_s' wants an int"),
        ({"f": "1.5"}, r"wants a float"),
    ],
)
def test_bad_values_are_refused_naming_the_type(
        layout: tuple[Codec, bytes], values: dict[str, Any], message: str) -> None:
    codec, _ = layout
    with pytest.raises(SpecError, match=message):
        codec.encode(values)


def test_not_a_mapping_is_refused(layout: tuple[Codec, bytes]) -> None:
    codec, data = layout
    with pytest.raises(SpecError, match=r"STRUCT 'value' wants a dict, not list"):
        codec.encode([1, 2])
    with pytest.raises(SpecError, match=r"value of 105 bytes is bigger than 104 bytes"):
        codec.encode(data + b"\0")


def test_without_btf_only_bytes_and_ints() -> None:
    codec = Codec(None, 0, 4)
    assert codec.encode(5) == b"\x05\0\0\0" and codec.encode(-1) == b"\xff" * 4
    assert codec.decode(b"\x05\0\0\0") == b"\x05\0\0\0"
    with pytest.raises(SpecError, match="without BTF") as exc:
        codec.encode({"a": 1})
    assert "pass bytes" in str(exc.value)


_INT_FIELDS = {
    "u8": (0, 255), "s16": (-(1 << 15), (1 << 15) - 1), "u32": (0, (1 << 32) - 1),
    "s64": (-(1 << 63), (1 << 63) - 1), "bf_u": (0, 7), "bf_s": (-16, 15),
    "bf_wide": (0, (1 << 40) - 1), "x": (0, 65535), "y": (0, 65535), "cv": (0, (1 << 32) - 1),
}


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({k: st.integers(lo, hi) for k, (lo, hi) in _INT_FIELDS.items()}),
       st.floats(width=32, allow_nan=False), st.floats(allow_nan=False),
       st.binary(max_size=7).filter(lambda b: b"\0" not in b))
def test_round_trip(layout: tuple[Codec, bytes], ints: dict[str, int], f: float, d: float,
                    name: bytes) -> None:
    codec, _ = layout
    values = {**ints, "f": f, "d": d, "name": name}
    got = codec.decode(codec.encode(values))
    assert {k: got[k] for k in values} == values
