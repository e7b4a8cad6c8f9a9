"""The linker: ELF relocations, subprogram calls, map references as indices.

A faithful re-implementation of libbpf's static linking at load time (libbpf.c:
bpf_program__record_reloc, bpf_object__reloc_code, bpf_object__append_subprog_code,
bpf_object__relocate_data), so that the instructions come out identical to libbpf's:

* every ELF relocation of a program is classified (map, global data, extern, subprogram call,
  subprogram address) exactly as libbpf does, with libbpf's errors made readable;
* each main program gets the .text subprograms it calls (transitively) appended in the order
  libbpf appends them: depth-first, at the first call site found scanning the code;
* map references become ld_imm64 with ``BPF_PSEUDO_MAP_IDX`` / ``BPF_PSEUDO_MAP_IDX_VALUE``
  and ``imm`` = index into the object's map list: symbolic until the kernel phase swaps in fds;
* __arena globals (.addr_space.1) are references into the arena map, the variable's offset
  plus the globals' offset in the arena (libbpf's RELO_DATA with obj->arena_map_idx).

Pure: no kernel involved. Externs are resolved by the caller (prepare) and passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bpfobj import enums, records
from bpfobj.elf.reader import (
    SHN_LORESERVE,
    SHN_UNDEF,
    STB_GLOBAL,
    STB_LOCAL,
    STB_WEAK,
    STT_FUNC,
    STT_NOTYPE,
    STT_SECTION,
)
from bpfobj.errors import LinkError
from bpfobj.insn import Instruction
from bpfobj.spec import (
    ARENA_SECTION,
    ElfReloc,
    Extern,
    ExternKind,
    MapKind,
    MapSpec,
    ObjectSpec,
    ProgramSpec,
)
from bpfobj.uapi import (
    PSEUDO_BTF_ID,
    PSEUDO_CALL,
    PSEUDO_FUNC,
    PSEUDO_KFUNC_CALL,
    PSEUDO_MAP_IDX,
    PSEUDO_MAP_IDX_VALUE,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

BPF_JMP_CALL = 0x85  # BPF_JMP | BPF_CALL (| BPF_K)
BPF_LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW
POISON_CALL_KFUNC_BASE = 2002000000  # libbpf.c: unresolved weak kfunc calls


class RelocType(enums.IntEnum):
    """libbpf's enum reloc_type; the order matters (relocations sort by insn, then type)."""

    LD64 = 0  # a map (BTF-defined or legacy)
    CALL = 1  # a call to a .text subprogram
    DATA = 2  # global data: a data section map plus an offset
    EXTERN_LD64 = 3  # a kconfig or ksym variable
    EXTERN_CALL = 4  # a kfunc
    SUBPROG_ADDR = 5  # the address of a subprogram (callbacks)


@records.frozen
class Reloc:
    type: RelocType
    insn: int  # instruction index in the frame of the program that holds the relocation
    symbol: str
    map_index: int = -1
    sym_off: int = 0
    extern_index: int = -1

    def shifted(self, by: int) -> Reloc:
        return records.evolve(self, insn=self.insn + by)


@records.frozen
class MapRef:
    """An ld_imm64 that refers to a map (value_off is None) or into a map's value.

    For an __arena global, `map` is the arena map, `value_off` the variable's offset in the
    arena (the globals' offset in it plus the variable's in .addr_space.1) and
    `arena_global` the variable's ELF symbol.
    """

    insn: int
    map_index: int
    map: str
    value_off: int | None
    arena_global: str | None = None


@records.frozen
class ExternRef:
    """An instruction that the kernel phase must still complete for an extern."""

    insn: int
    extern: str
    kind: str  # "ksym_addr" (typeless ksym: kallsyms address), "kfunc_module", "ksym_module"


