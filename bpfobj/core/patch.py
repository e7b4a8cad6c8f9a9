"""Apply a CO-RE decision to the instructions: relo_core.c bpf_core_patch_insn.

Supported instruction forms (as libbpf):

1. ``rX = <imm>`` and ``rX op= <imm>`` (ALU/ALU64 with a K source): imm is patched;
2. ``rX = <imm64>`` (ld_imm64, two slots): both halves are patched;
3. ``rX = *(T *)(rY + <off>)``, ``*(T *)(rX + <off>) = rY``, ``*(T *)(rX + <off>) = <imm>``
   (LDX/STX/ST): off is patched, and the access size changes with the field's size when
   that is safe (pointers, unsigned integers; otherwise the instruction is poisoned).

Poisoning replaces the instruction (both slots of an ld_imm64) with ``call 0xbad2310``: the
verifier drops it as dead code or fails with "invalid func unknown#195896080".
Instructions that do not hold the value the compiler was expected to put there raise a
`CoreError`, as libbpf fails the load ("unexpected insn").
"""

from __future__ import annotations

from collections.abc import MutableSequence

from bpfobj import records
from bpfobj.core.relo import CoreDecision
from bpfobj.errors import CoreError
from bpfobj.insn.codec import Instruction
from bpfobj.uapi import CORE_POISON_IMM, CoreReloKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, Literal, TypeAlias

# bpf_common.h / bpf.h opcode fields (the same values as bpfobj.insn.opcodes).
_CLASS_MASK = 0x07
_SIZE_MASK = 0x18
_MODE_MASK = 0xE0
_SRC_X = 0x08
_LD, _LDX, _ST, _STX, _ALU, _JMP, _ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
_CALL = 0x80
_LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW
_SIZE_BYTES = {0x18: 8, 0x00: 4, 0x08: 2, 0x10: 1}  # BPF_DW, BPF_W, BPF_H, BPF_B
_BYTES_SIZE = {v: k for k, v in _SIZE_BYTES.items()}
_SHRT_MAX = 0x7FFF
_U64 = (1 << 64) - 1

PatchOutcome: TypeAlias = 'Literal["patched", "poisoned"]'


@records.frozen
class PatchResult:
    """What `patch` did: the outcome, the value before and after, libbpf's log lines."""

    outcome: PatchOutcome
    old: int | None
    new: int | None
    reason: str = ""
    log: tuple[str, ...] = ()


def _u64(v: int) -> int:
    return v & _U64


def _s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & 0x8000_0000 else v


def _u32(v: int) -> int:
    return v & 0xFFFF_FFFF


def _make(insn: Any, **changes: int) -> Instruction:
    fields = {"code": insn.code, "dst": insn.dst, "src": insn.src, "off": insn.off, "imm": insn.imm}
    fields.update(changes)
    return Instruction(**fields)


def poison_insn(insns: MutableSequence[Any], insn_idx: int, lines: list[str], prefix: str) -> None:
    """relo_core.c bpf_core_poison_insn: ``call 0xbad2310`` over the insn (2 slots for ld_imm64)."""
    count = 2 if insns[insn_idx].code == _LD_IMM64 else 1
    for i in range(count):
        if insn_idx + i >= len(insns):
            break
        lines.append(f"{prefix}substituting insn #{insn_idx + i} w/ invalid insn")
        insns[insn_idx + i] = Instruction(_JMP | _CALL, 0, 0, 0, CORE_POISON_IMM)


class _Bad(Exception):
    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


def patch(
    insns: MutableSequence[Any],
    insn_idx: int,
    decision: CoreDecision,
    byteorder: str | None = None,
) -> PatchResult:
    """Patch ``insns[insn_idx]`` (and its second slot for ld_imm64) with `decision`.

    `insn_idx` is the index of the relocated instruction in `insns` (the list is changed in
    place). `byteorder`, when given, must be the one `decision` was computed for (it only
    matters for FIELD_LSHIFT_U64, which `resolve` computes). Raises CoreError for an error
    decision or an instruction that does not fit the relocation (libbpf fails the load).
    """
    if decision.outcome == "error":
        decision.raise_error(insn=insn_idx)
    if (
        byteorder is not None
        and byteorder != decision.byteorder
        and decision.kind == CoreReloKind.FIELD_LSHIFT_U64
    ):
        raise ValueError(
            f"decision was computed for {decision.byteorder}-endian, patching {byteorder}"
        )
    prefix = f"prog '{decision.program}': relo #{decision.relo_idx}: "
    lines: list[str] = []
    try:
        return _patch(insns, insn_idx, decision, prefix, lines)
    except _Bad as exc:
        lines.append(f"{prefix}failed to patch insn #{insn_idx}: {-exc.errno}")
        err = CoreError(
            f"CO-RE relocation #{decision.relo_idx} ({decision.kind_label}) cannot patch "
            f"insn #{insn_idx}: {exc.message}",
            program=decision.program or None,
            insn=insn_idx,
            type=f"[{decision.local_type_id}]",
            hint="the instruction does not hold what the compiler emits for this relocation; "
            "was the object changed after compilation?",
            errno=exc.errno,
        )
        # libbpf's lines for this relocation, and the short reason, for the CoreRecord
        setattr(err, "log", (*decision.log, *lines))  # noqa: B010
        setattr(err, "reason", exc.message)  # noqa: B010
        raise err from None


