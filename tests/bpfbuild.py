"""Compile the BPF C test programs under tests/progs with clang-19, cached by content.

Objects land in build/test-objs/<name>-<hash>.o; the hash covers the source, every local
header it can include, and the flags, so an edit rebuilds and nothing else does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGS = ROOT / "tests" / "progs"
OUT = ROOT / "build" / "test-objs"
CLANG = os.environ.get("BPFOBJ_CLANG", "clang-19")
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


def have_clang() -> bool:
    return shutil.which(CLANG) is not None


def _multiarch_include() -> list[str]:
    # asm/types.h lives in the host's multiarch include dir (Debian).
    for cand in ("/usr/include/x86_64-linux-gnu", "/usr/include/aarch64-linux-gnu"):
        if os.path.isdir(cand):
            return ["-I", cand]
    return []


def vmlinux_h() -> Path:
    """A vmlinux.h dumped from this host's BTF by bpftool (cached by the BTF's hash)."""
    data = VMLINUX_BTF.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    out = OUT / "include" / digest / "vmlinux.h"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        text = subprocess.run(
            ["bpftool", "btf", "dump", "file", str(VMLINUX_BTF), "format", "c"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.rename(out)
    return out


def build(
    source: str | Path,
    *,
    target: str = "bpf",
    defines: tuple[str, ...] = (),
    cpu: str | None = None,
    extra: tuple[str, ...] = (),
    tag: str = "",
    vmlinux: bool = False,
) -> Path:
    """Compile `source` (a name under tests/progs or a path) and return the object's path.

    target: ``bpf`` (host order), ``bpfel`` or ``bpfeb``; defines: ``-D`` values without the
    ``-D``; cpu: ``v1``..``v4``; vmlinux: put a bpftool-dumped vmlinux.h on the include path.
    """
    src = Path(source)
    if not src.is_absolute():
        src = PROGS / src
    flags = [CLANG, "-O2", "-g", "-target", target, "-Wall", "-Wno-unused-variable"]
    flags += ["-Wno-unused-function", "-I", str(PROGS), *_multiarch_include()]
    if cpu:
        flags.append(f"-mcpu={cpu}")
    flags += [f"-D{d}" for d in defines]
    if vmlinux:
        flags += ["-I", str(vmlinux_h().parent)]
    flags += list(extra)
    h = hashlib.sha256(" ".join(flags).encode())
    h.update(src.read_bytes())
    for header in sorted(PROGS.glob("*.h")):
        h.update(header.read_bytes())
    name = src.stem + (f"-{tag}" if tag else "")
    out = OUT / f"{name}-{h.hexdigest()[:12]}.o"
    if not out.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([*flags, "-c", str(src), "-o", str(tmp)], check=True)
        tmp.rename(out)
    return out
