"""Dry-run prepare of many objects against many kernels' BTF: which would load where.

    kernels = discover("btf/")                      # every kernel BTF under a tree
    reports = check([spec1, spec2], kernels, jobs=2)
    for k in reports:
        for o in k.objects:
            print(k.kernel, o.object, o.patched, o.poisoned, o.failed, o.hard_error)

For each (kernel, object) the prepare phase runs offline, as `prepare` does it (CO-RE in
libbpf's order with candidate pruning, ksym externs, linking), but without stopping at the
first failure, so that every failing relocation and program is reported:

* a hard error (a CO-RE relocation libbpf fails on, a missing non-weak ksym, a link
  error) makes libbpf fail the whole object's load on that kernel;
* a poisoned relocation is not an error offline: the instruction becomes ``call
  0xbad2310`` and the verifier rejects the program only if that instruction is reachable,
  which cannot be known offline (a ``bpf_core_field_exists()`` guard usually makes it
  dead code). They are reported apart, as "would fail in the verifier if reached".

Kernel BTF trees (`discover`): any file holding raw BTF, an ELF file with .BTF (not a BPF
object) or a btfhub ``.btf.tar.xz`` is a kernel. Module BTF (split BTF) is attached to its
kernel when it sits in a ``modules/`` directory beside a ``vmlinux`` file (the layout of
build/btf-corpus) or is named ``<kernel file>.<module>`` (what ``bpfobj gen min-btf``
writes). Kernels are checked in parallel with one process per job (fork: the parsed
objects are shared, not re-parsed); big BTF uses the on-disk index cache of
`bpfobj.btf.reader`, so a second run over the same tree skips the index walks.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, Sequence

from bpfobj import records
from bpfobj.errors import BpfObjError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, Literal, TypeAlias

    from bpfobj.btf.target import TargetBtf
    from bpfobj.core.record import CoreRecord
    from bpfobj.spec import ObjectSpec

Status: TypeAlias = 'Literal["ok", "poisoned", "error"]'
KernelFormat: TypeAlias = 'Literal["raw", "elf", "xz"]'

_BTF_MAGIC = (b"\x9f\xeb", b"\xeb\x9f")
_XZ_MAGIC = b"\xfd7zXZ\x00"
_EM_BPF = 247
MODULES_DIR = "modules"


# ---------------------------------------------------------------------------------------
# Finding kernel BTF files
# ---------------------------------------------------------------------------------------


@records.frozen
class KernelFiles:
    """One kernel's BTF under a tree: ``rel`` is its path relative to the tree's root."""

    rel: str
    path: str
    format: KernelFormat
    modules: tuple[tuple[str, str], ...] = ()  # (module name, path), split on this kernel
    module_layout: Literal["dir", "suffix", ""] = ""


def _sniff(path: str) -> str | None:
    """"base", "split", "elf", "xz" or None (not BTF), from a file's first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
            if head[:2] in _BTF_MAGIC and len(head) >= 24:
                fmt = "<" if head[:2] == b"\x9f\xeb" else ">"
                hdr_len, _, _, str_off, str_len = struct.unpack_from(fmt + "I4I", head, 4)
                if not str_len:
                    return "split"
                f.seek(hdr_len + str_off)
                first = f.read(1)
                # a truncated file is a (broken) kernel: parsing it reports the problem
                return "split" if first not in (b"\0", b"") else "base"
            if head[:4] == b"\x7fELF" and len(head) >= 20:
                machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
                return None if machine == _EM_BPF else "elf"
            if head[:6] == _XZ_MAGIC:
                return "xz"
    except OSError:
        return None
    return None


def discover(root: str | os.PathLike[str]) -> list[KernelFiles]:
    """Every kernel BTF under `root` (sorted by relative path), with its modules."""
    top = os.fspath(root)
    kinds: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(".tmp"):
                continue
            path = os.path.join(dirpath, name)
            kind = _sniff(path)
            if kind is not None:
                kinds[path] = kind
    kernels: dict[str, KernelFiles] = {}
    modules: dict[str, list[tuple[str, str]]] = {}
    layout: dict[str, Literal["dir", "suffix"]] = {}
    for path, kind in kinds.items():
        if kind != "split":
            fmt: KernelFormat = "raw" if kind == "base" else kind  # type: ignore[assignment]
            kernels[path] = KernelFiles(os.path.relpath(path, top), path, fmt)
    for path, kind in kinds.items():
        if kind != "split":
            continue
        d, name = os.path.split(path)
        if os.path.basename(d) == MODULES_DIR:
            owner = os.path.join(os.path.dirname(d), "vmlinux")
            if owner in kernels:
                modules.setdefault(owner, []).append((name, path))
                layout[owner] = "dir"
                continue
        stem, dot, mod = name.rpartition(".")
        owner = os.path.join(d, stem)
        if dot and owner in kernels:
            modules.setdefault(owner, []).append((mod, path))
            layout[owner] = "suffix"
        # other split BTF has no known base: not a kernel of its own
    out = []
    for path, k in kernels.items():
        mods = tuple(sorted(modules.get(path, ())))
        out.append(records.evolve(k, modules=mods, module_layout=layout.get(path, "")))
    return sorted(out, key=lambda k: k.rel)


