"""The kernel phases as functions: `create_maps()` then `load()`.

    features = bpfobj.kernel.features.probe()
    btf_fd = load_object_btf(prepared.spec, data, features)       # None: no BTF for the kernel
    maps = create_maps(prepared, features, btf_fd=btf_fd)          # name -> Map
    programs = load(prepared, maps, features, btf_fd=btf_fd)       # name -> Program

They follow libbpf's bpf_object_load(): bpf_object__create_maps() (pinned-map reuse, inner
map templates, internal maps populated then frozen, map-in-map slots),
bpf_object__resolve_externs() (kconfig values, kallsyms addresses), then
bpf_object_load_prog() per program (map fds patched into a copy of the prepared
instructions, attach_btf_id from the running kernel's BTF, func_info/line_info with the
object's BTF, the verifier log on failure) and bpf_object__init_prog_arrays().
Whatever fails half way closes every fd it opened.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
import re
import struct
import sys
from collections.abc import Mapping, Sequence

from bpfobj import log, maptypes
from bpfobj.errors import (
    BpfObjError,
    LinkError,
    NotSupportedError,
    PhaseError,
    SpecError,
    SyscallError,
    VerifierError,
)
from bpfobj.insn import Instruction, encode
from bpfobj.linker import BPF_JMP_CALL, POISON_CALL_KFUNC_BASE
from bpfobj.maps import Map, map_info
from bpfobj.programs import Program
from bpfobj.spec import MapKind, MapSpec
from bpfobj.sys import attr, bpffs
from bpfobj.sys.syscall import Cmd, Fd, bpf, bpf_fd
from bpfobj.uapi import (
    BPF_F_MMAPABLE,
    BPF_F_RDONLY_PROG,
    CORE_POISON_IMM,
    PIN_BY_NAME,
    PSEUDO_MAP_FD,
    PSEUDO_MAP_VALUE,
    AttachType,
    BtfKind,
    MapType,
    ProgType,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf.reader import Btf
    from bpfobj.kernel.features import Features
    from bpfobj.prepare import PreparedObject, PreparedProgram
    from bpfobj.spec import ObjectSpec

#: libbpf bpf_object__create_map(): map types created without BTF key/value types
BTFLESS_MAP_TYPES = frozenset({
    MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE,
    MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.DEVMAP, MapType.DEVMAP_HASH,
    MapType.CPUMAP, MapType.XSKMAP, MapType.SOCKMAP, MapType.SOCKHASH, MapType.QUEUE,
    MapType.STACK, MapType.ARENA,
})
MAP_IN_MAP_TYPES = frozenset({MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS})

# Verifier log buffer: libbpf allocates BPF_LOG_BUF_SIZE (UINT32_MAX >> 8, 16 MiB) at
# once; bpfobj starts small and grows on ENOSPC up to that.
LOG_BUF_START = 64 * 1024
LOG_BUF_MAX = 16 * 1024 * 1024
CORE_RELO_REC_SIZE = 16  # struct bpf_core_relo
FUNC_INFO_REC_SIZE = 8  # struct bpf_func_info
LINE_INFO_REC_SIZE = 16  # struct bpf_line_info

# libbpf find_attach_btf_id() / btf_attach_type_prefix: where tracing targets live in BTF.
ATTACH_BTF_PREFIX: dict[AttachType, tuple[str, BtfKind]] = {
    AttachType.TRACE_RAW_TP: ("btf_trace_", BtfKind.TYPEDEF),
    AttachType.LSM_MAC: ("bpf_lsm_", BtfKind.FUNC),
    AttachType.LSM_CGROUP: ("bpf_lsm_", BtfKind.FUNC),
    AttachType.TRACE_ITER: ("bpf_iter_", BtfKind.FUNC),
}


def check_byteorder(spec: ObjectSpec) -> None:
    """An object for the other byte order cannot go into this kernel."""
    if spec.byteorder != sys.byteorder:
        raise NotSupportedError(
            f"the object is {spec.byteorder}-endian but this kernel is {sys.byteorder}-endian",
            obj=spec.name, hint="build the object with -target bpf (host byte order)",
        )


# --------------------------------------------------------------------------------------
# The object's BTF in the kernel
# --------------------------------------------------------------------------------------


def object_btf_bytes(spec: ObjectSpec, data: bytes, features: Features) -> bytes | None:
    """The object's BTF as BPF_BTF_LOAD should get it: fixed up (extern DATASECs, DATASEC
    sizes and offsets, hidden subprograms static) and sanitised for this kernel's BTF kinds
    (`bpfobj.btf.fixup.load_btf_for_kernel`).

    The one switch for the BTF path: None when the object has no BTF or the kernel has no
    BTF support at all.
    """
    if spec.btf is None or not features.btf:
        return None
    from bpfobj.btf.fixup import load_btf_for_kernel
    from bpfobj.elf.reader import read_elf

    fixed = load_btf_for_kernel(spec, read_elf(data, spec.name), features.btf_features())
    return fixed.raw if fixed is not None else None


def load_btf(raw: bytes, *, obj: str | None = None) -> Fd:
    """BPF_BTF_LOAD `raw`; on failure the kernel's BTF log is attached to the error."""
    try:
        return bpf_fd(Cmd.BTF_LOAD, attr.btf_load(raw), obj=obj)
    except SyscallError as first:
        buf = bytearray(LOG_BUF_START)
        while True:
            try:
                return bpf_fd(Cmd.BTF_LOAD, attr.btf_load(raw, log_buf=buf, log_level=1),
                              obj=obj)
            except SyscallError as exc:
                if exc.errno == _errno.ENOSPC and len(buf) < LOG_BUF_MAX:
                    buf = bytearray(len(buf) * 4)
                    continue
                text = _log_text(buf)
                lines = [ln for ln in text.splitlines() if ln.strip()]
                exc.message = ("the kernel rejected the object's BTF: "
                               f"{lines[-1] if lines else first.strerror}")
                setattr(exc, "log", text)  # noqa: B010
                raise exc from None