@records.frozen
class ResolvedExtern:
    """What prepare learned about an extern from the target BTF.

    btf_id: the VAR/FUNC id in the target BTF (0: not found); module: the module that has it
    (None: vmlinux). A weak extern that is not found stays unresolved without error.
    """

    btf_id: int = 0
    module: str | None = None


@records.define
class LinkedProgram:
    name: str
    spec: ProgramSpec
    insns: list[Instruction]
    map_refs: list[MapRef] = records.field(factory=list)
    extern_refs: list[ExternRef] = records.field(factory=list)
    func_info: list[Any] = records.field(factory=list)  # insn_off is an instruction index here
    line_info: list[Any] = records.field(factory=list)
    layout: list[tuple[str, int]] = records.field(factory=list)  # (program, first insn)


def _sym_is_extern(r: ElfReloc) -> bool:
    return (
        r.symbol_shndx == SHN_UNDEF
        and r.symbol_bind in (STB_GLOBAL, STB_WEAK)
        and r.symbol_type == STT_NOTYPE
    )


def is_subprog_call(insn: Instruction) -> bool:
    """libbpf insn_is_subprog_call()."""
    return (
        insn.code == BPF_JMP_CALL
        and insn.src == PSEUDO_CALL
        and insn.dst == 0
        and insn.off == 0
    )


def is_pseudo_func(insn: Instruction) -> bool:
    return insn.code == BPF_LD_IMM64 and insn.src == PSEUDO_FUNC


