"""Kernel feature probes, cached per boot, producing the `Features` record.

    features = probe()            # cached in memory and on disk, per boot
    features.ringbuf, features.btf_enum64, features.core_relos

Each probe is libbpf's (tools/lib/bpf/features.c: probe_kern_*, probe_prog_bind_map,
probe_module_btf, probe_perf_link, probe_uprobe_multi_link; bpf.c probe_memcg_account)
with the same tiny programs, maps and BTF blobs; a few are bpfobj's own (ringbuf,
core_relos, fd_array, tcx_link, kprobe_multi_link, sockmap_link, syscall_wrapper; the last
is probed on first use only, see `on_demand`).
Results live in memory and in ``<cache>/bpfobj/features-<fields>.json`` keyed by
/proc/sys/kernel/random/boot_id, so a process that starts on the same boot probes nothing
(``<fields>`` hashes the record's field names: bpfobj versions with other probes on the
same machine keep their own file instead of overwriting each other's).

Pure code gets kernel facts only as this record (e.g. `btf_features()` for BTF
sanitisation); nothing offline calls the probes.
"""

from __future__ import annotations

import errno as _errno
import json
import os
import struct
import zlib
from _thread import allocate_lock
from collections.abc import Callable

from bpfobj import log, records
from bpfobj.arch import host
from bpfobj.btf.index import boot_id
from bpfobj.errors import SyscallError
from bpfobj.insn import Instruction, encode
from bpfobj.insn.codec import call_helper, exit_insn, mov64_imm
from bpfobj.sys import attr
from bpfobj.sys.syscall import Cmd, Fd, bpf, bpf_fd
from bpfobj.uapi import BPF_F_MMAPABLE, PSEUDO_CALL, PSEUDO_MAP_VALUE, AttachType, MapType, ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf.sanitize import BtfFeatures

CACHE_VERSION = 1

# helper ids (enum bpf_func_id, linux/bpf.h)
FUNC_PROBE_READ_KERNEL = 113
FUNC_KTIME_GET_COARSE_NS = 160
FUNC_GET_FUNC_IP = 173
FUNC_GET_ATTACH_COOKIE = 174

# BTF kinds (linux/btf.h)
_K_INT, _K_PTR, _K_FUNC, _K_PROTO, _K_VAR, _K_DATASEC = 1, 2, 12, 13, 14, 15
_K_FLOAT, _K_DECL_TAG, _K_TYPE_TAG, _K_ENUM64 = 16, 17, 18, 19
_INT_SIGNED = 1
_FUNC_GLOBAL = 1


