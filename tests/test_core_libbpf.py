"""bpfobj.core against libbpf itself: the same CO-RE log, line for line.

For each case a BPF object (tests/progs/core_*.c) is relocated against a target BTF twice:

* by libbpf (tests/harness/libbpf_core_log.c: bpf_object__open with btf_custom_path =
  the target, bpf_object__load at debug log level; the load itself may fail, only the
  log matters), and
* by bpfobj.core (tests/core_btf/objfile.py walks the .BTF.ext records in libbpf's order),

and the CO-RE lines of both logs must be identical: candidate search ("CO-RE relocating
[..]: found target candidate ..."), the local spec, every candidate's spec and whether it
matched, ambiguity and other failures, the patched values ("patched insn #N (ALU/ALU64)
imm A -> B", load size changes) and poisoning ("substituting insn #N w/ invalid insn").

Needs root (libbpf 1.1 only relocates inside bpf_object__load), gcc and libbpf-dev.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from core_btf import libbpf
from core_btf.builder import std_ints
from core_btf.objfile import BpfObj, run_core, targets_from

from bpfobj.btf import Btf
from bpfobj.btf.writer import BtfBuilder

FIELDS_OK = (
    "fields_offsets",
    "fields_access",
    "fields_signed_resize",
    "fields_missing",
    "fields_bits",
    "fields_bits_probed",
    "fields_flavor",
)
FIELDS_ALL = (*FIELDS_OK, "fields_bad_bitfield", "fields_bad_array", "fields_anon")
TYPES_ALL = (
    "types_ids",
    "types_exist",
    "types_match",
    "enum_values",
    "enum_missing",
    "enum_negative",
)
AMBIG_ALL = ("amb_offset", "amb_size", "amb_type_id", "prune_then_id", "same_flavors")


@pytest.fixture(scope="module", autouse=True)
def _harness() -> None:
    reason = libbpf.missing_reason()
    if reason is not None:
        pytest.skip(reason)
    libbpf.build()


def _compare(
    obj_path: Path, target_path: Path, programs: Sequence[str], target_btf: Any = None
) -> list[str]:
    obj = BpfObj.read(obj_path)
    if target_btf is None:
        target_btf = BpfObj.read(target_path).btf
    run = run_core(obj, targets_from(target_btf), programs)
    mine = libbpf.normalize(run.log)
    theirs = libbpf.normalize(libbpf.libbpf_core_lines(obj_path, target_path, programs))
    if mine != theirs:
        diff = "\n".join(difflib.unified_diff(theirs, mine, "libbpf", "bpfobj", lineterm=""))
        pytest.fail(
            f"CO-RE log differs from libbpf's for {obj_path.name} {list(programs)}:\n{diff}"
        )
    assert mine, "no CO-RE lines at all"
    return mine


CASES = [
    *[("core_fields.c", "TARGET=1", (p,)) for p in FIELDS_ALL],
    ("core_fields.c", "TARGET=1", FIELDS_OK),
    *[("core_fields.c", "TARGET=2", (p,)) for p in FIELDS_ALL],
    *[("core_types.c", "TARGET=1", (p,)) for p in TYPES_ALL],
    ("core_types.c", "TARGET=1", TYPES_ALL),
    *[("core_ambig.c", "TARGET=1", (p,)) for p in AMBIG_ALL],
    ("core_ambig.c", "TARGET=1", ("prune_then_id", "same_flavors", "amb_size")),
]


@pytest.mark.parametrize(
    ("source", "target", "programs"),
    CASES,
    ids=[
        f"{s.removesuffix('.c')}-{t}-{'+'.join(p) if len(p) < 3 else 'many'}" for s, t, p in CASES
    ],
)
def test_same_log_as_libbpf(
    bpf_build: Any, source: str, target: str, programs: tuple[str, ...]
) -> None:
    obj = bpf_build(source)
    tgt_source = "core_fields.c" if target == "TARGET=2" else source
    tgt = bpf_build(tgt_source, defines=(target,), tag=target.replace("=", ""))
    _compare(obj, tgt, programs)


def test_types_against_absent_types(bpf_build: Any) -> None:
    """core_types.c against a target that defines none of its types."""
    obj = bpf_build("core_types.c")
    tgt = bpf_build("core_fields.c", defines=("TARGET=2",), tag="TARGET2")
    for prog in TYPES_ALL:
        _compare(obj, tgt, (prog,))


def test_raw_btf_target(bpf_build: Any, tmp_path: Path) -> None:
    """A hand-built raw BTF file as the target (libbpf's btf__parse reads raw BTF too)."""
    b = BtfBuilder()
    t = std_ints(b)
    inner = b.add_struct("cf_inner", 8, [("y", t["int"], 0), ("x", t["int"], 32)])
    arr = b.add_array(t["int"], t["int"], 2)
    bitint = b.add_int("int", 4, signed=True, nr_bits=4, bit_offset=2)  # deprecated int bitfield
    b.add_struct(
        "cf_sample___raw",
        64,
        [
            ("b", t["long"], 0),
            ("a", bitint, 64),  # not compatible: field_exists 0, offsets poisoned
            ("in", inner, 128),
            ("arr", arr, 192),
            ("cnt", t["uint"], 256),
            ("sgn", t["int"], 288),
            ("ptr", b.add_ptr(t["char"]), 320),
            ("name", b.add_array(t["char"], t["int"], 8), 384),
        ],
    )
    path = tmp_path / "target.btf"
    path.write_bytes(b.encode())
    obj = bpf_build("core_fields.c")
    target_btf = Btf.parse(path.read_bytes(), cache=False)
    lines = _compare(obj, path, ("fields_offsets", "fields_access"), target_btf)
    assert any("non-matching candidate" in line for line in lines)


def test_kernel_btf(bpf_build: Any) -> None:
    """obj_core.c (task_struct, cred, mm_struct, enums, bitfields, a ___pre514 flavor)
    against this machine's /sys/kernel/btf/vmlinux."""
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    if not vmlinux.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    from bpfobj.btf import load_kernel_btf

    obj = bpf_build("obj_core.c", vmlinux=True)
    programs = tuple(BpfObj.read(obj).programs)
    lines = _compare(obj, vmlinux, programs, load_kernel_btf())
    assert any("task_struct___pre514" in line for line in lines)
