"""Compile the C harnesses that run the system libbpf (tests/harness, bench/harness) with
gcc, cached by content.

Binaries land in <out_dir>/<name>-<hash> (build/harness for the tests); the hash covers the
compiler, flags and libraries, the source, every header beside it (tests/harness:
harness_json.h, map_section.h: what the harnesses share) and the system's libbpf.h, so an
edit rebuilds and nothing else does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "harness"
OUT = ROOT / "build" / "harness"
CC = os.environ.get("CC", "gcc")
FLAGS = ("-O2", "-Wall", "-Wextra")
LIBS = ("-lbpf", "-lelf", "-lz")
LIBBPF_HEADER = Path("/usr/include/bpf/libbpf.h")
#: BPFOBJ_LIBBPF_PREFIX=DIR builds the harnesses against the libbpf installed under DIR
#: (DIR/include/bpf/libbpf.h, DIR/lib64/libbpf.a: ``make -C src install
#: BUILD_STATIC_ONLY=1 DESTDIR=... PREFIX=`` in a libbpf checkout) instead of the system's,
#: e.g. one new enough for __arena globals (1.4+; Debian 12's libbpf-dev is 1.1).
LIBBPF_PREFIX = os.environ.get("BPFOBJ_LIBBPF_PREFIX")
if LIBBPF_PREFIX:
    _prefix = Path(LIBBPF_PREFIX)
    LIBBPF_HEADER = _prefix / "include" / "bpf" / "libbpf.h"
    FLAGS = (*FLAGS, "-I", str(_prefix / "include"))
    _static = next((p for p in (_prefix / "lib64" / "libbpf.a", _prefix / "lib" / "libbpf.a")
                    if p.exists()), _prefix / "lib64" / "libbpf.a")
    LIBS = (str(_static), "-lelf", "-lz")


def missing_reason() -> str | None:
    """Why no harness can be built here (None when one can)."""
    if shutil.which(CC) is None:
        return f"{CC} is not installed"
    if not LIBBPF_HEADER.exists():
        if LIBBPF_PREFIX:
            return f"{LIBBPF_HEADER} is missing (BPFOBJ_LIBBPF_PREFIX={LIBBPF_PREFIX})"
        return f"{LIBBPF_HEADER} is missing (apt-get install libbpf-dev libelf-dev zlib1g-dev)"
    return None


def source(name: str) -> Path:
    """tests/harness/<name>.c"""
    return HARNESS / f"{name}.c"


def build(name: str, extra: tuple[str, ...] = ()) -> Path:
    """Compile tests/harness/<name>.c with FLAGS and `extra` into build/harness.

    Raises subprocess.CalledProcessError (gcc's stderr in ``stderr``) when gcc fails.
    """
    return build_file(source(name), OUT, (*FLAGS, *extra))


def build_or_skip(name: str, extra: tuple[str, ...] = ()) -> Path:
    """`build` inside a test: skips naming what is missing, fails with gcc's message."""
    import pytest

    if (reason := missing_reason()) is not None:
        pytest.skip(reason)
    try:
        return build(name, extra)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"building {source(name).name} failed:\n{exc.stderr}")


def build_file(src: Path, out_dir: Path, flags: Sequence[str] = FLAGS) -> Path:
    """Compile `src` into `out_dir` (cached, see the module doc) and return the binary.

    Raises subprocess.CalledProcessError (gcc's stderr in ``stderr``) when gcc fails.
    """
    h = hashlib.sha256(" ".join((CC, *flags, *LIBS)).encode())
    h.update(src.read_bytes())
    for header in sorted(src.parent.glob("*.h")):
        h.update(header.read_bytes())
    if LIBBPF_HEADER.exists():
        h.update(LIBBPF_HEADER.read_bytes())
    out = out_dir / f"{src.stem}-{h.hexdigest()[:12]}"
    if not out.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        subprocess.run(
            [CC, *flags, "-o", str(tmp), str(src), *LIBS],
            check=True,
            capture_output=True,
            text=True,
        )
        tmp.rename(out)
    return out


def build_or_none(src: Path, out_dir: Path) -> Path | None:
    """`build_file`, or None with a note on stdout when it cannot be built (the benchmarks
    then print no libbpf column)."""
    if (reason := missing_reason()) is not None:
        print(f"(libbpf harness not built: {reason})")
        return None
    try:
        return build_file(src, out_dir)
    except subprocess.CalledProcessError as exc:
        print(f"(libbpf harness not built: {exc.stderr.strip()[:300]})")
        return None
