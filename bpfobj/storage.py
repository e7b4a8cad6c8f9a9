"""Local storage maps: one value per task, socket, inode or cgroup, keyed by an fd of it.

    task = obj.maps["task_store"]           # BPF_MAP_TYPE_TASK_STORAGE
    task[Pid(1234)]                         # the value of task 1234 (through a pidfd)
    task[os.pidfd_open(1234)] = {"tag": 5}  # or a pidfd you hold
    obj.maps["sk_store"][sock]              # SK_STORAGE: a socket object or socket fd
    obj.maps["inode_store"]["/etc/hosts"]   # INODE_STORAGE: a path, file object or fd
    obj.maps["cgrp_store"]["my/cgroup"]     # CGRP_STORAGE: a cgroup v2 directory (path
                                            # relative to the cgroup2 mount) or its fd

The kernel's user-space API for these maps takes the fd of the owner as key (4 bytes):
a pidfd for task storage (Linux 5.11+), a socket fd for socket storage (5.2+), any fd of
the file for inode storage (5.10+), an fd of a cgroup directory for cgroup storage (6.2+).
Paths and `Pid` keys are opened for the one call and closed again. The maps cannot be
iterated from user space (the kernel has no get_next_key for them): `keys()`, `items()`,
`len()` and the batch operations raise `NotSupportedError`.

The maps must be declared with ``map_flags BPF_F_NO_PREALLOC``, no max_entries and BTF key
and value types; `check_spec` says what is missing before the kernel answers EINVAL.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from bpfobj import records
from bpfobj.errors import NotSupportedError, SpecError, SyscallError
from bpfobj.maps import Map
from bpfobj.sys.attr import BPF_ANY
from bpfobj.uapi import BPF_F_NO_PREALLOC, MapType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.spec import MapSpec

__all__ = ["LOCAL_STORAGE_TYPES", "LocalStorageMap", "Pid", "check_spec"]


@records.frozen
class Owner:
    """What a local storage map's values belong to, and what its keys are."""

    name: str
    key: str  # what user space passes as key
    since: str  # the kernel that brought the map type


LOCAL_STORAGE_TYPES: dict[MapType, Owner] = {
    MapType.SK_STORAGE: Owner("socket", "a socket object or socket fd", "5.2"),
    MapType.INODE_STORAGE: Owner("inode", "a path, a file object or an fd of the file",
                                 "5.10"),
    MapType.TASK_STORAGE: Owner("task", "Pid(pid), or a pidfd (os.pidfd_open(pid))", "5.11"),
    MapType.CGRP_STORAGE: Owner("cgroup", "a cgroup v2 directory (a path, relative to the "
                                "cgroup2 mount or absolute) or an fd of it", "6.2"),
}


@records.frozen
class Pid:
    """A task storage key by process id: a pidfd is opened for the call."""

    pid: int


def check_spec(m: MapSpec, *, have_btf: bool, obj: str | None = None) -> None:
    """Refuse a local storage map definition the kernel would refuse with a bare EINVAL
    (bpf_local_storage_map_alloc_check()), saying what to change."""
    owner = LOCAL_STORAGE_TYPES[m.type]
    what = f"{m.type.label} map {m.name!r}"
    if not m.flags & BPF_F_NO_PREALLOC:
        raise SpecError(f"{what} needs map_flags BPF_F_NO_PREALLOC (local storage is "
                        "allocated per owner)", obj=obj, map=m.name,
                        hint="add __uint(map_flags, BPF_F_NO_PREALLOC); to its definition")
    if m.max_entries:
        raise SpecError(f"{what} has max_entries {m.max_entries}; local storage has one "
                        f"value per {owner.name} and takes none", obj=obj, map=m.name,
                        hint="drop __uint(max_entries, ...) from its definition")
    if m.key_size != 4:
        raise SpecError(f"{what} has a key of {m.key_size} bytes; its key is an int (the fd "
                        f"of the {owner.name} from user space)", obj=obj, map=m.name,
                        hint="declare __type(key, int);")
    if not m.value_type_id:
        raise SpecError(f"{what} has no BTF value type; the kernel needs one for local "
                        "storage", obj=obj, map=m.name,
                        hint="declare the key and value with __type(key, int); "
                             "__type(value, ...); and build with -g")
    if not have_btf:
        raise NotSupportedError(
            f"{what} needs the object's BTF in the kernel, which is not loaded", obj=obj,
            map=m.name, hint="build the object with -g; if it has BTF, the kernel refused it "
                             "(see the btf_load_failed warning)")


