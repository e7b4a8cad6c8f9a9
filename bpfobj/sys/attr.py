"""``union bpf_attr``: one ctypes layout and one builder per bpf(2) command.

Every layout is the anonymous (or named) struct of ``union bpf_attr`` in
include/uapi/linux/bpf.h (Linux 6.12) that the command reads, starting at offset 0; its
``_c_prefix_`` is the member path C uses for it (``"batch."`` for
``offsetof(union bpf_attr, batch.count)``), so tests/test_sys_attr.py compares every offset
with the C compiler's. The size passed to the kernel is the struct's size: a kernel that
knows less checks that the unknown tail is zero (bpf_check_uarg_tail_zero), and builders
leave every field they are not given at zero.

Builders take Python values and buffers and return the filled struct; buffers whose
address goes into the attr are kept alive on it (``attr._keep``) until it is dropped.
Output fields (``retval``, ``log_true_size``, ``count``, ...) are read from the struct
after the call.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator, Sequence

from bpfobj.sys.syscall import Cmd

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    S = TypeVar("S", bound=type[ctypes.Structure])

# Flags (linux/bpf.h).
BPF_ANY = 0  # MAP_UPDATE_ELEM: create or update
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4
BPF_F_SLEEPABLE = 1 << 4  # PROG_LOAD prog_flags
BPF_F_XDP_HAS_FRAGS = 1 << 5
BPF_F_TEST_RUN_ON_CPU = 1 << 0  # PROG_TEST_RUN flags
BPF_F_RDONLY = 1 << 3  # OBJ_GET file_flags, map flags
BPF_F_WRONLY = 1 << 4
BPF_OBJ_NAME_LEN = 16

U32 = int
U64 = int
S32 = int
ObjName = bytes
Tag = bytes

_CTYPES: dict[str, Any] = {
    "U32": ctypes.c_uint32,
    "U64": ctypes.c_uint64,
    "S32": ctypes.c_int32,
    "ObjName": ctypes.c_char * BPF_OBJ_NAME_LEN,
    "Tag": ctypes.c_ubyte * 8,
}



def _layout(prefix: str = "") -> Any:
    """Class decorator: build ``_fields_`` from the class annotations (U32, U64, ...).

    Annotations keep mypy's view typed (fields are ints/bytes) while ctypes gets the C
    layout. Natural C alignment applies, as for the kernel's structs (``__aligned_u64``).
    """

    def wrap(cls: S) -> S:
        # The class's own annotations (inspect.get_annotations would import inspect: ~6 ms).
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        fields = [(name, _CTYPES[ann]) for name, ann in own.items()]
        cls._fields_ = fields
        cls._c_prefix_ = prefix  # type: ignore[attr-defined]
        return cls

    return wrap


class Attr(ctypes.Structure):
    """Base of the attr layouts: carries the keep-alive list of buffers it points into."""

    _keep: list[object]

    def keep(self, *objs: object) -> None:
        try:
            self._keep.extend(objs)
        except AttributeError:
            self._keep = list(objs)


# --------------------------------------------------------------------------------------
# Buffers
# --------------------------------------------------------------------------------------


def in_buf(data: bytes | bytearray | memoryview | None) -> tuple[int, object]:
    """Address of read-only input bytes for the kernel, and the object to keep alive."""
    if data is None:
        return 0, None
    if isinstance(data, bytes):
        p = ctypes.c_char_p(data)  # points into the bytes object itself: no copy
        return ctypes.cast(p, ctypes.c_void_p).value or 0, (p, data)
    return out_buf(data)


def out_buf(buf: bytearray | memoryview | None) -> tuple[int, object]:
    """Address of a writable buffer the kernel fills (no copy), and what to keep alive."""
    if buf is None:
        return 0, None
    mv = memoryview(buf)
    if mv.nbytes == 0:
        return 0, None
    c = (ctypes.c_char * mv.nbytes).from_buffer(mv)
    return ctypes.addressof(c), c


def cstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return raw + b"\0"


def obj_name(name: str | bytes | None) -> bytes:
    """A kernel object name: at most BPF_OBJ_NAME_LEN - 1 bytes (libbpf_strlcpy)."""
    if not name:
        return b""
    raw = name.encode() if isinstance(name, str) else name
    return raw[: BPF_OBJ_NAME_LEN - 1]


# --------------------------------------------------------------------------------------
# Layouts (union bpf_attr members, linux/bpf.h)
# --------------------------------------------------------------------------------------


@_layout()
class MapCreateAttr(Attr):
    """BPF_MAP_CREATE: the first anonymous struct."""

    map_type: U32
    key_size: U32
    value_size: U32
    max_entries: U32
    map_flags: U32
    inner_map_fd: U32
    numa_node: U32
    map_name: ObjName
    map_ifindex: U32
    btf_fd: U32
    btf_key_type_id: U32
    btf_value_type_id: U32
    btf_vmlinux_value_type_id: U32
    map_extra: U64
    value_type_btf_obj_fd: S32
    map_token_fd: S32


@_layout()
class MapElemAttr(Attr):
    """BPF_MAP_*_ELEM, BPF_MAP_GET_NEXT_KEY, BPF_MAP_FREEZE: ``{map_fd; key; value or
    next_key; flags}``."""

    map_fd: U32
    _pad0: U32
    key: U64
    value: U64  # union with next_key
    flags: U64


@_layout("batch.")
class MapBatchAttr(Attr):
    """BPF_MAP_*_BATCH: ``struct { ... } batch``."""

    in_batch: U64
    out_batch: U64
    keys: U64
    values: U64
    count: U32
    map_fd: U32
    elem_flags: U64
    flags: U64


@_layout()
class ProgLoadAttr(Attr):
    """BPF_PROG_LOAD: the anonymous struct starting with prog_type."""

    prog_type: U32
    insn_cnt: U32
    insns: U64
    license: U64
    log_level: U32
    log_size: U32
    log_buf: U64
    kern_version: U32
    prog_flags: U32
    prog_name: ObjName
    prog_ifindex: U32
    expected_attach_type: U32
    prog_btf_fd: U32
    func_info_rec_size: U32
    func_info: U64
    func_info_cnt: U32
    line_info_rec_size: U32
    line_info: U64
    line_info_cnt: U32
    attach_btf_id: U32
    attach_btf_obj_fd: U32  # union with attach_prog_fd
    core_relo_cnt: U32
    fd_array: U64
    core_relos: U64
    core_relo_rec_size: U32
    log_true_size: U32
    prog_token_fd: S32
    _pad0: U32


@_layout()
class ObjAttr(Attr):
    """BPF_OBJ_PIN, BPF_OBJ_GET: ``{pathname; bpf_fd; file_flags; path_fd}``."""

    pathname: U64
    bpf_fd: U32
    file_flags: U32
    path_fd: S32
    _pad0: U32


@_layout()
class ProgAttachAttr(Attr):
    """BPF_PROG_ATTACH / BPF_PROG_DETACH."""

    target_fd: U32  # union with target_ifindex
    attach_bpf_fd: U32
    attach_type: U32
    attach_flags: U32
    replace_bpf_fd: U32
    relative_fd: U32  # union with relative_id
    expected_revision: U64


@_layout("test.")
class TestRunAttr(Attr):
    """BPF_PROG_TEST_RUN: ``struct { ... } test``."""

    prog_fd: U32
    retval: U32
    data_size_in: U32
    data_size_out: U32
    data_in: U64
    data_out: U64
    repeat: U32
    duration: U32
    ctx_size_in: U32
    ctx_size_out: U32
    ctx_in: U64
    ctx_out: U64
    flags: U32
    cpu: U32
    batch_size: U32
    _pad0: U32


@_layout()
class IdAttr(Attr):
    """BPF_*_GET_NEXT_ID, BPF_*_GET_FD_BY_ID: ``{start_id (prog_id, map_id, btf_id,
    link_id); next_id; open_flags}``."""

    start_id: U32
    next_id: U32
    open_flags: U32


@_layout("info.")
class InfoAttr(Attr):
    """BPF_OBJ_GET_INFO_BY_FD: ``struct { bpf_fd; info_len; info } info``."""

    bpf_fd: U32
    info_len: U32
    info: U64


@_layout("raw_tracepoint.")
class RawTracepointAttr(Attr):
    """BPF_RAW_TRACEPOINT_OPEN: ``struct { name; prog_fd; :32; cookie } raw_tracepoint``."""

    name: U64
    prog_fd: U32
    _pad0: U32
    cookie: U64


@_layout()
class BtfLoadAttr(Attr):
    """BPF_BTF_LOAD: the anonymous struct starting with btf."""

    btf: U64
    btf_log_buf: U64
    btf_size: U32
    btf_log_size: U32
    btf_log_level: U32
    btf_log_true_size: U32
    btf_flags: U32
    btf_token_fd: S32


@_layout("link_create.")
class LinkCreateAttr(Attr):
    """BPF_LINK_CREATE: ``struct { ... } link_create``. The per-kind union after ``flags``
    is laid out as six u64 words ``u0``..``u5`` (offsets 16..56, its largest member being
    uprobe_multi); `link_create()` fills them per kind, tests/test_sys_attr.py checks where
    each C member lands (little-endian hosts: a u32 member is the low half of its word).
    """

    prog_fd: U32  # union with map_fd
    target_fd: U32  # union with target_ifindex
    attach_type: U32
    flags: U32
    u0: U64  # 16: target_btf_id | iter_info | perf_event.bpf_cookie | kprobe_multi.{flags,cnt}
    u1: U64  # 24: iter_info_len | kprobe_multi.syms | tracing.cookie | tcx.expected_revision
    u2: U64  # 32: kprobe_multi.addrs | uprobe_multi.ref_ctr_offsets
    u3: U64  # 40: kprobe_multi.cookies | uprobe_multi.cookies
    u4: U64  # 48: uprobe_multi.{cnt, flags}
    u5: U64  # 56: uprobe_multi.pid

    _raw_words_ = ("u0", "u1", "u2", "u3", "u4", "u5")  # no C member of these names


@_layout("link_update.")
class LinkUpdateAttr(Attr):
    """BPF_LINK_UPDATE: ``struct { link_fd; new_prog_fd; flags; old_prog_fd } link_update``."""

    link_fd: U32
    new_prog_fd: U32
    flags: U32
    old_prog_fd: U32


@_layout("link_detach.")
class LinkDetachAttr(Attr):
    """BPF_LINK_DETACH: ``struct { link_fd } link_detach``."""

    link_fd: U32


@_layout("enable_stats.")
class EnableStatsAttr(Attr):
    """BPF_ENABLE_STATS: ``struct { type } enable_stats``."""

    type: U32


@_layout("iter_create.")
class IterCreateAttr(Attr):
    """BPF_ITER_CREATE: ``struct { link_fd; flags } iter_create``."""

    link_fd: U32
    flags: U32


@_layout("prog_bind_map.")
class ProgBindMapAttr(Attr):
    """BPF_PROG_BIND_MAP: ``struct { prog_fd; map_fd; flags } prog_bind_map``."""

    prog_fd: U32
    map_fd: U32
    flags: U32


# --------------------------------------------------------------------------------------
# bpf_*_info (linux/bpf.h), filled by BPF_OBJ_GET_INFO_BY_FD
# --------------------------------------------------------------------------------------


@_layout()
class MapInfo(Attr):
    """struct bpf_map_info."""

    type: U32
    id: U32
    key_size: U32
    value_size: U32
    max_entries: U32
    map_flags: U32
    name: ObjName
    ifindex: U32
    btf_vmlinux_value_type_id: U32
    netns_dev: U64
    netns_ino: U64
    btf_id: U32
    btf_key_type_id: U32
    btf_value_type_id: U32
    btf_vmlinux_id: U32
    map_extra: U64


@_layout()
class BtfInfo(Attr):
    """struct bpf_btf_info."""

    btf: U64
    btf_size: U32
    id: U32
    name: U64
    name_len: U32
    kernel_btf: U32


@_layout()
class ProgInfo(Attr):
    """struct bpf_prog_info (the bitfield word after ifindex is ``gpl_flags``)."""

    type: U32
    id: U32
    tag: Tag
    jited_prog_len: U32
    xlated_prog_len: U32
    jited_prog_insns: U64
    xlated_prog_insns: U64
    load_time: U64
    created_by_uid: U32
    nr_map_ids: U32
    map_ids: U64
    name: ObjName
    ifindex: U32
    gpl_flags: U32  # gpl_compatible:1, :31
    netns_dev: U64
    netns_ino: U64
    nr_jited_ksyms: U32
    nr_jited_func_lens: U32
    jited_ksyms: U64
    jited_func_lens: U64
    btf_id: U32
    func_info_rec_size: U32
    func_info: U64
    nr_func_info: U32
    nr_line_info: U32
    line_info: U64
    jited_line_info: U64
    nr_jited_line_info: U32
    line_info_rec_size: U32
    jited_line_info_rec_size: U32
    nr_prog_tags: U32
    prog_tags: U64
    run_time_ns: U64
    run_cnt: U64
    recursion_misses: U64
    verified_insns: U32
    attach_btf_obj_id: U32
    attach_btf_id: U32
    _pad0: U32


@_layout()
class LinkInfo(Attr):
    """struct bpf_link_info: the common head; the per-type union is kept raw (``u*``)."""

    type: U32
    id: U32
    prog_id: U32
    _pad0: U32
    u0: U64
    u1: U64
    u2: U64
    u3: U64
    u4: U64

    _raw_words_ = ("u0", "u1", "u2", "u3", "u4")


def fields_of(cls: type[ctypes.Structure]) -> Iterator[tuple[str, int, int]]:
    """(C member path, offset, size) of every named field of an attr layout."""
    prefix = getattr(cls, "_c_prefix_", "")
    raw = getattr(cls, "_raw_words_", ())
    for name, ctype in cls._fields_:  # type: ignore[misc]
        if name.startswith("_") or name in raw:
            continue
        field = getattr(cls, name)
        yield prefix + name, field.offset, ctypes.sizeof(ctype)


# --------------------------------------------------------------------------------------
# Builders: one per command
# --------------------------------------------------------------------------------------


def map_create(
    map_type: int, key_size: int, value_size: int, max_entries: int, *,
    flags: int = 0, name: str | bytes | None = None, inner_map_fd: int = 0, numa_node: int = 0,
    ifindex: int = 0, btf_fd: int = 0, btf_key_type_id: int = 0, btf_value_type_id: int = 0,
    btf_vmlinux_value_type_id: int = 0, map_extra: int = 0, value_type_btf_obj_fd: int = 0,
    token_fd: int = 0,
) -> MapCreateAttr:
    """BPF_MAP_CREATE (libbpf bpf_map_create())."""
    return MapCreateAttr(
        map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
        map_flags=flags, inner_map_fd=inner_map_fd, numa_node=numa_node,
        map_name=obj_name(name), map_ifindex=ifindex, btf_fd=btf_fd,
        btf_key_type_id=btf_key_type_id, btf_value_type_id=btf_value_type_id,
        btf_vmlinux_value_type_id=btf_vmlinux_value_type_id, map_extra=map_extra,
        value_type_btf_obj_fd=value_type_btf_obj_fd, map_token_fd=token_fd,
    )


def map_elem(
    map_fd: int, key: bytes | bytearray | memoryview | None,
    value: bytes | bytearray | memoryview | None = None, flags: int = 0, *,
    out: bool = False,
) -> MapElemAttr:
    """BPF_MAP_LOOKUP_ELEM / UPDATE_ELEM / DELETE_ELEM / LOOKUP_AND_DELETE_ELEM /
    GET_NEXT_KEY (`value` is next_key there). `out`: the kernel writes into `value`."""
    kaddr, kkeep = in_buf(key)
    vaddr, vkeep = out_buf(value) if out else in_buf(value)  # type: ignore[arg-type]
    attr = MapElemAttr(map_fd=map_fd, key=kaddr, value=vaddr, flags=flags)
    attr.keep(kkeep, vkeep)
    return attr


map_lookup_elem = map_update_elem = map_delete_elem = map_get_next_key = map_elem


def map_freeze(map_fd: int) -> MapElemAttr:
    """BPF_MAP_FREEZE: only map_fd."""
    return MapElemAttr(map_fd=map_fd)


def map_batch(
    map_fd: int, *, keys: bytearray | bytes | None, values: bytearray | bytes | None,
    count: int, in_batch: bytes | bytearray | None = None, out_batch: bytearray | None = None,
    elem_flags: int = 0, flags: int = 0,
) -> MapBatchAttr:
    """BPF_MAP_LOOKUP_BATCH / LOOKUP_AND_DELETE_BATCH / UPDATE_BATCH / DELETE_BATCH.

    keys/values are written by the kernel for lookups (pass bytearrays) and read for
    updates/deletes; ``count`` is in/out."""
    ib, ibk = in_buf(in_batch)
    ob, obk = out_buf(out_batch)
    k, kk = out_buf(keys) if isinstance(keys, bytearray) else in_buf(keys)
    v, vk = out_buf(values) if isinstance(values, bytearray) else in_buf(values)
    attr = MapBatchAttr(in_batch=ib, out_batch=ob, keys=k, values=v, count=count,
                        map_fd=map_fd, elem_flags=elem_flags, flags=flags)
    attr.keep(ibk, obk, kk, vk)
    return attr


def prog_load(
    prog_type: int, insns: bytes, license: str | bytes, *,
    name: str | bytes | None = None, expected_attach_type: int = 0, kern_version: int = 0,
    prog_flags: int = 0, ifindex: int = 0,
    log_level: int = 0, log_buf: bytearray | None = None,
    prog_btf_fd: int = 0,
    func_info: bytes = b"", func_info_rec_size: int = 0, func_info_cnt: int = 0,
    line_info: bytes = b"", line_info_rec_size: int = 0, line_info_cnt: int = 0,
    attach_btf_id: int = 0, attach_btf_obj_fd: int = 0, attach_prog_fd: int = 0,
    fd_array: Sequence[int] | None = None,
    core_relos: bytes = b"", core_relo_rec_size: int = 0, core_relo_cnt: int = 0,
    token_fd: int = 0,
) -> ProgLoadAttr:
    """BPF_PROG_LOAD (libbpf bpf_prog_load()). `insns` are encoded instructions;
    func_info/line_info/core_relos are packed records (bpf_func_info, bpf_line_info,
    bpf_core_relo); `fd_array` holds fds referenced by kfunc calls (insn.off) and
    BPF_PSEUDO_MAP_IDX."""
    ia, ik = in_buf(insns)
    lic = cstr(license)
    la, lk = in_buf(lic)
    loga, logk = out_buf(log_buf)
    fa, fk = in_buf(func_info or None)
    lia, lik = in_buf(line_info or None)
    ca, ck = in_buf(core_relos or None)
    fda, fdk = 0, None
    if fd_array:
        arr = (ctypes.c_int32 * len(fd_array))(*fd_array)
        fda, fdk = ctypes.addressof(arr), arr
    attr = ProgLoadAttr(
        prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ia, license=la,
        log_level=log_level if log_buf else 0, log_size=len(log_buf) if log_buf else 0,
        log_buf=loga, kern_version=kern_version, prog_flags=prog_flags,
        prog_name=obj_name(name), prog_ifindex=ifindex,
        expected_attach_type=expected_attach_type, prog_btf_fd=prog_btf_fd,
        func_info_rec_size=func_info_rec_size if func_info_cnt else 0, func_info=fa,
        func_info_cnt=func_info_cnt,
        line_info_rec_size=line_info_rec_size if line_info_cnt else 0, line_info=lia,
        line_info_cnt=line_info_cnt, attach_btf_id=attach_btf_id,
        attach_btf_obj_fd=attach_btf_obj_fd or attach_prog_fd, core_relo_cnt=core_relo_cnt,
        fd_array=fda, core_relos=ca, core_relo_rec_size=core_relo_rec_size,
        prog_token_fd=token_fd,
    )
    attr.keep(ik, lic, lk, logk, fk, lik, ck, fdk)
    return attr


def btf_load(btf: bytes, *, log_buf: bytearray | None = None, log_level: int = 1,
             flags: int = 0, token_fd: int = 0) -> BtfLoadAttr:
    """BPF_BTF_LOAD (libbpf bpf_btf_load())."""
    ba, bk = in_buf(btf)
    la, lk = out_buf(log_buf)
    attr = BtfLoadAttr(btf=ba, btf_log_buf=la, btf_size=len(btf),
                       btf_log_size=len(log_buf) if log_buf else 0,
                       btf_log_level=log_level if log_buf else 0, btf_flags=flags,
                       btf_token_fd=token_fd)
    attr.keep(bk, lk)
    return attr


def obj_pin(fd: int, path: str, *, file_flags: int = 0) -> ObjAttr:
    """BPF_OBJ_PIN."""
    p = cstr(path)
    a, k = in_buf(p)
    attr = ObjAttr(pathname=a, bpf_fd=fd, file_flags=file_flags)
    attr.keep(p, k)
    return attr


def obj_get(path: str, *, file_flags: int = 0) -> ObjAttr:
    """BPF_OBJ_GET."""
    return obj_pin(0, path, file_flags=file_flags)


def obj_get_info_by_fd(fd: int, info: ctypes.Structure | bytearray) -> InfoAttr:
    """BPF_OBJ_GET_INFO_BY_FD into `info` (a bpf_*_info struct or raw buffer)."""
    keep: object
    if isinstance(info, ctypes.Structure):
        addr, size, keep = ctypes.addressof(info), ctypes.sizeof(info), info
    else:
        addr, keep = out_buf(info)
        size = len(info)
    attr = InfoAttr(bpf_fd=fd, info_len=size, info=addr)
    attr.keep(keep)
    return attr


def prog_test_run(
    prog_fd: int, *, data_in: bytes | None = None, data_out: bytearray | None = None,
    ctx_in: bytes | bytearray | None = None, ctx_out: bytearray | None = None, repeat: int = 0,
    flags: int = 0, cpu: int = 0, batch_size: int = 0,
) -> TestRunAttr:
    """BPF_PROG_TEST_RUN (libbpf bpf_prog_test_run_opts()). A bytearray `ctx_in` may be
    written by the kernel (syscall programs get their context copied back)."""
    di, dik = in_buf(data_in)
    do, dok = out_buf(data_out)
    ci, cik = in_buf(ctx_in)
    co, cok = out_buf(ctx_out)
    attr = TestRunAttr(
        prog_fd=prog_fd, data_size_in=len(data_in or b""),
        data_size_out=len(data_out or b""), data_in=di, data_out=do, repeat=repeat,
        ctx_size_in=len(ctx_in or b""), ctx_size_out=len(ctx_out or b""), ctx_in=ci,
        ctx_out=co, flags=flags, cpu=cpu, batch_size=batch_size,
    )
    attr.keep(dik, dok, cik, cok)
    return attr


def get_fd_by_id(obj_id: int, *, open_flags: int = 0) -> IdAttr:
    """BPF_{PROG,MAP,BTF,LINK}_GET_FD_BY_ID."""
    return IdAttr(start_id=obj_id, open_flags=open_flags)


btf_get_fd_by_id = get_fd_by_id


def get_next_id(start_id: int) -> IdAttr:
    """BPF_{PROG,MAP,BTF,LINK}_GET_NEXT_ID (``next_id`` is the output)."""
    return IdAttr(start_id=start_id)


def raw_tracepoint_open(name: str | None, prog_fd: int, *, cookie: int = 0) -> RawTracepointAttr:
    """BPF_RAW_TRACEPOINT_OPEN (name None: the program's attach_btf_id decides)."""
    raw = cstr(name) if name is not None else None
    a, k = in_buf(raw)
    attr = RawTracepointAttr(name=a, prog_fd=prog_fd, cookie=cookie)
    attr.keep(raw, k)
    return attr


def link_create(
    prog_fd: int, target_fd: int, attach_type: int, *, flags: int = 0,
    target_btf_id: int = 0, iter_info: bytes | None = None, bpf_cookie: int = 0,
    tracing_cookie: int = 0, relative_fd: int = 0, expected_revision: int = 0,
    uprobe_multi: tuple[str, Sequence[int], Sequence[int] | None, Sequence[int] | None, int,
                        int] | None = None,
) -> LinkCreateAttr:
    """BPF_LINK_CREATE (libbpf bpf_link_create()). One per-kind option at a time:
    target_btf_id (+ tracing_cookie) for tracing/lsm/freplace, iter_info for iterators,
    bpf_cookie for perf events, relative_fd/expected_revision for tcx/netkit/cgroup,
    uprobe_multi = (path, offsets, ref_ctr_offsets, cookies, flags, pid)."""
    attr = LinkCreateAttr(prog_fd=prog_fd, target_fd=target_fd, attach_type=attach_type,
                          flags=flags)
    if iter_info is not None:
        a, k = in_buf(iter_info)
        attr.u0, attr.u1 = a, len(iter_info)
        attr.keep(iter_info, k)
    elif bpf_cookie:
        attr.u0 = bpf_cookie
    elif target_btf_id or tracing_cookie:
        attr.u0, attr.u1 = target_btf_id, tracing_cookie
    elif relative_fd or expected_revision:
        attr.u0, attr.u1 = relative_fd, expected_revision
    elif uprobe_multi is not None:
        path, offsets, refs, cookies, uflags, pid = uprobe_multi
        p = cstr(path)
        pa, pk = in_buf(p)
        arrays: list[ctypes.Array[ctypes.c_uint64] | None] = [
            (ctypes.c_uint64 * len(seq))(*seq) if seq else None
            for seq in (offsets, refs, cookies)
        ]
        attr.u0 = pa
        attr.u1, attr.u2, attr.u3 = (ctypes.addressof(a) if a is not None else 0 for a in arrays)
        attr.u4 = len(offsets) | (uflags << 32)
        attr.u5 = pid & 0xFFFFFFFF
        attr.keep(p, pk, *arrays)
    return attr


def link_update(link_fd: int, new_prog_fd: int, *, flags: int = 0,
                old_prog_fd: int = 0) -> LinkUpdateAttr:
    """BPF_LINK_UPDATE."""
    return LinkUpdateAttr(link_fd=link_fd, new_prog_fd=new_prog_fd, flags=flags,
                          old_prog_fd=old_prog_fd)


def link_detach(link_fd: int) -> LinkDetachAttr:
    """BPF_LINK_DETACH."""
    return LinkDetachAttr(link_fd=link_fd)


def prog_attach(prog_fd: int, target_fd: int, attach_type: int, *, flags: int = 0,
                replace_fd: int = 0, relative_fd: int = 0,
                expected_revision: int = 0) -> ProgAttachAttr:
    """BPF_PROG_ATTACH (libbpf bpf_prog_attach_opts())."""
    return ProgAttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type,
                          attach_flags=flags, replace_bpf_fd=replace_fd,
                          relative_fd=relative_fd, expected_revision=expected_revision)


