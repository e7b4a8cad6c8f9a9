"""BPF_MAP_TYPE_ARENA (Linux 6.9+): memory shared by BPF programs and user space.

    arena = obj.maps["arena"]              # mapped by create_maps(), as libbpf does
    arena.user_vm_start                    # where it is in this process (map_extra if set)
    ptr = run_program_that_allocates()     # bpf_arena_alloc_pages() returns such addresses
    arena.read(ptr, 16)                    # bytes at an arena pointer (or an offset)
    arena.write(ptr + 8, b"...")
    arena.decode(ptr, "struct node", btf=obj.spec.btf)   # a value decoded through BTF

An arena is ``max_entries`` pages; its user-space address is ``map_extra`` when the object
sets it (``__ulong(map_extra, ADDR)``: the mapping must then be exactly there, so it is made
with mmap(2) at that address, MAP_FIXED_NOREPLACE), else the kernel picks it at the first
mmap. Either way the mapping exists before any program loads, since the verifier refuses a
program using an arena whose user address is not known yet. Pointers stored in the arena
are user-space addresses (``user_vm_start`` + offset); programs see the same offsets.

A page neither the program nor user space touched yet is allocated by the first user-space
access, unless the arena has BPF_F_SEGV_ON_FAULT (then such an access would kill this
process: `read` and `write` refuse to run on such arenas).

``__arena`` global variables (section .addr_space.1) live in the arena too, at the offset
prepare chose (`bpfobj.prepare.ArenaLayout`): create_maps copies their initial values there
right after mapping the arena (`init_globals`, libbpf bpf_object__create_maps()), and
``obj.arena.counter`` reads and writes them there (`GlobalsBacking`).
"""

from __future__ import annotations

import errno as _errno
import mmap as _mmap

from bpfobj.errors import BpfObjError, NotSupportedError, PhaseError, SpecError, SyscallError
from bpfobj.maps import Backing, Codec, Map
from bpfobj.uapi import BPF_F_MMAPABLE, BPF_F_NO_USER_CONV, BPF_F_SEGV_ON_FAULT

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf.reader import Btf
    from bpfobj.kernel.features import Features
    from bpfobj.prepare import ArenaLayout
    from bpfobj.spec import MapSpec
    from bpfobj.sys.vm import Region

__all__ = ["ArenaMap", "GlobalsBacking", "check_layout", "check_spec", "create_error"]

#: the kernel's limit: an arena spans at most 4 GiB (its pointers are 32-bit offsets)
MAX_ARENA_BYTES = 1 << 32
#: the map_flags arena_map_alloc() takes (Linux 6.9+)
ARENA_FLAGS = BPF_F_MMAPABLE | BPF_F_SEGV_ON_FAULT | BPF_F_NO_USER_CONV


def check_spec(m: MapSpec, *, obj: str | None = None) -> None:
    """Refuse an arena definition the kernel would refuse with a bare EINVAL
    (arena_map_alloc()), saying what to change."""
    what = f"arena map {m.name!r}"
    page = _mmap.PAGESIZE
    if not m.flags & BPF_F_MMAPABLE:
        raise SpecError(f"{what} needs map_flags BPF_F_MMAPABLE", obj=obj, map=m.name,
                        hint="add __uint(map_flags, BPF_F_MMAPABLE); to its definition")
    if m.key_size or m.value_size:
        raise SpecError(f"{what} has a key or value ({m.key_size}/{m.value_size} bytes); "
                        "an arena has neither", obj=obj, map=m.name,
                        hint="drop __type(key/value, ...) from its definition")
    if not m.max_entries or m.max_entries * page > MAX_ARENA_BYTES:
        raise SpecError(f"{what} has max_entries {m.max_entries}: it is the arena's size in "
                        f"pages, from 1 to {MAX_ARENA_BYTES // page}", obj=obj, map=m.name,
                        hint="set __uint(max_entries, PAGES);")
    if m.map_extra % page:
        raise SpecError(f"{what}: map_extra {m.map_extra:#x} (its user-space address) is not "
                        f"page aligned", obj=obj, map=m.name,
                        hint=f"use a multiple of {page:#x}, or 0 to let the kernel choose")
    start = m.map_extra
    if start and start >> 32 != (start + m.max_entries * page - 1) >> 32:
        raise SpecError(f"{what}: [{start:#x}, +{m.max_entries} pages) crosses a 4 GiB "
                        "boundary, which an arena may not", obj=obj, map=m.name,
                        hint="align map_extra to 4 GiB (e.g. 1ULL << 44)")