@records.frozen
class Features:
    """What the running kernel supports (one probe per field, see module docstring)."""

    boot_id: str = ""
    kernel_release: str = ""
    # programs and maps
    prog_name: bool = False  # FEAT_PROG_NAME: names in PROG_LOAD / MAP_CREATE
    global_data: bool = False  # FEAT_GLOBAL_DATA: BPF_PSEUDO_MAP_VALUE
    mmapable_maps: bool = False  # FEAT_ARRAY_MMAP: BPF_F_MMAPABLE arrays
    exp_attach_type: bool = False  # FEAT_EXP_ATTACH_TYPE
    probe_read_kernel: bool = False  # FEAT_PROBE_READ_KERN
    prog_bind_map: bool = False  # FEAT_PROG_BIND_MAP
    bpf_cookie: bool = False  # FEAT_BPF_COOKIE: bpf_get_attach_cookie()
    memcg_account: bool = False  # FEAT_MEMCG_ACCOUNT: no RLIMIT_MEMLOCK needed
    ringbuf: bool = False  # BPF_MAP_TYPE_RINGBUF (5.8)
    core_relos: bool = False  # in-kernel CO-RE: core_relos in PROG_LOAD (5.17)
    fd_array: bool = False  # fd_array in PROG_LOAD (5.14): module kfuncs
    arg_ctx_tag: bool = False  # FEAT_ARG_CTX_TAG: __arg_ctx in the kernel
    ldimm64_full_range_off: bool = False  # FEAT_LDIMM64_FULL_RANGE_OFF: map value offsets
    # of 512 MiB and more in ld_imm64 (Linux 7.0): libbpf 1.7 then puts __arena globals last
    # BTF
    btf: bool = False  # FEAT_BTF
    btf_func: bool = False  # FEAT_BTF_FUNC: FUNC/FUNC_PROTO, func_info/line_info
    btf_global_func: bool = False  # FEAT_BTF_GLOBAL_FUNC
    btf_datasec: bool = False  # FEAT_BTF_DATASEC: VAR/DATASEC
    btf_qmark_datasec: bool = False  # FEAT_BTF_QMARK_DATASEC: "?.data" names
    btf_float: bool = False  # FEAT_BTF_FLOAT
    btf_decl_tag: bool = False  # FEAT_BTF_DECL_TAG
    btf_type_tag: bool = False  # FEAT_BTF_TYPE_TAG
    btf_enum64: bool = False  # FEAT_BTF_ENUM64
    module_btf: bool = False  # FEAT_MODULE_BTF
    # links
    perf_link: bool = False  # FEAT_PERF_LINK: BPF_LINK_CREATE for perf events
    uprobe_multi_link: bool = False  # FEAT_UPROBE_MULTI_LINK (6.6)
    kprobe_multi_link: bool = False  # BPF_TRACE_KPROBE_MULTI links (5.18, CONFIG_FPROBE)
    sockmap_link: bool = False  # sk_msg / sk_skb links on a sockmap (6.10)
    tcx_link: bool = False  # BPF_TCX_INGRESS/EGRESS links (6.6)

    @property
    def syscall_wrapper(self) -> bool:
        """FEAT_SYSCALL_WRAPPER, probed on first use: see `syscall_wrapper()`."""
        return syscall_wrapper()

    @property
    def func_info(self) -> bool:
        """func_info/line_info in PROG_LOAD (libbpf keys them on FEAT_BTF_FUNC)."""
        return self.btf_func

    @property
    def link_kinds(self) -> frozenset[str]:
        kinds = {"raw_tracepoint", "tracing"}  # bpf_link since 5.7/5.8, before every probe here
        if self.perf_link:
            kinds.add("perf_event")
        if self.uprobe_multi_link:
            kinds.add("uprobe_multi")
        if self.kprobe_multi_link:
            kinds.add("kprobe_multi")
        if self.sockmap_link:
            kinds.add("sockmap")
        if self.tcx_link:
            kinds.add("tcx")
        return frozenset(kinds)

    def btf_features(self) -> BtfFeatures:
        """The `bpfobj.btf.sanitize.BtfFeatures` record for BTF sanitisation."""
        from bpfobj.btf.sanitize import BtfFeatures

        return BtfFeatures(
            func=self.btf_func, func_global=self.btf_global_func, datasec=self.btf_datasec,
            qmark_datasec=self.btf_qmark_datasec, float=self.btf_float,
            decl_tag=self.btf_decl_tag, type_tag=self.btf_type_tag, enum64=self.btf_enum64,
            # No probe yet for the header's layout section (Linux 7.1): dropping it is
            # what every kernel accepts, and objects from clang <= 19 have none.
            layout_header=False,
        )

    def to_json(self) -> dict[str, Any]:
        return records.asdict(self)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _code(*insns: Instruction) -> bytes:
    return encode(list(insns), host().byteorder)


_RET0 = _code(mov64_imm(0, 0), exit_insn())


def raw_btf(types: list[int], strings: bytes) -> bytes:
    """A raw BTF blob (struct btf_header + types + strings), libbpf__load_raw_btf()."""
    order = "<" if host().byteorder == "little" else ">"
    type_sec = struct.pack(f"{order}{len(types)}I", *(t & 0xFFFFFFFF for t in types))
    hdr = struct.pack(f"{order}HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(type_sec), len(type_sec),
                      len(strings))
    return hdr + type_sec + strings


