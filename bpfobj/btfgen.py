"""BTFGen: a source BTF cut down to what some objects' CO-RE relocations use.

    result = minimize("vmlinux-6.1.btf", ["prog.bpf.o"], modules={"mymod": "mymod.btf"})
    result.write("min.btf")                             # + min.btf.mymod if it was used

    gen = BtfGen(target_for("vmlinux-6.1.btf"))         # the same, step by step
    gen.record(load_object("prog.bpf.o"))               # as many objects as wanted
    result = gen.build()

The rules are bpftool's (tools/bpf/bpftool/gen.c, "btfgen"):

* field relocations keep the target root type and, along the target access spec, every
  traversed member and that member's type (btfgen_record_field_relo); struct and union
  keep their size and the members keep their original bit offsets (btfgen_get_btf), so
  offsets and sizes computed against the result are those of the source; pointers are
  not followed (a pointer member whose pointee nobody kept becomes ``void *``);
* type relocations keep the root type, following pointers, typedefs and modifiers but
  not struct/union members (btfgen_record_type_relo);
* enum value relocations keep the whole enum (btfgen_record_enumval_relo);
* type_matches keeps the root with all its members, recursively, stopping at composites
  reached through a pointer (btfgen_mark_type_match);
* type_id_local needs no target type.

Where this differs from bpftool, on purpose:

* of a local type's candidates, the one kept is the one libbpf's pruning ends on, not
  the first matching candidate of each relocation. libbpf prunes a local type's
  candidate list to the candidates that matched, after every relocation that found a
  match; bpftool keeps the first match of each relocation, and when that changes from one
  relocation to the next (flavors: gp___a has x, gp___b has x and y), its file makes an
  earlier relocation prune the later one's candidate away: that relocation is poisoned
  (tests/progs/gen_prune.c, tests/test_btfgen.py test_bpftool_prune_output_is_wrong*).
  The first candidate left in the list after all the object's relocations matched
  every relocation that found a match, and all matching candidates of a relocation give
  the same value (libbpf fails on ambiguity otherwise): kept alone, with the members of
  all those relocations, it gives every relocation the value the full BTF gives (the
  other kept types are source types with fewer members: they match no more relocations
  than in the source). With one candidate per relocation (kernel BTF) this is bpftool's
  choice, so the file is bpftool's byte for byte; where the candidate changes it is
  smaller (one flavor instead of several). What can differ from prepare against the
  source is the target spec libbpf logs for a relocation that several flavors matched:
  it names the kept flavor (same access path, same offset, same value).
* modifiers, type tags and forward declarations are followed instead of failing
  ("unsupported kind" in btfgen_mark_type);
* module BTF: relocations resolved into a module produce a minimised split BTF for that
  module, on top of the minimised vmlinux. Its ids continue after the minimised base
  (``len(min vmlinux) + 1 ...``), its references into vmlinux use the base's new ids.
  When modules are given and a relocation found candidates in vmlinux but none matched,
  those candidates' root types are kept (without members), so that vmlinux still "has
  candidates" and the module search libbpf skips in that case stays skipped.

Relocations are decided with the CO-RE engine exactly as prepare decides them (libbpf's
order, candidate pruning), then once more over every relocation of the object (as
bpftool does: programs with autoload off too); a relocation that prepare would fail on
makes the minimisation fail (bpftool fails too).

An object given as a path is read like bpftool reads it (btf__parse(path, &btf_ext)):
only its .BTF and .BTF.ext (`read_core_object`), one pseudo-program per code section,
autoload off for ``SEC("?...")``; the open phase (and pyelftools) is not needed. Give an
`ObjectSpec` or `BpfObject` instead to minimise for programs whose autoload was changed.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping, Sequence

from bpfobj import records

# Imported here rather than on first use: every minimisation needs them all.
from bpfobj.btf import types as T
from bpfobj.btf.ext import BtfExt
from bpfobj.btf.reader import Btf, load_raw_file
from bpfobj.btf.target import TargetBtf
from bpfobj.btf.writer import BtfBuilder
from bpfobj.core.engine import CoreEngine
from bpfobj.core.record import make_record
from bpfobj.core.relo import spec_match
from bpfobj.core.spec import ENUMVAL_KINDS, FIELD_KINDS, parse_spec
from bpfobj.errors import BpfObjError, BtfError, CoreError
from bpfobj.uapi import BtfKind, CoreReloKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.core.candidates import TargetBtf as CoreTarget
    from bpfobj.core.relo import CoreDecision
    from bpfobj.core.spec import CoreSpec
    from bpfobj.spec import ObjectSpec

# The type kinds that keep the target type whole: bpfobj.core.spec.TYPE_KINDS but for
# TYPE_ID_LOCAL and TYPE_MATCHES, which are handled on their own.
_TYPE_KINDS = frozenset(
    {CoreReloKind.TYPE_ID_TARGET, CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_SIZE}
)
# btf_is_mod() || btf_is_typedef(): skipped on the way down a field access.
_SKIP_KINDS = frozenset(
    {BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG}
)
_REF_KINDS = frozenset(
    {
        BtfKind.TYPEDEF,
        BtfKind.VOLATILE,
        BtfKind.CONST,
        BtfKind.RESTRICT,
        BtfKind.TYPE_TAG,
        BtfKind.FUNC,
        BtfKind.VAR,
    }
)
_LEAF_KINDS = frozenset({BtfKind.INT, BtfKind.FLOAT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FWD})
_COMPOSITE = frozenset({BtfKind.STRUCT, BtfKind.UNION})


class _Marks:
    """The types and members of one BTF blob (vmlinux or one module) that are kept:
    bpftool sets name_off = MARKED on a clone of the source; this is the same as sets."""

    __slots__ = ("btf", "members", "name", "types")

    def __init__(self, name: str, btf: Btf) -> None:
        self.name = name
        self.btf = btf
        self.types: set[int] = set()
        self.members: dict[int, set[int]] = {}


@records.frozen
class MinBtf:
    """The result of a minimisation: raw BTF for vmlinux and each module that was used.

    ``id_map`` maps source vmlinux ids to ids in ``vmlinux``; ``module_id_maps[name]``
    maps a module's source ids (its own and the base's it references) to new ids.
    """

    vmlinux: bytes
    modules: dict[str, bytes]
    id_map: dict[int, int]
    module_id_maps: dict[str, dict[int, int]]
    relocations: int
    byteorder: str

    def write(self, out: str | os.PathLike[str]) -> list[str]:
        """Write ``out`` (vmlinux) and ``out.<module>`` per module; returns the paths."""
        path = os.fspath(out)
        written = [path]
        write_file(path, self.vmlinux)
        for name, data in sorted(self.modules.items()):
            write_file(f"{path}.{name}", data)
            written.append(f"{path}.{name}")
        return written

    def map_id(self, btf_name: str | None, type_id: int) -> int:
        """The new id of `type_id` of source BTF `btf_name` ("vmlinux" or a module)."""
        if btf_name in (None, "vmlinux"):
            return self.id_map.get(type_id, 0)
        return self.module_id_maps.get(btf_name, {}).get(type_id, 0)


def write_file(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class BtfGen:
    """Records the CO-RE relocations of objects against `target`, then builds the
    minimised BTF (bpftool's btfgen_info: src_btf + marks)."""

    def __init__(self, target: TargetBtf) -> None:
        self.target = target
        self.vmlinux = target.vmlinux
        self._marks: dict[str, _Marks] = {"vmlinux": _Marks("vmlinux", target.vmlinux)}
        self._seen_type: set[tuple[str, int, bool]] = set()
        self._seen_match: set[tuple[str, int, bool]] = set()
        self.relocations = 0

    # -- recording (btfgen_record_obj) -----------------------------------------------------

    def record(self, spec: ObjectSpec | CoreObject) -> int:
        """Record every CO-RE relocation of `spec`; returns how many were recorded.

        Raises CoreError (with ``.record``) for a relocation that prepare would fail on.
        """
        ext = spec.btf_ext
        sections: dict[str, list[Any]] = dict(getattr(ext, "core_relos", None) or {})
        total = sum(len(v) for v in sections.values())
        if not total:
            return 0
        # 1. As prepare decides them: autoloaded programs, libbpf's order and pruning.
        engine = CoreEngine(spec, self.target)
        targets = engine.targets
        decided = engine.decide_all()
        survivors = _survivors(engine)
        count = 0
        for items in decided.values():
            for _, decision in items:
                self._record(spec, decision, targets, survivors, strict=True)
                count += 1
        # 2. As bpftool decides them: every relocation of the object, in file order.
        if count < total:
            engine = CoreEngine(spec, self.target)
            later = [
                engine.decide(relo, i, sec_name)
                for sec_name, relos in sections.items()
                for i, relo in enumerate(relos)
            ]
            survivors = _survivors(engine)
            for decision in later:
                self._record(spec, decision, targets, survivors, strict=False)
        self.relocations += count
        return count

    def _record(
        self,
        spec: ObjectSpec | CoreObject,
        d: CoreDecision,
        targets: Sequence[CoreTarget],
        survivors: Mapping[int, tuple[str, int]],
        *,
        strict: bool,
    ) -> None:
        """btfgen_record_reloc, for the candidate of decision `d` that survives libbpf's
        pruning of its local type's candidate list (see `_survivors`)."""
        kind = d.kind
        if kind == CoreReloKind.TYPE_ID_LOCAL:
            return  # doesn't require kernel BTF
        if d.outcome == "error":
            if strict:
                raise make_record(d).as_error(
                    obj=spec.name,
                    hint="the source BTF makes this relocation fail (bpftool gen "
                    "min_core_btf fails too); minimise against another BTF or fix the program",
                )
            return
        by_name = {t.name: t for t in targets}
        matched = [c for c in d.candidates if c.matched]
        keep = survivors.get(d.local_type_id)
        chosen = [c for c in matched if (c.btf, c.type_id) == keep]
        # The survivor matched every relocation of its local type that found a match (the
        # list only shrinks to matching candidates), so `chosen` is never empty when
        # `matched` is not; fall back to every matching candidate if it were.
        for cand in chosen or matched:
            tgt = by_name.get(cand.btf)
            if tgt is None:
                continue
            marks_name = cand.btf
            if kind in FIELD_KINDS:
                targ = self._target_spec(spec, d, tgt.btf, cand.type_id)
                self._record_field(marks_name, tgt.btf, targ)
            elif kind == CoreReloKind.TYPE_MATCHES:
                self._mark_type_match(marks_name, tgt.btf, cand.type_id, False)
            elif kind in _TYPE_KINDS:
                self._mark_type(marks_name, tgt.btf, cand.type_id, True)
            elif kind in ENUMVAL_KINDS:
                self._mark_type(marks_name, tgt.btf, cand.type_id, False)
        if not matched and len(targets) > 1 and d.candidates:
            # vmlinux had candidates, none matched: keep their roots so that the module
            # search stays skipped against the minimised vmlinux (bpf_core_find_cands).
            for cand in d.candidates:
                tgt = by_name.get(cand.btf)
                if tgt is not None and tgt is targets[0]:
                    self._mark_type(cand.btf, tgt.btf, cand.type_id, False)

    def _target_spec(
        self, spec: ObjectSpec | CoreObject, d: CoreDecision, btf: Btf, targ_id: int
    ) -> CoreSpec:
        local = parse_spec(spec.btf, d.local_type_id, d.access_str, d.kind)
        err, targ, why = spec_match(local, btf, targ_id)
        if err <= 0:  # the engine said it matched: cannot happen
            raise CoreError(
                f"candidate [{targ_id}] no longer matches: {why}",
                obj=spec.name,
                hint="this is likely a bpfobj bug; please report it",
            )
        return targ

    # -- marking ---------------------------------------------------------------------------

    def _owner(self, name: str, btf: Btf, type_id: int) -> tuple[_Marks, Btf]:
        """The marks of the blob that defines `type_id` (a module's ids below its
        start_id are its base's: vmlinux)."""
        if name != "vmlinux" and type_id < btf.start_id:
            return self._marks["vmlinux"], self.vmlinux
        m = self._marks.get(name)
        if m is None:
            m = self._marks[name] = _Marks(name, btf)
        return m, btf

    def _mark(self, name: str, btf: Btf, type_id: int) -> None:
        marks, _ = self._owner(name, btf, type_id)
        marks.types.add(type_id)

    def _mark_member(self, name: str, btf: Btf, type_id: int, idx: int) -> None:
        """btfgen_mark_member"""
        marks, _ = self._owner(name, btf, type_id)
        marks.members.setdefault(type_id, set()).add(idx)

    def _mark_type(self, name: str, btf: Btf, type_id: int, follow_pointers: bool) -> None:
        """btfgen_mark_type: the type and what it needs, pointers followed on request,
        struct/union members never."""
        while type_id:
            key = (name, type_id, follow_pointers)
            if key in self._seen_type:
                return
            self._seen_type.add(key)
            self._mark(name, btf, type_id)
            t = btf.type(type_id)
            k = t.kind
            if k in _LEAF_KINDS or k in _COMPOSITE:
                return
            if k == BtfKind.PTR:
                if not follow_pointers:
                    return
                type_id = t.type  # type: ignore[attr-defined]
            elif k in _REF_KINDS:
                type_id = t.type  # type: ignore[attr-defined]
            elif isinstance(t, T.Array):
                self._mark_type(name, btf, t.type, follow_pointers)
                type_id = t.index_type
            elif isinstance(t, T.FuncProto):
                self._mark_type(name, btf, t.return_type, follow_pointers)
                for p in t.params:
                    self._mark_type(name, btf, p.type, follow_pointers)
                return
            else:
                raise _unsupported(btf, t)

    def _record_field(self, name: str, btf: Btf, targ: CoreSpec) -> None:
        """btfgen_record_field_relo: the root, then along the target's raw access spec
        each traversed member (marked on its struct/union) and the member's type."""
        type_id = targ.root_type_id
        t = btf.type(type_id)
        self._mark_type(name, btf, type_id, False)
        for idx in targ.raw_spec[1:]:
            while t.kind in _SKIP_KINDS:  # skip typedefs and mods
                type_id = t.type  # type: ignore[attr-defined]
                t = btf.type(type_id)
            if isinstance(t, T.Struct | T.Union):
                self._mark_member(name, btf, type_id, idx)
                type_id = t.members[idx].type
                t = btf.type(type_id)
                self._mark_type(name, btf, type_id, False)
            elif isinstance(t, T.Array):
                type_id = t.type
                t = btf.type(type_id)
            else:
                raise _unsupported(btf, t)

    def _mark_type_match(self, name: str, btf: Btf, type_id: int, behind_ptr: bool) -> None:
        """btfgen_mark_type_match: types, members and member types; composites reached
        through a pointer are kept without members."""
        while type_id:
            key = (name, type_id, behind_ptr)
            if key in self._seen_match:
                return
            self._seen_match.add(key)
            self._mark(name, btf, type_id)
            t = btf.type(type_id)
            k = t.kind
            if isinstance(t, T.Struct | T.Union):
                if behind_ptr:
                    return
                for i, m in enumerate(t.members):
                    self._mark_member(name, btf, type_id, i)
                    self._mark_type_match(name, btf, m.type, False)
                return
            if k in _LEAF_KINDS:
                return
            if k == BtfKind.PTR:
                behind_ptr = True
                type_id = t.type  # type: ignore[attr-defined]
            elif k in _REF_KINDS:
                type_id = t.type  # type: ignore[attr-defined]
            elif isinstance(t, T.Array):
                self._mark_type_match(name, btf, t.type, False)
                type_id, behind_ptr = t.index_type, False
            elif isinstance(t, T.FuncProto):
                self._mark_type_match(name, btf, t.return_type, False)
                for p in t.params:
                    self._mark_type_match(name, btf, p.type, False)
                return
            else:
                raise _unsupported(btf, t)

    # -- building (btfgen_get_btf) ---------------------------------------------------------

    def build(self) -> MinBtf:
        """The minimised BTF: marked types in source id order, composites with their
        marked members only (original size and offsets), ids remapped, unmarked
        references turned into void (0)."""
        order = self.vmlinux.byteorder
        vm = self._marks["vmlinux"]
        id_map = {old: new for new, old in enumerate(sorted(vm.types), 1)}
        builder = BtfBuilder(order)
        for old in sorted(vm.types):
            builder.add_type(_copy(self.vmlinux.type(old), vm.members.get(old), id_map))
        vmlinux = builder.encode()

        modules: dict[str, bytes] = {}
        module_maps: dict[str, dict[int, int]] = {}
        mods = [m for n, m in self._marks.items() if n != "vmlinux" and m.types]
        if mods:
            base = Btf.parse(vmlinux, name="min vmlinux", cache=False)
            for marks in mods:
                own = sorted(marks.types)
                mapping = dict(id_map)
                mapping.update({old: new for new, old in enumerate(own, len(base) + 1)})
                mb = BtfBuilder(order, base=base)
                for old in own:
                    mb.add_type(_copy(marks.btf.type(old), marks.members.get(old), mapping))
                modules[marks.name] = mb.encode()
                module_maps[marks.name] = mapping
        return MinBtf(
            vmlinux=vmlinux,
            modules=modules,
            id_map=id_map,
            module_id_maps=module_maps,
            relocations=self.relocations,
            byteorder=order,
        )


def _survivors(engine: CoreEngine) -> dict[int, tuple[str, int]]:
    """Per local type id, the (target BTF name, type id) of the first candidate left in
    its candidate list once the engine has decided every relocation: libbpf keeps only the
    matching candidates after each relocation that found a match, so this one matched all
    of those. Keeping it alone, with the members of every such relocation, gives every
    relocation the same value as the full BTF (see the module doc)."""
    out: dict[int, tuple[str, int]] = {}
    for local_id, cands in engine.cache.cands.items():
        if cands:
            out[local_id] = (cands[0].target.name, cands[0].type_id)
    return out


def _unsupported(btf: Btf, t: T.BtfType) -> BtfError:
    return BtfError(
        f"unsupported kind {t.kind.name} on a CO-RE path",
        obj=btf.label or None,
        type=t.describe(),
        hint="the source BTF has a type CO-RE cannot relocate against; this is likely a "
        "bpfobj bug; please report it",
    )


def _copy(t: T.BtfType, members: set[int] | None, ids: Mapping[int, int]) -> T.BtfType:
    """`t` with its references remapped through `ids` (unkept ones become 0, void), and a
    struct/union reduced to its kept members (btfgen_get_btf's two passes in one)."""

    def m(tid: int) -> int:
        return ids.get(tid, 0)

    if isinstance(t, T.Struct | T.Union):
        keep = members or set()
        ms = tuple(
            records.evolve(mem, type=m(mem.type))
            for i, mem in enumerate(t.members)
            if i in keep
        )
        # btf__add_field sets kind_flag only for a bitfield member
        return records.evolve(t, members=ms, kind_flag=any(x.bitfield_size for x in ms))
    if isinstance(t, T.FuncProto):
        return records.evolve(
            t,
            return_type=m(t.return_type),
            params=tuple(T.Param(p.name, m(p.type)) for p in t.params),
        )
    if isinstance(t, T.Array):
        return records.evolve(t, type=m(t.type), index_type=m(t.index_type))
    if isinstance(t, T.Datasec):
        return records.evolve(
            t, vars=tuple(records.evolve(v, type=m(v.type)) for v in t.vars)
        )
    if isinstance(
        t,
        T.Ptr | T.Typedef | T.Volatile | T.Const | T.Restrict | T.TypeTag | T.Func | T.Var
        | T.DeclTag,
    ):
        return records.evolve(t, type=m(t.type))
    return t


# ---------------------------------------------------------------------------------------
# One-call API
# ---------------------------------------------------------------------------------------


@records.frozen
class _Section:
    """A code section as the CO-RE engine sees a program: bpftool's btfgen reads only
    .BTF and .BTF.ext, so one pseudo-program per section with relocations will do."""

    name: str
    section: str
    instructions: range
    autoload: bool
    is_subprog: bool
    section_offset: int = 0


@records.frozen
class CoreObject:
    """What BTFGen needs of an object (duck-types `ObjectSpec` for the CO-RE engine):
    its BTF, its .BTF.ext and its code sections, read without the open phase, the way
    bpftool's btfgen_record_obj reads an object (btf__parse(path, &btf_ext))."""

    name: str
    byteorder: str
    btf: Btf
    btf_ext: Any
    programs: dict[str, _Section]
    subprograms: dict[str, _Section]


_ELF_SHDR = {"little": struct.Struct("<IIQQQQIIQQ"), "big": struct.Struct(">IIQQQQIIQQ")}


def read_core_object(data: bytes, name: str) -> CoreObject | None:
    """The .BTF/.BTF.ext view of an ELF64 BPF object, or None when it is not one this
    quick reader understands (the caller then opens it fully, which reports errors)."""
    try:
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] not in (1, 2):
            return None
        order = "little" if data[5] == 1 else "big"
        fmt = "<" if order == "little" else ">"
        shoff = struct.unpack_from(fmt + "Q", data, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from(fmt + "HHH", data, 0x3A)
        if shentsize != 64 or not shnum or shoff + shnum * 64 > len(data):
            return None
        shdr = _ELF_SHDR[order]
        heads = [shdr.unpack_from(data, shoff + i * 64) for i in range(shnum)]
        str_off, str_size = heads[shstrndx][4], heads[shstrndx][5]
        strtab = data[str_off : str_off + str_size]
        sections: dict[str, tuple[int, int, int]] = {}
        for h in heads:
            end = strtab.find(b"\0", h[0])
            sec_name = strtab[h[0] : end].decode("utf-8", "surrogateescape")
            sections[sec_name] = (h[1], h[4], h[5])  # type, offset, size
        btf_sec, ext_sec = sections.get(".BTF"), sections.get(".BTF.ext")
        if btf_sec is None:
            return None
        btf = Btf.parse(data[btf_sec[1] : btf_sec[1] + btf_sec[2]], name=name, cache=False)
        ext = None
        progs: dict[str, _Section] = {}
        subs: dict[str, _Section] = {}
        if ext_sec is not None:
            ext = BtfExt.parse(data[ext_sec[1] : ext_sec[1] + ext_sec[2]], btf, name=name)
            for sec_name in ext.core_relos:
                found = sections.get(sec_name)
                if found is None:
                    return None
                text = sec_name == ".text"
                sec = _Section(
                    name=sec_name,
                    section=sec_name,
                    instructions=range(found[2] // 8),
                    autoload=not sec_name.startswith("?"),
                    is_subprog=text,
                )
                (subs if text else progs)[sec_name] = sec
        return CoreObject(name, order, btf, ext, progs, subs)
    except (BpfObjError, struct.error, IndexError, ValueError):
        return None


def load_object(obj: Any) -> Any:
    """An `ObjectSpec` or `CoreObject` for `obj` (a path, `BpfObject` or `ObjectSpec`)."""
    if isinstance(obj, CoreObject):
        return obj
    if not isinstance(obj, str | os.PathLike):
        return getattr(obj, "spec", obj)  # a BpfObject's spec, or an ObjectSpec
    path = os.fspath(obj)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        data = b""
    quick = read_core_object(data, path) if data else None
    if quick is not None:
        return quick
    from bpfobj.collect import open_spec

    if not data:
        from bpfobj.errors import InputError

        raise InputError(f"cannot read {path}", obj=path, hint="check the path")
    return open_spec(data, path)


def target_for(
    src: str | os.PathLike[str] | Btf | TargetBtf,
    modules: Mapping[str, str | Btf] | None = None,
) -> TargetBtf:
    """The target `src` (path, Btf or TargetBtf) with `modules` searched after it (when
    vmlinux has no candidate, as for the running kernel)."""
    if isinstance(src, TargetBtf):
        return src
    if isinstance(src, Btf):
        target = TargetBtf.from_btf(src, modules=modules)
    elif _is_raw_btf(os.fspath(src)):
        # raw BTF (kernel BTF is ~5 MB): read into a pre-faulted mmap, index cache used
        btf = load_raw_file(src)
        target = TargetBtf.from_btf(btf, modules=modules)
        target.source = os.fspath(src)
    else:
        target = TargetBtf.from_path(src, modules=modules)
    if modules:
        target.override = False  # modules given with it: search them (libbpf's order)
    return target


def _is_raw_btf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) in (b"\x9f\xeb", b"\xeb\x9f")
    except OSError:
        return False  # TargetBtf.from_path reports it


def minimize(
    src: str | os.PathLike[str] | Btf | TargetBtf,
    objects: Iterable[Any],
    *,
    modules: Mapping[str, str | Btf] | None = None,
) -> MinBtf:
    """BTFGen in one call: `objects` are paths, `BpfObject`s or `ObjectSpec`s."""
    gen = BtfGen(target_for(src, modules))
    for obj in objects:
        gen.record(load_object(obj))
    return gen.build()


__all__ = [
    "BtfGen",
    "CoreObject",
    "MinBtf",
    "load_object",
    "minimize",
    "read_core_object",
    "target_for",
    "write_file",
]