def load_object_btf(spec: ObjectSpec, data: bytes, features: Features) -> Fd | None:
    """Load the object's BTF into the kernel (libbpf bpf_object__load_btf()).

    Like libbpf, a kernel that rejects it is not fatal: maps and programs are then loaded
    without BTF (a `btf_load_failed` warning event says why)."""
    raw = object_btf_bytes(spec, data, features)
    if raw is None:
        return None
    try:
        return load_btf(raw, obj=spec.name)
    except SyscallError as exc:
        log.warning("btf_load_failed", obj=spec.name, reason=str(exc))
        return None


# --------------------------------------------------------------------------------------
# create_maps
# --------------------------------------------------------------------------------------


def _map_error(exc: BpfObjError, m: MapSpec, obj: str | None) -> BpfObjError:
    return exc.with_context(obj=obj, map=m.name)


def _create_map(m: MapSpec, features: Features, btf_fd: Fd | None, max_entries: int,
                obj: str | None, prepared: PreparedObject | None = None) -> Fd:
    """One BPF_MAP_CREATE (libbpf bpf_object__create_map()), inner template included."""
    if m.type == MapType.STRUCT_OPS:
        plan = prepared.struct_ops.get(m.name) if prepared is not None else None
        if plan is None:
            raise SpecError(f"struct_ops map {m.name!r} was not prepared", obj=obj,
                            hint="prepare the object (against the running kernel's BTF)")
        from bpfobj.structops_map import create_struct_ops_map

        return create_struct_ops_map(m, plan, features, btf_fd, obj)
    maptypes.check_create(m, have_btf=btf_fd is not None, obj=obj)
    flags = m.flags
    if flags & BPF_F_MMAPABLE and not features.mmapable_maps:
        flags &= ~BPF_F_MMAPABLE
    inner_fd: Fd | None = None
    if m.type in MAP_IN_MAP_TYPES:
        if m.inner is None:
            raise SpecError(f"map-in-map {m.name!r} has no inner map definition", obj=obj,
                            hint="declare the values with __array(values, struct { ... })")
        inner_fd = _create_map(m.inner, features, btf_fd, m.inner.max_entries, obj)
    use_btf = btf_fd is not None and m.type not in BTFLESS_MAP_TYPES and (
        m.key_type_id or m.value_type_id)

    def create(with_btf: bool) -> Fd:
        a = attr.map_create(
            int(m.type), m.key_size, m.value_size, max_entries, flags=flags,
            name=(m.kernel_name or m.name) if features.prog_name else None,
            inner_map_fd=int(inner_fd) if inner_fd is not None else 0, numa_node=m.numa_node,
            map_extra=m.map_extra,
            btf_fd=int(btf_fd) if with_btf and btf_fd is not None else 0,
            btf_key_type_id=m.key_type_id if with_btf else 0,
            btf_value_type_id=m.value_type_id if with_btf else 0,
        )
        try:
            return bpf_fd(Cmd.MAP_CREATE, a, what=f"cannot create map {m.name!r}", obj=obj)
        except SyscallError as exc:
            raise maptypes.create_error(m, exc, features, obj) from None

    try:
        if use_btf:
            try:
                return create(True)
            except SyscallError as exc:  # libbpf: "Retrying without BTF."
                if m.type in maptypes.NEED_BTF:  # it cannot work without: say why it failed
                    raise
                log.warning("map_create_without_btf", map=m.name, reason=str(exc))
        return create(False)
    finally:
        if inner_fd is not None:
            inner_fd.close()


