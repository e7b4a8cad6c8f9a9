"""A tracing tool's start-up path stays lean (see README "Start-up cost").

A fresh child process opens and prepares a CO-RE object against the running kernel's BTF
and imports the modules the rest of the way to "attached" needs (loading, a tracepoint
attach, a ring buffer; unprivileged, so they are not run). It must not import modules only
other paths need (typing among them), and no bpfobj code may call compile(): a process's first compile()
builds the ast module's ~120 classes (~3.5 ms).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import objects
import pytest

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    r"""
    import builtins, json, sys, traceback

    callers = []
    _compile = builtins.compile

    def compile(*args, **kwargs):
        stack = traceback.extract_stack()[:-1]
        # (importing a module without a valid .pyc compiles its source: not the case here)
        if not stack[-1].filename.startswith("<frozen importlib"):
            ours = [f.filename for f in stack if "/bpfobj/" in f.filename]
            if ours:
                callers.append(ours[-1])  # the innermost bpfobj frame
        return _compile(*args, **kwargs)

    builtins.compile = compile

    from bpfobj import BpfObject
    from bpfobj.attach import attach_all
    from bpfobj.ringbuf import RingBuffer
    import bpfobj.attach.tracing, bpfobj.btf.fixup, bpfobj.kernel.features, bpfobj.loader

    obj = BpfObject.open(sys.argv[1])
    obj.prepare()
    print(json.dumps({"modules": sorted(sys.modules), "compile_callers": callers}))
    """
)

# Imported by other paths only (the disassembler, other attach kinds, logging...); typing:
# bpfobj imports it for the type checker only (TYPE_CHECKING), its import costs ~4 ms.
NOT_ON_THE_PATH = {
    "typing", "ast", "hashlib", "inspect", "logging", "threading", "elftools",
    "bpfobj.insn.disasm", "bpfobj.insn.opcodes", "bpfobj.sys.attach_attr",
    "bpfobj.attach.kprobe", "bpfobj.attach.uprobe", "bpfobj.attach.net", "bpfobj.cli",
}


def test_tracing_tool_start_up_path(bpf_build: objects.BuildFn) -> None:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("needs /sys/kernel/btf/vmlinux as target BTF (CONFIG_DEBUG_INFO_BTF)")
    path = bpf_build("real_execsnoop.c", vmlinux=True)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    modules = set(result["modules"])
    assert {"bpfobj.prepare", "bpfobj.core.engine", "bpfobj.attach.tracing"} <= modules
    assert not modules & NOT_ON_THE_PATH
    assert not {m for m in modules if m.startswith("elftools")}
    assert result["compile_callers"] == []
