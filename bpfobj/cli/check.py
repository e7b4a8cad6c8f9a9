"""``bpfobj check``: would these objects load on those kernels? (offline dry-run)

    bpfobj check prog.bpf.o other.bpf.o --btf-dir btf/ [-j 0] [--json]

Each object is prepared (no kernel calls) against every kernel BTF under the directory.
Exit 1 if an object fails (a hard error) on any kernel; poisoned relocations are reported
as "would fail in the verifier if reached" and do not change the exit code.

Registered on the main parser by `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import Console

    from bpfobj.check import KernelReport


def register(subparsers: Any) -> None:
    """Add the ``check`` command to `subparsers` (argparse)."""
    p = subparsers.add_parser(
        "check",
        help="dry-run prepare of objects against every kernel BTF under a directory",
        description="Prepare each OBJ (offline) against each kernel BTF under --btf-dir "
        "(raw, ELF with .BTF, btfhub .btf.tar.xz; modules in a modules/ directory beside "
        "vmlinux or named <kernel>.<module>) and report, per kernel, the CO-RE relocations "
        "patched / poisoned / failed and the programs that would be rejected. Exit 1 if "
        "an object fails on any kernel.",
    )
    p.add_argument("objects", nargs="+", metavar="OBJ", help="BPF object files (.o)")
    p.add_argument("--btf-dir", required=True, metavar="DIR", help="a tree of kernel BTF files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="N processes (0: one per core)")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from bpfobj.check import check, discover, jobs_count, to_json
    from bpfobj.object import BpfObject

    kernels = discover(args.btf_dir)
    if not kernels:
        print(f"bpfobj: no kernel BTF files under {args.btf_dir}", file=sys.stderr)
        return 1
    objects = [(path, BpfObject.open(path).spec) for path in args.objects]
    err = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err, transient=True,
    ) as progress:
        task = progress.add_task("checking", total=len(kernels))

        def done(rep: KernelReport) -> None:
            progress.update(task, advance=1, description=rep.kernel)

        reports = check(objects, kernels, jobs=jobs_count(args.jobs), on_result=done)
    doc = to_json(reports)
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        _print(Console(), reports)
    return 0 if doc["ok"] else 1


def _print(console: Console, reports: Sequence[KernelReport]) -> None:
    from rich.table import Table

    for k in reports:
        if k.error is not None:
            console.print(f"[bold]{k.kernel}[/]: [red]cannot read the BTF[/]: {k.error}")
            continue
        poisoned = sum(o.poisoned for o in k.objects)
        if k.hard_error:
            verdict = "[red]FAIL[/]: prepare fails (libbpf would not load the object)"
        elif poisoned:
            verdict = f"[yellow]ok[/], {poisoned} poisoned relocation(s)"
        else:
            verdict = "[green]ok[/]"
        table = Table(title=f"{k.kernel}  {verdict}", title_justify="left")
        for col in ("object", "patched", "poisoned", "failed", "programs rejected or at risk"):
            table.add_column(col, overflow="fold")
        for o in k.objects:
            lines = []
            if o.error is not None and not o.programs:
                lines.append(f"[red]{o.error}[/]")
            for p in o.programs:
                for e in p.errors:
                    lines.append(f"[red]{p.name}[/]: {e.text()}")
            for p in o.programs:
                for q in p.poisoned:
                    lines.append(f"[yellow]{p.name}[/]: would fail in the verifier if "
                                 f"reached: {q.text()}")
            table.add_row(o.object, str(o.patched), str(o.poisoned), str(o.failed),
                          "\n".join(lines) or "-")
        console.print(table)
    bad = sum(1 for k in reports if k.hard_error)
    console.print(f"{len(reports)} kernels: {len(reports) - bad} ok, {bad} failing")
