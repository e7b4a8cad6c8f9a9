"""`Link`: one attachment of a loaded program, and what it takes to undo it.

    link = bpfobj.attach.attach(obj.programs["handle"])     # or attach_all(obj)
    link.pin("/sys/fs/bpf/handle_link")                     # outlives this process
    link.update(obj.programs["handle_v2"])                  # BPF_LINK_UPDATE, where supported
    link.detach()                                           # stop now (even if pinned)
    with Link.from_pin("/sys/fs/bpf/handle_link") as again:
        again.info()                                        # {"type": LinkType.XDP, ...}

A link owns what libbpf's ``struct bpf_link`` owns:

* a BPF link fd (BPF_LINK_CREATE, BPF_RAW_TRACEPOINT_OPEN): pinnable, updatable for some
  kinds, force-detachable with BPF_LINK_DETACH;
* or a perf event fd the program was attached to with PERF_EVENT_IOC_SET_BPF (libbpf's
  ``bpf_link_perf`` without FEAT_PERF_LINK), where the perf fd *is* the link;
* or no fd at all, for attachments the kernel keeps by itself (XDP and tc through netlink,
  BPF_PROG_ATTACH to a cgroup, SO_ATTACH_BPF): then `close()` runs the undo step;
* plus, for perf-event based links (tracepoints, kprobes, uprobes, perf_event programs),
  the perf event fd next to the BPF link fd, and for legacy tracefs probes the event name
  to remove afterwards;
* or a group of links (one perf event per CPU) closed together.

`close()` is libbpf's bpf_link__destroy(): the fds are closed, which ends the attachment
unless it is pinned; undo steps run. `detach()` is bpf_link__detach() followed by close:
the attachment ends even when a pin holds the link. Leaving a ``with`` block closes.
"""

from __future__ import annotations

import errno as _errno
import io
import os
import weakref
from collections.abc import Callable, Iterable, Sequence

from bpfobj.closing import Closing
from bpfobj.errors import BpfObjError, NotSupportedError, PhaseError, SyscallError
from bpfobj.sys import attr
from bpfobj.sys.syscall import Cmd, Fd, bpf, bpf_fd

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.maps import Map
    from bpfobj.programs import Program
    from bpfobj.sys.attach_attr import LinkType

__all__ = ["Link", "LinkType", "link_info"]


def __getattr__(name: str) -> Any:
    # LinkType lives with the other link attrs; importing them costs a tracepoint tool ~1 ms.
    if name == "LinkType":
        from bpfobj.sys.attach_attr import LinkType

        return LinkType
    raise AttributeError(f"module 'bpfobj.links' has no attribute {name!r}")

_ENOTSUPP = 524  # the kernel's internal "not supported", seen by user space


def link_info(fd: int) -> dict[str, Any]:
    """BPF_OBJ_GET_INFO_BY_FD on a link: ``type`` (`LinkType`), ``id``, ``prog_id``."""
    from bpfobj.sys.attach_attr import LinkType

    info = attr.LinkInfo()
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr.obj_get_info_by_fd(fd, info),
        what="cannot read the link's info")
    try:
        ltype: LinkType | int = LinkType(int(info.type))
    except ValueError:
        ltype = int(info.type)
    return {"type": ltype, "id": int(info.id), "prog_id": int(info.prog_id)}


class OwnedLinks:
    """The links made from one program (or struct_ops map), for the object to close those
    still open when it closes: no attachment outlives it unless pinned.

    Held weakly when the attachment lives in an fd (BPF links, perf events): a link the
    user drops detaches when collected, as before. Held strongly when detaching takes an
    undo step (netlink XDP/tc, legacy attachments): the collector does not run those, so
    the object must.
    """

    __slots__ = ("_refs",)

    def __init__(self) -> None:
        self._refs: list[Callable[[], Link | None]] = []

    def add(self, link: Link) -> None:
        """Hold `link` (again, when it gained an undo step: then strongly)."""
        self._refs = [r for r in self._refs if (held := r()) is not None and held is not link]
        if link._undo:
            self._refs.append(lambda: link)
        else:
            self._refs.append(weakref.ref(link))

    def close_all(self) -> None:
        """Close the links still alive, the newest first."""
        refs, self._refs = self._refs, []
        for ref in reversed(refs):
            link = ref()
            if link is not None:
                link.close()


def owner_links(owner: Program | Map) -> OwnedLinks:
    """The `OwnedLinks` of a program or map, made on the first attach."""
    links = owner._owned_links
    if links is None:
        links = owner._owned_links = OwnedLinks()
    return links


class Link(Closing):
    """An attachment; see the module docstring for what it owns.

    `kind` names the attach kind (``"tracepoint"``, ``"xdp"``...; `AttachKind` values),
    `target` what was attached to (``"syscalls/sys_enter_execve"``, ``"ifindex 3"``).
    """

    def __init__(
        self,
        fd: Fd | None,
        *,
        kind: str,
        target: str = "",
        program: Program | None = None,
        bpf_link: bool = True,
        perf_fd: Fd | None = None,
        perf_attached: bool = False,
        undo: Iterable[Callable[[], None]] = (),
        parts: Sequence[Link] = (),
        map: Map | None = None,
    ) -> None:
        self._fd = fd
        self.kind = kind
        self.target = target
        self.program = program
        self.map = map  # the struct_ops map a struct_ops link registered
        self._bpf_link = bpf_link and not perf_attached and fd is not None
        self._perf_fd = perf_fd
        # the fd is a perf event the program was attached to with PERF_EVENT_IOC_SET_BPF
        self._perf_attached = perf_attached and fd is not None
        self._undo = list(undo)
        self.parts: tuple[Link, ...] = tuple(parts)
        self.pin_path: str | None = None
        self._closed = False
        self._hold()

    # -- construction -------------------------------------------------------------------

    @classmethod
    def group(cls, parts: Sequence[Link], *, kind: str, target: str = "",
              program: Program | None = None) -> Link:
        """Several links handled as one (one perf event per CPU): closed and detached
        together; no single fd, so no pin or update."""
        return cls(None, kind=kind, target=target, program=program, bpf_link=False,
                   parts=parts)

    @classmethod
    def from_pin(cls, path: str) -> Link:
        """Open the link pinned at `path` (BPF_OBJ_GET; libbpf bpf_link__open()).

        The result is a BPF link with no `program` object (its ``prog_id`` is in
        `info()`); closing it leaves the pinned attachment in place, `detach()` ends it.
        """
        from bpfobj.sys import bpffs
        from bpfobj.sys.attach_attr import LinkType

        fd = bpffs.get(path)
        try:
            kind_of_fd = os.readlink(f"/proc/self/fd/{fd.fileno()}")
        except OSError:
            kind_of_fd = "anon_inode:bpf-link"  # no /proc: trust the info query
        if kind_of_fd != "anon_inode:bpf-link":
            fd.close()
            what = kind_of_fd.removeprefix("anon_inode:bpf-")
            raise NotSupportedError(f"{path} is not a pinned BPF link but a {what}",
                                    hint="open pinned maps and programs with their own API")
        try:
            info = link_info(int(fd))
        except BpfObjError:
            fd.close()
            raise
        ltype = info["type"]
        kind = ltype.name.lower() if isinstance(ltype, LinkType) else f"link type {ltype}"
        link = cls(fd, kind=kind, target=f"pinned {path}")
        link.pin_path = path
        return link

    # -- state ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def is_bpf_link(self) -> bool:
        """Whether `fd` is a BPF link (pin, update, info, BPF_LINK_DETACH work on it)."""
        return self._bpf_link

    @property
    def fd(self) -> int:
        """The link's fd: the BPF link, or the perf event for ioctl-attached perf links."""
        self._check_open()
        if self._fd is None:
            what = "a group of links, see .parts" if self.parts else (
                "an attachment the kernel keeps without a link fd")
            raise NotSupportedError(f"this {self.kind} link has no fd: it is {what}",
                                    program=self._program_name())
        return self._fd.fileno()

    @property
    def perf_fd(self) -> int | None:
        """The perf event fd of a perf-event based link, else None."""
        self._check_open()
        if self._perf_fd is not None:
            return self._perf_fd.fileno()
        if self._perf_attached and self._fd is not None:
            return self._fd.fileno()
        return None

    def _program_name(self) -> str | None:
        return self.program.name if self.program is not None else None

    def _check_open(self) -> None:
        if self._closed:
            raise PhaseError(f"the {self.kind} link is closed", program=self._program_name())

    def _require_bpf_link(self, what: str) -> int:
        self._check_open()
        if not self._bpf_link or self._fd is None:
            how = ("it is attached with PERF_EVENT_IOC_SET_BPF (mode='ioctl', or a kernel "
                   "without perf links, before 5.15)" if self._perf_attached else
                   "it is a group of links" if self.parts else
                   "the kernel keeps this attachment without a BPF link")
            raise NotSupportedError(f"cannot {what} this {self.kind} link: {how}",
                                    program=self._program_name())
        return self._fd.fileno()

    # -- BPF link operations ----------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The kernel's bpf_link_info: ``type`` (`LinkType`), ``id``, ``prog_id``."""
        return link_info(self._require_bpf_link("query"))

    @property
    def id(self) -> int:
        return int(self.info()["id"])

    def pin(self, path: str) -> None:
        """Pin the link at `path` on bpffs (libbpf bpf_link__pin(): parent dirs are made)."""
        from bpfobj.sys import bpffs

        fd = self._require_bpf_link("pin")
        if self.pin_path is not None:
            raise PhaseError(f"the link is already pinned at {self.pin_path}",
                             program=self._program_name())
        parent = os.path.dirname(os.path.abspath(path))
        if bpffs.is_bpffs(os.path.dirname(parent) or "/") and not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
        bpffs.pin(fd, path)
        self.pin_path = path

    def unpin(self) -> None:
        """Remove the pin (libbpf bpf_link__unpin()); the link stays while its fd is open."""
        from bpfobj.sys import bpffs

        if self.pin_path is None:
            raise PhaseError("the link is not pinned", program=self._program_name())
        bpffs.unpin(self.pin_path)
        self.pin_path = None

    def update(self, program: Program, *, old: Program | None = None) -> None:
        """Replace the program behind the link (BPF_LINK_UPDATE; libbpf
        bpf_link__update_program()). With `old`, only if `old` is still the one attached
        (BPF_F_REPLACE). Supported by cgroup, xdp, tcx, netkit, netns, iter, sockmap and
        struct_ops links; others raise `NotSupportedError`."""
        from bpfobj.sys.attach_attr import BPF_F_REPLACE

        fd = self._require_bpf_link("update")
        a = attr.link_update(fd, program.fd, flags=BPF_F_REPLACE if old is not None else 0,
                             old_prog_fd=old.fd if old is not None else 0)
        try:
            bpf(Cmd.LINK_UPDATE, a, what=f"cannot update the {self.kind} link",
                program=program.name)
        except SyscallError as exc:
            if exc.errno in (_errno.EOPNOTSUPP, _ENOTSUPP, _errno.EINVAL) and old is None:
                raise NotSupportedError(
                    f"the kernel cannot replace the program of a {self.kind} link "
                    f"({exc.strerror})", program=program.name,
                    hint="detach this link and attach the new program") from None
            raise
        self.program = program

    def update_map(self, map: Map) -> None:
        """Swap the struct_ops map behind a struct_ops link for `map` (libbpf
        bpf_link__update_map(): the new map's value is written, then BPF_LINK_UPDATE with
        it; Linux 6.4+). Only for links of ``.struct_ops.link`` maps."""
        from bpfobj.structops_map import StructOpsMap, not_ready

        fd = self._require_bpf_link("update the map of")
        if self.kind != "struct_ops" or not isinstance(map, StructOpsMap) or not map.is_link:
            raise NotSupportedError(
                f"cannot swap map {map.name!r} into this {self.kind} link",
                hint="update_map() takes a .struct_ops.link map, on a struct_ops link")
        if map.value is None:
            raise not_ready(map)
        try:
            map.update_raw(b"\0\0\0\0", map.value)
        except SyscallError as exc:
            if exc.errno != _errno.EBUSY:  # set before: libbpf skips EBUSY too
                raise
        bpf(Cmd.LINK_UPDATE, attr.link_update(fd, map.fd),
            what=f"cannot swap struct_ops map {map.name!r} into the link")
        self.map = map

    # -- iterators --------------------------------------------------------------------------

    def open_iter(self) -> io.BufferedReader:
        """A new iterator session (BPF_ITER_CREATE) as a binary file: each read runs the
        iter program over the next objects. Close it when done."""
        fd = self._require_bpf_link("create an iterator from")
        it = bpf_fd(Cmd.ITER_CREATE, attr.iter_create(fd),
                    what=f"cannot create an iterator from the {self.kind} link",
                    program=self._program_name())
        return io.open(it.detach(), "rb", closefd=True)  # noqa: UP020

    def read_iter(self) -> bytes:
        """Run an iterator session to the end and return everything it wrote."""
        with self.open_iter() as f:
            chunks: list[bytes] = []
            while True:
                try:
                    chunk = f.read1(65536)
                except OSError as exc:
                    raise SyscallError("reading the iterator failed", errno=exc.errno or 0,
                                       command="read", program=self._program_name()) from None
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)

    # -- ending -----------------------------------------------------------------------------

    def detach(self) -> None:
        """End the attachment now, even if pinned (BPF_LINK_DETACH, libbpf
        bpf_link__detach()), then `close()`.

        Link kinds the kernel cannot force-detach (tracing, raw_tp and perf event links
        before their detach op existed) end when their last reference goes: the pin this
        object knows (`pin_path`, also set by `from_pin`) is removed, then the fd closed.
        """
        if self._closed:
            return
        for part in self.parts:
            part.detach()
        if self._bpf_link and self._fd is not None:
            try:
                bpf(Cmd.LINK_DETACH, attr.link_detach(self._fd.fileno()),
                    what=f"cannot detach the {self.kind} link", program=self._program_name())
            except SyscallError as exc:
                if exc.errno not in (_errno.EOPNOTSUPP, _ENOTSUPP, _errno.EINVAL):
                    raise
                if self.pin_path is not None:
                    self.unpin()
        self.close()

    def add_undo(self, step: Callable[[], None]) -> None:
        """Run `step` when the link closes, after its fds are closed (cleanup an attach
        path adds: legacy probe events, netlink state, allocated ids)."""
        self._undo.append(step)
        self._hold()  # now strongly (see OwnedLinks)

    def _hold(self) -> None:
        """Register with the program (or struct_ops map) it was made from, whose object
        closes it (`OwnedLinks`)."""
        owner = self.program if self.program is not None else self.map
        if owner is not None:
            owner_links(owner).add(self)

    def disconnect(self) -> None:
        """Keep the attachment when this object is closed (libbpf bpf_link__disconnect()):
        undo steps (netlink detach, PROG_DETACH, legacy probe removal) are dropped."""
        self._undo.clear()
        for part in self.parts:
            part.disconnect()

    def close(self) -> None:
        """Release the link (libbpf bpf_link__destroy()): fds closed, undo steps run. A
        pinned BPF link stays attached. Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        for part in self.parts:
            try:
                part.close()
            except BaseException as exc:  # close all parts, then report
                errors.append(exc)
        # libbpf bpf_link_perf_detach(): disable the perf event before closing it
        perf = self._perf_fd if self._perf_fd is not None else (
            self._fd if self._perf_attached else None)
        if perf is not None and not perf.closed:
            from bpfobj.sys import perf as perf_mod

            try:
                perf_mod.disable(perf.fileno())
            except BpfObjError:
                pass
        if self._fd is not None:
            self._fd.close()
        if self._perf_fd is not None:
            self._perf_fd.close()
        for step in self._undo:
            try:
                step()
            except BaseException as exc:
                errors.append(exc)
        self._undo.clear()
        if errors:
            raise errors[0]

    def __repr__(self) -> str:
        prog = f" {self.program.name!r}" if self.program is not None else ""
        if self._closed:
            state = "closed"
        elif self.parts:
            state = f"{len(self.parts)} parts"
        elif self._fd is None:
            state = "no fd"
        else:
            state = f"fd {self._fd.fileno()}"
        target = f" -> {self.target}" if self.target else ""
        return f"<Link {self.kind}{prog}{target} {state}>"
