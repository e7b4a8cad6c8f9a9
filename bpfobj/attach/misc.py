"""The attach kinds left over: lirc_mode2 (BPF_PROG_ATTACH to a lirc device), struct_ops
maps (`attach_struct_ops_map`: registration), and the kinds never attached through a
program: struct_ops programs (through their map), syscall (run with BPF_PROG_TEST_RUN)."""

from __future__ import annotations

from bpfobj.attach.common import fail, prog_attach, wrap_fd
from bpfobj.errors import NotSupportedError
from bpfobj.uapi import AttachType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.links import Link
    from bpfobj.maps import Map
    from bpfobj.programs import Program


def attach_lirc(program: Program, device: str | int | None = None, **_: Any) -> Link:
    """BPF_PROG_ATTACH of a lirc_mode2 program to a lirc device (``/dev/lirc0`` or an fd);
    undone with BPF_PROG_DETACH when the link closes."""
    import os

    from bpfobj.sys.syscall import Fd

    if device is None:
        fail("lirc attach needs a device: pass device= (/dev/lircN or an fd)", program)
    if isinstance(device, int):
        fd, where = wrap_fd(device), f"lirc fd {device}"
    else:
        try:
            fd, where = Fd(os.open(device, os.O_RDWR | os.O_CLOEXEC)), device
        except OSError as exc:
            raise NotSupportedError(f"cannot open {device}: {exc.strerror}",
                                    hint="needs CONFIG_BPF_LIRC_MODE2 and a lirc device") from None
    return prog_attach(program, fd, AttachType.LIRC_MODE2, kind="lirc", target_name=where,
                       config="CONFIG_BPF_LIRC_MODE2")


def attach_struct_ops(program: Program, **_: Any) -> Link:
    """struct_ops programs are not attached one by one: the kernel calls them once their
    struct_ops map is registered (`attach_struct_ops_map`)."""
    so = getattr(getattr(program, "prepared", None), "struct_ops", None)
    maps = ", ".join(repr(m) for m in so.maps) if so is not None else ""
    how = (f"obj.maps[{so.maps[0]!r}].attach_struct_ops()" if so is not None
           else "obj.maps[<the struct_ops variable>].attach_struct_ops()")
    raise NotSupportedError(
        f"struct_ops program {program.name!r} is not attached by itself: it runs once the "
        f"struct_ops map that holds it ({maps or 'none'}) is registered",
        program=program.name, hint=f"register the map: {how}")


def attach_struct_ops_map(mp: Map) -> Link:
    """Register a struct_ops map (libbpf bpf_map__attach_struct_ops()).

    The map's value (the kernel struct with the programs' fds) is written with
    BPF_MAP_UPDATE_ELEM; for a ``.struct_ops.link`` map (BPF_F_LINK) that only fills it and
    BPF_LINK_CREATE (BPF_STRUCT_OPS) registers it: the `Link` is a BPF link, pinnable,
    unregistering when closed (`Link.update_map` swaps in another map). For a plain
    ``.struct_ops`` map the update itself registers it and there is no link fd: closing
    the `Link` unregisters with BPF_MAP_DELETE_ELEM.
    """
    import errno as _errno

    from bpfobj.errors import SpecError, SyscallError
    from bpfobj.links import Link
    from bpfobj.structops_map import StructOpsMap, not_ready
    from bpfobj.sys import attr
    from bpfobj.sys.syscall import Cmd, bpf, bpf_fd

    if not isinstance(mp, StructOpsMap):
        raise SpecError(f"map {mp.name!r} is a {mp.type.label} map, not struct_ops",
                        obj=mp.obj, map=mp.name,
                        hint="only maps from SEC(\".struct_ops\") variables register")
    if mp.value is None:
        raise not_ready(mp)
    what = mp.plan.type_name if mp.plan is not None else "struct_ops"
    target = f"struct {what} {mp.name}"
    zero = b"\0\0\0\0"
    try:
        mp.update_raw(zero, mp.value)
    except SyscallError as exc:
        # libbpf: EBUSY on a link map means it was set (and used by a link) before
        if not (mp.is_link and exc.errno == _errno.EBUSY):
            exc.message = f"cannot register struct_ops map {mp.name!r} ({target})"
            if exc.errno == _errno.EEXIST:
                exc.hint = ("the kernel already has one of this name registered (another "
                            "process, or this map); pick another .name")
            elif exc.errno == _errno.EBUSY:
                exc.hint = "the map is registered already (close its link first)"
            raise exc.with_context(obj=mp.obj, map=mp.name) from None
    if not mp.is_link:
        keep = wrap_fd(mp.fd)

        def unregister() -> None:
            try:
                bpf(Cmd.MAP_DELETE_ELEM, attr.map_elem(keep.fileno(), zero),
                    what=f"cannot unregister struct_ops map {mp.name!r}")
            except SyscallError as exc:
                if exc.errno != _errno.ENOENT:
                    raise
            finally:
                keep.close()

        return Link(None, kind="struct_ops", target=target, bpf_link=False,
                    undo=[unregister], map=mp)
    try:
        fd = bpf_fd(Cmd.LINK_CREATE, attr.link_create(mp.fd, 0, int(AttachType.STRUCT_OPS)),
                    what=f"cannot create a struct_ops link for map {mp.name!r} ({target})")
    except SyscallError as exc:
        from bpfobj.attach.common import unsupported

        raise unsupported(exc, "struct_ops links", config="struct_ops links (.struct_ops.link)",
                          since="6.4").with_context(obj=mp.obj, map=mp.name) from None
    return Link(fd, kind="struct_ops", target=target, map=mp)


def attach_syscall(program: Program, **_: Any) -> Link:
    raise NotSupportedError(
        f"SEC(\"syscall\") program {program.name!r} is never attached",
        program=program.name, hint="run it with program.test_run(ctx=...)")

