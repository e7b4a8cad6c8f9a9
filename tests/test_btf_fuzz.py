"""Property tests: any byte string given to `Btf.parse` / `BtfExt.parse` ends in success or
in BtfError / BtfExtError, never another exception and never a hang, including the lazy
work done later (type(), resolve(), size_of(), find() on every type).

Inputs are real blobs (clang objects in both byte orders, hand-built blobs with every kind,
split BTF) mutated by truncation, byte flips, u32 overwrites with nasty values (huge vlen,
unknown kinds, out-of-range ids and string offsets, self references) and splices, plus
randomly generated type graphs (cycles included).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_btf_builder import KIND, RawBtf, build_ext, info

from bpfobj.btf import Btf, BtfExt
from bpfobj.btf import types as T
from bpfobj.btf.writer import BtfBuilder
from bpfobj.errors import BtfError, BtfExtError

PROGS = Path(__file__).parent / "progs"
# BPFOBJ_FUZZ_EXAMPLES=5000 for a longer run.
EXAMPLES = int(os.environ.get("BPFOBJ_FUZZ_EXAMPLES", "300"))

NASTY_WORDS = [
    0,
    1,
    2,
    3,
    0x7F,
    0xFF,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    info(0),
    info(20),
    info(31),
    info(KIND["STRUCT"], 0xFFFF),
    info(KIND["ENUM"], 0xFFFF),
    info(KIND["FUNC_PROTO"], 3),
    info(KIND["ARRAY"]),
    info(KIND["TYPEDEF"]),
    info(KIND["FUNC"], 5),
    info(KIND["INT"], 0, True) | 0x60000000,
]


def expect_btf_error(fn: Callable[[], object]) -> None:
    """Run `fn`; a BtfError is fine unless it is the safety net catching a bpfobj bug."""
    try:
        fn()
    except BtfError as exc:
        assert str(exc)  # formats
        assert "bpfobj bug" not in (exc.hint or ""), exc.__cause__


def touch(btf: Btf) -> None:
    """Every lazy path on every type: each may raise BtfError only."""
    for tid in range(0, len(btf) + 1):
        for fn in (btf.kind, btf.name, btf.type, btf.resolve, btf.size_of):
            expect_btf_error(lambda: fn(tid))  # noqa: B023 - called right away
    for name in ("int", "s", "all_fields", "", "x" * 40):
        expect_btf_error(lambda: btf.find(name))  # noqa: B023
    expect_btf_error(btf.validate)
    _ = btf.pointer_size, repr(btf), list(btf)


def parse_and_touch(data: bytes, base: Btf | None = None) -> None:
    try:
        btf = Btf.parse(data, base=base, cache=False)
    except BtfError as exc:
        assert str(exc)
        assert "bpfobj bug" not in (exc.hint or ""), exc.__cause__
        return
    touch(btf)


# ---------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------


def _hand_built(byteorder: str) -> bytes:
    b = BtfBuilder()
    i = b.add_int("int", 4, signed=True)
    p = b.add_ptr(i)
    s = b.add_struct("s", 16, [("a", i, 0), ("b", p, 64), ("c", i, 96, 3)])
    b.add_union("u", 8, [("x", i, 0)])
    b.add_enum("e", 4, [("A", 1), ("B", -1)], signed=True)
    b.add_enum64("e64", 8, [("C", 1 << 40)])
    b.add_fwd("f")
    td = b.add_typedef("td", s)
    b.add_const(b.add_volatile(b.add_restrict(p)))
    proto = b.add_func_proto(i, [("x", td), ("", 0)])
    b.add_func("fn", proto, 1)
    v = b.add_var("v", b.add_array(i, i, 4), 1)
    b.add_datasec(".data", 16, [(v, 0, 16)])
    b.add_float("double", 8)
    b.add_decl_tag("tag", s, 0)
    b.add_type_tag("user", p)
    return b.encode(byteorder=byteorder)


def _object_sections() -> list[tuple[bytes, bytes]]:
    """(.BTF, .BTF.ext) of btf_kinds.c in both byte orders, when clang is available."""
    import bpfbuild

    if not bpfbuild.have_clang():
        return []
    from elftools.elf.elffile import ELFFile

    out = []
    for target in ("bpfel", "bpfeb"):
        path = bpfbuild.build("btf_kinds.c", target=target)
        with open(path, "rb") as f:
            elf = ELFFile(f)
            out.append(
                (elf.get_section_by_name(".BTF").data(), elf.get_section_by_name(".BTF.ext").data())
            )
    return out


OBJECTS = _object_sections()
SEEDS = [_hand_built("little"), _hand_built("big")] + [btf for btf, _ in OBJECTS]


def _ext_seeds() -> list[tuple[bytes, bytes]]:
    b = BtfBuilder()
    i = b.add_int("int", 4)
    f = b.add_func("f", b.add_func_proto(i), 1)
    s = b.add_struct("s", 4, [("m", i, 0)])
    raw = build_ext(
        b,
        func_info={"sec": [(0, f), (8, f)]},
        line_info={"sec": [(0, "f.c", "x", 3, 4)]},
        core_relos={"sec": [(0, s, "0:0", 0), (8, s, "0", 8)]},
        rec_sizes=(12, 16, 20),
    )
    return [(b.encode(), raw), *OBJECTS]


EXT_SEEDS = _ext_seeds()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "word", "splice", "header"]))
        if not data:
            break
        if op == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif op == "flip":
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "word" and len(data) >= 4:
            pos = draw(st.integers(0, (len(data) - 4) // 4)) * 4
            word = draw(st.one_of(st.sampled_from(NASTY_WORDS), st.integers(0, 0xFFFFFFFF)))
            order = "<" if data[0] == 0x9F else ">"
            struct.pack_into(order + "I", data, pos, word)
        elif op == "splice":
            a = draw(st.integers(0, len(data)))
            b = draw(st.integers(a, min(len(data), a + 64)))
            data[a:b] = draw(st.binary(max_size=64))
        elif op == "header" and len(data) >= 32:
            pos = draw(st.sampled_from([4, 8, 12, 16, 20, 24, 28]))
            order = "<" if data[0] == 0x9F else ">"
            struct.pack_into(
                order + "I",
                data,
                pos,
                draw(st.sampled_from([0, 3, 24, 32, 40, 0xFFFFFFF0, len(data)])),
            )
    return bytes(data)


# ---------------------------------------------------------------------------------------
# .BTF
# ---------------------------------------------------------------------------------------


@st.composite
def section_mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """Mutate inside the type and string sections and rebuild a consistent header, so that
    most inputs parse and the lazy checks (decode, resolve, size_of, find) get exercised."""
    seed = draw(st.sampled_from(seeds))
    order = "<" if seed[0] == 0x9F else ">"
    hdr_len, toff, tlen, soff, slen = struct.unpack_from(order + "I4I", seed, 4)
    words = list(struct.unpack_from(f"{order}{tlen // 4}I", seed, hdr_len + toff))
    strs = bytearray(seed[hdr_len + soff : hdr_len + soff + slen])
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["word", "word", "word", "cut", "dup", "strs", "strcut"]))
        if op == "word" and words:
            i = draw(st.integers(0, len(words) - 1))
            words[i] = draw(
                st.one_of(
                    st.sampled_from(NASTY_WORDS),
                    st.integers(0, len(words) + 4),
                    st.integers(0, len(strs) + 4),
                    st.integers(0, 0xFFFFFFFF),
                )
            )
        elif op == "cut" and words:
            del words[draw(st.integers(0, len(words))) :]
        elif op == "dup" and words:
            a = draw(st.integers(0, len(words) - 1))
            b = draw(st.integers(a, min(len(words), a + 12)))
            words[a:a] = words[a:b]
        elif op == "strs" and strs:
            strs[draw(st.integers(0, len(strs) - 1))] = draw(st.sampled_from([0, 0x41, 0xFF]))
        elif op == "strcut" and strs:
            del strs[draw(st.integers(1, len(strs))) :]
            strs[-1] = 0
    types = struct.pack(f"{order}{len(words)}I", *words)
    head = struct.pack(order + "HBBI4I", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strs))
    return head + types + bytes(strs)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(section_mutated(SEEDS))
def test_mutated_type_sections(data: bytes) -> None:
    parse_and_touch(data)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(SEEDS))
def test_mutated_btf(data: bytes) -> None:
    parse_and_touch(data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    parse_and_touch(data)
    parse_and_touch(b"\x9f\xeb\x01\x00\x18\x00\x00\x00" + data)


_REFS: dict[str, Callable[[int, str, int], T.BtfType]] = {
    "PTR": T.Ptr,
    "TYPEDEF": T.Typedef,
    "VOLATILE": T.Volatile,
    "CONST": T.Const,
    "RESTRICT": T.Restrict,
    "TYPE_TAG": T.TypeTag,
}


@st.composite
def type_graphs(draw: st.DrawFn) -> bytes:
    """Random well-formed records whose references go anywhere (cycles, out of range),
    encoded by the writer without its argument checks (`add_type`)."""
    b = BtfBuilder()
    n = draw(st.integers(1, 25))
    ref = st.integers(0, n + 2)
    name = st.sampled_from(["", "a", "b", "int", "s", "x" * 40])
    for _ in range(n):
        kind = draw(st.sampled_from(sorted(KIND)))
        nm = draw(name)
        t: T.BtfType
        if kind == "INT":
            size = draw(st.sampled_from([1, 2, 4, 8, 16]))
            t = T.Int(0, nm, size, T.INT_SIGNED if draw(st.booleans()) else 0, 0, size * 8)
        elif kind == "ARRAY":
            t = T.Array(0, nm, draw(ref), draw(ref), draw(st.integers(0, 0xFFFFFFFF)))
        elif kind in ("STRUCT", "UNION"):
            members = draw(
                st.lists(
                    st.tuples(name, ref, st.integers(0, 0xFFFFFF), st.integers(0, 255)), max_size=4
                )
            )
            kflag = draw(st.none() | st.booleans())
            if kflag is None:
                kflag = any(bits for *_, bits in members)
            ms = tuple(T.Member(m, r, off, bits if kflag else 0) for m, r, off, bits in members)
            cls = T.Struct if kind == "STRUCT" else T.Union
            t = cls(0, nm, draw(st.integers(0, 0xFFFFFFFF)), ms, kflag)
        elif kind in ("ENUM", "ENUM64"):
            low = -(1 << 31) if kind == "ENUM" else -(1 << 63)
            high = (1 << 32) - 1 if kind == "ENUM" else (1 << 64) - 1
            values = draw(st.lists(st.tuples(name, st.integers(low, high)), max_size=4))
            ecls = T.Enum if kind == "ENUM" else T.Enum64
            vs = tuple(T.EnumValue(v, x) for v, x in values)
            t = ecls(0, nm, draw(st.sampled_from([1, 4, 8])), vs, draw(st.booleans()))
        elif kind == "FUNC_PROTO":
            params = draw(st.lists(st.tuples(name, ref), max_size=4))
            t = T.FuncProto(0, "", draw(ref), tuple(T.Param(p, r) for p, r in params))
        elif kind == "FUNC":
            t = T.Func(0, nm, draw(ref), draw(st.integers(0, 4)))  # type: ignore[arg-type]
        elif kind == "VAR":
            t = T.Var(0, nm, draw(ref), draw(st.integers(0, 4)))  # type: ignore[arg-type]
        elif kind == "DATASEC":
            vars_ = draw(
                st.lists(st.tuples(ref, st.integers(0, 64), st.integers(0, 64)), max_size=3)
            )
            secinfo = tuple(T.VarSecinfo(*v) for v in vars_)
            t = T.Datasec(0, nm, draw(st.integers(0, 64)), secinfo)
        elif kind == "DECL_TAG":
            t = T.DeclTag(0, nm, draw(ref), draw(st.integers(-1, 5)))
        elif kind == "FLOAT":
            t = T.Float(0, nm, draw(st.sampled_from([4, 8, 16])))
        elif kind == "FWD":
            t = T.Fwd(0, nm, draw(st.booleans()))
        else:
            t = _REFS[kind](0, nm, draw(ref))
        b.add_type(t)
    order = draw(st.sampled_from(["little", "big"]))
    data = bytearray(b.encode(byteorder=order))
    if draw(st.booleans()):  # one type-section word overwritten
        nwords = (len(data) - 24 - b.strings_size) // 4
        pos = 24 + 4 * draw(st.integers(0, nwords - 1))
        fmt = "<I" if order == "little" else ">I"
        struct.pack_into(fmt, data, pos, draw(st.sampled_from(NASTY_WORDS)))
    return bytes(data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(type_graphs())
def test_random_type_graphs(data: bytes) -> None:
    parse_and_touch(data)


_BASE = BtfBuilder()
_BASE_INT = _BASE.add_int("int", 4)
_BASE.add_struct("s", 4, [("m", _BASE_INT, 0)])
BASE = Btf.parse(_BASE.encode())


@st.composite
def split_blobs(draw: st.DrawFn) -> bytes:
    sb = RawBtf(start_id=len(BASE) + 1, str_start=BASE._str_end, split=True)
    for _ in range(draw(st.integers(0, 6))):
        sb.add(
            draw(st.sampled_from(["PTR", "TYPEDEF", "CONST"])),
            draw(st.sampled_from(["", "s", "int", "own"])),
            draw(st.integers(0, 8)),
        )
    sb.add("STRUCT", "own", 8, [sb.add_string("a"), draw(st.integers(0, 8)), 0], vlen=1)
    data = bytearray(sb.build())
    if draw(st.booleans()) and len(data) > 28:
        struct.pack_into(
            "<I",
            data,
            draw(st.integers(6, (len(data) - 4) // 4)) * 4,
            draw(st.sampled_from(NASTY_WORDS)),
        )
    return bytes(data)


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(split_blobs())
def test_split_btf(data: bytes) -> None:
    parse_and_touch(data, base=BASE)


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(st.integers(0, 31), st.integers(0, 0xFFFF), st.integers(0, 64), st.integers(0, 64))
def test_layout_sections(kind: int, vlen: int, info_sz: int, elem_sz: int) -> None:
    b = RawBtf()
    b.add("INT", "int", 4, [32])
    b.raw([0, info(kind, vlen), 1, *([7] * 8)])
    b.add("PTR", "", 1)
    parse_and_touch(b.build(hdr_len=32, layout=[(4, 0)] * kind + [(info_sz, elem_sz)]))


# ---------------------------------------------------------------------------------------
# .BTF.ext
# ---------------------------------------------------------------------------------------


@st.composite
def ext_inputs(draw: st.DrawFn) -> tuple[Btf, bytes]:
    btf_raw, ext_raw = draw(st.sampled_from(EXT_SEEDS))
    return Btf.parse(btf_raw), draw(mutated([ext_raw]))


@settings(max_examples=EXAMPLES, deadline=None)
@given(ext_inputs())
def test_mutated_btf_ext(inp: tuple[Btf, bytes]) -> None:
    btf, data = inp
    try:
        ext = BtfExt.parse(data, btf)
    except BtfExtError as exc:
        assert str(exc)
        assert "bpfobj bug" not in (exc.hint or ""), exc.__cause__
        return
    for recs in ext.func_info.values():
        for fi in recs:
            assert 0 <= fi.type_id <= len(btf) and fi.insn_idx * 8 == fi.insn_off
    for relos in ext.core_relos.values():
        for cr in relos:
            assert 0 <= cr.type_id <= len(btf)


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(st.binary(max_size=120))
def test_random_btf_ext(data: bytes) -> None:
    btf = Btf.parse(EXT_SEEDS[0][0])
    for blob in (data, b"\x9f\xeb\x01\x00\x20\x00\x00\x00" + data):
        try:
            BtfExt.parse(blob, btf)
        except BtfExtError as exc:
            assert "bpfobj bug" not in (exc.hint or ""), exc.__cause__


@pytest.mark.skipif(not OBJECTS, reason="needs clang-19")
def test_seeds_are_valid() -> None:
    for btf_raw, ext_raw in EXT_SEEDS:
        btf = Btf.parse(btf_raw)
        btf.validate()
        BtfExt.parse(ext_raw, btf)
