"""`BpfObject`: the one facade a user holds, walking the phases in order.

    with BpfObject.open("probe.bpf.o") as obj:   # phase 1: open (no kernel)
        obj.spec.programs                          # pure data

Later phases (prepare, create_maps, load) build on the spec; calling a later phase runs the
missing earlier ones, as libbpf does.
"""

from __future__ import annotations

import enum
import hashlib
import os
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from bpfobj.errors import BpfObjError, InternalError, PhaseError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from bpfobj.btf.reader import Btf
    from bpfobj.btf.target import TargetBtf
    from bpfobj.core.record import CoreRecord
    from bpfobj.insn import Instruction
    from bpfobj.prepare import PreparedObject
    from bpfobj.spec import ObjectSpec

    T = TypeVar("T")


def _running_kernel_target(spec: ObjectSpec) -> TargetBtf | None:
    """The running kernel as target, or None when the object needs no target BTF at all
    (no CO-RE relocations and no ksyms): then a host without BTF can still prepare it."""
    from bpfobj.btf.target import TargetBtf
    from bpfobj.spec import ExternKind

    needs = spec.core_relo_count or any(e.kind is ExternKind.KSYM for e in spec.externs)
    if not needs and not os.path.exists("/sys/kernel/btf/vmlinux"):
        return None
    return TargetBtf.running_kernel()


def _guarded(work: Callable[[], T], spec: ObjectSpec, data: bytes) -> T:
    """Run a phase; a stray exception (not a BpfObjError) becomes InternalError."""
    try:
        return work()
    except BpfObjError:
        raise
    except Exception as exc:
        raise InternalError(
            f"unexpected {type(exc).__name__}: {exc}",
            obj=spec.name,
            sha256=hashlib.sha256(data).hexdigest(),
        ) from exc


class Phase(enum.IntEnum):
    OPENED = 1
    PREPARED = 2
    MAPS_CREATED = 3
    LOADED = 4
    CLOSED = 99


def guarded_open(data: bytes, name: str, page_size: int | None = None) -> ObjectSpec:
    """Run the open phase; any exception that is not a BpfObjError is a bug: InternalError."""
    from bpfobj.collect import open_spec

    try:
        return open_spec(data, name, page_size=page_size)
    except BpfObjError:
        raise
    except RecursionError as exc:
        raise InternalError(
            "recursion too deep while reading the object",
            obj=name,
            sha256=hashlib.sha256(data).hexdigest(),
        ) from exc
    except Exception as exc:
        raise InternalError(
            f"unexpected {type(exc).__name__} while opening: {exc}",
            obj=name,
            sha256=hashlib.sha256(data).hexdigest(),
        ) from exc


