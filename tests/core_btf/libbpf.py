"""Run tests/harness/libbpf_core_log.c: libbpf's own CO-RE log for an object and a target.

`libbpf_core_lines(obj, target_btf_path, programs)` returns the CO-RE lines of libbpf's
debug log (its "libbpf: " prefix removed), in order:

* ``CO-RE relocating [id] kind name: found target candidate ...`` (candidate search),
* ``prog 'P': relo #N: ...`` (spec, candidates, patching, poisoning, failures),
* ``prog 'P': relo K at insn #I can't ...`` (array/bitfield errors, K is the kind number).

`compare_logs` lines bpfobj's up with libbpf's and knows the two places where libbpf 1.1
(the system library) differs from the 6.12 relo_core.c that bpfobj ports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import harnessbuild

SRC = harnessbuild.source("libbpf_core_log")

CORE_LINE = re.compile(r"^(prog '[^']+': relo|CO-RE relocating \[)")


def missing_reason() -> str | None:
    if (reason := harnessbuild.missing_reason()) is not None:
        return reason
    if os.geteuid() != 0:
        return "libbpf performs CO-RE relocations only in bpf_object__load (needs root)"
    return None


def build() -> Path:
    return harnessbuild.build("libbpf_core_log")


def run(obj: Path, target: Path, programs: Sequence[str] = ()) -> dict[str, object]:
    cmd = [str(build()), str(obj), "--btf", str(target)]
    for p in programs:
        cmd += ["--prog", p]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} exited {proc.returncode}: {proc.stderr}")
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def core_lines(log: Sequence[str]) -> list[str]:
    out = []
    for line in log:
        line = line.removeprefix("libbpf: ").rstrip()
        if CORE_LINE.match(line):
            out.append(line)
    return out


def libbpf_core_lines(obj: Path, target: Path, programs: Sequence[str] = ()) -> list[str]:
    data = run(obj, target, programs)
    log = data["log"]
    assert isinstance(log, list)
    return core_lines([str(x) for x in log])


_SUBST = re.compile(r"^(prog '[^']+': relo #\d+: )substituting insn #(\d+) w/ invalid insn$")


def normalize(lines: Sequence[str]) -> list[str]:
    """Make libbpf 1.1's and bpfobj's (6.12) lines comparable.

    libbpf 1.1 poisons the second slot of an ld_imm64 before the first (6.12: first, then
    second); the set of lines is the same, so sort each run of "substituting" lines.
    """
    out = [line.rstrip() for line in lines]
    i = 0
    while i < len(out):
        if _SUBST.match(out[i]):
            j = i
            while j < len(out) and _SUBST.match(out[j]):
                j += 1
            out[i:j] = sorted(out[i:j])
            i = j
        else:
            i += 1
    return out