def _reuse_compatible(m: MapSpec, fd: int, max_entries: int) -> bool:
    """libbpf map_is_reuse_compat()."""
    info = map_info(fd)
    flags = info["map_flags"]
    if m.type in (MapType.DEVMAP, MapType.DEVMAP_HASH):
        flags &= ~BPF_F_RDONLY_PROG
    return bool(info["type"] == m.type and info["key_size"] == m.key_size
            and info["value_size"] == m.value_size and info["max_entries"] == max_entries
            and flags == m.flags and info["map_extra"] == m.map_extra)


def _reuse_pinned(m: MapSpec, path: str, max_entries: int, obj: str | None) -> Fd | None:
    """libbpf bpf_object__reuse_map(): the pinned map at `path` if compatible, None if
    nothing is pinned there; an incompatible one is an error."""
    try:
        fd = bpffs.get(path)
    except SyscallError as exc:
        if exc.errno == _errno.ENOENT:
            return None
        raise
    try:
        ok = _reuse_compatible(m, int(fd), max_entries)
    except BaseException:
        fd.close()
        raise
    if not ok:
        fd.close()
        raise SpecError(
            f"cannot reuse the map pinned at {path}: its type, sizes or flags differ from "
            f"map {m.name!r}", obj=obj,
            hint=f"remove the stale pin (rm {path}) or rename the map",
        )
    return fd


def internal_map_data(m: MapSpec, prepared: PreparedObject, features: Features,
                      initial: Mapping[str, bytes] | None = None,
                      kconfig: str | None = None) -> bytes:
    """The initial contents of a data-section or .kconfig map."""
    if initial is not None and m.name in initial:
        data = bytes(initial[m.name])
    elif m.kind is MapKind.KCONFIG:
        from bpfobj.kernel.kconfig import kconfig_data

        data = kconfig_data(prepared.spec.externs, m.value_size, features=features, extra=kconfig)
    else:
        data = m.data or b""
    return data.ljust(m.value_size, b"\0")[: m.value_size]