class BpfObject:
    """A BPF object file going through open -> prepare -> create_maps -> load."""

    def __init__(self, spec: ObjectSpec, path: str | None = None, data: bytes = b"") -> None:
        self._spec = spec
        self._data = data
        self.path = path
        self.phase = Phase.OPENED
        self._prepared: PreparedObject | None = None

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, *, data: bytes | None = None,
        name: str | None = None, page_size: int | None = None,
    ) -> BpfObject:
        """Open an object from a file `path` or from `data` bytes (then `name` names it).

        `page_size` is the target kernel's page size, used like libbpf to round ring buffer
        sizes (default: this host's).
        """
        if (path is None) == (data is None):
            raise PhaseError("BpfObject.open() takes a path or data=, not both or neither")
        if path is not None:
            fspath = os.fspath(path)
            try:
                with open(fspath, "rb") as f:
                    data = f.read()
            except OSError as exc:
                from bpfobj.errors import InputError

                raise InputError(
                    f"cannot read {fspath}: {exc.strerror}",
                    obj=fspath,
                    hint="check the path and its permissions",
                ) from None
            name = name or fspath
        assert data is not None
        data = bytes(data)
        spec = guarded_open(data, name or "<memory>", page_size)
        return cls(spec, path=os.fspath(path) if path is not None else None, data=data)

    @property
    def spec(self) -> ObjectSpec:
        self._check_open()
        return self._spec

    @property
    def name(self) -> str:
        return self._spec.name

    def _check_open(self) -> None:
        if self.phase is Phase.CLOSED:
            raise PhaseError("the object is closed", obj=self._spec.name)

    # -- phase 2: prepare ---------------------------------------------------------------

    def prepare(
        self,
        btf: str | os.PathLike[str] | Btf | TargetBtf | None = None,
        *,
        module_btf: Mapping[str, str | Btf] | None = None,
    ) -> PreparedObject:
        """Link and relocate every autoloaded program for a target kernel. No bpf(2).

        `btf`: None for the running kernel (/sys/kernel/btf/vmlinux and its modules), a
        path (raw BTF, ELF with .BTF, btfhub .btf.tar.xz), a parsed `Btf`, or a `TargetBtf`.
        `module_btf`: module name -> path or `Btf`, split on the target vmlinux.
        """
        from bpfobj.btf.target import TargetBtf
        from bpfobj.prepare import prepare

        self._check_open()
        target: TargetBtf | None
        if isinstance(btf, TargetBtf):
            target = btf
        elif btf is None and module_btf is None:
            target = _running_kernel_target(self._spec)
        elif btf is None:
            from bpfobj.btf.reader import load_kernel_btf

            target = TargetBtf.from_btf(load_kernel_btf(), modules=module_btf)
            target.override = False
        elif isinstance(btf, (str, os.PathLike)):
            target = TargetBtf.from_path(btf, modules=module_btf)
        else:
            target = TargetBtf.from_btf(btf, modules=module_btf)
        self._prepared = _guarded(lambda: prepare(self._spec, target), self._spec, self._data)
        self.phase = Phase.PREPARED
        return self._prepared

    @property
    def prepared(self) -> PreparedObject:
        """The result of prepare (runs it against the running kernel when not done yet)."""
        self._check_open()
        if self._prepared is None:
            self.prepare()
        assert self._prepared is not None
        return self._prepared

    def insns(self, program: str) -> list[Instruction]:
        """A program's final instructions (after prepare)."""
        return self.prepared.insns(program)

    @property
    def core_log(self) -> list[CoreRecord]:
        """Every CO-RE decision of the last prepare, one record per relocation."""
        return self.prepared.core_log

    def disassemble(self, program: str | None = None) -> str:
        """The object's code as `llvm-objdump -d` prints it (the ELF code, before prepare).

        With `program`, only that program's or subprogram's instructions.
        """
        from bpfobj.elf.reader import read_elf
        from bpfobj.insn import disassemble_insns, disassemble_section

        spec = self.spec
        if program is not None:
            prog = spec.programs.get(program) or spec.subprograms.get(program)
            if prog is None:
                raise PhaseError(
                    f"no program or subprogram named {program!r}",
                    obj=spec.name,
                    hint="programs are: " + ", ".join([*spec.programs, *spec.subprograms]),
                )
            return disassemble_insns(
                prog.instructions, spec.byteorder,  # type: ignore[arg-type]
                section_name=prog.section, symbols=[(0, prog.name)],
            )
        elf = read_elf(self._data, spec.name)
        out = [f"\n{self.path or spec.name}:\tfile format elf64-bpf\n"]
        for sec in elf.sections:
            if not sec.flags & 0x4 or sec.type == 8:  # SHF_EXECINSTR, not SHT_NOBITS
                continue
            symbols = [(s.value, s.name, s.type) for s in elf.symbols if s.shndx == sec.index]
            out.append(disassemble_section(sec.name, sec.data, elf.byteorder, symbols))
        return "".join(out)

    def close(self) -> None:
        self.phase = Phase.CLOSED

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BpfObject {self._spec.name!r} {self.phase.name.lower()}>"
