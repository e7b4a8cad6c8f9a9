"""CO-RE against this machine's kernel BTF (/sys/kernel/btf/vmlinux, ~130k types):
values agree with `bpftool btf dump`, flavors find their kernel type, and candidate
search goes through the essential-name index instead of scanning every type per relocation."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from core_btf.builder import std_ints

from bpfobj.btf.ext import CoreRelo
from bpfobj.btf.writer import BtfBuilder
from bpfobj.core import CoreCache, TargetBtf, index_for, resolve
from bpfobj.uapi import CoreReloKind as K

VMLINUX = Path("/sys/kernel/btf/vmlinux")

pytestmark = pytest.mark.skipif(not VMLINUX.exists(), reason="no /sys/kernel/btf/vmlinux")


@cache
def kernel() -> Any:
    from bpfobj.btf import load_kernel_btf

    return load_kernel_btf()


@cache
def bpftool_raw() -> str:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    return subprocess.run(
        ["bpftool", "btf", "dump", "file", str(VMLINUX), "format", "raw"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def bpftool_member_offset(struct: str, member: str) -> int:
    """bits_offset of `member` in the first STRUCT `struct`, as bpftool prints it."""
    text = bpftool_raw()
    start = text.index(f"] STRUCT '{struct}' ")
    block = text[start : text.index("\n[", start)]
    m = re.search(rf"\n\t'{member}' type_id=\d+ bits_offset=(\d+)", block)
    assert m, (struct, member)
    return int(m.group(1))


def bpftool_enum_value(name: str) -> int:
    m = re.search(rf"\n\t'{name}' val=(-?\d+)", bpftool_raw())
    assert m
    return int(m.group(1))


def _local_task(name: str = "task_struct") -> tuple[Any, int]:
    b = BtfBuilder()
    t = std_ints(b)
    task = b.add_struct(name, 16, [("pid", t["int"], 0), ("tgid", t["int"], 32)])
    return b.to_btf(), task


def test_task_struct_pid_offset_matches_bpftool() -> None:
    local, task = _local_task()
    targets = [TargetBtf("vmlinux", kernel())]
    relo = CoreRelo(insn_off=0, type_id=task, access_str="0:0", kind=K.FIELD_BYTE_OFFSET)
    d = resolve(local, relo, targets, program="p")
    assert d.outcome == "patched"
    assert d.new_val * 8 == bpftool_member_offset("task_struct", "pid")
    (tid,) = kernel().find("task_struct", 4)  # BTF_KIND_STRUCT
    assert d.target_type_id == tid
    assert d.target_spec is not None
    assert d.target_spec.startswith(f"<byte_off> [{tid}] struct task_struct.pid (0:")
    assert d.target_spec.endswith(f"@ offset {d.new_val})")


def test_flavored_local_type_finds_the_kernel_type() -> None:
    local, task = _local_task("task_struct___mine")
    relo = CoreRelo(insn_off=0, type_id=task, access_str="0:1", kind=K.FIELD_BYTE_OFFSET)
    d = resolve(local, relo, [TargetBtf("vmlinux", kernel())])
    assert d.new_val * 8 == bpftool_member_offset("task_struct", "tgid")


def test_enum_value_matches_bpftool() -> None:
    b = BtfBuilder()
    e = b.add_enum("bpf_prog_type", values=[("BPF_PROG_TYPE_TRACING", 0)])
    relo = CoreRelo(insn_off=0, type_id=e, access_str="0", kind=K.ENUMVAL_VALUE)
    d = resolve(b.to_btf(), relo, [TargetBtf("vmlinux", kernel())])
    assert d.new_val == bpftool_enum_value("BPF_PROG_TYPE_TRACING")


def test_candidate_search_is_indexed() -> None:
    """The first lookup builds the essential-name index once; later lookups are cheap."""
    btf = kernel()
    idx = index_for(btf)
    idx.lookup("task_struct")  # builds the index (one pass over the names)
    b = BtfBuilder()
    t = std_ints(b)
    names = ["task_struct", "mm_struct", "cred", "file", "inode", "sk_buff", "sock", "net_device"]
    ids = [b.add_struct(f"{n}___x{i}", 8, [("x", t["int"], 0)]) for i, n in enumerate(names * 25)]
    local = b.to_btf()
    targets = [TargetBtf("vmlinux", btf)]
    cache_ = CoreCache()
    start = time.perf_counter()
    for tid in ids:
        resolve(
            local,
            CoreRelo(insn_off=0, type_id=tid, access_str="0", kind=K.TYPE_EXISTS),
            targets,
            cache_,
        )
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"200 candidate searches took {elapsed:.2f}s"
    assert index_for(btf) is idx
    assert [c.name for c in cache_.cands[ids[0]]] == ["task_struct"]