def load_target(kernel: KernelFiles) -> TargetBtf:
    """The kernel's target BTF, modules searched after vmlinux (libbpf's order)."""
    from bpfobj.btfgen import target_for

    return target_for(kernel.path, dict(kernel.modules) or None)


# ---------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------


@records.frozen
class Problem:
    """One failing or poisoned relocation (or a link/extern error when ``kind`` is "")."""

    program: str
    insn: int | None
    kind: str
    spec: str
    reason: str

    def text(self) -> str:
        where = f"insn {self.insn}: " if self.insn is not None else ""
        what = f"{self.kind} {self.spec}: " if self.kind else ""
        return f"{where}{what}{self.reason}"

    def to_json(self) -> dict[str, Any]:
        return records.asdict(self)


@records.frozen
class ProgramVerdict:
    """``error``: prepare fails; ``poisoned``: loads, but the verifier rejects it if a
    poisoned instruction is reachable; ``ok``: every relocation was patched."""

    name: str
    status: Status
    errors: tuple[Problem, ...] = ()
    poisoned: tuple[Problem, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "errors": [p.to_json() for p in self.errors],
            "poisoned": [p.to_json() for p in self.poisoned],
        }


@records.frozen
class ObjectVerdict:
    """One object on one kernel. Counts are per .BTF.ext relocation."""

    object: str
    patched: int
    poisoned: int
    failed: int
    programs: tuple[ProgramVerdict, ...]
    error: str | None = None  # an object-wide failure (ksym externs, a crash)

    @property
    def hard_error(self) -> bool:
        return self.error is not None or any(p.status == "error" for p in self.programs)

    def to_json(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "patched": self.patched,
            "poisoned": self.poisoned,
            "failed": self.failed,
            "hard_error": self.hard_error,
            "error": self.error,
            "programs": [p.to_json() for p in self.programs],
        }


@records.frozen
class KernelReport:
    kernel: str
    path: str
    objects: tuple[ObjectVerdict, ...]
    error: str | None = None  # the BTF itself could not be read
    seconds: float = 0.0

    @property
    def hard_error(self) -> bool:
        return self.error is not None or any(o.hard_error for o in self.objects)

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "path": self.path,
            "error": self.error,
            "hard_error": self.hard_error,
            "objects": [o.to_json() for o in self.objects],
        }


def _problem(rec: CoreRecord, program: str | None = None) -> Problem:
    return Problem(
        program=program or rec.program or "",
        insn=rec.insn,
        kind=rec.kind,
        spec=rec.local_spec or rec.access_str,
        reason=rec.reason,
    )


def check_object(spec: ObjectSpec, target: TargetBtf | None, name: str | None = None) -> ObjectVerdict:
    """Prepare `spec` for `target` as `bpfobj.prepare.prepare` does, collecting every
    failure instead of raising the first."""
    from bpfobj.core.engine import CoreEngine
    from bpfobj.prepare import resolve_externs

    label = name or spec.name
    engine = CoreEngine(spec, target)
    selected = [p for p in spec.programs.values() if p.autoload]
    code: dict[str, list[Any]] = {}
    own: dict[str, list[CoreRecord]] = {}
    counts = {"patched": 0, "poisoned": 0, "error": 0}
    for prog in (*selected, *spec.subprograms.values()):
        insns = list(prog.instructions)
        relos = engine.apply(prog, insns, stop_at_error=False)
        for rec in relos:
            counts[rec.outcome] += 1
        own[prog.name] = relos
        code[prog.name] = insns

    object_error: str | None = None
    try:
        resolved = resolve_externs(spec, target)
    except BpfObjError as exc:
        object_error = f"{type(exc).__name__}: {exc.message}"
        resolved = None

    links = _links(spec, selected, resolved) if resolved is not None else {}
    verdicts = []
    for prog in selected:
        errors: list[Problem] = []
        layout: list[tuple[str, int]] = [(prog.name, 0)]
        linked = links.get(prog.name)
        if isinstance(linked, Problem):
            errors.append(linked)
        elif linked is not None:
            layout = linked
        poisoned: list[Problem] = []
        for sub, _base in layout:
            for rec in own.get(sub, ()):
                if rec.outcome == "error":
                    errors.append(_problem(rec, sub))
                elif rec.outcome == "poisoned":
                    poisoned.append(_problem(rec, sub))
        if object_error is not None and not errors:
            errors.append(Problem(prog.name, None, "", "", object_error))
        status: Status = "error" if errors else "poisoned" if poisoned else "ok"
        verdicts.append(ProgramVerdict(prog.name, status, tuple(errors), tuple(poisoned)))
    return ObjectVerdict(
        object=label,
        patched=counts["patched"],
        poisoned=counts["poisoned"],
        failed=counts["error"],
        programs=tuple(verdicts),
        error=object_error,
    )