def _info(kind: int, vlen: int = 0, kflag: int = 0) -> int:
    return (kflag << 31) | (kind << 24) | vlen  # BTF_INFO_ENC


def _int(name: int) -> list[int]:
    return [name, _info(_K_INT), 4, (_INT_SIGNED << 24) | 32]  # BTF_TYPE_INT_ENC(.., 32, 4)


def load_btf(blob: bytes) -> Fd:
    return bpf_fd(Cmd.BTF_LOAD, attr.btf_load(blob))


def _prog(prog_type: ProgType, insns: bytes = _RET0, **kw: Any) -> Fd:
    return bpf_fd(Cmd.PROG_LOAD, attr.prog_load(int(prog_type), insns, "GPL", **kw))


def _ok(fn: Callable[[], Fd]) -> bool:
    """libbpf probe_fd(): the call returned an fd (closed at once)."""
    try:
        fn().close()
        return True
    except SyscallError as exc:
        if exc.errno in (_errno.EPERM,):
            raise
        return False


def _link_errno(prog_type: ProgType, expected_attach_type: AttachType | int,
                make: Callable[[int], attr.Attr]) -> int | None:
    """BPF_LINK_CREATE with the attr `make(prog_fd)` builds, for a minimal program of
    `prog_type` loaded with `expected_attach_type` (0: none): 0 when it made a link (closed
    at once), else the errno it failed with; None when the program does not load."""
    try:
        prog = _prog(prog_type, expected_attach_type=expected_attach_type)
    except SyscallError:
        return None
    with prog:
        try:
            bpf_fd(Cmd.LINK_CREATE, make(int(prog))).close()
            return 0
        except SyscallError as exc:
            return exc.errno


# --------------------------------------------------------------------------------------
# Probes (libbpf features.c)
# --------------------------------------------------------------------------------------


def _probe_prog_name() -> bool:
    return _ok(lambda: _prog(ProgType.SOCKET_FILTER, name="libbpf_nametest"))


def _probe_global_data() -> bool:
    with bpf_fd(Cmd.MAP_CREATE, attr.map_create(MapType.ARRAY, 4, 32, 1)) as m:
        insns = _code(
            Instruction(0x18, 1, PSEUDO_MAP_VALUE, 0, int(m)), Instruction(0, 0, 0, 0, 16),
            Instruction(0x7A, 1, 0, 0, 42),  # *(u64 *)(r1 + 0) = 42
            mov64_imm(0, 0), exit_insn(),
        )
        return _ok(lambda: _prog(ProgType.SOCKET_FILTER, insns))


def _probe_btf() -> bool:
    return _ok(lambda: load_btf(raw_btf(_int(1), b"\0int\0")))


_FUNC_STRS = b"\0int\0x\0a\0"


def _probe_btf_func() -> bool:
    types = [*_int(1), 0, _info(_K_PROTO, 1), 0, 7, 1, 5, _info(_K_FUNC), 2]
    return _ok(lambda: load_btf(raw_btf(types, _FUNC_STRS)))


def _probe_btf_global_func() -> bool:
    types = [*_int(1), 0, _info(_K_PROTO, 1), 0, 7, 1, 5, _info(_K_FUNC, _FUNC_GLOBAL), 2]
    return _ok(lambda: load_btf(raw_btf(types, _FUNC_STRS)))


def _datasec_types() -> list[int]:
    return [*_int(0), 1, _info(_K_VAR), 1, 0, 3, _info(_K_DATASEC, 1), 4, 2, 0, 4]


def _probe_btf_datasec() -> bool:
    return _ok(lambda: load_btf(raw_btf(_datasec_types(), b"\0x\0.data\0")))


def _probe_btf_qmark_datasec() -> bool:
    return _ok(lambda: load_btf(raw_btf(_datasec_types(), b"\0x\0?.data\0")))


