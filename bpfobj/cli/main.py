"""The `bpfobj` command.

Exit codes: 0 success, 1 a bpfobj error (one message on stderr, no traceback), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from bpfobj.errors import BpfObjError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpfobj", description="Inspect, prepare and load BPF objects."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="list an object's programs, maps and BTF (no kernel)")
    p.add_argument("object", help="BPF object file (.o)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("disasm", help="disassemble an object (llvm-objdump -d format)")
    p.add_argument("object", help="BPF object file (.o)")
    p.add_argument("--program", metavar="NAME", help="only this program or subprogram")
    p.set_defaults(func=cmd_disasm)

    p = sub.add_parser("prepare", help="link and relocate for a target kernel (no kernel calls)")
    p.add_argument("object", help="BPF object file (.o)")
    p.add_argument("--btf", metavar="PATH",
                   help="target BTF: raw, ELF with .BTF, or btfhub .btf.tar.xz "
                        "(default: /sys/kernel/btf/vmlinux)")
    p.add_argument("--module-btf", metavar="NAME=PATH", action="append", default=[],
                   help="module BTF, split on the target vmlinux (repeatable)")
    p.add_argument("--program", metavar="NAME", action="append", default=None,
                   help="prepare only this program (repeatable; default: every autoload one)")
    p.add_argument("--core", choices=("user", "kernel"), default="user",
                   help="apply CO-RE here (user, like libbpf) or leave it to the kernel")
    p.add_argument("--arena-globals", choices=("start", "end"), default=None,
                   help="put __arena globals at the start or the end of the arena (default: "
                        "as libbpf 1.7: with --btf the start; for the running kernel the end "
                        "on Linux 7.0+, from its release)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_prepare)

    from bpfobj.cli import btf as btf_cli; btf_cli.register(sub)  # noqa: E702, I001
    from bpfobj.cli import gen as gen_cli; gen_cli.register(sub)  # noqa: E702, I001
    from bpfobj.cli import check as check_cli; check_cli.register(sub)  # noqa: E702, I001
    from bpfobj.cli import run as run_cli; run_cli.register(sub)  # noqa: E702, I001
    return parser


def cmd_prepare(args: argparse.Namespace) -> int:
    from bpfobj.object import BpfObject

    modules: dict[str, str] = {}
    for item in args.module_btf:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            print(f"bpfobj: --module-btf wants NAME=PATH, got {item!r}", file=sys.stderr)
            return 2
        modules[name] = path
    obj = BpfObject.open(args.object)
    prepared = obj.prepare(args.btf, module_btf=modules or None, core=args.core,
                           programs=args.program, arena_globals=args.arena_globals)
    doc = prepared.to_json()
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{obj.spec.name}[/] prepared against {doc['target'] or '(no BTF)'}")
    progs = Table(title="programs", title_justify="left")
    for col in ("name", "section", "insns", "map refs"):
        progs.add_column(col)
    for p in doc["programs"]:
        progs.add_row(p["name"], p["section"], str(len(p["insns"])), str(len(p["map_refs"])))
    console.print(progs)
    if "arena" in doc:
        a = doc["arena"]
        refs = sorted({r["arena_global"] for p in doc["programs"] for r in p["map_refs"]
                       if "arena_global" in r})
        console.print(f"__arena globals ({a['section']}, {a['size']} bytes): at offset "
                      f"{a['offset']:#x} of arena map {a['map']!r} (its {a['placement']}); "
                      f"used: {', '.join(refs) or '(none)'}")
    if doc["core_relos"]:
        relos = Table(title="CO-RE relocations", title_justify="left")
        for col in ("program", "insn", "kind", "local spec", "target", "old", "new", "outcome"):
            relos.add_column(col)
        for r in doc["core_relos"]:
            relos.add_row(r["program"], str(r["insn"]), r["kind"], r["local_spec"] or "",
                          r["target_spec"] or "-", str(r["old"]), str(r["new"]), r["outcome"])
        console.print(relos)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from bpfobj.object import BpfObject

    obj = BpfObject.open(args.object)
    summary = obj.spec.to_summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    _print_inspect(obj.spec.name, summary)
    return 0


def _print_inspect(name: str, summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{name}[/]: {summary['btf']['types']} BTF types, "
                  f"{summary['core_relos']} CO-RE relocations")
    progs = Table(title="programs", title_justify="left")
    for col in ("name", "section", "type", "attach type", "insns", "autoload"):
        progs.add_column(col)
    for p in summary["programs"]:
        progs.add_row(p["name"], p["section"], p["type"], p["expected_attach_type"] or "-",
                      str(p["insn_cnt"]), "yes" if p["autoload"] else "no")
    console.print(progs)
    maps = Table(title="maps", title_justify="left")
    for col in ("name", "section", "type", "key", "value", "max_entries", "flags"):
        maps.add_column(col)
    for m in summary["maps"]:
        maps.add_row(m["name"], m["section"], m["type"], str(m["key_size"]),
                     str(m["value_size"]), str(m["max_entries"]), hex(m["flags"]))
    console.print(maps)
    arena = summary.get("arena_globals")
    if arena:
        table = Table(title=f"__arena globals ({arena['section']}, {arena['size']} bytes, in "
                      f"map {arena['map']})", title_justify="left")
        for col in ("name", "offset", "size"):
            table.add_column(col)
        for v in arena["variables"]:
            table.add_row(v["name"], str(v["offset"]), str(v["size"]))
        console.print(table)


def cmd_disasm(args: argparse.Namespace) -> int:
    from bpfobj.object import BpfObject

    obj = BpfObject.open(args.object)
    sys.stdout.write(obj.disassemble(program=args.program))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(message)s")
    try:
        result: int = args.func(args)
        return result
    except BpfObjError as exc:
        print(f"bpfobj: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