def prog_detach(prog_fd: int, target_fd: int, attach_type: int) -> ProgAttachAttr:
    """BPF_PROG_DETACH (prog_fd 0 detaches whatever is attached, for legacy types)."""
    return ProgAttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type)


def enable_stats(stats_type: int = 0) -> EnableStatsAttr:
    """BPF_ENABLE_STATS (BPF_STATS_RUN_TIME = 0)."""
    return EnableStatsAttr(type=stats_type)


def iter_create(link_fd: int, flags: int = 0) -> IterCreateAttr:
    """BPF_ITER_CREATE."""
    return IterCreateAttr(link_fd=link_fd, flags=flags)


def prog_bind_map(prog_fd: int, map_fd: int, flags: int = 0) -> ProgBindMapAttr:
    """BPF_PROG_BIND_MAP."""
    return ProgBindMapAttr(prog_fd=prog_fd, map_fd=map_fd, flags=flags)


#: Which layout each command reads (for documentation and the layout test).
LAYOUTS: dict[Cmd, type[Attr]] = {
    Cmd.MAP_CREATE: MapCreateAttr,
    Cmd.MAP_LOOKUP_ELEM: MapElemAttr,
    Cmd.MAP_UPDATE_ELEM: MapElemAttr,
    Cmd.MAP_DELETE_ELEM: MapElemAttr,
    Cmd.MAP_GET_NEXT_KEY: MapElemAttr,
    Cmd.MAP_LOOKUP_AND_DELETE_ELEM: MapElemAttr,
    Cmd.MAP_FREEZE: MapElemAttr,
    Cmd.MAP_LOOKUP_BATCH: MapBatchAttr,
    Cmd.MAP_LOOKUP_AND_DELETE_BATCH: MapBatchAttr,
    Cmd.MAP_UPDATE_BATCH: MapBatchAttr,
    Cmd.MAP_DELETE_BATCH: MapBatchAttr,
    Cmd.PROG_LOAD: ProgLoadAttr,
    Cmd.OBJ_PIN: ObjAttr,
    Cmd.OBJ_GET: ObjAttr,
    Cmd.PROG_ATTACH: ProgAttachAttr,
    Cmd.PROG_DETACH: ProgAttachAttr,
    Cmd.PROG_TEST_RUN: TestRunAttr,
    Cmd.PROG_GET_NEXT_ID: IdAttr,
    Cmd.MAP_GET_NEXT_ID: IdAttr,
    Cmd.BTF_GET_NEXT_ID: IdAttr,
    Cmd.LINK_GET_NEXT_ID: IdAttr,
    Cmd.PROG_GET_FD_BY_ID: IdAttr,
    Cmd.MAP_GET_FD_BY_ID: IdAttr,
    Cmd.BTF_GET_FD_BY_ID: IdAttr,
    Cmd.LINK_GET_FD_BY_ID: IdAttr,
    Cmd.OBJ_GET_INFO_BY_FD: InfoAttr,
    Cmd.RAW_TRACEPOINT_OPEN: RawTracepointAttr,
    Cmd.BTF_LOAD: BtfLoadAttr,
    Cmd.LINK_CREATE: LinkCreateAttr,
    Cmd.LINK_UPDATE: LinkUpdateAttr,
    Cmd.LINK_DETACH: LinkDetachAttr,
    Cmd.ENABLE_STATS: EnableStatsAttr,
    Cmd.ITER_CREATE: IterCreateAttr,
    Cmd.PROG_BIND_MAP: ProgBindMapAttr,
}
