"""`CoreRecord`: the log entry of one CO-RE relocation, and `apply` which produces it.

A record says what was relocated (program, instruction, kind, local type and spec), which
candidates were looked at and why each did or did not match, what was chosen, the value
before and after, and the outcome: ``patched``, ``poisoned`` (``call 0xbad2310``) or
``error`` (libbpf would fail the load). Each record is also a structlog debug event
``core_relo``, so ``bpfobj`` at debug level shows every decision.
"""

from __future__ import annotations

from collections.abc import MutableSequence

from bpfobj import log as _log
from bpfobj import records
from bpfobj.core.patch import PatchResult, patch
from bpfobj.core.relo import CandidateResult, CoreDecision, Outcome
from bpfobj.errors import CoreError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any


@records.frozen
class CoreRecord:
    """One relocation as it was decided and applied (JSON-able via `to_json`)."""

    program: str | None
    insn: int
    """Index of the relocated instruction in its program (the caller moves it with `placed`
    when subprograms are appended); by default the index in the ELF section."""
    kind: str
    local_type_id: int
    local_spec: str | None
    candidates: tuple[CandidateResult, ...]
    target_btf: str | None
    target_type_id: int | None
    target_spec: str | None
    old: int | None
    new: int | None
    outcome: Outcome
    reason: str
    relo: int = 0
    """Index of the relocation in its .BTF.ext section (libbpf's ``relo #N``)."""
    access_str: str = ""
    log: tuple[str, ...] = records.field(default=(), repr=False)
    """libbpf-format log lines of this relocation."""
    errno: int = 0
    """libbpf's error number when outcome is "error"."""

    def placed(self, *, program: str | None = None, insn: int | None = None) -> CoreRecord:
        """A copy moved to another program / instruction index (subprogram appended)."""
        return records.evolve(
            self,
            program=program if program is not None else self.program,
            insn=insn if insn is not None else self.insn,
        )

    def as_error(self, **context: Any) -> CoreError:
        """The CoreError libbpf's failure on this relocation corresponds to."""
        cands = ", ".join(
            f"{c.btf} [{c.type_id}] {c.name}" + ("" if c.matched else f" ({c.reason})")
            for c in self.candidates
        )
        context.setdefault(
            "hint",
            "the target kernel's types disagree with the program's; guard the access with "
            "bpf_core_field_exists()/bpf_core_type_exists(), or use a ___flavor type per "
            "kernel layout",
        )
        err = CoreError(
            f"CO-RE relocation #{self.relo} ({self.kind}) failed: {self.reason}"
            + (f"; candidates: {cands}" if cands else "; no candidates in the target BTF"),
            program=context.pop("program", None) or self.program,
            insn=context.pop("insn", None) if "insn" in context else self.insn,
            type=context.pop("type", None) or (self.local_spec or f"[{self.local_type_id}]"),
            errno=self.errno or None,
            **context,
        )
        setattr(err, "record", self)  # noqa: B010
        return err

    def to_json(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "insn": self.insn,
            "relo": self.relo,
            "kind": self.kind,
            "local_type_id": self.local_type_id,
            "access_str": self.access_str,
            "local_spec": self.local_spec,
            "candidates": [c.to_json() for c in self.candidates],
            "target_btf": self.target_btf,
            "target_type_id": self.target_type_id,
            "target_spec": self.target_spec,
            "old": self.old,
            "new": self.new,
            "outcome": self.outcome,
            "reason": self.reason,
        }

    def emit(self) -> None:
        """Log this record as a structlog debug event ``core_relo``."""
        if _log.enabled():
            _log.debug("core_relo", **self.to_json())


def make_record(
    decision: CoreDecision,
    result: PatchResult | None = None,
    *,
    program: str | None = None,
    insn: int | None = None,
    error: CoreError | None = None,
) -> CoreRecord:
    """The record of `decision`, applied with `result` (or failed with `error`)."""
    outcome: Outcome = decision.outcome
    reason = decision.reason
    old: int | None = decision.orig_val
    new: int | None = None if decision.poison else decision.new_val
    lines = decision.log
    if result is not None:
        outcome = result.outcome
        lines = (*decision.log, *result.log)
        if result.outcome == "patched":
            old, new = result.old, result.new
        else:
            new = None
            reason = result.reason or reason
    if error is not None:
        outcome = "error"
        reason = str(getattr(error, "reason", error.message))
        lines = tuple(getattr(error, "log", lines))
    if outcome == "error":
        old = new = None
    return CoreRecord(
        program=program if program is not None else (decision.program or None),
        insn=insn if insn is not None else decision.insn_idx,
        kind=decision.kind_label,
        local_type_id=decision.local_type_id,
        local_spec=decision.local_spec,
        candidates=decision.candidates,
        target_btf=decision.target_btf,
        target_type_id=decision.target_type_id,
        target_spec=decision.target_spec,
        old=old,
        new=new,
        outcome=outcome,
        reason=reason,
        relo=decision.relo_idx,
        access_str=decision.access_str,
        log=lines,
        errno=(
            int(getattr(error, "extra", {}).get("errno") or 22)
            if error is not None
            else decision.errno
        ),
    )


def apply(
    insns: MutableSequence[Any],
    insn_idx: int,
    decision: CoreDecision,
    *,
    program: str | None = None,
    insn: int | None = None,
) -> CoreRecord:
    """Patch `insns` with `decision`, log and return its `CoreRecord`.

    Raises CoreError (with the record as ``err.record``) when libbpf would fail the load:
    an error decision, or an instruction that does not fit the relocation.
    """
    where = insn if insn is not None else insn_idx
    if decision.outcome == "error":
        record = make_record(decision, program=program, insn=where)
        record.emit()
        try:
            decision.raise_error(insn=where, program=program)
        except CoreError as err:
            setattr(err, "record", record)  # noqa: B010
            raise
    try:
        result = patch(insns, insn_idx, decision)
    except CoreError as err:
        record = make_record(decision, program=program, insn=where, error=err)
        record.emit()
        setattr(err, "record", record)  # noqa: B010
        raise
    record = make_record(decision, result, program=program, insn=where)
    record.emit()
    return record
