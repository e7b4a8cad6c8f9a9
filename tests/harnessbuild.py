"""Compile the libbpf harnesses under tests/harness with gcc against the system libbpf,
cached by content.

Binaries land in build/harness/<name>-<hash>; the hash covers the compiler, flags and
libraries, the source, every header of tests/harness (harness_json.h, map_section.h:
what the harnesses share) and the system's libbpf.h, so an edit rebuilds and nothing else
does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "harness"
OUT = ROOT / "build" / "harness"
CC = os.environ.get("CC", "gcc")
FLAGS = ("-O2", "-Wall", "-Wextra")
LIBS = ("-lbpf", "-lelf", "-lz")
LIBBPF_HEADER = Path("/usr/include/bpf/libbpf.h")


def missing_reason() -> str | None:
    """Why no harness can be built here (None when one can)."""
    if shutil.which(CC) is None:
        return f"{CC} is not installed"
    if not LIBBPF_HEADER.exists():
        return f"{LIBBPF_HEADER} is missing (apt-get install libbpf-dev libelf-dev zlib1g-dev)"
    return None


def source(name: str) -> Path:
    """tests/harness/<name>.c"""
    return HARNESS / f"{name}.c"


def build(name: str, extra: tuple[str, ...] = ()) -> Path:
    """Compile tests/harness/<name>.c with FLAGS and `extra` and return the binary.

    Raises subprocess.CalledProcessError (gcc's stderr in ``stderr``) when gcc fails.
    """
    src = source(name)
    cmd = (CC, *FLAGS, *extra, *LIBS)
    h = hashlib.sha256(" ".join(cmd).encode())
    h.update(src.read_bytes())
    for header in sorted(HARNESS.glob("*.h")):
        h.update(header.read_bytes())
    if LIBBPF_HEADER.exists():
        h.update(LIBBPF_HEADER.read_bytes())
    out = OUT / f"{name}-{h.hexdigest()[:12]}"
    if not out.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        subprocess.run(
            [CC, *FLAGS, *extra, "-o", str(tmp), str(src), *LIBS],
            check=True,
            capture_output=True,
            text=True,
        )
        tmp.rename(out)
    return out
