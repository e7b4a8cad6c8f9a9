"""bpfobj.btf.sanitize: libbpf's bpf_object__sanitize_btf rules, per feature switch.

Compared with libbpf 1.1 itself: tests/harness/libbpf_btf_fixup.c ``load`` runs
bpf_object__load with faked bpf(2) calls whose BTF feature probes fail for the features
named on its command line, and captures the sanitised BTF libbpf passes to BPF_BTF_LOAD
(libbpf 1.1 has no '?'-DATASEC or layout probe: those two rules are checked against
expectations only). Every sanitised blob must parse with bpfobj's reader and with
``bpftool btf dump file``.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import objects
import pytest
from objects import BuildFn
from test_btf_fixup import describe_diff, libbpf_btf, open_object

from bpfobj import records
from bpfobj.btf import types as T
from bpfobj.btf.fixup import load_btf_for_kernel
from bpfobj.btf.reader import Btf
from bpfobj.btf.sanitize import ENUM64_PLACEHOLDER, BtfFeatures, sanitize_btf
from bpfobj.btf.writer import BtfBuilder
from bpfobj.uapi import BtfFuncLinkage, BtfKind, BtfVarLinkage

LIBBPF_11_FEATURES = ("func", "func_global", "datasec", "float", "decl_tag", "type_tag", "enum64")
# What a 5.10 kernel accepts: FUNC (5.0), DATASEC (5.2), global funcs (5.6); not FLOAT
# (5.13), DECL_TAG (5.16), TYPE_TAG (5.17), ENUM64 (6.0), '?' DATASECs or layouts.
LINUX_5_10 = records.evolve(BtfFeatures.none(), func=True, func_global=True, datasec=True)


def without(*names: str) -> BtfFeatures:
    return records.evolve(BtfFeatures.all(), **dict.fromkeys(names, False))


def bpftool_ok(raw: bytes, tmp: Path) -> None:
    if shutil.which("bpftool") is None:
        return
    path = tmp / "sanitized.btf"
    path.write_bytes(raw)
    for fmt in ("raw", "c"):
        proc = subprocess.run(
            ["bpftool", "btf", "dump", "file", str(path), "format", fmt],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------------
# The feature record


def test_features_record() -> None:
    assert not BtfFeatures.all().needs_sanitization
    assert BtfFeatures.none().needs_sanitization
    assert BtfFeatures.all().missing() == []
    assert without("float", "enum64").missing() == ["float", "enum64"]
    assert set(BtfFeatures.none().missing()) == {f.name for f in records.fields(BtfFeatures)}
    assert LINUX_5_10.missing() == [
        "qmark_datasec",
        "float",
        "decl_tag",
        "type_tag",
        "enum64",
        "layout_header",
    ]


# ---------------------------------------------------------------------------------------
# Against libbpf, on compiled objects


def btf_kinds_path(bpf_build: BuildFn) -> Path:
    return Path(bpf_build("btf_kinds.c"))


OBJECT_NAMES = ("btf_kinds", "globals", "multiprog", "maps")
SWITCHES = [(name,) for name in LIBBPF_11_FEATURES] + [LIBBPF_11_FEATURES]


def object_path(name: str, bpf_build: BuildFn) -> Path:
    if name == "btf_kinds":
        return btf_kinds_path(bpf_build)
    return objects.build_case(objects.by_name(name), bpf_build)


@pytest.mark.parametrize(
    "missing", SWITCHES, ids=["no-" + "-".join(m) for m in SWITCHES[:-1]] + ["none"]
)
@pytest.mark.parametrize("name", OBJECT_NAMES)
def test_sanitized_matches_libbpf(
    name: str, missing: tuple[str, ...], bpf_build: BuildFn, tmp_path: Path
) -> None:
    path = object_path(name, bpf_build)
    spec, elf = open_object(path)
    ref = libbpf_btf(path, "load", tmp_path, ",".join(missing))
    assert ref is not None, "libbpf did not get to BPF_BTF_LOAD"
    fixed = load_btf_for_kernel(spec, elf, without(*missing))  # type: ignore[arg-type]
    assert fixed is not None
    assert fixed.raw == ref, describe_diff(fixed.raw, ref)
    Btf.parse(fixed.raw).validate()
    bpftool_ok(fixed.raw, tmp_path)


@pytest.mark.parametrize("name", ["globals", "maps"])
def test_big_endian_object_like_little(name: str, bpf_build: BuildFn) -> None:
    """libbpf 1.1 cannot open a bpfeb object on this host: its fixed-up and sanitised BTF
    must decode to the same types as the bpfel object's (same source)."""
    le = open_object(objects.build_case(objects.by_name(name), bpf_build))
    be = open_object(objects.build_case(objects.by_name(f"{name}-bpfeb"), bpf_build))
    for features in (None, BtfFeatures.none()):
        a = load_btf_for_kernel(*le, features)  # type: ignore[arg-type]
        b = load_btf_for_kernel(*be, features)  # type: ignore[arg-type]
        assert a is not None and b is not None
        ta, tb = a.to_btf(), b.to_btf()
        assert (ta.byteorder, tb.byteorder) == ("little", "big")
        assert [ta.type(t) for t in ta] == [tb.type(t) for t in tb]