def create_maps(
    prepared: PreparedObject,
    features: Features,
    *,
    btf_fd: Fd | None = None,
    pin_root: str = bpffs.DEFAULT_ROOT,
    initial: Mapping[str, bytes] | None = None,
    kconfig: str | None = None,
) -> dict[str, Map]:
    """Create every map of `prepared` (libbpf bpf_object__create_maps()).

    `initial`: data-section contents that replace the object's (name -> bytes, e.g. edited
    .rodata); `kconfig`: extra kernel config text for __kconfig externs; `pin_root`: where
    LIBBPF_PIN_BY_NAME maps are pinned/reused.
    """
    spec = prepared.spec
    check_byteorder(spec)
    obj = spec.name
    btf = spec.btf
    out: dict[str, Map] = {}
    pinned_here: list[str] = []
    ok = False
    try:
        if prepared.struct_ops:
            from bpfobj.structops_map import check_running_kernel

            check_running_kernel(prepared)
        if prepared.arena is not None:  # __arena globals: checked before creating anything
            maptypes.check_arena_globals(prepared, features)
        for m in prepared.maps:
            if not m.autocreate:
                continue
            max_entries = m.max_entries
            if m.type == MapType.PERF_EVENT_ARRAY and not max_entries:
                from bpfobj.maps import possible_cpus

                max_entries = possible_cpus()
            pin_path = os.path.join(pin_root, m.name) if m.pinning == PIN_BY_NAME else None
            fd: Fd | None = None
            reused = False
            if pin_path is not None:
                if pin_root == bpffs.DEFAULT_ROOT:
                    bpffs.ensure_mounted(pin_root)
                fd = _reuse_pinned(m, pin_path, max_entries, obj)
                reused = fd is not None
            try:
                if fd is None:
                    fd = _create_map(m, features, btf_fd, max_entries, obj, prepared)
                mp = maptypes.map_class(m.type)(m, fd, btf=btf, max_entries=max_entries,
                                                reused=reused, obj=obj)
                maptypes.after_create(mp)
                if m.type == MapType.ARENA and prepared.arena is not None and not reused:
                    maptypes.init_arena_globals(mp, prepared, initial)
                if m.type == MapType.STRUCT_OPS:
                    mp.plan = prepared.struct_ops.get(m.name)  # type: ignore[attr-defined]
            except BpfObjError as exc:
                if fd is not None:
                    fd.close()
                raise _map_error(exc, m, obj) from None
            out[m.name] = mp
            if m.is_internal and not reused:
                _populate_internal(mp, internal_map_data(m, prepared, features, initial, kconfig))
            elif m.is_internal and m.flags & BPF_F_MMAPABLE:
                mp.map_memory(writable=not m.flags & BPF_F_RDONLY_PROG)
            if pin_path is not None and not reused:
                try:
                    mp.pin(pin_path)
                except SyscallError as exc:
                    if exc.errno != _errno.EEXIST:
                        raise
                    # pinned meanwhile by someone else: reuse that one (libbpf retries once)
                    other = _reuse_pinned(m, pin_path, max_entries, obj)
                    if other is None:
                        raise
                    mp.close()
                    mp = maptypes.map_class(m.type)(m, other, btf=btf, max_entries=max_entries,
                                                    reused=True, obj=obj)
                    out[m.name] = mp
                    maptypes.after_create(mp)
                else:
                    pinned_here.append(pin_path)
            mp.pin_path = pin_path
        # map-in-map slots (libbpf init_map_in_map_slots), once every map exists
        for m in prepared.maps:
            if m.type in MAP_IN_MAP_TYPES and m.values and not out[m.name].reused:
                outer = out[m.name]
                for index, target in sorted(m.values.items()):
                    if target not in out:
                        raise SpecError(f"map {m.name!r} slot {index}: no map {target!r}",
                                        obj=obj)
                    outer.update_raw(index.to_bytes(4, sys.byteorder),
                                     out[target].fd.to_bytes(4, sys.byteorder))
        ok = True
        return out
    finally:
        if not ok:
            for mp in out.values():
                mp.close()
            for path in pinned_here:
                with contextlib.suppress(BpfObjError):
                    bpffs.unpin(path)


def _populate_internal(mp: Map, data: bytes) -> None:
    """libbpf bpf_object__populate_internal_map(): write the contents, freeze .rodata and
    .kconfig, then mmap (read-only when the program cannot write it either)."""
    mp.update_raw(b"\0\0\0\0", data)
    if mp.spec.kind in (MapKind.RODATA, MapKind.KCONFIG):
        mp.freeze()
    if mp.flags & BPF_F_MMAPABLE:
        mp.map_memory(writable=not mp.flags & BPF_F_RDONLY_PROG)


# --------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------


class _Externs:
    """Kernel-side extern values for one load: kallsyms addresses, module BTF fds."""

    def __init__(self, prepared: PreparedObject) -> None:
        self.prepared = prepared
        spec = prepared.spec
        self.by_name = {e.name: (e, prepared.externs[i] if i < len(prepared.externs) else None)
                        for i, e in enumerate(spec.externs)}
        wanted = {r.extern for p in prepared.programs.values() for r in p.extern_refs
                  if r.kind == "ksym_addr"}
        self.addrs: dict[str, int] = {}
        if wanted:
            from bpfobj.kernel import kallsyms

            self.addrs = kallsyms.lookup(wanted)
            for name in sorted(wanted):
                ext = self.by_name[name][0]
                if name not in self.addrs and not ext.weak:
                    raise LinkError(
                        f"extern (ksym) {name!r} is not in /proc/kallsyms", obj=spec.name,
                        section=".ksyms",
                        hint="the kernel lacks the symbol (or CONFIG_KALLSYMS_ALL is off for "
                        "data symbols); declare it __weak to make it optional",
                    )
        self._module_fds: dict[str, Fd] = {}

    def module_fd(self, module: str) -> Fd:
        fd = self._module_fds.get(module)
        if fd is None:
            from bpfobj.kernel.btfobj import module_btf_fd

            fd = self._module_fds[module] = module_btf_fd(module)
        return fd

    def close(self) -> None:
        for fd in self._module_fds.values():
            fd.close()