class Linker:
    """Links the programs of one ObjectSpec. Instructions may be pre-patched (CO-RE) by the
    caller: `link()` takes each program's instruction list as given."""

    def __init__(self, spec: ObjectSpec, *, arena_data_off: int = 0) -> None:
        """`arena_data_off`: where in the arena map the __arena globals are (libbpf
        obj->arena_data_off, chosen by prepare: `bpfobj.prepare.arena_layout`)."""
        self.spec = spec
        self.maps: list[MapSpec] = list(spec.maps.values())
        arena = spec.arena_globals
        self.arena_idx = list(spec.maps).index(arena.map) if arena is not None else -1
        self.arena_shndx = arena.section_index if arena is not None else -1
        self.arena_data_off = arena_data_off
        self.text = sorted(spec.subprograms.values(), key=lambda p: p.section_offset)
        self.text_shndx = self.text[0].section_index if self.text else -1
        self._relocs: dict[str, list[Reloc]] = {}

    # -- classification (bpf_program__record_reloc) --------------------------------------

    def relocs(self, prog: ProgramSpec) -> list[Reloc]:
        """The classified relocations of `prog`, sorted like libbpf (insn, then type)."""
        cached = self._relocs.get(prog.name)
        if cached is None:
            cached = sorted(
                (self._classify(prog, r) for r in prog.relocations),
                key=lambda r: (r.insn, r.type),
            )
            self._relocs[prog.name] = cached
        return cached

    def _error(self, prog: ProgramSpec, insn: int, message: str, hint: str | None = None) -> LinkError:
        return LinkError(
            message, obj=self.spec.name, section=prog.section, program=prog.name, insn=insn,
            hint=hint,
        )

    def _classify(self, prog: ProgramSpec, r: ElfReloc) -> Reloc:
        insn = prog.instructions[r.insn] if r.insn < len(prog.instructions) else None
        is_call = insn is not None and insn.code == BPF_JMP_CALL
        if insn is None or (not is_call and insn.code != BPF_LD_IMM64):
            raise self._error(
                prog, r.insn,
                f"relocation against {r.symbol!r} targets an instruction that is neither a "
                f"call nor ld_imm64 (code {insn.code if insn else 'past the end'!r})",
                "the object is corrupt or was not produced by clang -target bpf",
            )
        if _sym_is_extern(r):
            for i, ext in enumerate(self.spec.externs):
                if ext.symbol_index == r.symbol_index:
                    kind = RelocType.EXTERN_CALL if is_call else RelocType.EXTERN_LD64
                    return Reloc(kind, r.insn, r.symbol, extern_index=i)
            raise self._error(prog, r.insn, f"relocation against unknown extern {r.symbol!r}")
        if is_call:
            assert insn is not None
            if insn.src != PSEUDO_CALL:
                raise self._error(prog, r.insn, f"call relocation against {r.symbol!r} is not a "
                                  "BPF-to-BPF call (src_reg != 1)")
            if r.symbol_shndx == 0 or r.symbol_shndx != self.text_shndx:
                raise self._error(
                    prog, r.insn,
                    f"call to {r.symbol!r} in section {r.symbol_section!r}: only functions in "
                    ".text can be called",
                    "define called functions without SEC(), so that they land in .text",
                )
            if r.symbol_value % 8:
                raise self._error(prog, r.insn, f"call to {r.symbol!r} at a misaligned offset")
            return Reloc(RelocType.CALL, r.insn, r.symbol, sym_off=r.symbol_value)
        assert insn is not None
        if not r.symbol_shndx or r.symbol_shndx >= SHN_LORESERVE:
            raise self._error(
                prog, r.insn,
                f"relocation against {r.symbol!r} in special section {r.symbol_shndx:#x}",
                "forgot to initialise a global variable? (COMMON symbols are not supported)",
            )
        if r.symbol_shndx == self.text_shndx and (
            (r.symbol_bind == STB_LOCAL and r.symbol_type == STT_SECTION)
            or (r.symbol_bind in (STB_GLOBAL, STB_WEAK) and r.symbol_type == STT_FUNC)
        ):
            if r.symbol_value % 8 or insn.imm % 8:
                raise self._error(prog, r.insn, f"misaligned subprogram address of {r.symbol!r}")
            return Reloc(RelocType.SUBPROG_ADDR, r.insn, r.symbol, sym_off=r.symbol_value)
        if r.symbol_shndx == self.arena_shndx:
            # libbpf bpf_program__record_reloc(), "arena data relocation": RELO_DATA against
            # the arena map, sym_off the variable's offset in .addr_space.1
            return Reloc(RelocType.DATA, r.insn, r.symbol, map_index=self.arena_idx,
                         sym_off=r.symbol_value)
        for idx, m in enumerate(self.maps):
            if m.section_index != r.symbol_shndx:
                continue
            if m.kind in (MapKind.BTF, MapKind.LEGACY):
                if m.section_offset == r.symbol_value:
                    return Reloc(RelocType.LD64, r.insn, r.symbol, map_index=idx)
            elif m.kind in (MapKind.DATA, MapKind.RODATA):
                return Reloc(
                    RelocType.DATA, r.insn, r.symbol, map_index=idx, sym_off=r.symbol_value
                )
        if r.symbol_section == ARENA_SECTION:  # (libbpf takes only a PROGBITS one too)
            raise self._error(
                prog, r.insn,
                f"{r.symbol!r} is an arena global (an __arena variable) but section "
                ".addr_space.1 holds no initial data (not a non-empty PROGBITS section)",
                "rebuild the object with clang -target bpf; it emits .addr_space.1 as PROGBITS",
            )
        raise self._error(
            prog, r.insn,
            f"relocation against {r.symbol!r} in section {r.symbol_section!r}, which is "
            "neither a map nor a global data section",
            "maps go in SEC(\".maps\"); globals in .data/.rodata/.bss (or .data.*, ...)",
        )

    # -- calls and subprogram appending (bpf_object__reloc_code) -------------------------

    def _text_prog_at(self, insn_idx: int) -> ProgramSpec | None:
        for p in self.text:
            if p.section_offset <= insn_idx < p.section_offset + p.insn_cnt:
                return p
        return None

    def link(
        self,
        main: ProgramSpec,
        code: Callable[[ProgramSpec], Sequence[Instruction]],
        resolved: Sequence[ResolvedExtern],
    ) -> LinkedProgram:
        """Link `main`: append subprograms, then turn data relocations into map indices.

        `code(prog)` gives a (sub)program's instructions, already CO-RE patched.
        `resolved[i]` says how extern i of the spec was resolved against the target.
        """
        out = LinkedProgram(name=main.name, spec=main, insns=list(code(main)))
        offsets: dict[str, int] = {main.name: 0}
        relocs: list[Reloc] = list(self.relocs(main))
        # libbpf marks subprogram-address ld_imm64s first, so they look like BPF_PSEUDO_FUNC.
        self._mark_pseudo_func(out.insns, relocs)
        self._reloc_code(main, main, out, offsets, relocs, code)
        self._relocate_data(main, out, relocs, resolved)
        return out

    def _mark_pseudo_func(self, insns: list[Instruction], relocs: Sequence[Reloc], base: int = 0) -> None:
        for r in relocs:
            if r.type is RelocType.SUBPROG_ADDR:
                i = base + r.insn
                insns[i] = insns[i].replace(src=PSEUDO_FUNC)

    def _reloc_code(
        self,
        main: ProgramSpec,
        prog: ProgramSpec,
        out: LinkedProgram,
        offsets: dict[str, int],
        relocs: list[Reloc],
        code: Callable[[ProgramSpec], Sequence[Instruction]],
    ) -> None:
        base = offsets[prog.name]
        out.layout.append((prog.name, base))
        self._carry_ext_info(prog, out, base)
        prog_relocs = {r.insn: r for r in self.relocs(prog)}
        for idx in range(prog.insn_cnt):
            insn = out.insns[base + idx]
            if not is_subprog_call(insn) and not is_pseudo_func(insn):
                continue
            relo = prog_relocs.get(idx)
            if relo is not None and relo.type is RelocType.EXTERN_CALL:
                continue
            if relo is not None and relo.type not in (RelocType.CALL, RelocType.SUBPROG_ADDR):
                raise self._error(prog, idx, f"unexpected {relo.type.name} relocation on a call")
            if relo is not None:
                if relo.type is RelocType.CALL:
                    sub_idx = relo.sym_off // 8 + insn.imm + 1
                else:
                    sub_idx = (relo.sym_off + insn.imm) // 8
            elif is_pseudo_func(insn):
                raise self._error(prog, idx, "callback address without a relocation")
            else:
                sub_idx = prog.section_offset + idx + insn.imm + 1
            sub = self._text_prog_at(sub_idx)
            if sub is None:
                raise self._error(
                    prog, idx,
                    f"call into .text instruction {sub_idx}, which is in no function",
                    "the object is corrupt, or .text has no function symbols",
                )
            if sub.name not in offsets:
                offsets[sub.name] = len(out.insns)
                sub_code = list(code(sub))
                sub_relocs = self.relocs(sub)
                self._mark_pseudo_func(sub_code, sub_relocs)
                out.insns.extend(sub_code)
                relocs.extend(r.shifted(offsets[sub.name]) for r in sub_relocs)
                self._reloc_code(main, sub, out, offsets, relocs, code)
            new_imm = offsets[sub.name] - (base + idx) - 1
            out.insns[base + idx] = out.insns[base + idx].replace(imm=new_imm)

    def _carry_ext_info(self, prog: ProgramSpec, out: LinkedProgram, base: int) -> None:
        """func_info/line_info of an appended (sub)program, in final instruction indices."""
        for finfo in prog.func_info:
            out.func_info.append(records.evolve(finfo, insn_off=finfo.insn_off // 8 + base))
        for linfo in prog.line_info:
            out.line_info.append(records.evolve(linfo, insn_off=linfo.insn_off // 8 + base))

    # -- data relocations (bpf_object__relocate_data) ------------------------------------

    def _relocate_data(
        self,
        main: ProgramSpec,
        out: LinkedProgram,
        relocs: Sequence[Reloc],
        resolved: Sequence[ResolvedExtern],
    ) -> None:
        insns = out.insns
        kconfig_idx = next(
            (i for i, m in enumerate(self.maps) if m.kind is MapKind.KCONFIG), -1
        )
        for r in relocs:
            i = r.insn
            lo, hi = insns[i], insns[i + 1] if i + 1 < len(insns) else None
            if r.type is RelocType.LD64:
                insns[i] = lo.replace(src=PSEUDO_MAP_IDX, imm=r.map_index)
                out.map_refs.append(MapRef(i, r.map_index, self.maps[r.map_index].name, None))
            elif r.type is RelocType.DATA:
                assert hi is not None
                arena = r.map_index == self.arena_idx
                # libbpf bpf_object__relocate_data(): insn[1].imm = insn[0].imm + sym_off,
                # plus obj->arena_data_off for the arena map (libbpf 1.7.0 libbpf.c:6385)
                value_off = _s32(lo.imm + r.sym_off + (self.arena_data_off if arena else 0))
                insns[i + 1] = hi.replace(imm=value_off)
                insns[i] = lo.replace(src=PSEUDO_MAP_IDX_VALUE, imm=r.map_index)
                out.map_refs.append(MapRef(i, r.map_index, self.maps[r.map_index].name, value_off,
                                           self._arena_variable(r, lo) if arena else None))
            elif r.type is RelocType.EXTERN_LD64:
                assert hi is not None
                ext = self.spec.externs[r.extern_index]
                if ext.kind is ExternKind.KCONFIG:
                    insns[i] = lo.replace(src=PSEUDO_MAP_IDX_VALUE, imm=kconfig_idx)
                    insns[i + 1] = hi.replace(imm=ext.kcfg_offset)
                    out.map_refs.append(
                        MapRef(i, kconfig_idx, self.maps[kconfig_idx].name, ext.kcfg_offset)
                    )
                else:
                    self._ksym_var(out, i, ext, resolved[r.extern_index])
            elif r.type is RelocType.EXTERN_CALL:
                ext = self.spec.externs[r.extern_index]
                res = resolved[r.extern_index]
                if res.btf_id:
                    insns[i] = lo.replace(src=PSEUDO_KFUNC_CALL, imm=res.btf_id, off=0)
                    if res.module is not None:
                        out.extern_refs.append(ExternRef(i, ext.name, "kfunc_module"))
                else:  # an unresolved weak kfunc: libbpf's poison_kfunc_call()
                    insns[i] = Instruction(
                        code=BPF_JMP_CALL, dst=0, src=0, off=0,
                        imm=POISON_CALL_KFUNC_BASE + r.extern_index,
                    )
            # CALL and SUBPROG_ADDR were handled while linking code.

    def _arena_variable(self, r: Reloc, lo: Instruction) -> str:
        """The __arena variable an arena relocation points at (a static one is relocated
        through the section symbol, its offset in the instruction)."""
        arena = self.spec.arena_globals
        assert arena is not None
        return arena.variable_at(lo.imm + r.sym_off) or r.symbol

    def _ksym_var(self, out: LinkedProgram, i: int, ext: Extern, res: ResolvedExtern) -> None:
        insns = out.insns
        lo, hi = insns[i], insns[i + 1]
        if ext.type_id and res.btf_id:  # typed ksym: the verifier knows its BTF type
            insns[i] = lo.replace(src=PSEUDO_BTF_ID, imm=res.btf_id)
            insns[i + 1] = hi.replace(imm=0)  # BTF object fd: 0 = vmlinux
            if res.module is not None:
                out.extern_refs.append(ExternRef(i, ext.name, "ksym_module"))
        else:  # typeless (or unresolved weak typed) ksym: its address, from kallsyms
            insns[i] = lo.replace(imm=0)
            insns[i + 1] = hi.replace(imm=0)
            if ext.type_id == 0:
                out.extern_refs.append(ExternRef(i, ext.name, "ksym_addr"))


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value
