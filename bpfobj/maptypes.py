"""What create_maps does per map type beyond BPF_MAP_CREATE: the checks that turn the
kernel's bare EINVAL into a message naming the fix, the `Map` class a type gets, and the
set-up after creation.

    check_create(spec, have_btf=True)      # SpecError / NotSupportedError, or nothing
    cls = map_class(spec.type)              # Map, LocalStorageMap, ArenaMap, StructOpsMap
    after_create(map)                       # arenas: mmap-ed before any program loads

The type modules (`bpfobj.storage`, `bpfobj.arena`, `bpfobj.user_ringbuf`) are imported
only for maps of their type.
"""

from __future__ import annotations

from bpfobj.maps import Map
from bpfobj.uapi import MapType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
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