def test_clang19_object_for_linux_5_10(bpf_build: BuildFn, tmp_path: Path) -> None:
    """A clang-19 object with every kind, sanitised for 5.10: only kinds 5.10 knows, no
    signed enums, no type tags; ids and record sizes kept (one INT appended, and the VAR
    dummy_ksym at open: the object calls a kfunc)."""
    spec, elf = open_object(btf_kinds_path(bpf_build))
    fixed = load_btf_for_kernel(spec, elf, LINUX_5_10)  # type: ignore[arg-type]
    assert fixed is not None and spec.btf is not None
    btf = fixed.to_btf()
    btf.validate()
    allowed = {BtfKind(k) for k in range(1, 16)}
    kinds = {btf.kind(t) for t in btf}
    assert kinds <= allowed, kinds - allowed
    appended = 1 + bool(fixed.dummy_ksym_id)  # enum64_placeholder (and dummy_ksym)
    assert len(btf) == len(spec.btf) + appended
    assert fixed.enum64_placeholder_id == len(btf)
    assert btf.type(len(btf)) == T.Int(len(btf), ENUM64_PLACEHOLDER, 1, 0, 0, 8)
    for tid in btf:
        t = btf.type(tid)
        if isinstance(t, T.Enum):
            assert not t.signed
        if tid <= len(spec.btf) and spec.btf.kind(tid) in (BtfKind.FLOAT, BtfKind.TYPE_TAG):
            assert t.name == ""
    assert spec.btf.header.type_len + 16 * appended == btf.header.type_len
    bpftool_ok(fixed.raw, tmp_path)


# ---------------------------------------------------------------------------------------
# Each rule on hand-built BTF (expected results from libbpf's rules)


def every_kind() -> tuple[bytes, dict[str, int]]:
    b = BtfBuilder()
    ids: dict[str, int] = {}
    ids["int"] = i = b.add_int("int", 4, signed=True)
    ids["var"] = v = b.add_var("counter", i, BtfVarLinkage.GLOBAL_ALLOCATED)
    ids["var2"] = v2 = b.add_var("other", i)
    ids["datasec"] = b.add_datasec(".data.x", 16, [(v, 0, 4), (v2, 8, 4)])
    ids["qdatasec"] = b.add_datasec("?.bss", 4, [])
    ids["proto"] = fp = b.add_func_proto(i, [("a", i), ("b", i)])
    ids["func"] = b.add_func("gf", fp, BtfFuncLinkage.GLOBAL)
    ids["efunc"] = b.add_func("ef", fp, BtfFuncLinkage.EXTERN)
    ids["float"] = b.add_float("double", 8)
    ids["decl_tag"] = b.add_decl_tag("tag", ids["func"], 0)
    ids["type_tag"] = b.add_type_tag("user", i)
    ids["enum"] = b.add_enum("e", 4, [("NEG", -1)])
    ids["enum64"] = b.add_enum64("e64", 8, [("A", 1), ("B", 1 << 40)])
    ids["enum64b"] = b.add_enum64("f64", 8, [("C", -2)])
    return b.encode(), ids


def sanitized(missing: str) -> tuple[Btf, Btf, dict[str, int]]:
    raw, ids = every_kind()
    out = sanitize_btf(raw, without(missing))
    btf = Btf.parse(out)
    btf.validate()
    return Btf.parse(raw), btf, ids


def test_nothing_missing_keeps_bytes() -> None:
    raw, _ = every_kind()
    assert sanitize_btf(raw, BtfFeatures.all()) == raw
    assert sanitize_btf(Btf.parse(raw), BtfFeatures.all()) == raw


