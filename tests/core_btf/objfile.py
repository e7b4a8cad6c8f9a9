"""Read a compiled BPF object with pyelftools and run bpfobj.core over it like libbpf.

`BpfObj.read(path)` gives the object's BTF, .BTF.ext CO-RE records, and its programs
(function symbols of executable sections: name, section, first instruction, instructions).
`run_core(obj, targets, programs=...)` walks the CO-RE records in libbpf's order
(bpf_object__relocate_core: .BTF.ext sections in file order, records in order; records of
programs not selected are skipped as libbpf skips autoload-off programs), resolves and
patches each, and returns the records, the patched instructions and the libbpf-format log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile

from bpfobj.btf import Btf
from bpfobj.btf.ext import BtfExt
from bpfobj.core import CoreCache, CoreDecision, CoreRecord, TargetBtf, apply, resolve
from bpfobj.errors import CoreError
from bpfobj.insn import Instruction, decode

SHF_EXECINSTR = 0x4


@dataclass
class Prog:
    name: str
    section: str
    start: int  # instruction index in the section
    insns: list[Instruction]


@dataclass
class BpfObj:
    path: Path
    byteorder: str
    btf: Any
    ext: BtfExt | None
    programs: dict[str, Prog]

    @classmethod
    def read(cls, path: str | Path) -> BpfObj:
        path = Path(path)
        with open(path, "rb") as f:
            elf = ELFFile(f)
            byteorder = "little" if elf.little_endian else "big"
            btf_sec = elf.get_section_by_name(".BTF")
            btf = Btf.parse(btf_sec.data(), name=path.name, cache=False)
            ext_sec = elf.get_section_by_name(".BTF.ext")
            ext = BtfExt.parse(ext_sec.data(), btf, name=path.name) if ext_sec else None
            programs: dict[str, Prog] = {}
            symtab = elf.get_section_by_name(".symtab")
            for sym in symtab.iter_symbols():
                if sym["st_info"]["type"] != "STT_FUNC" or sym["st_size"] == 0:
                    continue
                shndx = sym["st_shndx"]
                if not isinstance(shndx, int):
                    continue
                sec = elf.get_section(shndx)
                if not sec["sh_flags"] & SHF_EXECINSTR:
                    continue
                data = sec.data()[sym["st_value"] : sym["st_value"] + sym["st_size"]]
                programs[sym.name] = Prog(
                    name=sym.name,
                    section=sec.name,
                    start=sym["st_value"] // 8,
                    insns=list(decode(data, byteorder)),
                )
        return cls(path, byteorder, btf, ext, programs)

    def owner(self, section: str, insn_idx: int) -> Prog | None:
        for p in self.programs.values():
            if p.section == section and p.start <= insn_idx < p.start + len(p.insns):
                return p
        return None

    def relos(self) -> Iterable[tuple[str, int, Any]]:
        """(section, index in section, CoreRelo) in file order."""
        if self.ext is None:
            return
        for sec, relos in self.ext.core_relos.items():
            for i, r in enumerate(relos):
                yield sec, i, r


@dataclass
class CoreRun:
    records: list[CoreRecord] = field(default_factory=list)
    decisions: list[CoreDecision] = field(default_factory=list)
    insns: dict[str, list[Instruction]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    error: CoreError | None = None

    def by_prog(self, name: str) -> list[CoreRecord]:
        return [r for r in self.records if r.program == name]

    def one(self, prog: str, kind: str, spec_part: str = "") -> CoreRecord:
        hits = [
            r for r in self.records
            if r.program == prog and r.kind == kind and spec_part in (r.local_spec or "")
        ]  # fmt: skip
        assert len(hits) == 1, (prog, kind, spec_part, [r.local_spec for r in self.by_prog(prog)])
        return hits[0]


def targets_from(*btfs: Any, names: Sequence[str] = ()) -> list[TargetBtf]:
    out = []
    for i, b in enumerate(btfs):
        name = names[i] if i < len(names) else ("vmlinux" if i == 0 else f"mod{i}")
        out.append(TargetBtf(name=name, btf=b))
    return out


def run_core(
    obj: BpfObj,
    targets: Sequence[TargetBtf],
    programs: Sequence[str] | None = None,
    *,
    byteorder: str | None = None,
    stop_on_error: bool = True,
) -> CoreRun:
    """Resolve and patch every CO-RE relocation of the selected programs, libbpf's way."""
    run = CoreRun()
    run.insns = {n: list(p.insns) for n, p in obj.programs.items()}
    cache = CoreCache()
    for sec, i, relo in obj.relos():
        sec_insn = relo.insn_off // 8
        prog = obj.owner(sec, sec_insn)
        if prog is None or (programs is not None and prog.name not in programs):
            continue
        decision = resolve(
            obj.btf,
            relo,
            targets,
            cache,
            byteorder=byteorder or obj.byteorder,  # type: ignore[arg-type]
            program=prog.name,
            relo_idx=i,
        )
        run.decisions.append(decision)
        idx = sec_insn - prog.start
        try:
            record = apply(run.insns[prog.name], idx, decision, program=prog.name, insn=idx)
        except CoreError as err:
            record = err.record  # type: ignore[attr-defined]
            run.records.append(record)
            run.log.extend(record.log)
            run.error = err
            if stop_on_error:
                break
            continue
        run.records.append(record)
        run.log.extend(record.log)
    return run
