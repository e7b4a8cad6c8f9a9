"""The CO-RE engine: compute a decision per relocation, then patch the instructions.

A port of libbpf's relo_core.c (and the candidate search of libbpf.c) whose decisions,
spec texts and patched instructions are the same as libbpf's for the same object and
target BTF::

    from bpfobj.core import CoreCache, TargetBtf, apply, resolve

    targets = [TargetBtf("vmlinux", vmlinux_btf)]
    cache = CoreCache()                      # one per object, relocations in order
    decision = resolve(obj_btf, relo, targets, cache, program="prog", relo_idx=i)
    record = apply(insns, insn_idx, decision, program="prog")   # or patch(...)

Pure: no bpf(2), no ctypes, no ELF reading.
"""

from bpfobj.core.candidates import (
    Candidate,
    CoreCache,
    EssentialIndex,
    TargetBtf,
    find_cands,
    index_for,
)
from bpfobj.core.compat import (
    essential_name,
    essential_name_len,
    fields_are_compat,
    names_match,
    types_are_compat,
    types_match,
)
from bpfobj.core.engine import CoreEngine, targets_of
from bpfobj.core.patch import PatchResult, patch, poison_insn
from bpfobj.core.record import CoreRecord, apply, make_record
from bpfobj.core.relo import CandidateResult, CoreDecision, resolve, spec_match
from bpfobj.core.spec import CoreSpec, format_spec, kind_label, parse_access_string, parse_spec

__all__ = [
    "Candidate",
    "CandidateResult",
    "CoreCache",
    "CoreDecision",
    "CoreEngine",
    "CoreRecord",
    "CoreSpec",
    "EssentialIndex",
    "PatchResult",
    "TargetBtf",
    "apply",
    "essential_name",
    "essential_name_len",
    "fields_are_compat",
    "find_cands",
    "format_spec",
    "index_for",
    "kind_label",
    "make_record",
    "names_match",
    "parse_access_string",
    "parse_spec",
    "patch",
    "poison_insn",
    "resolve",
    "spec_match",
    "targets_of",
    "types_are_compat",
    "types_match",
]
