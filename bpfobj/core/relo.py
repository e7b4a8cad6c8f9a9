"""The decision for one CO-RE relocation: relo_core.c bpf_core_calc_relo_insn.

`resolve` parses the local access spec, finds the candidates (cached and pruned in a
`CoreCache` like libbpf's cand_cache), matches the spec against each candidate
(bpf_core_spec_match), computes original and new values per matching candidate
(bpf_core_calc_relo) and checks that all candidates agree. It returns a `CoreDecision`;
`bpfobj.core.patch.patch` then applies it to the instructions.

Nothing here raises for a relocation libbpf would refuse: the decision says
``outcome="error"`` with libbpf's reason and errno, and `CoreDecision.raise_error`
turns it into a `bpfobj.errors.CoreError` for callers that stop there (libbpf does).
The decision also carries ``log``: the debug/warning lines libbpf prints for it, with
the same text, so its output can be compared line by line with libbpf's.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfobj import records
from bpfobj.arch import ByteOrder
from bpfobj.core.btfview import (
    BTF_INT_SIGNED,
    ResolveError,
    enum_name,
    enum_value,
    int_encoding,
    is_any_enum,
    is_composite,
    kflag,
    kind_of,
    kind_str,
    resolve_size,
    skip_mods_and_typedefs,
    type_by_id,
    vlen,
)
from bpfobj.core.candidates import (
    Candidate,
    CandidateSearchError,
    CoreCache,
    TargetBtf,
)
from bpfobj.core.compat import (
    essential_name_len,
    fields_are_compat,
    fields_incompat_reason,
    types_are_compat,
    types_match,
)
from bpfobj.core.spec import (
    E2BIG,
    EINVAL,
    EOPNOTSUPP,
    EUCLEAN,
    SPEC_MAX_LEN,
    Accessor,
    CoreSpec,
    SpecError,
    format_spec,
    is_enumval_based,
    is_field_based,
    is_flex_arr,
    is_type_based,
    kind_label,
    parse_spec,
)
from bpfobj.errors import CoreError
from bpfobj.uapi import BtfKind, CoreReloKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, Literal, NoReturn, Protocol, TypeAlias
else:
    Protocol = object  # protocols only matter to the type checker

Outcome: TypeAlias = 'Literal["patched", "poisoned", "error"]'

_U64 = (1 << 64) - 1


class CoreReloLike(Protocol):
    """A .BTF.ext core_relo record (`bpfobj.btf.ext.CoreRelo`)."""

    @property
    def insn_off(self) -> int: ...

    @property
    def type_id(self) -> int: ...

    @property
    def access_str(self) -> str: ...

    @property
    def kind(self) -> Any: ...


@records.frozen
class CandidateResult:
    """How one candidate fared: ``reason`` says why it did not match ("" when it did)."""

    btf: str
    type_id: int
    name: str
    matched: bool
    reason: str = ""
    spec: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "btf": self.btf,
            "type_id": self.type_id,
            "name": self.name,
            "matched": self.matched,
            "reason": self.reason,
        }


@records.frozen
class CoreDecision:
    """The result of one relocation, before it is applied (struct bpf_core_relo_res + why).

    ``orig_val`` is what the instruction must hold (checked when ``validate``), ``new_val``
    what it gets; ``poison`` asks `patch` to replace the instruction with ``call 0xbad2310``.
    ``orig_sz``/``new_sz`` are the field sizes that drive load/store size adjustment.
    """

    kind: int
    insn_off: int
    local_type_id: int
    access_str: str
    local_spec: str | None
    candidates: tuple[CandidateResult, ...] = ()
    target_btf: str | None = None
    target_type_id: int | None = None
    target_spec: str | None = None
    orig_val: int = 0
    new_val: int = 0
    poison: bool = False
    validate: bool = True
    fail_memsz_adjust: bool = False
    orig_sz: int = 0
    new_sz: int = 0
    orig_type_id: int = 0
    new_type_id: int = 0
    outcome: Outcome = "patched"
    reason: str = ""
    errno: int = 0
    byteorder: ByteOrder = "little"
    program: str = ""
    relo_idx: int = 0
    log: tuple[str, ...] = ()

    @property
    def kind_label(self) -> str:
        return kind_label(self.kind)

    @property
    def insn_idx(self) -> int:
        """Instruction index of the relocation in its section (insn_off / 8)."""
        return self.insn_off // 8

    def raise_error(self, **context: Any) -> NoReturn:
        raise CoreError(
            f"CO-RE relocation #{self.relo_idx} ({self.kind_label}) failed: {self.reason}",
            program=context.pop("program", None) or self.program or None,
            type=context.pop("type", f"[{self.local_type_id}]"),
            hint=context.pop("hint", _hint(self)),
            errno=self.errno,
            local_spec=self.local_spec,
            **context,
        )


def _hint(d: CoreDecision) -> str | None:
    if "ambiguity" in d.reason:
        return "several target types match with different results; rename the local type with a ___flavor or make the access unambiguous"
    if "anonymous" in d.reason or "candidate search" in d.reason:
        return "CO-RE relocations need a named local type"
    if d.local_spec is None:
        return "the object's .BTF.ext access string does not fit its BTF; rebuild the object"
    return None


class _Fail(Exception):
    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


@records.define
class _Res:
    """struct bpf_core_relo_res"""

    orig_val: int = 0
    new_val: int = 0
    poison: bool = False
    validate: bool = True
    fail_memsz_adjust: bool = False
    orig_sz: int = 0
    orig_type_id: int = 0
    new_sz: int = 0
    new_type_id: int = 0


class _Log:
    def __init__(self, program: str, relo_idx: int) -> None:
        self.prefix = f"prog '{program}': relo #{relo_idx}: "
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        self.lines.append(self.prefix + text)

    def raw(self, text: str) -> None:
        """A line without prefix."""
        self.lines.append(text)

    def plain(self, text: str) -> None:
        """A line with only the ``prog '...': `` prefix."""
        self.lines.append(self.prefix.split("relo #")[0] + text)


# ---------------------------------------------------------------------------------------
# bpf_core_spec_match
# ---------------------------------------------------------------------------------------


def _match_member(
    local_btf: Any,
    local_acc: Accessor,
    targ_btf: Any,
    targ_id: int,
    spec: CoreSpec,
    why: list[str],
) -> tuple[int, int]:
    """relo_core.c bpf_core_match_member: (found, next_targ_id). Mutates `spec`."""
    targ_id, targ_t = skip_mods_and_typedefs(targ_btf, targ_id)
    if targ_t is None:
        return -EINVAL, 0
    if not is_composite(targ_t):
        why.append(
            f"[{targ_id}] {kind_str(targ_t)} {targ_t.name or '<anon>'} is not a struct/union"
        )
        return 0, 0
    local_t: Any = type_by_id(local_btf, local_acc.type_id)
    local_member = local_t.members[local_acc.idx]
    local_name = local_member.name
    for i, m in enumerate(targ_t.members):
        bit_offset = int(m.bit_offset)
        # too deep struct/union/array nesting
        if spec.raw_len == SPEC_MAX_LEN:
            return -E2BIG, 0
        # speculate this member will be the good one
        spec.bit_offset += bit_offset
        spec.raw_spec.append(i)
        targ_name = m.name or ""
        if not targ_name:
            # embedded struct/union, we need to go deeper
            found, next_id = _match_member(local_btf, local_acc, targ_btf, int(m.type), spec, why)
            if found:
                return found, next_id
        elif targ_name == local_name:
            # matching named field
            spec.spec.append(Accessor(type_id=targ_id, idx=i, name=targ_name))
            found = fields_are_compat(local_btf, int(local_member.type), targ_btf, int(m.type))
            if not found:
                spec.spec.pop()
                why.append(
                    f"field '{local_name}': "
                    + fields_incompat_reason(
                        local_btf, int(local_member.type), targ_btf, int(m.type)
                    )
                )
            return found, int(m.type)
        # member turned out not to be what we looked for
        spec.bit_offset -= bit_offset
        spec.raw_spec.pop()
    return 0, 0


def spec_match(local_spec: CoreSpec, targ_btf: Any, targ_id: int) -> tuple[int, CoreSpec, str]:
    """relo_core.c bpf_core_spec_match: (1 match / 0 no match / -errno, target spec, reason)."""
    targ_spec = CoreSpec(btf=targ_btf, root_type_id=targ_id, relo_kind=local_spec.relo_kind)
    kind = local_spec.relo_kind

    if is_type_based(kind):
        if kind == CoreReloKind.TYPE_MATCHES:
            r = types_match(local_spec.btf, local_spec.root_type_id, targ_btf, targ_id)
            return r, targ_spec, "" if r > 0 else "types do not match (bpf_core_types_match)"
        r = types_are_compat(local_spec.btf, local_spec.root_type_id, targ_btf, targ_id)
        return r, targ_spec, "" if r > 0 else "types are not compatible (bpf_core_types_are_compat)"

    local_acc = local_spec.spec[0]

    if is_enumval_based(kind):
        # has to resolve to an enum
        targ_id, targ_t = skip_mods_and_typedefs(targ_btf, targ_id)
        if not is_any_enum(targ_t):
            return 0, targ_spec, "target is not an enum"
        local_name = local_acc.name or ""
        local_len = essential_name_len(local_name)
        for i in range(vlen(targ_t)):
            targ_name = enum_name(targ_t, i)
            if essential_name_len(targ_name) != local_len:
                continue
            if local_name[:local_len] == targ_name[:local_len]:
                targ_spec.spec.append(Accessor(type_id=targ_id, idx=i, name=targ_name))
                targ_spec.raw_spec.append(i)
                return 1, targ_spec, ""
        return 0, targ_spec, f"enumerator '{local_name}' not found"

    if not is_field_based(kind):
        return -EINVAL, targ_spec, "unknown relocation kind"

    why: list[str] = []
    for i, lacc in enumerate(local_spec.spec):
        targ_id, targ_t = skip_mods_and_typedefs(targ_btf, targ_id)
        if targ_t is None:
            return -EINVAL, targ_spec, f"type [{targ_id}] does not exist"
        if lacc.name:
            matched, targ_id = _match_member(
                local_spec.btf, lacc, targ_btf, targ_id, targ_spec, why
            )
            if matched <= 0:
                reason = (
                    why[0]
                    if why
                    else (
                        f"field '{lacc.name}' not found in "
                        f"{kind_str(targ_t)} {targ_t.name or '<anon>'}"
                    )
                )
                return matched, targ_spec, reason
        else:
            # for i=0, targ_id is already treated as array element type (because it's the
            # original struct), for others we should find array element type first
            if i > 0:
                if kind_of(targ_t) != BtfKind.ARRAY:
                    return 0, targ_spec, f"[{targ_id}] {kind_str(targ_t)} is not an array"
                nelems = int(targ_t.nelems)
                prev = targ_spec.spec[-1] if targ_spec.spec else None
                flex = is_flex_arr(targ_btf, prev, nelems)
                if not flex and lacc.idx >= nelems:
                    return 0, targ_spec, f"array index {lacc.idx} out of bounds (nelems {nelems})"
                targ_id, et = skip_mods_and_typedefs(targ_btf, int(targ_t.type))
                if et is None:
                    return -EINVAL, targ_spec, f"array element type [{targ_id}] does not exist"
            # too deep struct/union/array nesting
            if targ_spec.raw_len == SPEC_MAX_LEN:
                return -E2BIG, targ_spec, "access too deep"
            targ_spec.spec.append(Accessor(type_id=targ_id, idx=lacc.idx))
            targ_spec.raw_spec.append(lacc.idx)
            try:
                sz = resolve_size(targ_btf, targ_id)
            except ResolveError as exc:
                return -exc.errno, targ_spec, f"cannot size [{targ_id}]: {exc}"
            targ_spec.bit_offset += lacc.idx * sz * 8
    return 1, targ_spec, ""


# ---------------------------------------------------------------------------------------
# bpf_core_calc_relo
# ---------------------------------------------------------------------------------------


def _calc_field(
    kind: int,
    insn_off: int,
    spec: CoreSpec | None,
    byteorder: ByteOrder,
    out: _Res,
    local: bool,
    log: _Log,
) -> None:
    """relo_core.c bpf_core_calc_field_relo, writing orig_* (local) or new_* fields."""

    def put(val: int, field_sz: int | None = None, type_id: int | None = None) -> None:
        val &= _U64
        if local:
            out.orig_val = val
            if field_sz is not None:
                out.orig_sz = field_sz
            if type_id is not None:
                out.orig_type_id = type_id
        else:
            out.new_val = val
            if field_sz is not None:
                out.new_sz = field_sz
            if type_id is not None:
                out.new_type_id = type_id

    if local:
        out.orig_sz = 0
    else:
        out.new_sz = 0

    if kind == CoreReloKind.FIELD_EXISTS:
        put(1 if spec is not None else 0)
        return
    if spec is None:
        raise _Fail(EUCLEAN, "field not found in target")  # request instruction poisoning

    acc = spec.spec[-1]
    t: Any = type_by_id(spec.btf, acc.type_id)

    # a[n] accessor needs special handling
    if not acc.name:
        if kind == CoreReloKind.FIELD_BYTE_OFFSET:
            try:
                sz = resolve_size(spec.btf, acc.type_id)
            except ResolveError:
                raise _Fail(EINVAL, f"cannot size [{acc.type_id}]") from None
            put(spec.bit_offset // 8, sz, acc.type_id)
        elif kind == CoreReloKind.FIELD_BYTE_SIZE:
            try:
                sz = resolve_size(spec.btf, acc.type_id)
            except ResolveError:
                raise _Fail(EINVAL, f"cannot size [{acc.type_id}]") from None
            put(sz)
        else:
            # libbpf prints the relocation kind number here, not the relo index
            log.plain(f"relo {kind} at insn #{insn_off // 8} can't be applied to array access")
            raise _Fail(EINVAL, f"{kind_label(kind)} can't be applied to array access")
        if local:
            out.validate = True
        return

    m = t.members[acc.idx]
    field_type_id, mt = skip_mods_and_typedefs(spec.btf, int(m.type))
    bit_off = spec.bit_offset & 0xFFFF_FFFF
    bit_sz = int(m.bitfield_size)
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = int(getattr(mt, "size", 0) or 0)
        if byte_sz <= 0:
            raise _Fail(EINVAL, f"bitfield '{acc.name}' has a type without size")
        byte_off = bit_off // 8 // byte_sz * byte_sz
        # figure out smallest int size necessary for bitfield load
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                # bitfield can't be read with 64-bit read
                log.plain(f"relo {kind} at insn #{insn_off // 8} can't be satisfied for bitfield")
                raise _Fail(E2BIG, f"bitfield '{acc.name}' can't be read with a 64-bit load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        try:
            byte_sz = resolve_size(spec.btf, field_type_id)
        except ResolveError:
            raise _Fail(EINVAL, f"cannot size field '{acc.name}'") from None
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8

    # for bitfields, all the relocatable aspects are ambiguous and we might disagree with
    # compiler, so turn off validation of expected value, except for signedness
    if local:
        out.validate = not bitfield

    if kind == CoreReloKind.FIELD_BYTE_OFFSET:
        if not bitfield:
            put(byte_off, byte_sz, field_type_id)
        else:
            put(byte_off)
    elif kind == CoreReloKind.FIELD_BYTE_SIZE:
        put(byte_sz)
    elif kind == CoreReloKind.FIELD_SIGNED:
        signed = (is_any_enum(mt) and kflag(mt)) or (
            mt is not None
            and kind_of(mt) == BtfKind.INT
            and bool(int_encoding(mt) & BTF_INT_SIGNED)
        )
        put(int(signed))
        if local:
            out.validate = True  # signedness is never ambiguous
    elif kind == CoreReloKind.FIELD_LSHIFT_U64:
        if byteorder == "little":
            put(64 - (bit_off + bit_sz - byte_off * 8))
        else:
            put((8 - byte_sz) * 8 + (bit_off - byte_off * 8))
    elif kind == CoreReloKind.FIELD_RSHIFT_U64:
        put(64 - bit_sz)
        if local:
            out.validate = True  # right shift is never ambiguous
    else:
        raise _Fail(EOPNOTSUPP, "unsupported field relocation")


def _calc_type(kind: int, spec: CoreSpec | None, out: _Res, local: bool) -> None:
    """relo_core.c bpf_core_calc_type_relo."""
    if local:
        out.validate = True  # by default, always check expected value in bpf_insn
    val = 0
    if spec is not None:
        if kind == CoreReloKind.TYPE_ID_TARGET:
            val = spec.root_type_id
            # type ID, embedded in bpf_insn, might change during linking, so enforcing it
            # is pointless
            if local:
                out.validate = False
        elif kind in (CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_MATCHES):
            val = 1
        elif kind == CoreReloKind.TYPE_SIZE:
            try:
                val = resolve_size(spec.btf, spec.root_type_id)
            except ResolveError:
                raise _Fail(EINVAL, f"cannot size type [{spec.root_type_id}]") from None
        else:
            raise _Fail(EOPNOTSUPP, "unsupported type relocation")
    if local:
        out.orig_val = val
    else:
        out.new_val = val


def _calc_enumval(kind: int, spec: CoreSpec | None, out: _Res, local: bool) -> None:
    """relo_core.c bpf_core_calc_enumval_relo."""
    if kind == CoreReloKind.ENUMVAL_EXISTS:
        val = 1 if spec is not None else 0
    elif kind == CoreReloKind.ENUMVAL_VALUE:
        if spec is None:
            raise _Fail(EUCLEAN, "enumerator not found in target")  # request poisoning
        t = type_by_id(spec.btf, spec.spec[0].type_id)
        val = enum_value(t, spec.spec[0].idx)
    else:
        raise _Fail(EOPNOTSUPP, "unsupported enum value relocation")
    if local:
        out.orig_val = val
    else:
        out.new_val = val


def _memsz_adjust_ok(orig_t: Any, new_t: Any) -> bool:
    """Is it safe to change a load/store size from the local to the target field size?

    Only for pointers (a 32-bit kernel pointer zero-extends) and unsigned integers.
    """
    if orig_t is None or new_t is None:
        return False
    ko, kn = kind_of(orig_t), kind_of(new_t)
    if ko == BtfKind.PTR and kn == BtfKind.PTR:
        return True
    return (
        ko == BtfKind.INT
        and kn == BtfKind.INT
        and int_encoding(orig_t) != BTF_INT_SIGNED
        and int_encoding(new_t) != BTF_INT_SIGNED
    )


def calc_relo(
    relo_kind: int,
    insn_off: int,
    local_spec: CoreSpec,
    targ_spec: CoreSpec | None,
    byteorder: ByteOrder,
    log: _Log,
    relo_idx: int,
) -> _Res:
    """relo_core.c bpf_core_calc_relo: orig/new values for one (local, target) pair.

    A missing target (`targ_spec` None) poisons field-size/offset and enum-value
    relocations and gives 0 for the existence/type kinds. Raises _Fail on an error.
    """
    res = _Res()
    try:
        if is_field_based(relo_kind):
            _calc_field(relo_kind, insn_off, local_spec, byteorder, res, True, log)
            _calc_field(relo_kind, insn_off, targ_spec, byteorder, res, False, log)
            # Validate if it's safe to adjust load/store memory size. Adjustments are
            # performed only if original and new memory sizes differ.
            res.fail_memsz_adjust = False
            if res.orig_sz != res.new_sz and targ_spec is not None:
                orig_t = type_by_id(local_spec.btf, res.orig_type_id)
                new_t = type_by_id(targ_spec.btf, res.new_type_id)
                ok = _memsz_adjust_ok(orig_t, new_t)
                # mark as invalid mem size adjustment, but this will only be checked for
                # LDX/STX/ST insns
                res.fail_memsz_adjust = not ok
        elif is_type_based(relo_kind):
            _calc_type(relo_kind, local_spec, res, True)
            _calc_type(relo_kind, targ_spec, res, False)
        elif is_enumval_based(relo_kind):
            _calc_enumval(relo_kind, local_spec, res, True)
            _calc_enumval(relo_kind, targ_spec, res, False)
        else:
            raise _Fail(EOPNOTSUPP, "unrecognized CO-RE relocation")
    except _Fail as exc:
        if exc.errno == EUCLEAN:
            # EUCLEAN is used to signal instruction poisoning request
            res.poison = True
            return res
        if exc.errno == EOPNOTSUPP:
            log(
                f"unrecognized CO-RE relocation {kind_label(relo_kind)} ({relo_kind}) "
                f"at insn #{insn_off // 8}"
            )
        raise
    return res


# ---------------------------------------------------------------------------------------
# resolve: bpf_core_resolve_relo + bpf_core_calc_relo_insn
# ---------------------------------------------------------------------------------------


def resolve(
    local_btf: Any,
    relo: CoreReloLike,
    targets: Sequence[TargetBtf],
    cache: CoreCache | None = None,
    *,
    byteorder: ByteOrder | None = None,
    program: str = "",
    relo_idx: int = 0,
) -> CoreDecision:
    """Decide one CO-RE relocation, as libbpf's bpf_core_resolve_relo does.

    `targets[0]` is the main target BTF (vmlinux or an override), the rest module BTFs.
    `cache` holds the candidate lists per local type (pass one per object, in relocation
    order, to get libbpf's pruning). `byteorder` is the target's byte order (it changes
    FIELD_LSHIFT_U64); default: the local BTF's. `program`/`relo_idx` only label the log.
    """
    if cache is None:
        cache = CoreCache()
    if byteorder is None:
        bo = getattr(local_btf, "byteorder", "little")
        byteorder = "big" if bo == "big" else "little"
    kind = int(relo.kind)
    local_id = int(relo.type_id)
    insn_off = int(relo.insn_off)
    access_str = str(relo.access_str)
    log = _Log(program, relo_idx)
    base: dict[str, Any] = {
        "kind": kind,
        "insn_off": insn_off,
        "local_type_id": local_id,
        "access_str": access_str,
        "byteorder": byteorder,
        "program": program,
        "relo_idx": relo_idx,
    }

    def error(errno: int, reason: str, **fields: Any) -> CoreDecision:
        log(f"failed to relocate: {-errno}")
        return CoreDecision(
            outcome="error", reason=reason, errno=errno, log=tuple(log.lines), **base, **fields
        )

    local_t = type_by_id(local_btf, local_id)
    if local_t is None:
        return error(EINVAL, f"local type [{local_id}] does not exist", local_spec=None)
    local_name = local_t.name or ""

    cands: list[Candidate] | None = None
    if kind != CoreReloKind.TYPE_ID_LOCAL:
        try:
            cands, fresh = cache.lookup(local_btf, local_id, targets)
        except CandidateSearchError as exc:
            log(
                f"target candidate search failed for [{local_id}] {kind_str(local_t)} "
                f"{local_name}: {-exc.errno}"
            )
            reason = (
                f"relocation against anonymous type [{local_id}] {kind_str(local_t)}"
                " (candidate search needs a name)"
                if not local_name
                else exc.message
            )
            return error(exc.errno, reason, local_spec=None)
        if fresh:
            for c in cands:
                # libbpf.c bpf_core_add_cands names the main target BTF "vmlinux" always
                src = "vmlinux" if targets and c.target is targets[0] else c.target.name
                log.raw(
                    f"CO-RE relocating [{local_id}] {kind_str(local_t)} {local_name}: found "
                    f"target candidate [{c.type_id}] {c.kind} {c.name} in [{src}]"
                )

    # bpf_core_calc_relo_insn
    try:
        local_spec = parse_spec(local_btf, local_id, access_str, kind)
    except SpecError as exc:
        log(
            f"parsing [{local_id}] {kind_str(local_t)} {local_name or '<anon>'} + "
            f"{access_str} failed: {-exc.errno}"
        )
        return error(EINVAL, f"invalid access spec: {exc.message}", local_spec=None)

    local_text = format_spec(local_spec)
    log(local_text)

    # TYPE_ID_LOCAL relo is special and doesn't need candidate search
    if kind == CoreReloKind.TYPE_ID_LOCAL:
        return CoreDecision(
            local_spec=local_text,
            orig_val=local_spec.root_type_id,
            new_val=local_spec.root_type_id,
            validate=False,
            poison=False,
            outcome="patched",
            reason="local type id",
            log=tuple(log.lines),
            **base,
        )

    # libbpf doesn't support candidate search for anonymous types
    if not local_name:
        log(f"<{kind_label(kind)}> ({kind}) relocation doesn't support anonymous types")
        return error(EOPNOTSUPP, "relocation against an anonymous type", local_spec=local_text)

    assert cands is not None
    results: list[CandidateResult] = []
    kept: list[Candidate] = []
    targ_res: _Res | None = None
    targ_spec: CoreSpec | None = None
    targ_cand: Candidate | None = None

    for i, cand in enumerate(cands):
        err, cand_spec, why = spec_match(local_spec, cand.btf, cand.type_id)
        cand_text = format_spec(cand_spec)
        if err < 0:
            log(f"error matching candidate #{i} {cand_text}: {err}")
            results.append(
                CandidateResult(
                    cand.target.name,
                    cand.type_id,
                    cand.name,
                    False,
                    why or f"error {err}",
                    cand_text,
                )
            )
            return error(
                -err,
                f"error matching candidate #{i} [{cand.type_id}] {cand.name}: {why or err}",
                local_spec=local_text,
                candidates=tuple(results),
            )
        log(f"{'non-matching' if err == 0 else 'matching'} candidate #{i} {cand_text}")
        if err == 0:
            results.append(
                CandidateResult(cand.target.name, cand.type_id, cand.name, False, why, cand_text)
            )
            continue

        try:
            cand_res = calc_relo(kind, insn_off, local_spec, cand_spec, byteorder, log, relo_idx)
        except _Fail as exc:
            results.append(
                CandidateResult(cand.target.name, cand.type_id, cand.name, True, "", cand_text)
            )
            return error(exc.errno, exc.message, local_spec=local_text, candidates=tuple(results))
        results.append(
            CandidateResult(cand.target.name, cand.type_id, cand.name, True, "", cand_text)
        )

        if targ_res is None:
            targ_res, targ_spec, targ_cand = cand_res, cand_spec, cand
        elif targ_spec is not None and cand_spec.bit_offset != targ_spec.bit_offset:
            # if there are many field relo candidates, they should all resolve to the
            # same bit offset
            log(
                f"field offset ambiguity: {cand_spec.bit_offset & 0xFFFF_FFFF} != "
                f"{targ_spec.bit_offset & 0xFFFF_FFFF}"
            )
            return error(
                EINVAL,
                f"field offset ambiguity: {cand_spec.bit_offset} != {targ_spec.bit_offset} "
                f"(candidates [{targ_cand.type_id if targ_cand else 0}] and [{cand.type_id}])",
                local_spec=local_text,
                candidates=tuple(results),
            )
        elif cand_res.poison != targ_res.poison or cand_res.new_val != targ_res.new_val:
            # all candidates should result in the same relocation decision and value,
            # otherwise it's dangerous to proceed due to ambiguity
            a = f"{'failure' if cand_res.poison else 'success'} {cand_res.new_val}"
            b = f"{'failure' if targ_res.poison else 'success'} {targ_res.new_val}"
            log(f"relocation decision ambiguity: {a} != {b}")
            return error(
                EINVAL,
                f"relocation decision ambiguity: {a} != {b} "
                f"(candidates [{targ_cand.type_id if targ_cand else 0}] and [{cand.type_id}])",
                local_spec=local_text,
                candidates=tuple(results),
            )
        kept.append(cand)

    # For FIELD_EXISTS relo or when the program has existence checks, it's expected that
    # we might not find any candidates: then the candidate list must not change at all.
    cache.prune(local_id, kept)

    if targ_res is None:
        # no candidates: calculate single target relo result explicitly
        log("no matching targets found")
        try:
            targ_res = calc_relo(kind, insn_off, local_spec, None, byteorder, log, relo_idx)
        except _Fail as exc:
            return error(exc.errno, exc.message, local_spec=local_text, candidates=tuple(results))
        if cands:
            why = "; ".join(f"[{c.type_id}] {c.name}: {c.reason}" for c in results if c.reason)
            reason = "no matching target candidates" + (f" ({why})" if why else "")
        else:
            reason = "no target candidates"
        return _decision(base, local_text, results, None, None, targ_res, reason, log)

    assert targ_spec is not None and targ_cand is not None
    return _decision(
        base, local_text, results, targ_cand, format_spec(targ_spec), targ_res, "", log
    )


def _decision(
    base: dict[str, Any],
    local_text: str,
    results: list[CandidateResult],
    cand: Candidate | None,
    targ_text: str | None,
    res: _Res,
    reason: str,
    log: _Log,
) -> CoreDecision:
    if res.poison:
        outcome: Outcome = "poisoned"
        reason = reason or "target field or enumerator not found"
    else:
        outcome = "patched"
    return CoreDecision(
        local_spec=local_text,
        candidates=tuple(results),
        target_btf=cand.target.name if cand else None,
        target_type_id=cand.type_id if cand else None,
        target_spec=targ_text,
        orig_val=res.orig_val,
        new_val=res.new_val,
        poison=res.poison,
        validate=res.validate,
        fail_memsz_adjust=res.fail_memsz_adjust,
        orig_sz=res.orig_sz,
        new_sz=res.new_sz,
        orig_type_id=res.orig_type_id,
        new_type_id=res.new_type_id,
        outcome=outcome,
        reason=reason,
        log=tuple(log.lines),
        **base,
    )
