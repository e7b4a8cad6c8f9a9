"""struct_ops, the kernel half: the map (`StructOpsMap`), its creation and its value.

    obj.load()                                   # maps created, programs loaded
    link = obj.maps["my_cc"].attach_struct_ops() # registered (BPF_LINK_CREATE or update)
    link.close()                                 # unregistered

Follows libbpf: bpf_object__create_map() for BPF_MAP_TYPE_STRUCT_OPS
(``btf_vmlinux_value_type_id``, module BTF through ``value_type_btf_obj_fd``),
bpf_map_prepare_vdata() after the programs load (their fds in the function-pointer slots;
`StructOpsMap.value`), bpf_map__attach_struct_ops() (in `bpfobj.attach.misc`). The layout
comes from prepare (`bpfobj.structops.StructOpsPlan`).
"""

from __future__ import annotations

import errno as _errno
import sys
from collections.abc import Mapping

from bpfobj.errors import LinkError, NotSupportedError, PhaseError, SyscallError
from bpfobj.maps import Map
from bpfobj.sys import attr
from bpfobj.sys.syscall import Cmd, Fd, bpf_fd
from bpfobj.uapi import BPF_F_LINK, BPF_F_VTYPE_BTF_OBJ_FD, MapType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.kernel.features import Features
    from bpfobj.links import Link
    from bpfobj.prepare import PreparedObject
    from bpfobj.programs import Program
    from bpfobj.spec import MapSpec
    from bpfobj.structops import StructOpsPlan

_ENOTSUPP = 524


class StructOpsMap(Map):
    """A BPF_MAP_TYPE_STRUCT_OPS map: one value, the kernel ops struct with programs in it.

    `plan` is its prepared layout; `value` the bytes the registration writes (program fds
    in the slots), set once the programs are loaded; `attach_struct_ops()` registers it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan: StructOpsPlan | None = None
        self.value: bytes | None = None
        self.programs: dict[str, Program] = {}  # member name -> the program in that slot

    @property
    def is_link(self) -> bool:
        """Registered through a BPF link (SEC(".struct_ops.link"), BPF_F_LINK)."""
        return bool(self.flags & BPF_F_LINK)

    def attach_struct_ops(self) -> Link:
        """Register the struct_ops (libbpf bpf_map__attach_struct_ops()); the `Link` ends the
        registration when closed. See `bpfobj.attach.misc.attach_struct_ops_map`."""
        from bpfobj.attach.misc import attach_struct_ops_map

        return attach_struct_ops_map(self)

    attach = attach_struct_ops

    def __repr__(self) -> str:
        what = self.plan.type_name if self.plan is not None else "?"
        state = "closed" if self.closed else f"fd {self.fd}"
        return f"<StructOpsMap {self.name!r} struct {what} {state}>"


def check_running_kernel(prepared: PreparedObject) -> None:
    """The type ids of a plan are the target BTF's: refuse a plan made for another kernel
    (libbpf always plans against the running kernel; bpfobj plans at prepare)."""
    from bpfobj.btf.target import TargetBtf
    from bpfobj.structops import VALUE_PREFIX

    running = TargetBtf.running_kernel()
    for plan in prepared.struct_ops.values():
        btf = running.vmlinux if plan.module is None else running.modules().get(plan.module)
        ok = False
        if btf is not None:
            try:
                ok = (btf.name(plan.kern_type_id) == plan.type_name
                      and btf.name(plan.kern_value_type_id) == VALUE_PREFIX + plan.type_name
                      and btf.size_of(plan.kern_value_type_id) == plan.value_size)
            except Exception:  # an id past the end: another kernel's
                ok = False
        if not ok:
            where = plan.module or "vmlinux"
            raise LinkError(
                f"struct_ops map {plan.map!r} was prepared against {prepared.target}, whose "
                f"struct {plan.type_name} (id {plan.kern_type_id}) is not the running "
                f"kernel's ({where})", obj=prepared.spec.name, map=plan.map,
                hint="prepare against the running kernel's BTF (obj.prepare() without btf=) "
                     "before loading",
            )


def create_struct_ops_map(m: MapSpec, plan: StructOpsPlan, features: Features,
                          btf_fd: Fd | None, obj: str | None) -> Fd:
    """BPF_MAP_CREATE of a struct_ops map (libbpf bpf_object__create_map(): the object's
    BTF without key/value type ids, the kernel's value type, module BTF when it is there)."""
    flags = m.flags
    mod_fd: Fd | None = None
    if plan.module is not None:
        from bpfobj.kernel.btfobj import module_btf_fd

        mod_fd = module_btf_fd(plan.module)
        flags |= BPF_F_VTYPE_BTF_OBJ_FD
    try:
        a = attr.map_create(
            int(MapType.STRUCT_OPS), 4, plan.value_size, 1, flags=flags,
            name=(m.kernel_name or m.name) if features.prog_name else None,
            btf_fd=int(btf_fd) if btf_fd is not None else 0,
            btf_vmlinux_value_type_id=plan.kern_value_type_id,
            value_type_btf_obj_fd=int(mod_fd) if mod_fd is not None else 0,
        )
        try:
            return bpf_fd(Cmd.MAP_CREATE, a, what=f"cannot create struct_ops map {m.name!r}",
                          obj=obj)
        except SyscallError as exc:
            if exc.errno in (_errno.EINVAL, _ENOTSUPP, _errno.EOPNOTSUPP):
                since = "6.4" if flags & BPF_F_LINK else "5.6"
                what = " with BPF_F_LINK (.struct_ops.link)" if flags & BPF_F_LINK else ""
                raise NotSupportedError(
                    f"the kernel cannot create struct_ops map {m.name!r} of struct "
                    f"{plan.type_name}{what}: {exc.strerror}", obj=obj, map=m.name,
                    hint=f"needs Linux {since}+ with CONFIG_BPF_JIT and the struct_ops "
                         f"type {plan.type_name} registered",
                ) from None
            raise
    finally:
        if mod_fd is not None:
            mod_fd.close()


def init_struct_ops_values(prepared: PreparedObject, maps: Mapping[str, Map],
                           loaded: Mapping[str, Program]) -> None:
    """libbpf bpf_map_prepare_vdata(): each struct_ops map's value with its programs' fds.
    A map whose program was not loaded keeps no value (its registration says why)."""
    order = sys.byteorder
    for name, plan in prepared.struct_ops.items():
        mp = maps.get(name)
        if not isinstance(mp, StructOpsMap):
            continue
        mp.plan = plan
        mp.programs = {s.member: loaded[s.program] for s in plan.slots if s.program in loaded}
        if all(s.program in loaded for s in plan.slots):
            mp.value = plan.value({p: loaded[p].fd for p in {s.program for s in plan.slots}},
                                  order)


def not_ready(mp: StructOpsMap) -> PhaseError:
    missing = sorted({s.program for s in mp.plan.slots if s.member not in mp.programs}) \
        if mp.plan is not None else []
    return PhaseError(
        f"struct_ops map {mp.name!r} has no value yet: "
        + (f"program(s) {', '.join(missing)} are not loaded" if missing
           else "its programs are not loaded"),
        obj=mp.obj, map=mp.name, hint="load the object (obj.load()) with these programs first")