# Link results per (object, extern resolution): which subprograms each program appends
# (its layout) or why linking fails. Neither depends on the CO-RE patches (they never touch
# calls), so an object is linked once per distinct extern resolution, not once per kernel.
_LINKS: dict[tuple[int, tuple[Any, ...]], tuple[Any, dict[str, list[tuple[str, int]] | Problem]]] = {}


def _links(
    spec: ObjectSpec, selected: Sequence[Any], resolved: Sequence[Any]
) -> dict[str, list[tuple[str, int]] | Problem]:
    from bpfobj.linker import Linker

    key = (id(spec), tuple(resolved))
    hit = _LINKS.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    linker = Linker(spec)
    out: dict[str, list[tuple[str, int]] | Problem] = {}
    for prog in selected:
        try:
            out[prog.name] = linker.link(prog, lambda p: p.instructions, resolved).layout
        except BpfObjError as exc:
            out[prog.name] = Problem(
                prog.name, exc.insn, "", "", f"{type(exc).__name__}: {exc.message}"
            )
    if len(_LINKS) > 64:
        _LINKS.clear()
    _LINKS[key] = (spec, out)
    return out


# ---------------------------------------------------------------------------------------
# Running over many kernels
# ---------------------------------------------------------------------------------------

# The objects a worker checks: set in the parent before forking, so that the workers
# share the parsed objects instead of parsing them again.
_OBJECTS: list[tuple[str, ObjectSpec]] = []


def check_kernel(kernel: KernelFiles, objects: Sequence[tuple[str, ObjectSpec]] | None = None) -> KernelReport:
    """Every object against one kernel (never raises for a bad BTF or object)."""
    import time

    objs = _OBJECTS if objects is None else objects
    t0 = time.perf_counter()
    try:
        target = load_target(kernel)
    except BpfObjError as exc:
        return KernelReport(kernel.rel, kernel.path, (), f"{type(exc).__name__}: {exc.message}")
    verdicts = []
    for label, spec in objs:
        try:
            verdicts.append(check_object(spec, target, label))
        except BpfObjError as exc:
            verdicts.append(
                ObjectVerdict(label, 0, 0, 0, (), f"{type(exc).__name__}: {exc.message}")
            )
    return KernelReport(kernel.rel, kernel.path, tuple(verdicts), seconds=time.perf_counter() - t0)


def _work(kernel: KernelFiles) -> KernelReport:
    return check_kernel(kernel)


def run_parallel(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    jobs: int,
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """``[func(i) for i in items]`` over `jobs` forked processes (in this process for
    jobs <= 1), calling `on_result` as results arrive; results come back in item order."""
    results: list[Any] = [None] * len(items)
    if jobs <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            results[i] = func(item)
            if on_result is not None:
                on_result(results[i])
        return results
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    chunk = max(1, min(8, len(items) // (jobs * 4)))
    with ctx.Pool(min(jobs, len(items))) as pool:
        for i, res in pool.imap_unordered(_indexed, [(func, i, x) for i, x in enumerate(items)],
                                          chunksize=chunk):
            results[i] = res
            if on_result is not None:
                on_result(res)
    return results


def _indexed(arg: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, Any]:
    func, i, item = arg
    return i, func(item)


def jobs_count(jobs: int | None) -> int:
    """-j N: N processes; 0 or None: one per core."""
    if not jobs:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1
        )
    return max(1, jobs)


def check(
    objects: Sequence[tuple[str, ObjectSpec]],
    kernels: Sequence[KernelFiles],
    *,
    jobs: int = 1,
    on_result: Callable[[KernelReport], None] | None = None,
) -> list[KernelReport]:
    """Check each (label, spec) against each kernel; `jobs` processes (fork)."""
    global _OBJECTS
    _OBJECTS = list(objects)
    # imported once here rather than in every forked worker
    import bpfobj.btfgen
    import bpfobj.core.engine
    import bpfobj.core.record
    import bpfobj.linker
    import bpfobj.prepare  # noqa: F401
    try:
        return run_parallel(_work, kernels, jobs, on_result)
    finally:
        _OBJECTS = []


def iter_problems(reports: Sequence[KernelReport]) -> Iterator[tuple[KernelReport, ObjectVerdict]]:
    """(kernel, object) pairs with a hard error."""
    for k in reports:
        for o in k.objects:
            if o.hard_error:
                yield k, o


def to_json(reports: Sequence[KernelReport]) -> dict[str, Any]:
    """The ``bpfobj check --json`` document."""
    return {
        "ok": not any(k.hard_error for k in reports),
        "kernels": [k.to_json() for k in reports],
        "summary": {
            "kernels": len(reports),
            "failing_kernels": sum(1 for k in reports if k.hard_error),
            "poisoned_kernels": sum(
                1 for k in reports if not k.hard_error and any(o.poisoned for o in k.objects)
            ),
        },
    }


__all__ = [
    "KernelFiles",
    "KernelReport",
    "ObjectVerdict",
    "Problem",
    "ProgramVerdict",
    "check",
    "check_kernel",
    "check_object",
    "discover",
    "load_target",
]