def _patched_insns(pp: PreparedProgram, maps: Mapping[str, Map], externs: _Externs,
                   fd_array: list[int], obj: str) -> list[Instruction]:
    """A copy of the prepared instructions with map fds, ksym addresses and module BTF fds
    filled in (the prepared instructions stay unchanged)."""
    insns = list(pp.insns)
    for ref in pp.map_refs:
        mp = maps.get(ref.map)
        if mp is None:
            raise PhaseError(f"program uses map {ref.map!r}, which was not created", obj=obj,
                             program=pp.name, insn=ref.insn)
        src = PSEUDO_MAP_FD if ref.value_off is None else PSEUDO_MAP_VALUE
        insns[ref.insn] = insns[ref.insn].replace(src=src, imm=mp.fd)
    for ext_ref in pp.extern_refs:
        i = ext_ref.insn
        _ext, resolved = externs.by_name[ext_ref.extern]
        if ext_ref.kind == "ksym_addr":
            addr = externs.addrs.get(ext_ref.extern, 0)
            insns[i] = insns[i].replace(imm=addr & 0xFFFFFFFF)
            insns[i + 1] = insns[i + 1].replace(imm=addr >> 32)
        elif ext_ref.kind in ("kfunc_module", "ksym_module"):
            module = resolved.module if resolved is not None else None
            if module is None:
                continue
            fd = int(externs.module_fd(module))
            if ext_ref.kind == "ksym_module":
                insns[i + 1] = insns[i + 1].replace(imm=fd)
            else:
                if not fd_array:
                    fd_array.append(0)  # index 0 means vmlinux in kfunc calls
                if fd not in fd_array:
                    fd_array.append(fd)
                insns[i] = insns[i].replace(off=fd_array.index(fd))
    return insns


def find_attach_btf_id(target: str, attach_type: AttachType | None,
                       vmlinux: Btf | None = None) -> tuple[int, str | None]:
    """libbpf find_kernel_btf_id(): (type id, module or None) of a tracing target in the
    running kernel's BTF, vmlinux first, then modules; ``module:func`` names a module."""
    from bpfobj.btf.target import TargetBtf

    prefix, kind = ATTACH_BTF_PREFIX.get(attach_type, ("", BtfKind.FUNC)) if attach_type \
        is not None else ("", BtfKind.FUNC)
    module, sep, name = target.partition(":")
    if not sep:
        module, name = "", target
    kernel = TargetBtf.running_kernel() if vmlinux is None else TargetBtf.from_btf(vmlinux)
    for source, btf in kernel.all():
        if module and source != module:
            continue
        ids = [i for i in btf.find(prefix + name) if btf.kind(i) == kind]
        if ids:
            return ids[0], None if source == "vmlinux" else source
    raise NotSupportedError(
        f"attach target {prefix + name!r} ({kind.name}) is not in the kernel's BTF",
        hint="check the function/tracepoint name against /sys/kernel/btf/vmlinux",
    )


def _kernel_core_relos(pp: PreparedProgram, btf_fd: Fd | None, features: Features,
                       order: str, obj: str) -> dict[str, Any]:
    """PROG_LOAD's core_relos for in-kernel CO-RE: struct bpf_core_relo {insn_off,
    type_id, access_str_off, kind} (linux/bpf.h), against the object BTF loaded as
    prog_btf_fd."""
    if not features.core_relos:
        raise NotSupportedError(
            "this kernel cannot apply CO-RE relocations itself (needs Linux 5.17+)",
            obj=obj, program=pp.name,
            hint="prepare with core='user' (the default) to relocate in bpfobj",
        )
    if btf_fd is None:
        raise NotSupportedError(
            "in-kernel CO-RE needs the object's BTF loaded into the kernel",
            obj=obj, program=pp.name, hint="the kernel rejected the object's BTF; see the log",
        )
    packed = b"".join(
        struct.pack(order + "IIII", r.insn_off, r.type_id, r.access_str_off, int(r.kind))
        for r in pp.kernel_core_relos
    )
    return dict(core_relos=packed, core_relo_rec_size=CORE_RELO_REC_SIZE,
                core_relo_cnt=len(pp.kernel_core_relos))


def _ext_info(records: Sequence[Any], kind: str, order: str) -> bytes:
    if kind == "func":
        return b"".join(struct.pack(f"{order}II", r.insn_off, r.type_id) for r in records)
    return b"".join(
        struct.pack(f"{order}IIII", r.insn_off, r.file_name_off, r.line_off, r.raw_line_col)
        for r in records
    )


