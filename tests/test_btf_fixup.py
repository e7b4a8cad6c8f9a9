"""bpfobj.btf.fixup against libbpf: the BTF libbpf holds after bpf_object__open and the
BTF it hands to BPF_BTF_LOAD must be byte for byte what bpfobj makes.

The reference is tests/harness/libbpf_btf_fixup.c (system libbpf 1.1):
``open`` writes btf__raw_data(bpf_object__btf(obj)) after bpf_object__open_file (the
open-time fixups: extern DATASEC rewriting with dummy_ksym, DATASEC sizes / VAR offsets /
hidden VARs / sorting); ``load`` runs bpf_object__load with bpf(2) faked inside the
harness and captures the BTF of its BPF_BTF_LOAD (plus the load-time step: FUNCs of hidden
subprograms made static). Objects libbpf cannot load that way (unresolvable externs) are
compared at open only. The rest of the file checks the rules themselves on the objects.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import harnessbuild
import objects
import pytest
from objects import BuildFn

from bpfobj.btf import types as T
from bpfobj.btf.fixup import (
    DUMMY_KSYM,
    FixedBtf,
    fixup_func_info_arg_ctx,
    load_btf_for_kernel,
    open_btf,
)
from bpfobj.btf.reader import Btf
from bpfobj.btf.writer import BtfBuilder
from bpfobj.collect import open_spec
from bpfobj.elf.reader import STV_HIDDEN, read_elf
from bpfobj.errors import SpecError
from bpfobj.spec import ExternKind, ObjectSpec
from bpfobj.uapi import BtfFuncLinkage, BtfKind, BtfVarLinkage, ProgType

ROOT = Path(__file__).resolve().parent.parent


def fixup_harness() -> Path:
    """Build tests/harness/libbpf_btf_fixup.c (cached by content); skip without gcc or
    libbpf-dev."""
    return harnessbuild.build_or_skip("libbpf_btf_fixup", ("-rdynamic",))


def libbpf_btf(obj: Path, mode: str, tmp: Path, missing: str = "") -> bytes | None:
    """What libbpf makes of `obj`'s BTF (`mode` "open" or "load"); None if libbpf fails."""
    exe = fixup_harness()
    out = tmp / f"{obj.stem}.{mode}.{missing or 'all'}.btf"
    args = [str(exe), mode, str(obj), str(out)] + ([missing] if missing else [])
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if proc.returncode == 2:
        return None
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return out.read_bytes()


def open_object(path: Path) -> tuple[ObjectSpec, object]:
    data = path.read_bytes()
    return open_spec(data, path.name), read_elf(data, path.name)


def describe_diff(ours: bytes, ref: bytes) -> str:
    a, b = Btf.parse(ours, cache=False), Btf.parse(ref, cache=False)
    lines = [f"sizes {len(ours)} vs {len(ref)}, types {len(a)} vs {len(b)}"]
    for tid in range(1, max(len(a), len(b)) + 1):
        ta = a.type(tid) if tid <= len(a) else None
        tb = b.type(tid) if tid <= len(b) else None
        if ta != tb:
            lines.append(f"[{tid}] ours   {ta}\n      libbpf {tb}")
    if len(lines) == 1:
        lines.append(f"same types; strings {a.header.str_len} vs {b.header.str_len} bytes")
    return "\n".join(lines[:20])


CASES = objects.libbpf_openable()


@pytest.mark.parametrize("case", CASES, ids=objects.ids(CASES))
def test_open_btf_matches_libbpf(case: objects.ObjCase, bpf_build: BuildFn, tmp_path: Path) -> None:
    path = objects.build_case(case, bpf_build)
    spec, elf = open_object(path)
    if spec.btf is None:
        pytest.skip("object without BTF")
    ref = libbpf_btf(path, "open", tmp_path)
    assert ref is not None, "libbpf failed to open the object"
    fixed = open_btf(spec, elf)  # type: ignore[arg-type]
    assert fixed is not None
    assert fixed.raw == ref, describe_diff(fixed.raw, ref)


@pytest.mark.parametrize("case", CASES, ids=objects.ids(CASES))
def test_load_btf_matches_libbpf(case: objects.ObjCase, bpf_build: BuildFn, tmp_path: Path) -> None:
    path = objects.build_case(case, bpf_build)
    spec, elf = open_object(path)
    if spec.btf is None:
        pytest.skip("object without BTF")
    ref = libbpf_btf(path, "load", tmp_path)
    if ref is None:
        pytest.skip("libbpf does not get to BPF_BTF_LOAD for this object without a kernel")
    fixed = load_btf_for_kernel(spec, elf)  # type: ignore[arg-type]
    assert fixed is not None
    assert fixed.raw == ref, describe_diff(fixed.raw, ref)


# ---------------------------------------------------------------------------------------
# The rules, on the objects