def create_error(m: MapSpec, exc: SyscallError, features: Features,
                 obj: str | None = None) -> BpfObjError:
    """What a failed BPF_MAP_CREATE of an arena means. `check_spec` refuses the definitions
    arena_map_alloc() answers with EINVAL, so with flags the kernel's arenas know, EINVAL
    means the kernel does not know the map type (find_and_alloc_map(): BPF_MAP_TYPE_ARENA
    is Linux 6.9+, built on 64-bit kernels with an MMU only). Other failures stay as they
    are."""
    if exc.errno != _errno.EINVAL or m.flags & ~ARENA_FLAGS:
        return exc
    return NotSupportedError(
        f"cannot create arena map {m.name!r}: {features.kernel_release or 'this kernel'} "
        "does not know BPF_MAP_TYPE_ARENA (Linux 6.9+, 64-bit)", obj=obj, map=m.name,
        hint="run on Linux 6.9 or later, or share memory through an mmapable "
        "BPF_MAP_TYPE_ARRAY (.bss/.data globals) instead")


def check_layout(layout: ArenaLayout, m: MapSpec, features: Features,
                 obj: str | None = None) -> None:
    """Refuse, before create_maps creates anything, __arena globals that cannot work: in an
    arena with BPF_F_SEGV_ON_FAULT (writing their initial values would kill this process),
    or placed 512 MiB or more into the arena on a kernel that limits ld_imm64 offsets (the
    verifier's "direct value offset of N is not allowed")."""
    from bpfobj.prepare import MAX_LDIMM64_VALUE_OFF

    if m.flags & BPF_F_SEGV_ON_FAULT:
        raise NotSupportedError(
            f"arena {m.name!r} has BPF_F_SEGV_ON_FAULT: writing the initial values of its "
            f"__arena globals (section {layout.section}) from user space would kill this "
            "process with SIGSEGV", obj=obj, map=m.name, section=layout.section,
            hint="drop BPF_F_SEGV_ON_FAULT, or allocate such variables with "
            "bpf_arena_alloc_pages() instead of declaring them __arena globals")
    end = layout.offset + layout.size
    if end > MAX_LDIMM64_VALUE_OFF and not features.ldimm64_full_range_off:
        raise NotSupportedError(
            f"the __arena globals are at offset {layout.offset:#x} of arena map "
            f"{layout.map!r} ({layout.placement} of the arena), but "
            f"{features.kernel_release or 'this kernel'} takes ld_imm64 offsets below "
            f"{MAX_LDIMM64_VALUE_OFF:#x} (512 MiB) only: Linux 7.0 lifted the limit",
            obj=obj, map=layout.map, section=layout.section,
            hint="prepare with arena_globals='start' (what libbpf does on this kernel)")


class GlobalsBacking(Backing):
    """The __arena globals in a created arena: section offsets shifted by the layout's
    offset, read and written through the arena's mapping."""

    def __init__(self, arena: ArenaMap, layout: ArenaLayout) -> None:
        self.arena = arena
        self.layout = layout

    def _check(self, off: int, size: int) -> Region:
        if off < 0 or off + size > self.layout.size:
            raise SpecError(f"[{off}, +{size}) is outside the __arena globals ({self.layout.size}"
                            " bytes)", obj=self.arena.obj, map=self.arena.name)
        return self.arena._accessible()

    def read(self, off: int, size: int) -> bytes:
        return self._check(off, size).read(self.layout.offset + off, size)

    def write(self, off: int, data: bytes) -> None:
        self._check(off, len(data)).write(self.layout.offset + off, data)


