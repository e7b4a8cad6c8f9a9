"""The bpfobj exception tree.

Every public failure is a `BpfObjError`. Each carries the context it happened in as fields
(object, section, program, instruction, type) and a hint saying what to do, and formats them
into one readable line::

    BtfError: string offset 0x9999 is past the string section (size 0x120)
      [object probe.o, section .BTF, type [12]] -- the BTF is corrupt; rebuild the object

    BpfObjError
    +-- InputError             bad input: the object or a BTF blob cannot be understood
    |   +-- ElfError           the ELF container (truncated, bad headers, bad relocations)
    |   +-- BtfError           .BTF / raw BTF (header, types, strings)
    |   +-- BtfExtError        .BTF.ext (func_info, line_info, core_relo)
    |   +-- InsnError          undecodable instruction bytes
    |   +-- SpecError          a well-formed ELF whose BPF meaning is wrong (bad map definition,
    |                          unknown section, bad extern ...)
    +-- LinkError              the linker (calls, ELF relocations) refuses the object
    +-- CoreError              a CO-RE relocation cannot be resolved (libbpf would fail too)
    +-- PhaseError             a phase called out of order, or on a closed object
    +-- NotSupportedError      the running kernel or this host lacks a feature
    +-- BufferFullError        a user ring buffer has no room for a record (yet)
    +-- SyscallError (OSError) a bpf(2)/perf_event_open(2) call failed: errno and command
    |   +-- VerifierError      PROG_LOAD rejected: verifier log, failing insn, C source line
    +-- InternalError          a bug in bpfobj: the input's sha256 is attached for a report
"""

from __future__ import annotations

import errno as _errno
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any


class BpfObjError(Exception):
    """Root of every error bpfobj raises on purpose.

    Fields (all optional): ``obj`` (object name), ``section``, ``program``, ``insn`` (instruction
    index), ``type`` (a type description or ``[id]``), ``hint`` (what to do).
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        obj: str | None = None,
        section: str | None = None,
        program: str | None = None,
        insn: int | None = None,
        type: str | None = None,
        hint: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.obj = obj
        self.section = section
        self.program = program
        self.insn = insn
        self.type = type
        self.hint = hint
        self.extra = extra

    def where(self) -> str:
        parts = []
        if self.obj is not None:
            parts.append(f"object {self.obj}")
        if self.section is not None:
            parts.append(f"section {self.section}")
        if self.program is not None:
            parts.append(f"program {self.program}")
        if self.insn is not None:
            parts.append(f"insn {self.insn}")
        if self.type is not None:
            parts.append(f"type {self.type}")
        parts.extend(f"{k} {v}" for k, v in self.extra.items() if v is not None)
        return ", ".join(parts)

    def with_context(self, **context: Any) -> BpfObjError:
        """Fill in context fields that are still unset (used as errors travel outwards)."""
        for key, value in context.items():
            if value is None:
                continue
            if key in ("obj", "section", "program", "insn", "type", "hint"):
                if getattr(self, key) is None:
                    setattr(self, key, value)
            elif self.extra.get(key) is None:
                self.extra[key] = value
        return self

    def __str__(self) -> str:
        text = self.message
        where = self.where()
        if where:
            text += f" [{where}]"
        if self.hint:
            text += f" -- {self.hint}"
        return printable(text)


def printable(text: str) -> str:
    """`text` on one line: names read from a corrupt object may hold control characters."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


class InputError(BpfObjError):
    """The input (object file, BTF blob) cannot be understood."""


class ElfError(InputError):
    """The ELF container is malformed or is not a BPF object."""


class BtfError(InputError):
    """A BTF blob (.BTF section or raw file) is malformed."""


class BtfExtError(InputError):
    """The .BTF.ext section is malformed."""


class InsnError(InputError):
    """Instruction bytes cannot be decoded."""


class SpecError(InputError):
    """The object is well-formed ELF but its BPF meaning is wrong (maps, sections, externs)."""


class LinkError(BpfObjError):
    """The linker cannot resolve a call or an ELF relocation."""


class CoreError(BpfObjError):
    """A CO-RE relocation cannot be resolved against the target BTF."""


class PhaseError(BpfObjError):
    """A phase was called out of order or on a closed object."""


class NotSupportedError(BpfObjError):
    """The kernel or host lacks a feature this operation needs."""


class BufferFullError(BpfObjError):
    """A BPF_MAP_TYPE_USER_RINGBUF has no room for a record until a program drains it.
    ``needed`` and ``available`` are in bytes (header and padding included)."""

    def __init__(self, message: str, *, needed: int, available: int, **context: Any) -> None:
        super().__init__(message, **context)
        self.needed = needed
        self.available = available


class SyscallError(BpfObjError, OSError):
    """A system call (bpf, perf_event_open, ...) failed. Also an OSError with its errno."""

    def __init__(self, message: str, *, errno: int, command: str, **context: Any) -> None:
        if errno in (_errno.EPERM, _errno.EACCES) and "hint" not in context:
            context["hint"] = "run as root or grant CAP_BPF (and CAP_PERFMON for tracing)"
        BpfObjError.__init__(self, message, **context)
        self.errno = errno
        self.strerror = os.strerror(errno)
        self.command = command

    def __str__(self) -> str:
        base = BpfObjError.__str__(self)
        return f"{self.command}: {self.strerror} (errno {self.errno}): {base}"


class VerifierError(SyscallError):
    """The verifier rejected a program; ``log`` holds its full log."""

    def __init__(self, message: str, *, log: str = "", source_line: str | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.log = log
        self.source_line = source_line


class InternalError(BpfObjError):
    """A bug in bpfobj. The message carries the sha256 of the input for a bug report."""

    def __init__(self, message: str, *, sha256: str | None = None, **context: Any) -> None:
        hint = "this is a bug in bpfobj; please report it with the input file"
        context.setdefault("hint", hint)
        super().__init__(message, **context)
        self.sha256 = sha256

    def where(self) -> str:
        where = super().where()
        if self.sha256:
            where = f"{where}, input sha256 {self.sha256}" if where else f"input sha256 {self.sha256}"
        return where
