"""`BpfObject`: the one facade a user holds, walking the phases in order.

    with BpfObject.open("probe.bpf.o") as obj:   # phase 1: open (no kernel)
        obj.spec.programs                          # pure data
        obj.rodata.target_pid = 42                 # initial value of a const volatile
        obj.load()                                 # prepare + create_maps + load
        obj.programs["handle"].fd, obj.maps["counts"][1]
        obj.bss.counter                            # globals through the mmap-ed map

Calling a later phase runs the missing earlier ones, as libbpf does; a phase called again
or out of order raises `PhaseError`. The object owns every fd it created: `close()` (or
leaving the ``with`` block) closes them all, and a failed load closes what it opened.
The offline phases (open, prepare) run inside `bpfobj.sys.offline()`: any bpf(2) call
they made would be refused.
"""

from __future__ import annotations

import os
import sys

from bpfobj import enums
from bpfobj.closing import Closing
from bpfobj.errors import BpfObjError, InternalError, PhaseError, SpecError
from bpfobj.sys.guard import offline

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, TypeVar

    from bpfobj.btf.reader import Btf
    from bpfobj.btf.target import TargetBtf
    from bpfobj.core.record import CoreRecord
    from bpfobj.insn import Instruction
    from bpfobj.kernel.features import Features
    from bpfobj.links import Link
    from bpfobj.maps import Backing, Globals, Map
    from bpfobj.prepare import PreparedObject
    from bpfobj.programs import Program
    from bpfobj.spec import ObjectSpec
    from bpfobj.sys.syscall import Fd

    T = TypeVar("T")
    V = TypeVar("V")


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
        from bpfobj.spec import sha256_hex

        raise InternalError(
            f"unexpected {type(exc).__name__}: {exc}",
            obj=spec.name,
            sha256=sha256_hex(data),
        ) from exc


