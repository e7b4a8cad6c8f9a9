"""What create_maps does per map type beyond BPF_MAP_CREATE: the checks that turn the
kernel's bare EINVAL into a message naming the fix, the `Map` class a type gets, and the
set-up after creation.

    check_create(spec, have_btf=True)      # SpecError / NotSupportedError, or nothing
    cls = map_class(spec.type)              # Map, LocalStorageMap, ArenaMap, StructOpsMap
    after_create(map)                       # arenas: mmap-ed before any program loads
    init_arena_globals(map, prepared)       # __arena globals copied into the arena

The type modules (`bpfobj.storage`, `bpfobj.arena`, `bpfobj.user_ringbuf`) are imported
only for maps of their type.
"""

from __future__ import annotations

from collections.abc import Mapping

from bpfobj.maps import Map
from bpfobj.uapi import MapType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from bpfobj.errors import BpfObjError, SyscallError
    from bpfobj.kernel.features import Features
    from bpfobj.prepare import PreparedObject
    from bpfobj.spec import MapSpec

LOCAL_STORAGE = frozenset({MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE,
                           MapType.CGRP_STORAGE})
#: types the kernel only creates with BTF key/value types: no retry without BTF
NEED_BTF = LOCAL_STORAGE


def check_create(m: MapSpec, *, have_btf: bool, obj: str | None = None) -> None:
    """Refuse, before the kernel does, a definition of a type it would refuse with EINVAL."""
    if m.type in LOCAL_STORAGE:
        from bpfobj import storage

        storage.check_spec(m, have_btf=have_btf, obj=obj)
    elif m.type == MapType.ARENA:
        from bpfobj import arena

        arena.check_spec(m, obj=obj)
    elif m.type == MapType.USER_RINGBUF:
        from bpfobj import user_ringbuf

        user_ringbuf.check_spec(m, obj=obj)


def map_class(map_type: MapType) -> type[Map]:
    """The `Map` class for maps of `map_type`."""
    if map_type in LOCAL_STORAGE:
        from bpfobj.storage import LocalStorageMap

        return LocalStorageMap
    if map_type == MapType.ARENA:
        from bpfobj.arena import ArenaMap

        return ArenaMap
    if map_type == MapType.STRUCT_OPS:
        from bpfobj.structops_map import StructOpsMap

        return StructOpsMap
    return Map


def after_create(mp: Map) -> None:
    """Set-up a created (or reused) map needs before programs load: an arena's mapping."""
    if mp.type == MapType.ARENA:
        from bpfobj.arena import ArenaMap

        assert isinstance(mp, ArenaMap)
        mp.map_arena()


def create_error(m: MapSpec, exc: SyscallError, features: Features,
                 obj: str | None = None) -> BpfObjError:
    """The error a failed BPF_MAP_CREATE of `m` stands for (arenas: NotSupportedError on a
    kernel without them); `exc` itself for other types."""
    if m.type == MapType.ARENA:
        from bpfobj import arena

        return arena.create_error(m, exc, features, obj)
    return exc


def check_arena_globals(prepared: PreparedObject, features: Features) -> None:
    """Refuse __arena globals this kernel cannot take where prepare put them."""
    from bpfobj import arena

    layout = prepared.arena
    if layout is not None:
        arena.check_layout(layout, prepared.spec.maps[layout.map], features,
                           obj=prepared.spec.name)


def init_arena_globals(mp: Map, prepared: PreparedObject,
                       initial: Mapping[str, bytes] | None = None) -> None:
    """Copy the __arena globals' initial values (edited ones from `initial`, keyed by
    section) into the created, mapped arena `mp` where prepare placed them."""
    from bpfobj.arena import ArenaMap

    layout, globals_ = prepared.arena, prepared.spec.arena_globals
    assert isinstance(mp, ArenaMap) and layout is not None and globals_ is not None
    data = (initial or {}).get(layout.section, globals_.data)
    mp.init_globals(layout, data)
