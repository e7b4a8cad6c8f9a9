"""`CoreEngine`: all CO-RE relocations of one object, in libbpf's order.

libbpf (bpf_object__relocate_core) walks the .BTF.ext core_relo sections in file order and
each section's records in order, skipping records of programs that will not be loaded
(autoload off) and of eliminated __weak subprograms. Candidate lists are cached per local
type and pruned as relocations match, so a decision can depend on the relocations before
it: the engine therefore decides every relocation of the object in that order once, then
`apply` patches one (sub)program's own instructions with its decisions.
"""

from __future__ import annotations

from collections.abc import MutableSequence, Sequence

from bpfobj.arch import ByteOrder
from bpfobj.core.candidates import CoreCache, TargetBtf
from bpfobj.core.record import CoreRecord, apply
from bpfobj.core.relo import CoreDecision, resolve
from bpfobj.uapi import CoreReloKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

INSN_SIZE = 8


def targets_of(target: Any) -> list[TargetBtf]:
    """Normalise a target description to the engine's list (main BTF first, then modules).

    Accepts None, a sequence of `TargetBtf`, an object with ``all()`` yielding
    ``(source, btf)`` pairs (bpfobj.btf.target), or a bare BTF (taken as vmlinux).
    """
    if target is None:
        return []
    if isinstance(target, TargetBtf):
        return [target]
    if isinstance(target, Sequence) and not isinstance(target, str | bytes):
        out: list[TargetBtf] = []
        for t in target:
            out.extend(targets_of(t))
        return out
    all_ = getattr(target, "all", None)
    if callable(all_):
        override = bool(getattr(target, "override", False) or getattr(target, "custom", False))
        pairs = list(all_())
        return [
            TargetBtf(name=str(name), btf=btf, override=override and i == 0)
            for i, (name, btf) in enumerate(pairs)
        ]
    if hasattr(target, "type") and hasattr(target, "find"):
        return [TargetBtf(name="vmlinux", btf=target)]
    raise TypeError(f"cannot use {type(target).__name__} as a CO-RE target BTF")


def _sec(name: str) -> str:
    return name[1:] if name.startswith("?") else name


class CoreEngine:
    """Decides an object's CO-RE relocations against `target` and patches programs.

    `spec` is a `bpfobj.spec.ObjectSpec` (its ``btf``, ``btf_ext``, ``programs`` and
    ``subprograms`` are used); `target` anything `targets_of` accepts.
    """

    def __init__(self, spec: Any, target: Any, *, byteorder: ByteOrder | None = None) -> None:
        self.spec = spec
        self.targets = targets_of(target)
        self.cache = CoreCache()
        bo = byteorder or getattr(spec, "byteorder", None) or "little"
        self.byteorder: ByteOrder = "big" if bo == "big" else "little"
        # (program name) -> [(insn index in the program, decision)]
        self._decided: dict[str, list[tuple[int, CoreDecision]]] | None = None

    # -- deciding ---------------------------------------------------------------------

    def _programs(self) -> list[Any]:
        return [*self.spec.programs.values(), *self.spec.subprograms.values()]

    def _owner(self, section: str, insn_idx: int) -> Any | None:
        """libbpf find_prog_by_sec_insn: the (sub)program holding that section insn."""
        for p in self._programs():
            if _sec(p.section) != _sec(section):
                continue
            start = int(p.section_offset)
            if start <= insn_idx < start + len(p.instructions):
                return p
        return None

    def decide(self, relo: Any, relo_idx: int, program: str) -> CoreDecision:
        """Decide one relocation (in libbpf's order, for the pruning to match)."""
        btf = self.spec.btf
        if not self.targets and int(relo.kind) != CoreReloKind.TYPE_ID_LOCAL:
            return CoreDecision(
                kind=int(relo.kind),
                insn_off=int(relo.insn_off),
                local_type_id=int(relo.type_id),
                access_str=str(relo.access_str),
                local_spec=None,
                outcome="error",
                reason="no target BTF to relocate against",
                errno=22,
                program=program,
                relo_idx=relo_idx,
            )
        return resolve(
            btf,
            relo,
            self.targets,
            self.cache,
            byteorder=self.byteorder,
            program=program,
            relo_idx=relo_idx,
        )

    def decide_all(self) -> dict[str, list[tuple[int, CoreDecision]]]:
        """Every relocation of every autoloaded (sub)program, keyed by program name."""
        if self._decided is not None:
            return self._decided
        decided: dict[str, list[tuple[int, CoreDecision]]] = {}
        ext = getattr(self.spec, "btf_ext", None)
        sections: dict[str, list[Any]] = dict(getattr(ext, "core_relos", None) or {})
        for sec_name, relos in sections.items():
            for i, relo in enumerate(relos):
                sec_insn = int(relo.insn_off) // INSN_SIZE
                prog = self._owner(sec_name, sec_insn)
                if prog is None:
                    continue  # belongs to an eliminated weak subprogram
                if not (prog.autoload or prog.is_subprog):
                    continue  # not going to be loaded
                idx = sec_insn - int(prog.section_offset)
                decision = self.decide(relo, i, prog.name)
                decided.setdefault(prog.name, []).append((idx, decision))
        self._decided = decided
        return decided

    # -- patching ---------------------------------------------------------------------

    def decisions_for(self, prog: Any) -> list[tuple[int, CoreDecision]]:
        decided = self.decide_all()
        hit = decided.get(prog.name)
        if hit is not None:
            return hit
        # a program outside libbpf's set (autoload off but asked for): decide it now
        out: list[tuple[int, CoreDecision]] = []
        ext = getattr(self.spec, "btf_ext", None)
        for sec_name, relos in (getattr(ext, "core_relos", None) or {}).items():
            if _sec(sec_name) != _sec(prog.section):
                continue
            for i, relo in enumerate(relos):
                sec_insn = int(relo.insn_off) // INSN_SIZE
                owner = self._owner(sec_name, sec_insn)
                if owner is None or owner.name != prog.name:
                    continue
                idx = sec_insn - int(owner.section_offset)
                out.append((idx, self.decide(relo, i, owner.name)))
        decided[prog.name] = out
        return out

    def apply(
        self, prog: Any, insns: MutableSequence[Any], *, stop_at_error: bool = True
    ) -> list[CoreRecord]:
        """Patch `insns` (the program's own instructions) and return one record per relo.

        Stops at the first relocation libbpf would fail on: its record has outcome
        "error" and is the last one returned (raise it with `CoreRecord.as_error`).
        With ``stop_at_error=False`` every relocation is decided and recorded (for a
        report of all failures, as `bpfobj check` gives).
        """
        records: list[CoreRecord] = []
        from bpfobj.errors import CoreError

        for idx, decision in self.decisions_for(prog):
            try:
                records.append(apply(insns, idx, decision, program=prog.name, insn=idx))
            except CoreError as err:
                record = getattr(err, "record", None)
                if record is None:
                    raise
                records.append(record)
                if stop_at_error:
                    break
        return records