def load(
    prepared: PreparedObject,
    maps: Mapping[str, Map],
    features: Features,
    *,
    btf_fd: Fd | None = None,
    log_level: int = 0,
    programs: Sequence[str] | None = None,
    attach_targets: Mapping[str, tuple[int | None, str | None]] | None = None,
) -> dict[str, Program]:
    """Load every prepared program (libbpf bpf_object__load_progs()), then fill the
    prog-array slots of the object's maps. `log_level` > 0 asks for the verifier log on
    success too (kept as ``Program.log``). `attach_targets`: program name -> (target
    program fd or None, function name or None), libbpf bpf_program__set_attach_target()."""
    spec = prepared.spec
    obj = spec.name
    check_byteorder(spec)
    from bpfobj.kernel.kconfig import kernel_version

    kern_version = spec.kern_version or kernel_version()
    loaded: dict[str, Program] = {}
    externs = _Externs(prepared)
    ok = False
    try:
        rodata = [mp.fd for mp in maps.values() if mp.spec.kind is MapKind.RODATA]
        for name, pp in prepared.programs.items():
            if programs is not None and name not in programs:
                continue
            loaded[name] = _load_one(pp, maps, features, externs, btf_fd=btf_fd,
                                     log_level=log_level, kern_version=kern_version, obj=obj,
                                     attach_target=(attach_targets or {}).get(name))
            if rodata and features.prog_bind_map:
                for map_fd in rodata:  # libbpf: keep .rodata alive with the program
                    with contextlib.suppress(SyscallError):
                        bpf(Cmd.PROG_BIND_MAP, attr.prog_bind_map(loaded[name].fd, map_fd))
        _init_prog_arrays(prepared, maps, loaded, obj)
        if prepared.struct_ops:
            from bpfobj.structops_map import init_struct_ops_values

            init_struct_ops_values(prepared, maps, loaded)
        ok = True
        return loaded
    finally:
        externs.close()
        if not ok:
            for prog in loaded.values():
                prog.close()


def _init_prog_arrays(prepared: PreparedObject, maps: Mapping[str, Map],
                      loaded: Mapping[str, Program], obj: str) -> None:
    """libbpf bpf_object__init_prog_arrays(): prog-array slots from the map definition.
    Slots naming a program that was not loaded (autoload off) stay empty."""
    for m in prepared.maps:
        if m.type != MapType.PROG_ARRAY or not m.values or m.name not in maps:
            continue
        mp = maps[m.name]
        for index, prog_name in sorted(m.values.items()):
            prog = loaded.get(prog_name)
            if prog is None:
                log.debug("prog_array_slot_skipped", map=m.name, slot=index, program=prog_name)
                continue
            mp.update_raw(index.to_bytes(4, sys.byteorder), prog.fd.to_bytes(4, sys.byteorder))