class ArenaMap(Map):
    """A created arena and its mapping in this process (see the module doc)."""

    def __init__(self, spec: MapSpec, *args: Any, **kwargs: Any) -> None:
        super().__init__(spec, *args, **kwargs)
        self.region: Region | None = None

    @property
    def size(self) -> int:
        """Bytes the arena spans (max_entries pages)."""
        return self.max_entries * _mmap.PAGESIZE

    def mmap_size(self) -> int:
        return self.size

    def map_arena(self) -> Region:
        """mmap the arena (once): at map_extra when set, else where the kernel chooses."""
        if self.region is not None:
            return self.region
        from bpfobj.sys.vm import Region

        addr = self.spec.map_extra
        if self.reused and not addr:
            addr = int(self.info()["map_extra"])
        try:
            self.region = Region.map(self.fd, self.size, addr=addr,
                                     what=f"cannot mmap arena {self.name!r}")
        except SyscallError as exc:
            if addr and exc.errno == _errno.EEXIST:
                exc.hint = (f"the address {addr:#x} (map_extra) is in use in this process: "
                            "choose another, or 0 to let the kernel choose")
            elif self.reused:
                exc.hint = ("a pinned arena is mapped at the user address its first user "
                            "gave it: set that address as map_extra")
            raise exc.with_context(obj=self.obj, map=self.name) from None
        return self.region

    def map_memory(self, *, writable: bool) -> _mmap.mmap:
        raise NotSupportedError(f"arena {self.name!r} is mapped by the loader at its user "
                                "address, not with mmap.mmap", obj=self.obj,
                                hint="use read(), write() and decode() of the arena map")

    @property
    def user_vm_start(self) -> int:
        """The arena's user-space address (arena pointers are this plus an offset)."""
        return self._region().addr

    def _region(self) -> Region:
        if self.closed:
            raise PhaseError(f"arena {self.name!r} is closed", obj=self.obj)
        if self.region is None:
            self.map_arena()
        assert self.region is not None
        return self.region

    def offset(self, where: int) -> int:
        """The offset in the arena of `where`: an arena pointer (a user-space address, or a
        32-bit arena offset as programs store them with BPF_F_NO_USER_CONV), or an offset."""
        start = self.user_vm_start
        if start <= where < start + self.size:
            return where - start
        low = where & 0xFFFFFFFF
        if where >> 32 in (0, start >> 32) and (start & 0xFFFFFFFF) <= low < (
                start & 0xFFFFFFFF) + self.size:
            return low - (start & 0xFFFFFFFF)
        if 0 <= where < self.size:
            return where
        raise SpecError(f"{where:#x} is not in arena {self.name!r} ([{start:#x}, "
                        f"{start + self.size:#x}))", obj=self.obj)

    def _accessible(self) -> Region:
        region = self._region()
        if self.flags & BPF_F_SEGV_ON_FAULT:
            raise NotSupportedError(
                f"arena {self.name!r} has BPF_F_SEGV_ON_FAULT: touching a page no program "
                "allocated would kill this process with SIGSEGV", obj=self.obj,
                hint="create the arena without BPF_F_SEGV_ON_FAULT to access it from Python")
        return region

    def read(self, where: int, size: int) -> bytes:
        """`size` bytes at an arena pointer or offset."""
        return self._accessible().read(self.offset(where), size)

    def write(self, where: int, data: bytes | bytearray | memoryview) -> None:
        """Write `data` at an arena pointer or offset."""
        self._accessible().write(self.offset(where), data)

    def init_globals(self, layout: ArenaLayout, data: bytes) -> None:
        """Copy the __arena globals' initial values to where prepare put them (libbpf
        bpf_object__create_maps(): memcpy(map->mmaped + obj->arena_data_off, ...));
        `check_layout` ran before."""
        region = self._accessible()
        region.write(layout.offset, bytes(data).ljust(layout.size, b"\0")[: layout.size])

    def read_u64(self, where: int) -> int:
        return int.from_bytes(self.read(where, 8), "little")

    def decode(self, where: int, type_name_or_id: str | int, *, btf: Btf | None = None) -> Any:
        """The value of a BTF type (a name, ``struct x``, or an id of `btf`, by default the
        object's) at an arena pointer or offset, decoded as map values are."""
        btf = btf or self.btf
        if btf is None:
            raise SpecError(f"decoding from arena {self.name!r} needs BTF",
                            obj=self.obj, hint="pass btf=obj.spec.btf")
        tid = type_name_or_id if isinstance(type_name_or_id, int) else _find_type(
            btf, type_name_or_id)
        size = btf.size_of(tid)
        return Codec(btf, tid, size).decode(self.read(where, size))

    def close(self) -> None:
        if self.region is not None:
            self.region.close()
            self.region = None
        super().close()


def _find_type(btf: Btf, name: str) -> int:
    from bpfobj.uapi import BtfKind

    bare = name.split()[-1]
    for kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.TYPEDEF, BtfKind.INT, BtfKind.ENUM):
        ids = btf.find(bare, kind)
        if ids:
            return ids[0]
    raise SpecError(f"the object's BTF has no type named {bare!r}")
