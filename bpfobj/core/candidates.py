"""Target candidate search for CO-RE relocations (libbpf.c bpf_core_find_cands).

A candidate for local type ``[id] struct foo___v1`` is every target type whose kind is
CO-RE-compatible (same kind, or ENUM/ENUM64) and whose *essential* name (the name before
its last ``___flavor``) equals ``foo``, in increasing type id order. The main target BTF
(vmlinux, or the ``btf_custom_path`` override) is searched first; module BTFs only when
vmlinux has no candidate at all (and never when the main BTF is an override).

libbpf scans all target types once per local type. Kernel BTF has ~130,000 of them, so
here an `EssentialIndex` per target BTF maps essential names to type ids; it is built
lazily and kept per BTF object (`index_for`), so prepare of many objects against the same
vmlinux pays for it once. The candidate list of a local type is cached in a `CoreCache`
and pruned as libbpf prunes it (bpf_core_calc_relo_insn keeps only the candidates that
matched, when at least one did), because that pruning changes later decisions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from bpfobj import records
from bpfobj.core.btfview import (
    kind_core_compat,
    kind_str,
    start_id,
    type_by_id,
    type_count,
)
from bpfobj.core.compat import essential_name_len

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any


@records.frozen
class TargetBtf:
    """A BTF to relocate against: ``name`` is "vmlinux" or the module name."""

    name: str
    btf: Any = records.field(eq=False, repr=False)
    override: bool = False
    """True when the main BTF replaces the kernel's (libbpf btf_custom_path): then
    modules are never searched."""


@records.frozen
class Candidate:
    """One target candidate type (struct bpf_core_cand) and the BTF it lives in."""

    target: TargetBtf
    type_id: int
    name: str
    kind: str

    @property
    def btf(self) -> Any:
        return self.target.btf


class EssentialIndex:
    """Essential name -> ids (ascending) of the named types one BTF defines itself.

    Exact names are looked up with ``btf.find`` (the reader's name index); the few names
    that carry a ``___flavor`` suffix (bpftool's ``___2`` duplicates, local flavors) are
    collected in one pass over the names the first time a lookup needs them.
    """

    def __init__(self, btf: Any) -> None:
        self.btf = btf
        self.first_id = start_id(btf)
        self.end_id = type_count(btf)
        self._flavored_map: dict[str, list[int]] | None = None
        self._cache: dict[str, tuple[int, ...]] = {}

    def _names(self) -> Any:
        """Yield (id, name) for the types this BTF defines (ids first_id..end_id-1)."""
        btf = self.btf
        bulk = getattr(btf, "iter_names", None)
        if callable(bulk):
            yield from bulk()
            return
        name_of = getattr(btf, "name", None)
        if not callable(name_of):
            name_of = lambda tid: btf.type(tid).name  # noqa: E731
        for tid in range(self.first_id, self.end_id):
            yield tid, name_of(tid)

    def _flavored(self, essential: str) -> list[int]:
        """Own ids named ``essential___flavor``: a prefix range of the BTF's sorted name
        index when the reader has one, else one pass over the names (kept for later)."""
        find_prefix = getattr(self.btf, "find_prefix", None)
        if callable(find_prefix):
            return [
                tid
                for tid in find_prefix(essential + "___")
                if self.first_id <= tid < self.end_id
                and essential_name_len(self.btf.name(tid)) == len(essential)
            ]
        if self._flavored_map is None:
            flavored: dict[str, list[int]] = {}
            for tid, name in self._names():
                if not name or "___" not in name:
                    continue
                n = essential_name_len(name)
                if n != len(name):
                    flavored.setdefault(name[:n], []).append(tid)
            self._flavored_map = flavored
        return self._flavored_map.get(essential, [])

    def lookup(self, essential: str) -> tuple[int, ...]:
        """Ids (ascending, own types only) whose essential name is `essential`."""
        hit = self._cache.get(essential)
        if hit is not None:
            return hit
        ids: set[int] = set()
        try:
            exact = self.btf.find(essential)
        except Exception:
            exact = []
        for tid in exact:
            if self.first_id <= tid < self.end_id and essential_name_len(essential) == len(
                essential
            ):
                ids.add(tid)
        ids.update(self._flavored(essential))
        result = tuple(sorted(ids))
        self._cache[essential] = result
        return result


# Indexes of the last few target BTFs (kernel BTF objects do not take weak references):
# prepare of many objects against the same vmlinux builds its index once.
_INDEX_LRU: OrderedDict[int, EssentialIndex] = OrderedDict()
_INDEX_LRU_SIZE = 8


def index_for(btf: Any) -> EssentialIndex:
    """The (lazily built, shared) essential-name index of `btf`."""
    key = id(btf)
    idx = _INDEX_LRU.get(key)
    if idx is not None and idx.btf is btf:
        _INDEX_LRU.move_to_end(key)
        return idx
    idx = _INDEX_LRU[key] = EssentialIndex(btf)
    _INDEX_LRU.move_to_end(key)
    while len(_INDEX_LRU) > _INDEX_LRU_SIZE:
        _INDEX_LRU.popitem(last=False)
    return idx


def add_cands(
    local_btf: Any, local_id: int, local_essent_len: int, target: TargetBtf
) -> list[Candidate]:
    """libbpf.c bpf_core_add_cands over one target BTF (its own types only)."""
    local_t = type_by_id(local_btf, local_id)
    if local_t is None:
        return []
    local_name = local_t.name or ""
    essential = local_name[:local_essent_len]
    out: list[Candidate] = []
    for tid in index_for(target.btf).lookup(essential):
        t = type_by_id(target.btf, tid)
        if t is None or not kind_core_compat(t, local_t):
            continue
        targ_name = t.name or ""
        if not targ_name or essential_name_len(targ_name) != local_essent_len:
            continue
        if targ_name[:local_essent_len] != essential:
            continue
        out.append(Candidate(target=target, type_id=tid, name=targ_name, kind=kind_str(t)))
    return out


class CandidateSearchError(Exception):
    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


def find_cands(local_btf: Any, local_id: int, targets: Sequence[TargetBtf]) -> list[Candidate]:
    """libbpf.c bpf_core_find_cands: vmlinux first, modules only when vmlinux has none.

    `targets[0]` is the main BTF; the rest are module BTFs (split on it).
    Raises CandidateSearchError(EINVAL) for a missing or anonymous local type.
    """
    local_t = type_by_id(local_btf, local_id)
    if local_t is None:
        raise CandidateSearchError(22, f"local type [{local_id}] does not exist")
    local_name = local_t.name or ""
    if not local_name:
        raise CandidateSearchError(22, "anonymous local type has no candidates")
    essent_len = essential_name_len(local_name)
    if not targets:
        return []
    main = targets[0]
    cands = add_cands(local_btf, local_id, essent_len, main)
    # if vmlinux BTF has any candidate, don't go for module BTFs; an overridden
    # vmlinux BTF means no module BTFs either
    if cands or main.override:
        return cands
    for mod in targets[1:]:
        cands.extend(add_cands(local_btf, local_id, essent_len, mod))
    return cands


class CoreCache:
    """Per-object CO-RE state: candidate lists per local type id (libbpf's cand_cache).

    Use one cache per (object, target set), in libbpf's relocation order, to reproduce
    libbpf's candidate pruning across relocations of the same local type.
    """

    def __init__(self) -> None:
        self.cands: dict[int, list[Candidate]] = {}
        self._owner: tuple[int, tuple[int, ...]] | None = None

    def bind(self, local_btf: Any, targets: Sequence[TargetBtf]) -> None:
        key = (id(local_btf), tuple(id(t.btf) for t in targets))
        if self._owner is None:
            self._owner = key
        elif self._owner != key:
            raise ValueError("a CoreCache serves one local BTF and one set of targets")

    def get(self, local_btf: Any, local_id: int, targets: Sequence[TargetBtf]) -> list[Candidate]:
        return self.lookup(local_btf, local_id, targets)[0]

    def lookup(
        self, local_btf: Any, local_id: int, targets: Sequence[TargetBtf]
    ) -> tuple[list[Candidate], bool]:
        """(candidates, searched now): the cached list, or a fresh search that is cached."""
        self.bind(local_btf, targets)
        hit = self.cands.get(local_id)
        if hit is not None:
            return hit, False
        hit = self.cands[local_id] = find_cands(local_btf, local_id, targets)
        return hit, True

    def prune(self, local_id: int, keep: list[Candidate]) -> None:
        """Keep only `keep` (the matching candidates), as bpf_core_calc_relo_insn does."""
        if keep:
            self.cands[local_id] = keep


def describe_candidate(c: Candidate) -> str:
    return f"[{c.type_id}] {c.kind} {c.name} in [{c.target.name}]"


__all__ = [
    "Candidate",
    "CandidateSearchError",
    "CoreCache",
    "EssentialIndex",
    "TargetBtf",
    "add_cands",
    "describe_candidate",
    "find_cands",
    "index_for",
]