def _load_one(pp: PreparedProgram, maps: Mapping[str, Map], features: Features,
              externs: _Externs, *, btf_fd: Fd | None, log_level: int, kern_version: int,
              obj: str, attach_target: tuple[int | None, str | None] | None = None) -> Program:
    """libbpf bpf_object_load_prog() for one program."""
    ps = pp.spec
    if ps.type == ProgType.UNSPEC:
        raise SpecError(f"program {pp.name!r} has no type: section {ps.section!r} is unknown",
                        obj=obj, program=pp.name, section=ps.section)
    fd_array: list[int] = []
    insns = _patched_insns(pp, maps, externs, fd_array, obj)
    sec_def = ps.sec_def
    expected: AttachType | int | None = ps.expected_attach_type
    if expected is not None and sec_def is not None and sec_def.exp_attach_opt \
            and not features.exp_attach_type:
        expected = None
    if sec_def is not None and sec_def.usdt and features.uprobe_multi_link:
        expected = AttachType.TRACE_UPROBE_MULTI
    prog_flags = 0
    if ps.sleepable:
        prog_flags |= attr.BPF_F_SLEEPABLE
    if sec_def is not None and sec_def.xdp_frags:
        prog_flags |= attr.BPF_F_XDP_HAS_FRAGS
    attach_btf_id = 0
    attach_obj_fd: Fd | None = None
    attach_prog_fd = 0
    target_fd, target_func = attach_target if attach_target is not None else (None, None)
    if ps.type == ProgType.EXT or target_fd is not None:
        # libbpf bpf_program__set_attach_target() with a program: the function's BTF id in
        # the target program's BTF, PROG_LOAD with attach_prog_fd
        func = target_func or ps.attach_target
        if target_fd is None or not func:
            raise SpecError(
                f"program {pp.name!r} ({ps.section}) replaces a function of another program, "
                "but no target program was given", obj=obj, program=pp.name,
                section=ps.section,
                hint=f"before load: obj.set_attach_target({pp.name!r}, target_program"
                     f"{', ' + repr(func) if func else ', <function>'})")
        from bpfobj.kernel.btfobj import find_prog_btf_id

        try:
            attach_btf_id = find_prog_btf_id(func, target_fd)
        except BpfObjError as exc:
            raise exc.with_context(obj=obj, program=pp.name, section=ps.section) from None
        attach_prog_fd = target_fd
    elif ps.type == ProgType.STRUCT_OPS:
        # libbpf bpf_map__init_kern_struct_ops(): the kernel struct and the member index,
        # from prepare
        so = pp.struct_ops
        if so is None:
            from bpfobj.structops import unreferenced_error

            raise unreferenced_error(externs.prepared.spec, ps)
        attach_btf_id, expected = so.attach_btf_id, so.member_index
        if so.module is not None:
            attach_obj_fd = externs.module_fd(so.module).dup()
    elif sec_def is not None and sec_def.attach_btf:
        target = target_func or ps.attach_target
        if not target:
            raise SpecError(f"program {pp.name!r} in {ps.section!r} names no attach target",
                            obj=obj, program=pp.name,
                            hint=f'write SEC("{sec_def.base.rstrip("/")}/<target>")')
        try:
            attach_btf_id, module = find_attach_btf_id(
                target, expected if isinstance(expected, AttachType) else None)
        except BpfObjError as exc:
            raise exc.with_context(obj=obj, program=pp.name, section=ps.section) from None
        if module is not None:
            attach_obj_fd = externs.module_fd(module).dup()
    order = "<" if sys.byteorder == "little" else ">"
    ext: dict[str, Any] = {}
    if btf_fd is not None and features.btf_func:
        ext = dict(
            prog_btf_fd=int(btf_fd),
            func_info=_ext_info(pp.func_info, "func", order),
            func_info_rec_size=FUNC_INFO_REC_SIZE, func_info_cnt=len(pp.func_info),
            line_info=_ext_info(pp.line_info, "line", order),
            line_info_rec_size=LINE_INFO_REC_SIZE, line_info_cnt=len(pp.line_info),
        )
    if pp.kernel_core_relos:
        ext.update(_kernel_core_relos(pp, btf_fd, features, order, obj))
    code = encode(insns, sys.byteorder)
    license = ps.license or "GPL"

    def attempt(log_buf: bytearray | None, level: int) -> tuple[int, attr.ProgLoadAttr]:
        a = attr.prog_load(
            int(ps.type), code, license,
            name=pp.name if features.prog_name else None,
            expected_attach_type=int(expected) if expected is not None else 0,
            kern_version=kern_version, prog_flags=prog_flags,
            log_level=level, log_buf=log_buf,
            attach_btf_id=attach_btf_id,
            attach_btf_obj_fd=int(attach_obj_fd) if attach_obj_fd is not None else 0,
            attach_prog_fd=attach_prog_fd,
            fd_array=fd_array or None, **ext,
        )
        return bpf(Cmd.PROG_LOAD, a, what=f"cannot load program {pp.name!r}", obj=obj,
                   program=pp.name), a

    try:
        text = ""
        if log_level <= 0:
            try:
                fd, _ = attempt(None, 0)
                return Program(pp, Fd(fd), insns=insns, attach_btf_id=attach_btf_id,
                               attach_btf_obj_fd=attach_obj_fd, obj=obj)
            except SyscallError:
                pass  # libbpf: retry with log_level 1 to say why
        level = max(log_level, 1)
        size = LOG_BUF_START
        while True:
            buf = bytearray(size)
            try:
                fd, _ = attempt(buf, level)
                text = _log_text(buf)
                return Program(pp, Fd(fd), insns=insns, attach_btf_id=attach_btf_id,
                               attach_btf_obj_fd=attach_obj_fd, log=text, obj=obj)
            except SyscallError as exc:
                text = _log_text(buf)
                if exc.errno == _errno.ENOSPC and size < LOG_BUF_MAX:
                    size = min(LOG_BUF_MAX, size * 4)
                    continue
                names = [e.name for e in externs.prepared.spec.externs]
                raise verifier_error(pp, exc, text, obj=obj, extern_names=names) from None
    except BaseException:
        if attach_obj_fd is not None:
            attach_obj_fd.close()
        raise


def _log_text(buf: bytearray) -> str:
    return bytes(buf).split(b"\0", 1)[0].decode(errors="replace")


# --------------------------------------------------------------------------------------
# Verifier errors
# --------------------------------------------------------------------------------------