def test_no_datasec() -> None:
    orig, btf, ids = sanitized("datasec")
    for key in ("var", "var2"):
        t = btf.type(ids[key])
        assert t == T.Int(ids[key], orig.name(ids[key]), 1, 0, 0, 8)
    ds = btf.type(ids["datasec"])
    assert ds == T.Struct(
        ids["datasec"],
        "_data_x",
        16,
        (T.Member("counter", ids["var"], 0), T.Member("other", ids["var2"], 64)),
    )
    assert btf.name(ids["qdatasec"]) == "__bss"
    # renamed in place: the string section keeps its size, the old names are gone
    assert btf.header.str_len == orig.header.str_len
    assert b".data.x" not in btf.raw and b"_data_x" in btf.raw


def test_no_qmark_datasec() -> None:
    orig, btf, ids = sanitized("qmark_datasec")
    assert btf.name(ids["qdatasec"]) == "_.bss"
    assert btf.name(ids["datasec"]) == ".data.x"
    assert btf.kind(ids["qdatasec"]) == BtfKind.DATASEC
    assert len(btf.raw) == len(orig.raw)


def test_no_func() -> None:
    _, btf, ids = sanitized("func")
    values = (T.EnumValue("a", ids["int"]), T.EnumValue("b", ids["int"]))
    assert btf.type(ids["proto"]) == T.Enum(ids["proto"], "", 4, values, False)
    assert btf.type(ids["func"]) == T.Typedef(ids["func"], "gf", ids["proto"])
    assert btf.type(ids["efunc"]) == T.Typedef(ids["efunc"], "ef", ids["proto"])


def test_no_func_global() -> None:
    _, btf, ids = sanitized("func_global")
    assert btf.type(ids["func"]).linkage == BtfFuncLinkage.STATIC  # type: ignore[attr-defined]
    assert btf.type(ids["efunc"]).linkage == BtfFuncLinkage.STATIC  # type: ignore[attr-defined]
    assert btf.kind(ids["proto"]) == BtfKind.FUNC_PROTO


def test_no_float_decl_tag_type_tag() -> None:
    _, btf, ids = sanitized("float")
    assert btf.type(ids["float"]) == T.Struct(ids["float"], "", 8, ())
    _, btf, ids = sanitized("decl_tag")
    assert btf.type(ids["decl_tag"]) == T.Int(ids["decl_tag"], "tag", 1, 0, 0, 8)
    _, btf, ids = sanitized("type_tag")
    assert btf.type(ids["type_tag"]) == T.Const(ids["type_tag"], "", ids["int"])


def test_no_enum64() -> None:
    orig, btf, ids = sanitized("enum64")
    assert btf.type(ids["enum"]) == T.Enum(
        ids["enum"], "e", 4, (T.EnumValue("NEG", 0xFFFFFFFF),), False
    )
    ph = len(orig) + 1
    assert len(btf) == ph  # one placeholder for both ENUM64s
    assert btf.type(ph) == T.Int(ph, ENUM64_PLACEHOLDER, 1, 0, 0, 8)
    assert btf.type(ids["enum64"]) == T.Union(
        ids["enum64"], "e64", 8, (T.Member("A", ph, 0), T.Member("B", ph, 0))
    )
    assert btf.type(ids["enum64b"]) == T.Union(ids["enum64b"], "f64", 8, (T.Member("C", ph, 0),))


def test_no_layout_header() -> None:
    b = BtfBuilder()
    b.add_int("int", 4)
    b.layout = tuple((0, 0, 0) for _ in range(20))
    raw = b.encode()
    src = Btf.parse(raw)
    assert src.header.hdr_len == 32 and src.header.layout_len == 80
    assert sanitize_btf(raw, BtfFeatures.all()) == raw
    out = sanitize_btf(raw, without("layout_header"))
    hdr = Btf.parse(out).header
    assert hdr.hdr_len == 32  # kept, as libbpf does: an old kernel accepts zeroed tails
    assert (hdr.layout_off, hdr.layout_len) == (0, 0)
    assert hdr.str_off == hdr.type_len
    assert len(out) == len(raw) - 80
    assert struct.unpack_from("<2I", out, 24) == (0, 0)


def test_none_on_hand_built_is_parseable(tmp_path: Path) -> None:
    raw, ids = every_kind()
    out = sanitize_btf(raw, BtfFeatures.none())
    btf = Btf.parse(out)
    btf.validate()
    assert btf.kind(ids["datasec"]) == BtfKind.STRUCT
    assert btf.kind(ids["func"]) == BtfKind.TYPEDEF
    bpftool_ok(out, tmp_path)