def _probe_btf_float() -> bool:
    return _ok(lambda: load_btf(raw_btf([1, _info(_K_FLOAT), 4], b"\0float\0")))


def _probe_btf_decl_tag() -> bool:
    types = [*_int(0), 1, _info(_K_VAR), 1, 0, 1, _info(_K_DECL_TAG), 2, -1]
    return _ok(lambda: load_btf(raw_btf(types, b"\0tag\0")))


def _probe_btf_type_tag() -> bool:
    types = [*_int(0), 1, _info(_K_TYPE_TAG), 1, 0, _info(_K_PTR), 2]
    return _ok(lambda: load_btf(raw_btf(types, b"\0tag\0")))


def _probe_btf_enum64() -> bool:
    return _ok(lambda: load_btf(raw_btf([1, _info(_K_ENUM64), 8], b"\0enum64\0")))


def _probe_array_mmap() -> bool:
    return _ok(lambda: bpf_fd(Cmd.MAP_CREATE, attr.map_create(
        MapType.ARRAY, 4, 4, 1, flags=BPF_F_MMAPABLE, name="libbpf_mmap")))


def _probe_exp_attach_type() -> bool:
    return _ok(lambda: _prog(ProgType.CGROUP_SOCK,
                             expected_attach_type=AttachType.CGROUP_INET_SOCK_CREATE))


def _probe_probe_read_kernel() -> bool:
    insns = _code(
        Instruction(0xBF, 1, 10), Instruction(0x07, 1, 0, 0, -8),  # r1 = r10; r1 += -8
        mov64_imm(2, 8), mov64_imm(3, 0), call_helper(FUNC_PROBE_READ_KERNEL), exit_insn(),
    )
    return _ok(lambda: _prog(ProgType.TRACEPOINT, insns))


def _probe_prog_bind_map() -> bool:
    with bpf_fd(Cmd.MAP_CREATE, attr.map_create(MapType.ARRAY, 4, 32, 1)) as m:
        try:
            prog = _prog(ProgType.SOCKET_FILTER)
        except SyscallError:
            return False
        with prog:
            try:
                bpf(Cmd.PROG_BIND_MAP, attr.prog_bind_map(int(prog), int(m)))
                return True
            except SyscallError:
                return False


def _probe_module_btf() -> bool:
    # Module BTF came with name/name_len in struct bpf_btf_info: reading the name works.
    from bpfobj.kernel.btfobj import btf_info

    try:
        fd = load_btf(raw_btf(_int(1), b"\0int\0"))
    except SyscallError:
        return False
    with fd:
        try:
            btf_info(int(fd))
            return True
        except SyscallError:
            return False


def _probe_perf_link() -> bool:
    err = _link_errno(ProgType.TRACEPOINT, 0, lambda prog: attr.link_create(
        prog, 0xFFFFFFFF, AttachType.PERF_EVENT))
    return err == _errno.EBADF


def _probe_uprobe_multi_link() -> bool:
    try:
        prog = _prog(ProgType.KPROBE, expected_attach_type=AttachType.TRACE_UPROBE_MULTI)
    except SyscallError:
        return False
    with prog:
        for pid, want in ((0, _errno.EBADF), (-1, _errno.EINVAL)):
            try:
                bpf_fd(Cmd.LINK_CREATE, attr.link_create(
                    int(prog), 0xFFFFFFFF, AttachType.TRACE_UPROBE_MULTI,
                    uprobe_multi=("/", [0], None, None, 0, pid))).close()
                return False
            except SyscallError as exc:
                if exc.errno != want:
                    return False
        return True