def _patch(
    insns: MutableSequence[Any],
    insn_idx: int,
    res: CoreDecision,
    prefix: str,
    lines: list[str],
) -> PatchResult:
    if not 0 <= insn_idx < len(insns):
        raise _Bad(22, f"instruction #{insn_idx} is out of range ({len(insns)} instructions)")
    insn = insns[insn_idx]
    cls = insn.code & _CLASS_MASK
    orig_val = _u64(res.orig_val)
    new_val = _u64(res.new_val)

    def poisoned(reason: str) -> PatchResult:
        poison_insn(insns, insn_idx, lines, prefix)
        return PatchResult("poisoned", None, None, reason, tuple(lines))

    def bad_insn() -> _Bad:
        text = (
            f"trying to relocate unrecognized insn #{insn_idx}, code:0x{insn.code:x}, "
            f"src:0x{insn.src:x}, dst:0x{insn.dst:x}, off:0x{_u32(insn.off):x}, "
            f"imm:0x{_u32(insn.imm):x}"
        )
        lines.append(prefix + text)
        return _Bad(22, text)

    if cls in (_ALU, _ALU64):
        if insn.code & _SRC_X:
            raise bad_insn()
        if res.poison:
            return poisoned(res.reason)
        if res.validate and _u64(insn.imm) != orig_val:
            text = (
                f"unexpected insn #{insn_idx} (ALU/ALU64) value: got {_u32(insn.imm)}, "
                f"exp {orig_val} -> {new_val}"
            )
            lines.append(prefix + text)
            raise _Bad(22, text)
        old = _u64(insn.imm)
        insns[insn_idx] = _make(insn, imm=_s32(new_val))
        lines.append(f"{prefix}patched insn #{insn_idx} (ALU/ALU64) imm {old} -> {new_val}")
        return PatchResult("patched", old, new_val, "", tuple(lines))

    if cls in (_LDX, _ST, _STX):
        if res.poison:
            return poisoned(res.reason)
        if res.validate and _u64(insn.off) != orig_val:
            text = (
                f"unexpected insn #{insn_idx} (LDX/ST/STX) value: got {_u32(insn.off)}, "
                f"exp {orig_val} -> {new_val}"
            )
            lines.append(prefix + text)
            raise _Bad(22, text)
        if new_val > _SHRT_MAX:
            text = f"insn #{insn_idx} (LDX/ST/STX) value too big: {new_val}"
            lines.append(prefix + text)
            raise _Bad(34, text)  # ERANGE
        if res.fail_memsz_adjust:
            lines.append(
                f"{prefix}insn #{insn_idx} (LDX/ST/STX) accesses field incorrectly. Make sure "
                "you are accessing pointers, unsigned integers, or fields of matching type "
                "and size."
            )
            return poisoned(
                f"field size changes {res.orig_sz} -> {res.new_sz} and the field is neither "
                "a pointer nor an unsigned integer"
            )
        old = _u64(insn.off)
        code = insn.code
        lines.append(f"{prefix}patched insn #{insn_idx} (LDX/ST/STX) off {old} -> {new_val}")
        if res.new_sz != res.orig_sz:
            insn_bytes = _SIZE_BYTES[insn.code & _SIZE_MASK]
            if insn_bytes != res.orig_sz:
                text = (
                    f"insn #{insn_idx} (LDX/ST/STX) unexpected mem size: got {insn_bytes}, "
                    f"exp {res.orig_sz}"
                )
                lines.append(prefix + text)
                insns[insn_idx] = _make(insn, off=new_val)  # libbpf patched off already
                raise _Bad(22, text)
            new_size = _BYTES_SIZE.get(res.new_sz)
            if new_size is None:
                text = f"insn #{insn_idx} (LDX/ST/STX) invalid new mem size: {res.new_sz}"
                lines.append(prefix + text)
                insns[insn_idx] = _make(insn, off=new_val)
                raise _Bad(22, text)
            code = (insn.code & _MODE_MASK) | new_size | (insn.code & _CLASS_MASK)
            lines.append(
                f"{prefix}patched insn #{insn_idx} (LDX/ST/STX) mem_sz {res.orig_sz} -> "
                f"{res.new_sz}"
            )
        insns[insn_idx] = _make(insn, off=new_val, code=code)
        return PatchResult("patched", old, new_val, "", tuple(lines))

    if cls == _LD:
        second = insns[insn_idx + 1] if insn_idx + 1 < len(insns) else None
        if insn.code == _LD_IMM64 and second is None:
            text = f"insn #{insn_idx} (LDIMM64) is truncated"
            lines.append(prefix + text)
            raise _Bad(22, text)
        if (
            insn.code != _LD_IMM64
            or second is None
            or insn.src != 0
            or insn.off != 0
            or second.code != 0
            or second.dst != 0
            or second.src != 0
            or second.off != 0
        ):
            text = f"insn #{insn_idx} (LDIMM64) has unexpected form"
            lines.append(prefix + text)
            raise _Bad(22, text)
        if res.poison:
            return poisoned(res.reason)
        imm = _u32(insn.imm) | (_u32(second.imm) << 32)
        if res.validate and imm != orig_val:
            text = (
                f"unexpected insn #{insn_idx} (LDIMM64) value: got {imm}, "
                f"exp {orig_val} -> {new_val}"
            )
            lines.append(prefix + text)
            raise _Bad(22, text)
        insns[insn_idx] = _make(insn, imm=_s32(new_val))
        insns[insn_idx + 1] = _make(second, imm=_s32(new_val >> 32))
        lines.append(f"{prefix}patched insn #{insn_idx} (LDIMM64) imm64 {imm} -> {new_val}")
        return PatchResult("patched", imm, new_val, "", tuple(lines))

    raise bad_insn()