def fixed_btf(
    bpf_build: BuildFn, name: str, *, load: bool = False
) -> tuple[ObjectSpec, Btf, FixedBtf]:
    path = objects.build_case(objects.by_name(name), bpf_build)
    spec, elf = open_object(path)
    fx = (load_btf_for_kernel if load else open_btf)(spec, elf)  # type: ignore[arg-type]
    assert fx is not None
    return spec, fx.to_btf(), fx


def datasec(btf: Btf, name: str) -> T.Datasec:
    (tid,) = btf.find(name, BtfKind.DATASEC)
    t = btf.type(tid)
    assert isinstance(t, T.Datasec)
    return t


def test_globals_datasecs(bpf_build: BuildFn) -> None:
    spec, btf, fx = fixed_btf(bpf_build, "globals")
    path = objects.build_case(objects.by_name("globals"), bpf_build)
    elf = read_elf(path.read_bytes())
    assert spec.btf is not None
    assert fx.id_map == {} and fx.dummy_ksym_id == 0
    assert len(btf) == len(spec.btf)
    for tid in spec.btf:  # ids and kinds never change
        assert btf.kind(tid) == spec.btf.kind(tid)
    syms = {s.name: s for s in elf.symbols if s.type == 1 and s.bind in (1, 2)}
    seen = 0
    for sec in elf.sections:
        ids = btf.find(sec.name, BtfKind.DATASEC)
        if not ids:
            continue
        ds = btf.type(ids[0])
        assert isinstance(ds, T.Datasec)
        assert ds.size == sec.size, sec.name
        offsets = [v.offset for v in ds.vars]
        assert offsets == sorted(offsets)
        for v in ds.vars:
            var = btf.type(v.type)
            assert isinstance(var, T.Var)
            orig = spec.btf.type(v.type)
            assert isinstance(orig, T.Var)
            if orig.linkage == BtfVarLinkage.GLOBAL_ALLOCATED:
                sym = syms[var.name]
                assert v.offset == sym.value
                is_hidden = sym.visibility == STV_HIDDEN
                assert var.linkage == (BtfVarLinkage.STATIC if is_hidden else orig.linkage)
        seen += 1
    assert seen >= 6
    (hidden,) = btf.find("hidden_total", BtfKind.VAR)
    assert btf.type(hidden).linkage == BtfVarLinkage.STATIC  # type: ignore[attr-defined]
    assert spec.btf.type(hidden).linkage == BtfVarLinkage.GLOBAL_ALLOCATED  # type: ignore[attr-defined]


def test_externs_rewritten(bpf_build: BuildFn) -> None:
    spec, btf, fx = fixed_btf(bpf_build, "externs")
    assert spec.btf is not None
    # dummy_ksym: appended, an allocated global of the first 32-bit INT
    assert fx.dummy_ksym_id == len(spec.btf) + 1 == len(btf)
    dummy = btf.type(fx.dummy_ksym_id)
    assert isinstance(dummy, T.Var) and dummy.name == DUMMY_KSYM
    assert dummy.linkage == BtfVarLinkage.GLOBAL_ALLOCATED
    first_int = next(
        t
        for t in spec.btf
        if spec.btf.kind(t) == BtfKind.INT and spec.btf.type(t).nr_bits == 32  # type: ignore[attr-defined]
    )
    assert dummy.type == first_int
    # .ksyms: 4-byte slots in BTF order; functions point at dummy_ksym
    ksyms = datasec(btf, ".ksyms")
    orig = datasec(spec.btf, ".ksyms")
    assert ksyms.size == 4 * len(ksyms.vars)
    assert [(v.offset, v.size) for v in ksyms.vars] == [(4 * i, 4) for i in range(len(ksyms.vars))]
    for new, old in zip(ksyms.vars, orig.vars):
        t = btf.type(old.type)
        if isinstance(t, T.Func):
            assert new.type == fx.dummy_ksym_id
            assert t.linkage == BtfFuncLinkage.GLOBAL
            proto = btf.type(t.type)
            assert isinstance(proto, T.FuncProto)
            assert all(p.name for p in proto.params if p.type)
        else:
            assert new.type == old.type
            assert isinstance(t, T.Var)
            assert t.linkage == BtfVarLinkage.GLOBAL_ALLOCATED and t.type == first_int
    # .kconfig: the layout of the .kconfig map
    kconfig = datasec(btf, ".kconfig")
    assert kconfig.size == spec.maps[".kconfig"].value_size
    offs = {e.name: e.kcfg_offset for e in spec.externs if e.kind is ExternKind.KCONFIG}
    assert [btf.name(v.type) for v in kconfig.vars] == sorted(offs, key=offs.__getitem__)
    for v in kconfig.vars:
        assert v.offset == offs[btf.name(v.type)]
        assert btf.type(v.type).linkage == BtfVarLinkage.GLOBAL_ALLOCATED  # type: ignore[attr-defined]


