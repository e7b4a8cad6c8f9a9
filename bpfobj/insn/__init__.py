"""BPF instructions: opcode tables, the 8-byte codec, and an llvm-objdump-exact disassembler.

Offline and kernel-free: nothing here touches bpf(2).
"""

from __future__ import annotations

from bpfobj.arch import ByteOrder
from bpfobj.insn.codec import (
    Instruction,
    call_helper,
    decode,
    encode,
    exit_insn,
    imm64,
    ja,
    kfunc_call,
    ld_imm64,
    mov64_imm,
    pseudo_call,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.insn.disasm import Symbol, disassemble_insns, disassemble_section, format_insn

_DISASM = ("Symbol", "disassemble_insns", "disassemble_section", "format_insn")


def __getattr__(name: str) -> Any:
    # The disassembler is imported when first asked for: loading a program never needs it.
    if name in _DISASM:
        from bpfobj.insn import disasm

        return getattr(disasm, name)
    raise AttributeError(f"module 'bpfobj.insn' has no attribute {name!r}")

__all__ = [
    "ByteOrder",
    "Instruction",
    "Symbol",
    "call_helper",
    "decode",
    "disassemble_insns",
    "disassemble_section",
    "encode",
    "exit_insn",
    "format_insn",
    "imm64",
    "ja",
    "kfunc_call",
    "ld_imm64",
    "mov64_imm",
    "pseudo_call",
]