# Patterns, not compiled ones: `re` compiles (and caches) them on a failed load only, not at
# every tool's start-up.
_INSN_LINE = r"^(\d+): \([0-9a-f]{2}\)"
_SUMMARY = (r"^(processed \d+ insns|verification time|stack depth|"
            r"-- END PROG LOAD LOG --|mark_precise)")


def failing_insn(text: str) -> int | None:
    """The index of the instruction the verifier stopped at: the last ``N: (op) ...`` line
    of its log."""
    for line in reversed(text.splitlines()):
        m = re.match(_INSN_LINE, line)
        if m:
            return int(m.group(1))
    return None


def verifier_reason(text: str) -> str:
    """The verifier's own message: the lines after the last instruction line, without the
    statistics lines; else the last non-empty line."""
    lines = text.splitlines()
    last = max((i for i, ln in enumerate(lines) if re.match(_INSN_LINE, ln)), default=-1)
    after = [ln.strip() for ln in lines[last + 1 :]
             if ln.strip() and not re.match(_SUMMARY, ln.strip())]
    if after:
        return "; ".join(after[:3])
    rest = [ln.strip() for ln in lines if ln.strip() and not re.match(_SUMMARY, ln.strip())]
    return rest[-1] if rest else ""


def source_line(pp: PreparedProgram, insn: int) -> str | None:
    """``file:line: code`` of the last line_info record at or before `insn`."""
    best = None
    for rec in pp.line_info:
        if rec.insn_off <= insn and (best is None or rec.insn_off >= best.insn_off):
            best = rec
    if best is None:
        return None
    return f"{os.path.basename(best.file_name)}:{best.line_num}: {best.line.strip()}"


def verifier_error(pp: PreparedProgram, exc: SyscallError, text: str, *,
                   obj: str | None = None, extern_names: Sequence[str] = ()) -> SyscallError:
    """The `VerifierError` of a rejected program (a plain SyscallError without a log)."""
    if not text.strip():
        exc.message = f"the kernel refused to load program {pp.name!r}"
        if exc.errno == _errno.EPERM and os.geteuid() == 0:
            exc.hint = ("already root: this kernel does not allow the program type or attach "
                        "point (fentry/fexit need BPF trampolines, lsm needs lsm=bpf)")
        return exc.with_context(obj=obj, program=pp.name, section=pp.section)  # type: ignore[return-value]
    idx = failing_insn(text)
    if idx is not None and idx >= len(pp.insns):
        idx = None
    reason = verifier_reason(text) or exc.strerror
    src = source_line(pp, idx) if idx is not None else None
    message = f"the verifier rejected program {pp.name!r}: {reason}"
    hint = "err.log holds the full verifier log"
    core = None
    if idx is not None:
        insn = pp.insns[idx]
        if insn.code == BPF_JMP_CALL and insn.src == 0 and insn.imm == CORE_POISON_IMM:
            core = next((r for r in pp.core_log if r.insn == idx), None)
            if core is not None:
                spec_text = core.local_spec or f"[{core.local_type_id}] {core.access_str}"
                spec_text = spec_text.removeprefix(f"<{core.kind}> ")
                message = (
                    f"program {pp.name!r} reached instruction {idx}, poisoned by CO-RE "
                    f"relocation #{core.relo} ({core.kind}) of {spec_text}: {core.reason}"
                )
                hint = ("the running kernel's BTF lacks what the relocation needs; guard the "
                        "access with bpf_core_field_exists()/bpf_core_type_exists() or make "
                        "the code unreachable on such kernels")
            else:
                message = (f"program {pp.name!r} reached instruction {idx}, poisoned by a "
                           "failed CO-RE relocation")
        elif insn.code == BPF_JMP_CALL and insn.src == 0 and insn.imm >= POISON_CALL_KFUNC_BASE:
            ext_idx = insn.imm - POISON_CALL_KFUNC_BASE
            what = repr(extern_names[ext_idx]) if ext_idx < len(extern_names) else f"#{ext_idx}"
            message = f"program {pp.name!r} calls the weak kfunc {what}, which the kernel lacks"
            hint = "guard the call with bpf_ksym_exists()"
    if src is not None:
        message += f" (at {src})"
    err = VerifierError(
        message, log=text, source_line=src, errno=exc.errno, command=exc.command,
        obj=obj, program=pp.name, section=pp.section, insn=idx, hint=hint,
    )
    if core is not None:
        setattr(err, "core_record", core)  # noqa: B010
    return err