def _probe_kprobe_multi_link() -> bool:
    # bpfobj's own (libbpf has none; bpftrace and cilium/ebpf attach to a real function):
    # a kernel with the link type (5.18+, CONFIG_FPROBE, a 64-bit arch whose fprobe works)
    # gets as far as copying the address array and fails on an unreadable one (EFAULT);
    # one without refuses the attach type or its attr fields (EINVAL) or has only the
    # stub (EOPNOTSUPP). Nothing is attached either way.
    from bpfobj.sys.attach_attr import link_create_kprobe_multi

    def make(prog: int) -> attr.Attr:
        a = link_create_kprobe_multi(prog, AttachType.TRACE_KPROBE_MULTI, addrs=[0])
        a.addrs = 1  # not a readable user address
        return a

    err = _link_errno(ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, make)
    return err in (0, _errno.EFAULT)


def _probe_sockmap_link() -> bool:
    # bpfobj's own, shaped like libbpf's probe_perf_link(): a kernel with sockmap links
    # (6.10+) looks the target map up and fails on a bad fd (EBADF); older kernels have no
    # link for sk_msg programs (EINVAL).
    err = _link_errno(ProgType.SK_MSG, AttachType.SK_MSG_VERDICT, lambda prog: attr.link_create(
        prog, 0xFFFFFFFF, AttachType.SK_MSG_VERDICT))
    return err == _errno.EBADF


def _probe_tcx_link() -> bool:
    err = _link_errno(ProgType.SCHED_CLS, AttachType.TCX_INGRESS, lambda prog: attr.link_create(
        prog, 0x7FFFFFFF, AttachType.TCX_INGRESS))
    return err in (0, _errno.ENODEV)


def _probe_bpf_cookie() -> bool:
    insns = _code(call_helper(FUNC_GET_ATTACH_COOKIE), exit_insn())
    return _ok(lambda: _prog(ProgType.TRACEPOINT, insns))


def _probe_memcg_account() -> bool:
    insns = _code(call_helper(FUNC_KTIME_GET_COARSE_NS), exit_insn())
    return _ok(lambda: _prog(ProgType.SOCKET_FILTER, insns))


def _probe_arg_ctx_tag() -> bool:
    strs = b"\0a\0b\0arg:ctx\0"
    types = [
        *_int(1),                                     # [1] int a
        0, _info(_K_PTR), 0,                          # [2] void *
        0, _info(_K_PROTO, 1), 1, 1, 2,               # [3] int (void *a)
        1, _info(_K_FUNC, _FUNC_GLOBAL), 3,           # [4] FUNC a
        0, _info(_K_PROTO, 1), 1, 3, 2,               # [5] int (void *b)
        3, _info(_K_FUNC, _FUNC_GLOBAL), 5,           # [6] FUNC b
        5, _info(_K_DECL_TAG), 6, 0,                  # [7] "arg:ctx" on b's arg 0
    ]
    try:
        btf = load_btf(raw_btf(types, strs))
    except SyscallError:
        return False
    insns = _code(Instruction(0x85, 0, PSEUDO_CALL, 0, 1), exit_insn(),
                  call_helper(FUNC_GET_FUNC_IP), exit_insn())
    order = "<" if host().byteorder == "little" else ">"
    finfo = struct.pack(f"{order}4I", 0, 4, 2, 6)
    with btf:
        return _ok(lambda: _prog(ProgType.KPROBE, insns, name="det_arg_ctx", prog_btf_fd=int(btf),
                                 func_info=finfo, func_info_rec_size=8, func_info_cnt=2))


