"""Kernel BTF objects: find a module's BTF by name and get an fd for it.

libbpf load_module_btfs(): walk BPF_BTF_GET_NEXT_ID, open each with BTF_GET_FD_BY_ID,
read its name with OBJ_GET_INFO_BY_FD and keep the kernel ones. Module BTF fds go into
PROG_LOAD's attach_btf_obj_fd (fentry on a module function) or fd_array (module kfuncs)
and into ld_imm64 of typed module ksyms.
"""

from __future__ import annotations

import errno as _errno

from bpfobj.errors import NotSupportedError, SyscallError
from bpfobj.sys import attr
from bpfobj.sys.syscall import Cmd, Fd, bpf, bpf_fd


def btf_info(fd: int) -> tuple[int, str, bool]:
    """(id, name, is kernel BTF) of a BTF object fd."""
    name = bytearray(64)
    info = attr.BtfInfo()
    addr, keep = attr.out_buf(name)
    info.name, info.name_len = addr, len(name)
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr.obj_get_info_by_fd(fd, info))
    del keep
    return int(info.id), bytes(name).split(b"\0", 1)[0].decode(), bool(info.kernel_btf)


def kernel_btf_fds() -> dict[str, Fd]:
    """Every kernel BTF object (vmlinux and modules) by name, each an owned fd."""
    out: dict[str, Fd] = {}
    next_id = 0
    while True:
        req = attr.get_next_id(next_id)
        try:
            bpf(Cmd.BTF_GET_NEXT_ID, req)
        except SyscallError as exc:
            if exc.errno == _errno.ENOENT:
                break
            raise
        next_id = int(req.next_id)
        try:
            fd = bpf_fd(Cmd.BTF_GET_FD_BY_ID, attr.get_fd_by_id(next_id))
        except SyscallError as exc:
            if exc.errno == _errno.ENOENT:  # freed meanwhile
                continue
            raise
        _, name, kernel = btf_info(int(fd))
        if kernel and name not in out:
            out[name] = fd
        else:
            fd.close()
    return out


def module_btf_fd(module: str) -> Fd:
    """An fd for the BTF of kernel module `module`."""
    fds = kernel_btf_fds()
    found = fds.pop(module, None)
    for fd in fds.values():
        fd.close()
    if found is None:
        raise NotSupportedError(f"no kernel BTF object for module {module!r}",
                                hint="is the module loaded? see ls /sys/kernel/btf")
    return found


def prog_btf_bytes(prog_fd: int) -> bytes:
    """The raw BTF a loaded program was loaded with (its bpf_prog_info.btf_id, then
    BTF_GET_FD_BY_ID and BPF_OBJ_GET_INFO_BY_FD into a buffer of its size)."""
    info = attr.ProgInfo()
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr.obj_get_info_by_fd(prog_fd, info),
        what="cannot read the target program's info")
    btf_id = int(info.btf_id)
    if not btf_id:
        raise NotSupportedError(
            "the target program has no BTF", hint="freplace needs a target loaded with "
            "BTF (compiled with -g, its func_info given at load)")
    fd = bpf_fd(Cmd.BTF_GET_FD_BY_ID, attr.get_fd_by_id(btf_id),
                what=f"cannot open the target program's BTF (id {btf_id})")
    try:
        binfo = attr.BtfInfo()
        bpf(Cmd.OBJ_GET_INFO_BY_FD, attr.obj_get_info_by_fd(int(fd), binfo))
        raw = bytearray(int(binfo.btf_size))
        binfo = attr.BtfInfo()
        addr, keep = attr.out_buf(raw)
        binfo.btf, binfo.btf_size = addr, len(raw)
        bpf(Cmd.OBJ_GET_INFO_BY_FD, attr.obj_get_info_by_fd(int(fd), binfo),
            what=f"cannot read the target program's BTF (id {btf_id})")
        del keep
        return bytes(raw)
    finally:
        fd.close()


def find_prog_btf_id(func: str, prog_fd: int) -> int:
    """libbpf libbpf_find_prog_btf_id(): the id of FUNC `func` in the BTF of the loaded
    program `prog_fd` (the attach_btf_id of an freplace program replacing it)."""
    from bpfobj.btf.reader import Btf
    from bpfobj.uapi import BtfKind

    btf = Btf.parse(prog_btf_bytes(prog_fd), name=f"program fd {prog_fd} BTF", cache=None)
    ids = btf.find(func, BtfKind.FUNC)
    if not ids:
        funcs = sorted(btf.name(i) for i in btf.own_ids() if btf.kind(i) == BtfKind.FUNC)
        raise NotSupportedError(
            f"the target program has no function {func!r} in its BTF",
            hint=f"its functions are: {', '.join(funcs) or '(none)'}; freplace replaces a "
                 "global (non-static, noinline) function")
    return ids[0]
