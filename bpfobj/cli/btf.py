"""``bpfobj btf ...``: dump BTF (bpftool's raw listing or a C header) and query archives.

    bpfobj btf dump /sys/kernel/btf/vmlinux                 # == bpftool btf dump file ...
    bpfobj btf dump /sys/kernel/btf/vmlinux --format c > vmlinux.h
    bpfobj btf dump prog.o --format c --flavour bpftool-7.5
    bpfobj btf dump /sys/kernel/btf/nf_tables              # split on vmlinux, as bpftool
    bpfobj btf dump mod.btf --base vmlinux.btf
    bpfobj btf archive list ROOT [--distro ubuntu] [--arch x86_64]
    bpfobj btf archive lookup ROOT [--release R] [--os-release ubuntu/20.04] [--arch arm64]

Registered on the main parser by `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any


class _Flavours:
    """`bpfobj.btf.cdump.FLAVOURS` names as argparse choices, imported only when argparse
    looks at them (cdump costs ~40 ms to import; every command builds this parser)."""

    def _names(self) -> list[str]:
        from bpfobj.btf.cdump import FLAVOURS

        return sorted(FLAVOURS)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def register(subparsers: Any) -> None:
    """Add the ``btf`` command and its subcommands to `subparsers` (argparse)."""
    btf = subparsers.add_parser("btf", help="dump BTF (raw or as a C header), query archives")
    sub = btf.add_subparsers(dest="btf_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser(
        "dump",
        help="dump BTF like `bpftool btf dump file PATH [format c]`",
        description="Dump the BTF of PATH: raw BTF, an ELF file with .BTF (a BPF object, "
        "vmlinux, a module), a btfhub .btf.tar.xz, or /sys/kernel/btf/<name> (a module "
        "there is split on /sys/kernel/btf/vmlinux, as bpftool does).",
    )
    p.add_argument("path", metavar="PATH", help="file holding the BTF")
    p.add_argument(
        "--format", "-f", choices=("raw", "c"), default="raw",
        help="raw: bpftool's type listing (default); c: a C header (vmlinux.h)",
    )
    p.add_argument(
        "--base", "-B", metavar="PATH",
        help="base BTF for split BTF (any file PATH accepts)",
    )
    p.add_argument(
        "--type", dest="types", metavar="ID", type=int, action="append", default=None,
        help="only this type id (repeatable); for C, with the types it needs",
    )
    p.add_argument(
        "--flavour", choices=_Flavours(), default="default", metavar="NAME",
        help="C only: which bpftool's header to reproduce (%(choices)s). default: libbpf 1.5's "
        "declarations in id order; bpftool-7.1-debian: Debian 12's bpftool byte for "
        "byte (1- and 8-byte enums lose their mode() attribute); libbpf-1.1; "
        "linux-6.12 / bpftool-7.5: sorted, with kfunc prototypes",
    )
    p.add_argument(
        "--sort", action=argparse.BooleanOptionalAction, default=None,
        help="C only: bpftool 7.5's sorted order (overrides the flavour's)",
    )
    p.set_defaults(func=cmd_btf_dump)

    arch = sub.add_parser("archive", help="btfhub-style BTF archives")
    asub = arch.add_subparsers(dest="archive_command", required=True, metavar="ACTION")
    p = asub.add_parser("list", help="list the kernels an archive holds")
    p.add_argument("root", metavar="ROOT", help="archive root (<distro>/<version>/<arch>/...)")
    p.add_argument("--distro", help="only this distribution (os-release ID)")
    p.add_argument("--version", dest="distro_version", help="only this VERSION_ID")
    p.add_argument("--arch", help="only this architecture (x86_64, arm64)")
    p.set_defaults(func=cmd_btf_archive_list)

    p = asub.add_parser(
        "lookup", help="print the BTF file of a kernel (default: this machine's)"
    )
    p.add_argument("root", metavar="ROOT", help="archive root")
    p.add_argument("--release", help="kernel release (default: uname -r)")
    p.add_argument(
        "--os-release", metavar="ID/VERSION_ID",
        help="distribution, e.g. ubuntu/20.04 (default: /etc/os-release)",
    )
    p.add_argument("--arch", help="x86_64 or arm64 (default: this machine's)")
    p.set_defaults(func=cmd_btf_archive_lookup)


def cmd_btf_dump(args: argparse.Namespace) -> int:
    from bpfobj import records
    from bpfobj.btf.cdump import CDumpOptions, iter_c
    from bpfobj.btf.dump import dump_raw, open_btf

    btf = open_btf(args.path, base=args.base)
    out = sys.stdout
    if args.types is not None:
        bad = [t for t in args.types if not 0 <= t <= len(btf)]
        if bad:
            print(
                f"bpfobj: type id {bad[0]} is out of range (valid: 0..{len(btf)})",
                file=sys.stderr,
            )
            return 2
    if args.format == "raw":
        for chunk in dump_raw(btf, args.types):
            out.write(chunk)
        out.flush()
        return 0
    options = CDumpOptions.flavour(args.flavour)
    if args.sort is not None:
        options = records.evolve(options, sort=args.sort)
    warnings: list[str] = []
    try:
        for chunk in iter_c(btf, options, type_ids=args.types, warnings=warnings):
            out.write(chunk)
        out.flush()
    finally:
        for line in warnings:
            print(f"libbpf: {line}", file=sys.stderr)
    return 0


def cmd_btf_archive_list(args: argparse.Namespace) -> int:
    from bpfobj.btf.archive import BtfArchive

    archive = BtfArchive(args.root)
    kernels = archive.kernels(distro=args.distro, version=args.distro_version, arch=args.arch)
    for k in kernels:
        print(f"{k.distro}\t{k.version}\t{k.arch}\t{k.release}\t{k.path}")
    if not kernels:
        print(f"bpfobj: no kernels in {args.root}", file=sys.stderr)
        return 1
    return 0


def cmd_btf_archive_lookup(args: argparse.Namespace) -> int:
    from bpfobj.btf.archive import BtfArchive

    path = BtfArchive(args.root).lookup(args.release, args.os_release, args.arch)
    print(path)
    return 0


__all__ = ["register"]