def _probe_ldimm64_full_range_off() -> bool:
    """libbpf probe_ldimm64_full_range_off() (1.7.0 features.c:509): an ld_imm64 1 GiB into
    a 1-byte array. Kernels before 12a1fe6e12db ("bpf/verifier: Do not limit maximum
    direct offset into arena map", Linux 7.0) refuse the offset itself ("direct value
    offset of %u is not allowed"), later ones the access ("invalid access to map value
    pointer"); any other answer counts as missing, as in libbpf."""
    with bpf_fd(Cmd.MAP_CREATE, attr.map_create(MapType.ARRAY, 4, 1, 1)) as m:
        insns = _code(Instruction(0x18, 1, PSEUDO_MAP_VALUE, 0, int(m)),
                      Instruction(0, 0, 0, 0, 1 << 30), exit_insn())
        log_buf = bytearray(1024)
        try:
            _prog(ProgType.SOCKET_FILTER, insns, log_level=1, log_buf=log_buf).close()
        except SyscallError as exc:
            if exc.errno == _errno.EPERM:
                raise
            text = bytes(log_buf).split(b"\0", 1)[0]
            return b"direct value offset of" not in text and \
                b"invalid access to map value pointer" in text
        return False  # loaded: unexpected (libbpf: an error, so missing)


def _probe_ringbuf() -> bool:
    return _ok(lambda: bpf_fd(Cmd.MAP_CREATE, attr.map_create(
        MapType.RINGBUF, 0, 0, os.sysconf("SC_PAGE_SIZE"))))


def _probe_core_relos() -> bool:
    # A kernel without in-kernel CO-RE (< 5.17) does not know core_relo_rec_size and
    # rejects a non-zero value past its last PROG_LOAD field (CHECK_ATTR); 5.17+ ignores
    # it when core_relo_cnt is 0.
    return _ok(lambda: _prog(ProgType.SOCKET_FILTER, core_relo_rec_size=16))


def _probe_fd_array() -> bool:
    return _ok(lambda: _prog(ProgType.SOCKET_FILTER, fd_array=[0]))


def _probe_syscall_wrapper() -> bool:
    # libbpf probe_kern_syscall_wrapper() creates a kprobe on __<arch>_sys_bpf; the symbol
    # existing in kallsyms answers the same question without needing kprobes.
    from bpfobj.kernel import kallsyms

    return kallsyms.exists(host().syscall_prefix + "bpf")


# Probed only when asked: reading /proc/kallsyms costs ~75 ms (half of it the kernel's),
# more than every other probe together, and only ksyscall attach and the
# LINUX_HAS_SYSCALL_WRAPPER extern need the answer.
_ON_DEMAND: dict[str, Callable[[], bool]] = {"syscall_wrapper": _probe_syscall_wrapper}


_PROBES: dict[str, Callable[[], bool]] = {
    "prog_name": _probe_prog_name,
    "global_data": _probe_global_data,
    "mmapable_maps": _probe_array_mmap,
    "exp_attach_type": _probe_exp_attach_type,
    "probe_read_kernel": _probe_probe_read_kernel,
    "prog_bind_map": _probe_prog_bind_map,
    "bpf_cookie": _probe_bpf_cookie,
    "memcg_account": _probe_memcg_account,
    "ringbuf": _probe_ringbuf,
    "core_relos": _probe_core_relos,
    "fd_array": _probe_fd_array,
    "arg_ctx_tag": _probe_arg_ctx_tag,
    "ldimm64_full_range_off": _probe_ldimm64_full_range_off,
    "btf": _probe_btf,
    "btf_func": _probe_btf_func,
    "btf_global_func": _probe_btf_global_func,
    "btf_datasec": _probe_btf_datasec,
    "btf_qmark_datasec": _probe_btf_qmark_datasec,
    "btf_float": _probe_btf_float,
    "btf_decl_tag": _probe_btf_decl_tag,
    "btf_type_tag": _probe_btf_type_tag,
    "btf_enum64": _probe_btf_enum64,
    "module_btf": _probe_module_btf,
    "perf_link": _probe_perf_link,
    "uprobe_multi_link": _probe_uprobe_multi_link,
    "kprobe_multi_link": _probe_kprobe_multi_link,
    "sockmap_link": _probe_sockmap_link,
    "tcx_link": _probe_tcx_link,
}


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------

_LOCK = allocate_lock()  # threading.Lock (importing threading costs ~1 ms)
_MEMORY: Features | None = None