class _Named(dict[str, "V"]):  # generic for the type checker only
    """name -> loaded object; a missing name says which exist."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def __missing__(self, key: str) -> V:
        raise KeyError(f"no {self.what} named {key!r}; {self.what}s are: "
                       f"{', '.join(self) or '(none)'}")


class Phase(enums.IntEnum):
    OPENED = 1
    PREPARED = 2
    MAPS_CREATED = 3
    LOADED = 4
    CLOSED = 99


def guarded_open(data: bytes, name: str, page_size: int | None = None) -> ObjectSpec:
    """Run the open phase; any exception that is not a BpfObjError is a bug: InternalError."""
    from bpfobj.collect import open_spec
    from bpfobj.spec import sha256_hex

    try:
        with offline("open phase"):
            return open_spec(data, name, page_size=page_size)
    except BpfObjError:
        raise
    except RecursionError as exc:
        raise InternalError(
            "recursion too deep while reading the object",
            obj=name,
            sha256=sha256_hex(data),
        ) from exc
    except Exception as exc:
        raise InternalError(
            f"unexpected {type(exc).__name__} while opening: {exc}",
            obj=name,
            sha256=sha256_hex(data),
        ) from exc


class BpfObject(Closing):
    """A BPF object file going through open -> prepare -> create_maps -> load."""

    def __init__(self, spec: ObjectSpec, path: str | None = None, data: bytes = b"") -> None:
        self._spec = spec
        self._data = data
        self.path = path
        self.phase = Phase.OPENED
        self._prepared: PreparedObject | None = None
        self._links: list[Link] = []
        self._features: Features | None = None
        self._btf_fd: Fd | None = None
        self._maps: _Named[Map] = _Named("map")
        self._programs: _Named[Program] = _Named("program")
        self._initial: dict[str, bytearray] = {}  # edited data sections, before create_maps
        self._globals: dict[str, Globals] = {}
        self._symbols: dict[int, dict[str, int]] | None = None
        # program -> (owned dup of the target program's fd or None, function or None)
        self._attach_targets: dict[str, tuple[Fd | None, str | None]] = {}

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
        core: str = "user",
        programs: Sequence[str] | None = None,
        arena_globals: str | None = None,
    ) -> PreparedObject:
        """Link and relocate every autoloaded program for a target kernel. No bpf(2).

        `btf`: None for the running kernel (/sys/kernel/btf/vmlinux and its modules), a
        path (raw BTF, ELF with .BTF, btfhub .btf.tar.xz), a parsed `Btf`, or a `TargetBtf`.
        `module_btf`: module name -> path or `Btf`, split on the target vmlinux.
        `core`: "user" (default) relocates CO-RE here like libbpf; "kernel" leaves it to
        the kernel at load time (PROG_LOAD core_relos, Linux 5.17+).
        `programs`: prepare only these main programs (default: every autoload one).
        `arena_globals`: "start" or "end": where the __arena globals go in the arena map
        (`bpfobj.prepare.arena_layout`). By default, where libbpf 1.7 puts them: for the
        running kernel, the end from Linux 7.0 on (it takes ld_imm64 offsets of any size),
        else the start (`bpfobj.prepare.arena_placement_for`: from the kernel release, as
        prepare makes no bpf(2) call); for another target, the start, which every kernel
        with arenas takes.
        """
        from bpfobj.btf.target import TargetBtf
        from bpfobj.prepare import arena_placement_for, prepare

        self._check_open()
        if self.phase >= Phase.MAPS_CREATED:
            raise PhaseError("prepare() after the maps were created", obj=self.name,
                             hint="open the object again to prepare it for another target")
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

        if arena_globals is None:
            arena_globals = "start"
            if self._spec.arena_globals is not None and btf is None and module_btf is None:
                arena_globals = arena_placement_for(os.uname().release)

        def run() -> PreparedObject:
            with offline("prepare phase"):
                return prepare(self._spec, target, core=core, programs=programs,
                               arena_globals=arena_globals)

        self._prepared = _guarded(run, self._spec, self._data)
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

    # -- phase 3: create_maps -----------------------------------------------------------

    @property
    def features(self) -> Features:
        """The running kernel's features (probed once per boot, see bpfobj.kernel.features)."""
        if self._features is None:
            from bpfobj.kernel.features import bump_memlock_rlimit, probe

            self._features = probe()
            bump_memlock_rlimit(self._features)
        return self._features

    def create_maps(self, *, pin_root: str | None = None,
                    kconfig: str | None = None) -> Mapping[str, Map]:
        """Create every map (runs prepare first when needed): BTF-typed when the kernel
        takes the object's BTF, data sections filled (with the values set through
        `rodata`/`data`/`bss`), .rodata/.kconfig frozen, pinned maps reused.

        `pin_root`: directory of LIBBPF_PIN_BY_NAME pins (default /sys/fs/bpf);
        `kconfig`: extra kernel config lines for __kconfig externs.
        """
        from bpfobj import loader
        from bpfobj.sys import bpffs

        self._check_open()
        if self.phase >= Phase.MAPS_CREATED:
            raise PhaseError("the maps are already created", obj=self.name)
        prepared = self.prepared
        loader.check_byteorder(self._spec)
        features = self.features

        def run() -> dict[str, Map]:
            btf_fd = loader.load_object_btf(self._spec, self._data, features)
            try:
                maps = loader.create_maps(
                    prepared, features, btf_fd=btf_fd, pin_root=pin_root or bpffs.DEFAULT_ROOT,
                    initial={k: bytes(v) for k, v in self._initial.items()}, kconfig=kconfig,
                )
            except BaseException:
                if btf_fd is not None:
                    btf_fd.close()
                raise
            self._btf_fd = btf_fd
            return maps

        # The edited initial images stay: a failed load() closes the maps, and the next
        # create_maps() starts from them again.
        self._maps.update(_guarded(run, self._spec, self._data))
        self.phase = Phase.MAPS_CREATED
        return self._maps

    @property
    def maps(self) -> Mapping[str, Map]:
        """name -> `Map`, once the maps are created (create_maps() or load())."""
        self._check_open()
        if self.phase < Phase.MAPS_CREATED:
            raise PhaseError("the maps do not exist yet", obj=self.name,
                             hint="call create_maps() or load() first")
        return self._maps

    # -- phase 4: load --------------------------------------------------------------------

    def load(self, *, log_level: int = 0, pin_root: str | None = None,
             kconfig: str | None = None) -> Mapping[str, Program]:
        """Load every program (running prepare and create_maps first when needed).

        A rejected program raises `VerifierError` (the verifier log, the failing
        instruction and its C source line); everything this call created is closed then.
        `log_level` > 0 keeps the verifier log of successful loads in `Program.log`.
        """
        from bpfobj import loader

        self._check_open()
        if self.phase >= Phase.LOADED:
            raise PhaseError("the object is already loaded", obj=self.name)
        if self.phase < Phase.MAPS_CREATED:
            self.create_maps(pin_root=pin_root, kconfig=kconfig)
        assert self._prepared is not None
        prepared, features = self._prepared, self.features
        try:
            programs = _guarded(
                lambda: loader.load(prepared, self._maps, features, btf_fd=self._btf_fd,
                                    log_level=log_level, attach_targets={
                                        n: (fd.fileno() if fd is not None else None, func)
                                        for n, (fd, func) in self._attach_targets.items()}),
                self._spec, self._data,
            )
        except BaseException:
            self._release()  # like libbpf's bpf_object_unload(): maps go too
            self.phase = Phase.PREPARED
            raise
        self._programs.update(programs)
        self.phase = Phase.LOADED
        reader = sys.modules.get("bpfobj.btf.reader")  # (loaded if a kernel BTF was read)
        if reader is not None:
            reader.flush_caches_soon()  # cache what a cold prepare learned, even if killed
        return self._programs

    def set_attach_target(self, program: str, target: Program | int | None = None,
                          func: str | None = None) -> None:
        """Say, before load, what `program` attaches to (libbpf
        bpf_program__set_attach_target()).

        With `target` (a loaded `Program` or a program fd), `program` is an freplace
        (``SEC("freplace/<func>")``) replacing function `func` (default: the section's) of
        that program: its attach_btf_id comes from the target's BTF at load, which passes
        the target as attach_prog_fd. Without, `func` names the kernel function (or
        tracepoint ...) of a BTF-typed program (fentry, fexit, tp_btf ...) instead of its
        section's. The object keeps a duplicate of the target's fd until it closes.
        """
        self._check_open()
        if self.phase >= Phase.LOADED:
            raise PhaseError("set_attach_target() after load", obj=self.name, program=program,
                             hint="set attach targets before obj.load()")
        self._spec.program(program)  # names a program, or SpecError
        if target is None and not func:
            raise SpecError("set_attach_target() needs a target program or a function name",
                            obj=self.name, program=program)
        fd: Fd | None = None
        if target is not None:
            from bpfobj.sys.syscall import Fd

            raw = target if isinstance(target, int) else target.fd
            fd = Fd(os.dup(raw))
        old = self._attach_targets.pop(program, None)
        if old is not None and old[0] is not None:
            old[0].close()
        self._attach_targets[program] = (fd, func)

    @property
    def programs(self) -> Mapping[str, Program]:
        """name -> `Program`, once loaded."""
        self._check_open()
        if self.phase < Phase.LOADED:
            raise PhaseError("the programs are not loaded yet", obj=self.name,
                             hint="call load() first")
        return self._programs

    # -- globals ---------------------------------------------------------------------------

    @property
    def bss(self) -> Globals:
        """The variables of .bss (``obj.bss.counter``)."""
        return self.section(".bss")

    @property
    def data(self) -> Globals:
        """The variables of .data."""
        return self.section(".data")

    @property
    def rodata(self) -> Globals:
        """The variables of .rodata: writable until the maps are created (then frozen)."""
        return self.section(".rodata")

    @property
    def kconfig(self) -> Globals:
        """The __kconfig externs' values (read-only; set by the loader)."""
        return self.section(".kconfig")

    @property
    def arena(self) -> Globals:
        """The __arena global variables (section .addr_space.1; a bpftool skeleton's
        ``skel->arena``): their initial values until the maps are created, then the
        variables themselves, in the arena (where `prepared.arena` says). The arena map
        itself is ``obj.maps[NAME]``."""
        from bpfobj.spec import ARENA_SECTION

        return self.section(ARENA_SECTION)

    def section(self, name: str) -> Globals:
        """The variables of data section `name` (``.data.custom``, ``.rodata.cfg``, ...)."""
        from bpfobj.maps import Globals
        from bpfobj.spec import ARENA_SECTION

        self._check_open()
        view = self._globals.get(name)
        arena = self._spec.arena_globals
        if view is None:
            m = self._spec.maps.get(name)
            if (m is None or not m.is_internal) and not (arena and name == ARENA_SECTION):
                sections = [k for k, v in self._spec.maps.items() if v.is_internal]
                sections += [ARENA_SECTION] if arena else []
                raise SpecError(f"the object has no data section {name!r}", obj=self.name,
                                hint=f"data sections are: {', '.join(sections) or '(none)'}")
            view = Globals(name, self._section_vars(name), self._spec.btf,
                           lambda: self._backing(name))
            self._globals[name] = view
        return view

    def _section_vars(self, name: str) -> dict[str, Any]:
        from bpfobj.maps import GlobalVar, datasec_vars
        from bpfobj.spec import ExternKind, MapKind

        m = self._spec.maps.get(name)
        btf = self._spec.btf
        if m is None:  # the __arena globals (section() checked)
            arena = self._spec.arena_globals
            assert arena is not None
            datasec_id, shndx = arena.datasec_id, arena.section_index
        elif m.kind is MapKind.KCONFIG:
            out = {}
            for e in self._spec.externs:
                if e.kind is ExternKind.KCONFIG:
                    tid = int(getattr(btf.type(e.btf_id), "type", 0)) if btf else 0
                    out[e.name] = GlobalVar(e.name, e.kcfg_offset, e.kcfg_size, tid)
            return out
        else:
            datasec_id, shndx = m.value_type_id, m.section_index
        if self._symbols is None:
            from bpfobj.elf.reader import read_elf

            self._symbols = {}
            for sym in read_elf(self._data, self.name).symbols:
                if sym.type == 1 and sym.name:  # STT_OBJECT
                    self._symbols.setdefault(sym.shndx, {})[sym.name] = sym.value
        return dict(datasec_vars(btf, datasec_id, self._symbols.get(shndx, {})))

    def _backing(self, name: str) -> Backing:
        from bpfobj.maps import BufferBacking, MapBacking
        from bpfobj.spec import MapKind

        self._check_open()
        if name not in self._spec.maps:  # the __arena globals
            return self._arena_backing()
        m = self._spec.maps[name]
        if self.phase >= Phase.MAPS_CREATED and name in self._maps:
            mp = self._maps[name]
            readonly = None
            if mp.frozen or m.kind in (MapKind.RODATA, MapKind.KCONFIG):
                readonly = (f"{name} is frozen (read-only from user space) once the maps are "
                            "created")
            return MapBacking(mp, readonly)
        if m.kind is MapKind.KCONFIG:
            from bpfobj.kernel.kconfig import kconfig_data

            buf = self._initial.get(name)
            if buf is None:
                buf = bytearray(kconfig_data(self._spec.externs, m.value_size,
                                             features=self.features))
            backing = BufferBacking(buf)
            backing.readonly = ".kconfig values come from the kernel config"
            return backing
        buf = self._initial.get(name)
        if buf is None:
            buf = self._initial[name] = bytearray((m.data or b"").ljust(m.value_size, b"\0"))
        return BufferBacking(buf)

    def _arena_backing(self) -> Backing:
        """The __arena globals: in the arena once it exists, else their initial image."""
        from bpfobj.maps import BufferBacking
        from bpfobj.spec import ARENA_SECTION

        arena = self._spec.arena_globals
        assert arena is not None
        if self.phase >= Phase.MAPS_CREATED and arena.map in self._maps:
            from bpfobj.arena import ArenaMap, GlobalsBacking

            mp = self._maps[arena.map]
            assert isinstance(mp, ArenaMap) and self._prepared is not None
            assert self._prepared.arena is not None
            return GlobalsBacking(mp, self._prepared.arena)
        buf = self._initial.get(ARENA_SECTION)
        if buf is None:
            buf = self._initial[ARENA_SECTION] = bytearray(arena.data)
        return BufferBacking(buf)

    # -- attach --------------------------------------------------------------------------

    def attach_all(self, *, skip: Sequence[str] = ()) -> list[Link]:
        """Load if needed, then attach every autoload program whose section names its
        target (like a libbpf skeleton's attach). The links are closed with the object."""
        from bpfobj.attach import attach_all

        if self.phase < Phase.LOADED:
            self.load()
        links = attach_all(self, skip=skip)
        self._links.extend(links)
        return links

    # -- closing ---------------------------------------------------------------------------

    def _release(self) -> None:
        for link in reversed(self._links):
            link.close()
        self._links.clear()
        owners: list[Program | Map] = [*self._programs.values(), *self._maps.values()]
        for owner in owners:
            if owner._owned_links is not None:  # attached: close what is still attached
                owner._owned_links.close_all()
        for prog in self._programs.values():
            prog.close()
        for mp in self._maps.values():
            mp.close()
        self._programs.clear()
        self._maps.clear()
        if self._btf_fd is not None:
            self._btf_fd.close()
            self._btf_fd = None

    def close(self) -> None:
        """Close every program, map and BTF fd of the object, and every link made from its
        programs (and struct_ops maps) that is still open (pins stay)."""
        self._release()
        for fd, _func in self._attach_targets.values():
            if fd is not None:
                fd.close()
        self._attach_targets.clear()
        self.phase = Phase.CLOSED

    def __repr__(self) -> str:
        return f"<BpfObject {self._spec.name!r} {self.phase.name.lower()}>"