def test_hidden_subprog_static_at_load(bpf_build: BuildFn) -> None:
    spec, opened, _ = fixed_btf(bpf_build, "multiprog")
    _, loaded, fx = fixed_btf(bpf_build, "multiprog", load=True)
    hidden = [p.name for p in spec.subprograms.values() if p.mark_btf_static]
    assert hidden == ["hidden_weight"]
    (fid,) = loaded.find("hidden_weight", BtfKind.FUNC)
    assert fx.static_funcs == (fid,)
    assert opened.type(fid).linkage == BtfFuncLinkage.GLOBAL  # type: ignore[attr-defined]
    assert loaded.type(fid).linkage == BtfFuncLinkage.STATIC  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# Errors


@dataclass
class FakeSym:
    name: str
    value: int
    type: int = 1
    bind: int = 1
    visibility: int = 0


@dataclass
class FakeSec:
    name: str
    size: int


@dataclass
class FakeElf:
    sections: list[FakeSec]
    symbols: list[FakeSym]


def test_errors_name_the_section(bpf_build: BuildFn) -> None:
    path = objects.build_case(objects.by_name("globals"), bpf_build)
    spec, elf = open_object(path)
    secs = [FakeSec(s.name, s.size) for s in elf.sections]  # type: ignore[attr-defined]
    syms = [FakeSym(s.name, s.value, s.type, s.bind, s.visibility) for s in elf.symbols]  # type: ignore[attr-defined]
    assert open_btf(spec, FakeElf(secs, syms)).raw == open_btf(spec, elf).raw  # type: ignore[union-attr, arg-type]
    with pytest.raises(SpecError, match=r"size of section '\.bss'") as exc:
        open_btf(spec, FakeElf([s for s in secs if s.name != ".bss"], syms))
    assert exc.value.section == ".bss"
    with pytest.raises(SpecError, match="no ELF symbol for variable 'packets'") as exc:
        open_btf(spec, FakeElf(secs, [s for s in syms if s.name != "packets"]))
    assert exc.value.section == ".data"


# ---------------------------------------------------------------------------------------
# __arg_ctx (libbpf 1.4+ bpf_program_fixup_func_info; not in libbpf 1.1: expectations)

ARG_CTX_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#define __arg_ctx __attribute__((btf_decl_tag("arg:ctx")))

__noinline int global_void(void *ctx __arg_ctx, int x) { return ctx != 0 ? x : 0; }
__noinline int global_typed(struct xdp_md *ctx __arg_ctx) { return ctx->ingress_ifindex; }

SEC("xdp")
int prog(struct xdp_md *ctx) { return global_void(ctx, 1) + global_typed(ctx); }

char LICENSE[] SEC("license") = "GPL";
"""


def test_arg_ctx_fixup(bpf_build: BuildFn, tmp_path: Path) -> None:
    src = tmp_path / "btf_fixup_arg_ctx.c"
    src.write_text(ARG_CTX_SRC)
    spec, _ = open_object(bpf_build(src))
    assert spec.btf is not None
    b = BtfBuilder.from_btf(spec.btf)
    n = len(b)
    ids = [spec.btf.find(name, BtfKind.FUNC)[0] for name in ("prog", "global_void", "global_typed")]
    new = fixup_func_info_arg_ctx(b, "prog", ProgType.XDP, ids)
    # void * is fixed: FUNC_PROTO and FUNC cloned, struct xdp_md + PTR + DECL_TAG appended
    assert new == [ids[0], n + 2, ids[2]]
    btf = Btf.parse(b.encode())
    orig_fn = btf.type(ids[1])
    clone = btf.type(n + 2)
    assert isinstance(orig_fn, T.Func) and isinstance(clone, T.Func)
    assert clone.name == "global_void" and clone.type == n + 1
    assert clone.linkage == BtfFuncLinkage.GLOBAL
    proto, orig_proto = btf.type(n + 1), btf.type(orig_fn.type)
    assert isinstance(proto, T.FuncProto) and isinstance(orig_proto, T.FuncProto)
    assert [p.name for p in proto.params] == [p.name for p in orig_proto.params] == ["ctx", "x"]
    assert proto.params[0].type == n + 4 and proto.params[1] == orig_proto.params[1]
    assert btf.type(n + 3) == T.Struct(n + 3, "xdp_md", 0, ())
    assert btf.type(n + 4) == T.Ptr(n + 4, "", n + 3)
    assert btf.type(n + 5) == T.DeclTag(n + 5, "arg:ctx", n + 2, 0)
    assert len(btf) == n + 5
    assert btf.header.str_len == spec.btf.header.str_len  # every name existed already
    # program types without a named context, and programs not calling the subprogram
    b2 = BtfBuilder.from_btf(spec.btf)
    assert fixup_func_info_arg_ctx(b2, "prog", ProgType.TRACING, ids) == ids
    assert fixup_func_info_arg_ctx(b2, "prog", ProgType.XDP, ids[:1]) == ids[:1]
    assert b2.encode() == spec.btf.raw