def cache_file() -> str | None:
    from bpfobj.btf.index import cache_dir

    d = cache_dir()
    if not d:
        return None
    # Named after the record's fields: checkouts with different probes never share a file.
    names = ",".join(f.name for f in records.fields(Features))
    digest = f"{zlib.crc32(names.encode()):08x}"  # (hashlib would cost ~2 ms to import)
    return os.path.join(os.path.dirname(d), f"features-{digest}.json")


def _load_cached(boot: str) -> Features | None:
    path = cache_file()
    if not path or not boot:
        return None
    try:
        with open(path) as f:
            doc = json.load(f)
        if doc.get("version") != CACHE_VERSION or doc.get("boot_id") != boot:
            return None
        known = {f.name for f in records.fields(Features)}
        values = doc["features"]
        if set(values) != known:
            return None
        return Features(**values)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(features: Features) -> None:
    path = cache_file()
    if not path or not features.boot_id:
        return
    _write_json(path, {"version": CACHE_VERSION, "boot_id": features.boot_id,
                       "features": features.to_json()})


def _write_json(path: str, doc: dict[str, Any]) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache only saves time; a read-only disk must not fail the load


def probe_all() -> Features:
    """Run every probe now (no cache)."""
    values: dict[str, Any] = {}
    for name, fn in _PROBES.items():
        try:
            values[name] = bool(fn())
        except SyscallError as exc:
            if exc.errno == _errno.EPERM:
                raise exc.with_context(hint="feature probes need root or CAP_BPF") from None
            values[name] = False
        log.debug("feature_probe", feature=name, supported=values[name])
    return Features(boot_id=boot_id(), kernel_release=os.uname().release, **values)


def probe(*, refresh: bool = False) -> Features:
    """The running kernel's `Features`: from memory, else the per-boot disk cache, else
    probed now (and cached). `refresh` probes again."""
    global _MEMORY
    with _LOCK:
        boot = boot_id()
        if not refresh and _MEMORY is not None and _MEMORY.boot_id == boot:
            return _MEMORY
        features = None if refresh else _load_cached(boot)
        if features is None:
            features = probe_all()
            _store(features)
        _MEMORY = features
        return features


_ON_DEMAND_MEMORY: dict[str, tuple[str, bool]] = {}


def syscall_wrapper() -> bool:
    """libbpf probe_kern_syscall_wrapper(): whether syscalls enter through
    ``__<arch>_sys_*`` wrappers (kprobes on syscalls must then target those)."""
    return on_demand("syscall_wrapper")


def on_demand(name: str) -> bool:
    """A probe run on first use rather than with the others: from memory, else the per-boot
    cache file, else probed now (and cached)."""
    with _LOCK:
        boot = boot_id()
        hit = _ON_DEMAND_MEMORY.get(name)
        if hit is not None and hit[0] == boot:
            return hit[1]
        path = cache_file()
        path = path[: -len(".json")] + "-on-demand.json" if path else None
        doc: dict[str, Any] = {}
        if path and boot:
            try:
                with open(path) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                doc = {}
        known = doc.get("features") if isinstance(doc, dict) and doc.get("boot_id") == boot \
            else None
        known = known if isinstance(known, dict) else {}  # absent, another boot's, corrupt
        value = known.get(name)
        if not isinstance(value, bool):
            try:
                value = bool(_ON_DEMAND[name]())
            except SyscallError:
                value = False
            doc = {"version": CACHE_VERSION, "boot_id": boot, "features": {**known, name: value}}
            if path and boot:
                _write_json(path, doc)
        _ON_DEMAND_MEMORY[name] = (boot, value)
        return value


def bump_memlock_rlimit(features: Features) -> None:
    """Kernels before memcg accounting (5.11) charge BPF memory to RLIMIT_MEMLOCK: raise it
    to infinity, as libbpf bump_rlimit_memlock() does."""
    if features.memcg_account:
        return
    import resource  # here: kernels since 5.11 never need it

    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass
