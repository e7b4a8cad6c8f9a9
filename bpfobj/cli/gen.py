"""``bpfobj gen min-btf``: BTF cut down to what objects' CO-RE relocations use (BTFGen).

    bpfobj gen min-btf --btf SRC OUT OBJ...            # == bpftool gen min_core_btf SRC OUT OBJ...
    bpfobj gen min-btf --btf SRC --module-btf mymod=mymod.btf OUT OBJ...   # + OUT.mymod
    bpfobj gen min-btf --btf-dir IN --out-dir OUT [-j N] [--xz] OBJ...     # a whole tree

Registered on the main parser by `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btfgen import MinBtf
    from bpfobj.check import KernelFiles

_XZ_SUFFIX = ".tar.xz"


def register(subparsers: Any) -> None:
    """Add ``gen`` and its subcommands to `subparsers` (argparse)."""
    gen = subparsers.add_parser("gen", help="generate files from objects (min-btf)")
    sub = gen.add_subparsers(dest="gen_command", required=True, metavar="SUBCOMMAND")
    p = sub.add_parser(
        "min-btf",
        help="minimised BTF for some objects' CO-RE relocations (bpftool gen min_core_btf)",
        description="Keep only the types and members of the source BTF that the objects' "
        "CO-RE relocations use, with their original sizes and offsets (bpftool's BTFGen "
        "rules). Single mode: --btf SRC OUT OBJ... writes raw BTF to OUT and, for "
        "relocations resolved in a module, split BTF OUT.<module>. Batch mode: --btf-dir "
        "IN --out-dir OUT OBJ... does it for every kernel BTF under IN (raw, ELF or "
        "btfhub .btf.tar.xz; modules in a modules/ directory beside vmlinux), keeping "
        "the tree layout.",
    )
    p.add_argument("--btf", metavar="SRC", help="source BTF (raw, ELF with .BTF, .btf.tar.xz)")
    p.add_argument("--module-btf", metavar="NAME=PATH", action="append", default=[],
                   help="module BTF, split on SRC (repeatable)")
    p.add_argument("--btf-dir", metavar="IN", help="batch mode: a tree of kernel BTF files")
    p.add_argument("--out-dir", metavar="OUT", help="batch mode: where to write the tree")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="batch mode: N processes (0: one per core)")
    p.add_argument("--xz", action="store_true",
                   help="batch mode: write .btf.tar.xz inputs back as .btf.tar.xz")
    p.add_argument("paths", nargs="+", metavar="[OUT] OBJ",
                   help="single mode: OUT then the objects; batch mode: the objects")
    p.set_defaults(func=cmd_min_btf)


def _usage(msg: str) -> int:
    print(f"bpfobj gen min-btf: {msg}", file=sys.stderr)
    return 2


def cmd_min_btf(args: argparse.Namespace) -> int:
    if bool(args.btf) == bool(args.btf_dir):
        return _usage("give either --btf SRC OUT OBJ... or --btf-dir IN --out-dir OUT OBJ...")
    if args.btf:
        if len(args.paths) < 2:
            return _usage("single mode takes OUT and at least one OBJ")
        modules: dict[str, str] = {}
        for item in args.module_btf:
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                return _usage(f"--module-btf wants NAME=PATH, got {item!r}")
            modules[name] = path
        return _single(args.btf, modules, args.paths[0], args.paths[1:])
    if not args.out_dir:
        return _usage("--btf-dir needs --out-dir")
    if args.module_btf:
        return _usage("--module-btf is for single mode (batch mode finds modules/ dirs)")
    return _batch(args.btf_dir, args.out_dir, args.paths, args.jobs, args.xz)


def _single(src: str, modules: dict[str, str], out: str, objects: list[str]) -> int:
    from bpfobj.btfgen import minimize

    result = minimize(src, objects, modules=modules or None)
    written = result.write(out)
    for path in written:
        print(f"{path}: {os.path.getsize(path)} bytes")
    return 0


# -- batch mode -------------------------------------------------------------------------------

_SPECS: list[Any] = []  # ObjectSpec / CoreObject, shared with forked workers


def _outputs(kernel: KernelFiles, out_dir: str, xz: bool) -> tuple[str, bool]:
    """(output path of the minimised vmlinux, compress it)."""
    rel = kernel.rel
    compress = False
    if kernel.format == "xz" and rel.endswith(_XZ_SUFFIX):
        rel = rel[: -len(_XZ_SUFFIX)]
        compress = xz
    return os.path.join(out_dir, rel), compress


def _one(job: tuple[KernelFiles, str, bool]) -> tuple[str, str | None, list[tuple[str, int]]]:
    """Minimise one kernel: (kernel rel path, error or None, [(written path, size)])."""
    from bpfobj.btfgen import BtfGen
    from bpfobj.check import load_target
    from bpfobj.errors import BpfObjError

    kernel, out_dir, xz = job
    try:
        gen = BtfGen(load_target(kernel))
        for spec in _SPECS:
            gen.record(spec)
        result = gen.build()
        out, compress = _outputs(kernel, out_dir, xz)
        return kernel.rel, None, _write(result, kernel, out, compress)
    except BpfObjError as exc:
        return kernel.rel, f"{type(exc).__name__}: {exc}", []


def _write(result: MinBtf, kernel: KernelFiles, out: str, compress: bool) -> list[tuple[str, int]]:
    from bpfobj.btfgen import write_file

    files: list[tuple[str, bytes]] = [(out, result.vmlinux)]
    for name, data in sorted(result.modules.items()):
        if kernel.module_layout == "dir":
            files.append((os.path.join(os.path.dirname(out), "modules", name), data))
        else:
            files.append((f"{out}.{name}", data))
    written = []
    for path, data in files:
        if compress and path == out:
            path, data = out + _XZ_SUFFIX, _tar_xz(os.path.basename(out), data)
        write_file(path, data)
        written.append((path, len(data)))
    return written


def _tar_xz(member: str, data: bytes) -> bytes:
    """A btfhub-style archive: one member `member` holding the raw BTF."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _batch(btf_dir: str, out_dir: str, objects: list[str], jobs: int, xz: bool) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from bpfobj.check import discover, jobs_count, run_parallel

    global _SPECS
    kernels = discover(btf_dir)
    if not kernels:
        print(f"bpfobj: no kernel BTF files under {btf_dir}", file=sys.stderr)
        return 1
    from bpfobj.btfgen import load_object

    _SPECS = [load_object(o) for o in objects]  # parsed once, shared by the forks
    err = Console(stderr=True)
    failures: list[tuple[str, str]] = []
    total_in = total_out = 0
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err, transient=True,
    ) as progress:
        task = progress.add_task("minimising", total=len(kernels))

        def done(res: tuple[str, str | None, list[tuple[str, int]]]) -> None:
            rel, error, _ = res
            if error is not None:
                failures.append((rel, error))
            progress.update(task, advance=1, description=rel)

        results = run_parallel(
            _one, [(k, out_dir, xz) for k in kernels], jobs_count(jobs), done
        )
    for kernel, (_, error, written) in zip(kernels, results, strict=True):
        if error is None:
            total_in += os.path.getsize(kernel.path)
            total_out += sum(size for _, size in written)
    ok = len(kernels) - len(failures)
    err.print(f"{ok}/{len(kernels)} kernels minimised into {out_dir}: "
              f"{total_in} -> {total_out} bytes")
    for rel, error in failures:
        print(f"bpfobj: {rel}: {error}", file=sys.stderr)
    return 1 if failures else 0