class LocalStorageMap(Map):
    """A task, socket, inode or cgroup storage map (see the module doc for the keys)."""

    @property
    def owner(self) -> Owner:
        return LOCAL_STORAGE_TYPES[self.type]

    # -- keys --------------------------------------------------------------------------------

    @contextmanager
    def key_fd(self, key: Any) -> Iterator[int]:
        """The fd that stands for `key` during the block (opened and closed here for paths
        and `Pid` keys)."""
        if isinstance(key, bool):
            raise self._bad_key(key)
        if isinstance(key, int):
            yield key
            return
        fileno = getattr(key, "fileno", None)
        if callable(fileno):
            yield int(fileno())
            return
        fd = self._open_owner(key)
        try:
            yield fd
        finally:
            os.close(fd)

    def _open_owner(self, key: Any) -> int:
        t = self.type
        if isinstance(key, Pid):
            if t != MapType.TASK_STORAGE:
                raise self._bad_key(key)
            try:
                return os.pidfd_open(key.pid)
            except OSError as exc:
                raise SyscallError(f"cannot open a pidfd of process {key.pid} for map "
                                   f"{self.name!r}", errno=exc.errno or _errno.EINVAL,
                                   command="pidfd_open", obj=self.obj,
                                   hint="is the process still running?") from None
        if isinstance(key, str | os.PathLike) and t in (MapType.INODE_STORAGE,
                                                        MapType.CGRP_STORAGE):
            path = os.fspath(key)
            flags = os.O_RDONLY | os.O_CLOEXEC
            if t == MapType.CGRP_STORAGE:
                from bpfobj.attach.cgroup import cgroup_path

                path = cgroup_path(path)
                flags |= os.O_DIRECTORY
            try:
                return os.open(path, flags)
            except OSError as exc:
                raise SyscallError(f"cannot open {path} as the {self.owner.name} key of map "
                                   f"{self.name!r}", errno=exc.errno or _errno.EINVAL,
                                   command="open", obj=self.obj) from None
        raise self._bad_key(key)

    def _bad_key(self, key: Any) -> SpecError:
        return SpecError(f"map {self.name!r} ({self.type.label}) cannot take a key of type "
                         f"{type(key).__name__}", obj=self.obj,
                         hint=f"its keys are {self.owner.key}")

    def _err(self, exc: SyscallError, op: str) -> SyscallError:
        exc = super()._err(exc, op)
        if exc.errno in (_errno.EBADF, _errno.ENOTSOCK) and exc.hint is None:
            exc.hint = (f"the key must be an open fd of the {self.owner.name}: "
                        f"{self.owner.key}")
        return exc

    def _not_iterable(self, op: str) -> NotSupportedError:
        return NotSupportedError(
            f"map {self.name!r} ({self.type.label}) cannot {op}: the kernel cannot iterate "
            f"local storage from user space", obj=self.obj,
            hint=f"look values up by {self.owner.name} ({self.owner.key}), or walk them from "
                 "a BPF program")

    # -- the operations ------------------------------------------------------------------------

    def lookup(self, key: Any = None, default: Any = None) -> Any:
        """The decoded value of the owner `key`, or `default` when it has none."""
        with self.key_fd(key) as fd:
            raw = self.lookup_raw(self.key_codec.encode(fd))
        return default if raw is None else self.decode_value(raw)

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        """Create or set the value of the owner `key` (Map.NOEXIST, Map.EXIST, BPF_F_LOCK)."""
        data = self.encode_value(value)
        with self.key_fd(key) as fd:
            self.update_raw(self.key_codec.encode(fd), data, flags)

    def delete(self, key: Any) -> bool:
        """Delete the value of the owner `key`; False when it had none."""
        with self.key_fd(key) as fd:
            return self.delete_raw(self.key_codec.encode(fd))

    def encode_key(self, key: Any) -> bytes:
        """The raw key of an open fd (or of an object with fileno()); paths and `Pid` keys
        need an fd opened for the call: lookup(), update(), delete() and [] do that."""
        if isinstance(key, bool) or not (isinstance(key, int)
                                         or callable(getattr(key, "fileno", None))):
            raise SpecError(f"map {self.name!r}: encode_key() takes an open fd, not "
                            f"{type(key).__name__}", obj=self.obj,
                            hint="use lookup(), update(), delete() or [] for paths and Pid "
                                 f"keys; its keys are {self.owner.key}")
        return self.key_codec.encode(key if isinstance(key, int) else int(key.fileno()))

    def __getitem__(self, key: Any) -> Any:
        with self.key_fd(key) as fd:
            raw = self.lookup_raw(self.key_codec.encode(fd))
        if raw is None:
            raise KeyError(key)
        return self.decode_value(raw)

    def __delitem__(self, key: Any) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        with self.key_fd(key) as fd:
            return self.lookup_raw(self.key_codec.encode(fd)) is not None

    # -- what local storage cannot do ------------------------------------------------------------

    def next_key_raw(self, key: bytes | None = None) -> bytes | None:
        raise self._not_iterable("list its keys")

    def keys_raw(self) -> Iterator[bytes]:
        raise self._not_iterable("list its keys")

    def __len__(self) -> int:
        raise self._not_iterable("count its values")

    def __bool__(self) -> bool:  # not len(): a map object is always true
        return True

    def clear(self) -> None:
        raise self._not_iterable("be cleared")

    def lookup_batch_raw(self, batch_size: int = 256, *,
                         delete: bool = False) -> list[tuple[bytes, bytes]]:
        raise self._not_iterable("be read in batches")

    def update_batch(self, items: Iterable[tuple[Any, Any]], flags: int = BPF_ANY) -> int:
        raise self._not_iterable("be written in batches")

    def delete_batch(self, keys: Iterable[Any]) -> int:
        raise self._not_iterable("be deleted in batches")
