"""USDT probes (libbpf usdt.c): ``SEC("usdt/<binary>:<provider>:<name>")`` programs
written with libbpf's ``<bpf/usdt.bpf.h>`` (``BPF_USDT()``, ``bpf_usdt_arg()``,
``bpf_usdt_cookie()``).

Attaching one, as usdt_manager_attach_usdt() does:

1. read the binary's ``.note.stapsdt`` notes (parse_usdt_note()) and keep those of
   provider:name; each gives the probe address, the link-time ``.stapsdt.base`` address
   (prelink compensation against the section's current address), a semaphore address and
   the argument spec string (``-4@%edi 8@-16(%rbp) 4@$5``);
2. translate the addresses into file offsets through the PT_LOAD segments (executable for
   the probe, non-executable for the semaphore: the uprobe's reference counter);
3. parse each argument (parse_usdt_arg() for x86_64 and arm64) into a
   ``struct __bpf_usdt_arg_spec`` and write one ``struct __bpf_usdt_spec`` per distinct
   argument string into the program's ``__bpf_usdt_specs`` map, at a spec id allocated
   per map;
4. attach uprobes at every offset with the spec id as BPF cookie: one uprobe_multi link
   when the kernel has them (the loader then loaded the program as
   BPF_TRACE_UPROBE_MULTI), else one perf-event uprobe per probe site.

Closing the link detaches the uprobes and frees the spec ids. The maps are found through
the loaded program (its bpf_prog_info map ids), so no object is needed. Kernels without
BPF cookies (before 5.15) would need the IP -> spec id map and absolute addresses: not
supported.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import sys
import threading

from bpfobj import records
from bpfobj.arch import Arch, host
from bpfobj.attach.common import features, sec_target
from bpfobj.attach.elfsyms import PF_X, PT_LOAD, SHT_NOTE, NativeElf, check_machine
from bpfobj.attach.ldcache import resolve_binary
from bpfobj.errors import BpfObjError, InputError, NotSupportedError
from bpfobj.links import Link
from bpfobj.sys import attr
from bpfobj.sys.syscall import Cmd, Fd, bpf, bpf_fd

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.programs import Program

USDT_NOTE_SEC = ".note.stapsdt"
USDT_BASE_SEC = ".stapsdt.base"
USDT_NOTE_NAME = b"stapsdt"
USDT_NOTE_TYPE = 3
USDT_MAX_ARG_CNT = 12  # must match BPF_USDT_MAX_ARG_CNT of usdt.bpf.h
SPECS_MAP = "__bpf_usdt_specs"
IP_MAP = "__bpf_usdt_ip_to_spec_id"

# enum __bpf_usdt_arg_type (usdt.bpf.h)
ARG_CONST = 0
ARG_REG = 1
ARG_REG_DEREF = 2
ARG_SIB = 3  # usdt.bpf.h of libbpf 1.7+ only

#: struct pt_regs offset of every register name a USDT argument can use (libbpf
#: calc_pt_regs_off()): x86_64 arch/x86/include/asm/ptrace.h order, arm64 user_pt_regs.
#: A per-arch fact that belongs in `bpfobj.arch.PtRegs` (kept here until it has it).
_X86_ORDER = ["r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx",
              "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss"]
_X86_NAMES = {
    "ip": ("rip", "eip"), "ax": ("rax", "eax", "ax", "al"), "bx": ("rbx", "ebx", "bx", "bl"),
    "cx": ("rcx", "ecx", "cx", "cl"), "dx": ("rdx", "edx", "dx", "dl"),
    "si": ("rsi", "esi", "si", "sil"), "di": ("rdi", "edi", "di", "dil"),
    "bp": ("rbp", "ebp", "bp", "bpl"), "sp": ("rsp", "esp", "sp", "spl"),
    **{f"r{n}": (f"r{n}", f"r{n}d", f"r{n}w", f"r{n}b") for n in range(8, 16)},
}
PT_REGS_OFFSETS: dict[str, dict[str, int]] = {
    "x86_64": {alias: _X86_ORDER.index(reg) * 8 for reg, names in _X86_NAMES.items()
               for alias in names},
    "arm64": {**{f"x{n}": n * 8 for n in range(31)}, "sp": 31 * 8},
}

_ARG_SPEC = struct.Struct("=QIh?b")  # val_off, arg_type (+SIB bits), reg_off, signed, shift
_SPEC_SIZE = _ARG_SPEC.size * USDT_MAX_ARG_CNT + 8 + 8  # + usdt_cookie + arg_cnt (padded)


@records.frozen
class UsdtNote:
    provider: str
    name: str
    loc_addr: int
    base_addr: int
    sema_addr: int
    args: str


@records.frozen
class UsdtArg:
    """One ``struct __bpf_usdt_arg_spec``."""

    type: int
    val_off: int = 0
    reg_off: int = 0
    signed: bool = False
    bitshift: int = 0
    idx_reg_off: int = 0  # ARG_SIB
    scale_bitshift: int = 0  # ARG_SIB


@records.frozen
class UsdtTarget:
    """One probe site: where the uprobe goes, its semaphore, its argument spec."""

    abs_ip: int
    rel_ip: int  # file offset
    sema_off: int
    spec: str
    args: tuple[UsdtArg, ...]


# --------------------------------------------------------------------------------------
# notes
# --------------------------------------------------------------------------------------


def parse_notes(data: bytes, *, byteorder: str, is64: bool) -> list[UsdtNote]:
    """Every stapsdt note of a ``.note.stapsdt`` section's bytes (libbpf
    parse_usdt_note())."""
    e = "<" if byteorder == "little" else ">"
    psz = 8 if is64 else 4
    out: list[UsdtNote] = []
    off = 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(e + "III", data, off)
        name_off = off + 12
        desc_off = name_off + ((namesz + 3) & ~3)
        nxt = desc_off + ((descsz + 3) & ~3)
        if nxt > len(data) or desc_off + descsz > len(data):
            raise InputError(f"{USDT_NOTE_SEC}: truncated note at offset {off:#x}")
        off = nxt
        name = data[name_off : name_off + namesz].rstrip(b"\0")
        if name != USDT_NOTE_NAME or ntype != USDT_NOTE_TYPE:
            continue
        desc = data[desc_off : desc_off + descsz]
        if descsz < 3 * psz + 3:
            raise InputError(f"{USDT_NOTE_SEC}: note of {descsz} bytes is too short")
        loc, base, sema = struct.unpack_from(e + ("QQQ" if is64 else "III"), desc, 0)
        strings = desc[3 * psz :].split(b"\0")
        if len(strings) < 3 or not strings[1]:
            raise InputError(f"{USDT_NOTE_SEC}: note at {loc:#x} has no name or no arguments")
        provider, pname, args = (s.decode(errors="replace") for s in strings[:3])
        if args.startswith(":"):
            args = ""
        out.append(UsdtNote(provider, pname, loc, base, sema, args))
    return out


def read_notes(elf: NativeElf) -> list[UsdtNote]:
    sec = elf.section_by_name(USDT_NOTE_SEC)
    if sec is None or sec.type != SHT_NOTE:
        raise NotSupportedError(f"{elf.path} has no USDT probes (no {USDT_NOTE_SEC} notes)",
                                hint="build it with <sys/sdt.h> probes (DTRACE_PROBE*)")
    return parse_notes(elf.section_data(sec), byteorder=elf.byteorder, is64=elf.is64)


# --------------------------------------------------------------------------------------
# argument specs
# --------------------------------------------------------------------------------------

_NUM = r"[-+]?(?:0[xX][0-9a-fA-F]+|\d+)"


def _num(text: str) -> int:
    neg = text.startswith("-")
    body = text.lstrip("+-")
    value = int(body, 16) if body.lower().startswith("0x") else int(body, 10)
    return -value if neg else value


def _reg(name: str, arch: Arch) -> int:
    off = PT_REGS_OFFSETS.get(arch.name, {}).get(name)
    if off is None:
        raise InputError(f"usdt: unrecognized register {name!r} for {arch.name}")
    return off


_X86_PATTERNS = [
    # Scale-Index-Base: 1@-96(%rbp,%rax,8), 1@(%rbp,%rax,8), 1@-96(%rbp,%rax), 1@(%rbp,%rax)
    ("sib", re.compile(rf"\s*({_NUM})\s*@\s*({_NUM})?\s*\(\s*%(\w+)\s*,\s*%(\w+)\s*"
                       rf"(?:,\s*({_NUM})\s*)?\)\s*")),
    ("deref", re.compile(rf"\s*({_NUM})\s*@\s*({_NUM})?\s*\(\s*%(\w+)\s*\)\s*")),
    ("reg", re.compile(rf"\s*({_NUM})\s*@\s*%(\w+)\s*")),
    ("const", re.compile(rf"\s*({_NUM})\s*@\s*\$({_NUM})\s*")),
]
_ARM64_PATTERNS = [
    ("deref", re.compile(rf"\s*({_NUM})\s*@\s*\[\s*([a-z0-9]+)\s*,\s*({_NUM})\s*\]\s*")),
    ("deref0", re.compile(rf"\s*({_NUM})\s*@\s*\[\s*([a-z0-9]+)\s*\]\s*")),
    ("const", re.compile(rf"\s*({_NUM})\s*@\s*({_NUM})\s*")),
    ("reg", re.compile(rf"\s*({_NUM})\s*@\s*([a-z0-9]+)\s*")),
]


def _parse_one(text: str, arch: Arch) -> tuple[UsdtArg, int, int]:
    """(arg without size info, signed size, characters consumed) of the arg at `text`."""
    if arch.name == "x86_64":
        for kind, rx in _X86_PATTERNS:
            m = rx.match(text)
            if m is None:
                continue
            size = _num(m.group(1))
            if kind == "sib":
                scale = _num(m.group(5)) if m.group(5) else 1
                if scale not in (1, 2, 4, 8):
                    raise InputError(f"usdt: invalid SIB scale {scale}, expected 1, 2, 4, 8")
                arg = UsdtArg(ARG_SIB, _num(m.group(2)) if m.group(2) else 0,
                              _reg(m.group(3), arch), idx_reg_off=_reg(m.group(4), arch),
                              scale_bitshift=scale.bit_length() - 1)
            elif kind == "deref":
                arg = UsdtArg(ARG_REG_DEREF, _num(m.group(2)) if m.group(2) else 0,
                              _reg(m.group(3), arch))
            elif kind == "reg":
                arg = UsdtArg(ARG_REG, 0, _reg(m.group(2), arch))
            else:
                arg = UsdtArg(ARG_CONST, _num(m.group(2)))
            return arg, size, m.end()
    elif arch.name == "arm64":
        for kind, rx in _ARM64_PATTERNS:
            m = rx.match(text)
            if m is None:
                continue
            size = _num(m.group(1))
            if kind == "deref":
                arg = UsdtArg(ARG_REG_DEREF, _num(m.group(3)), _reg(m.group(2), arch))
            elif kind == "deref0":
                arg = UsdtArg(ARG_REG_DEREF, 0, _reg(m.group(2), arch))
            elif kind == "const":
                arg = UsdtArg(ARG_CONST, _num(m.group(2)))
            else:
                arg = UsdtArg(ARG_REG, 0, _reg(m.group(2), arch))
            return arg, size, m.end()
    else:
        raise NotSupportedError(f"usdt: argument specs of {arch.name} are not supported")
    raise InputError(f"usdt: unrecognized arg spec {text!r}")


def parse_args(spec: str, arch: Arch | None = None) -> tuple[UsdtArg, ...]:
    """libbpf parse_usdt_spec(): every argument of a note's spec string."""
    arch = arch or host()
    out: list[UsdtArg] = []
    pos = 0
    while pos < len(spec) and spec[pos:].strip():
        if len(out) >= USDT_MAX_ARG_CNT:
            raise InputError(f"usdt: too many USDT arguments (> {USDT_MAX_ARG_CNT}) in {spec!r}")
        arg, size, used = _parse_one(spec[pos:], arch)
        if abs(size) not in (1, 2, 4, 8):
            raise InputError(f"usdt: unsupported arg #{len(out)} size {size} in {spec!r}")
        out.append(UsdtArg(arg.type, arg.val_off, arg.reg_off, size < 0,
                           64 - abs(size) * 8, arg.idx_reg_off, arg.scale_bitshift))
        pos += used
    return tuple(out)


def pack_spec(args: tuple[UsdtArg, ...], cookie: int = 0, byteorder: str = sys.byteorder) -> bytes:
    """``struct __bpf_usdt_spec``: 12 arg specs, usdt_cookie, arg_cnt (208 bytes)."""
    e = "<" if byteorder == "little" else ">"
    arg_struct = struct.Struct(e + "QIh?b")
    out = bytearray()
    for i in range(USDT_MAX_ARG_CNT):
        if i < len(args):
            a = args[i]
            # arg_type:8 | idx_reg_off:12 | scale_bitshift:4 | reserved:8 (libbpf 1.7 layout;
            # older usdt.bpf.h read the same 32 bits as a plain enum)
            word = a.type | (a.idx_reg_off << 8) | (a.scale_bitshift << 20)
            out += arg_struct.pack(a.val_off & 0xFFFFFFFFFFFFFFFF, word, a.reg_off, a.signed,
                                   a.bitshift)
        else:
            out += bytes(arg_struct.size)
    out += struct.pack(e + "Qh6x", cookie & 0xFFFFFFFFFFFFFFFF, len(args))
    assert len(out) == _SPEC_SIZE
    return bytes(out)


# --------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------


def collect_targets(elf: NativeElf, provider: str, name: str, *,
                    arch: Arch | None = None) -> list[UsdtTarget]:
    """libbpf collect_usdt_targets() for system-wide (or one-pid) attach with BPF cookies."""
    arch = arch or host()
    notes = [n for n in read_notes(elf) if n.provider == provider and n.name == name]
    if not notes:
        raise NotSupportedError(f"{elf.path} has no USDT probe {provider}:{name}")
    base_sec = elf.section_by_name(USDT_BASE_SEC)
    base_addr = base_sec.addr if base_sec is not None else 0
    loads = [s for s in elf.segments if s.type == PT_LOAD]

    def seg_of(addr: int, exe: bool, what: str) -> int:
        for seg in loads:
            if seg.vaddr <= addr < seg.vaddr + seg.memsz:
                if bool(seg.flags & PF_X) != exe:
                    raise InputError(f"usdt: {what} of {provider}:{name} at {addr:#x} is in "
                                     f"a{'' if exe else 'n'} {'non-' if exe else ''}"
                                     "executable segment")
                return addr - seg.vaddr + seg.offset
        raise InputError(f"usdt: no loadable segment for the {what} of {provider}:{name} "
                         f"at {addr:#x} in {elf.path}")

    out = []
    for note in notes:
        abs_ip = note.loc_addr
        if base_addr and note.base_addr:  # prelink compensation
            abs_ip += base_addr - note.base_addr
        rel_ip = seg_of(abs_ip, True, "probe")
        sema_off = seg_of(note.sema_addr, False, "semaphore") if note.sema_addr else 0
        out.append(UsdtTarget(abs_ip, rel_ip, sema_off, note.args, parse_args(note.args, arch)))
    return out


def parse_usdt_section(name: str) -> tuple[str, str, str] | None:
    """(binary, provider, name) of ``usdt/<path>:<provider>:<name>`` (libbpf
    attach_usdt(): ``usdt/%m[^:]:%m[^:]:%m[^:]``); None for a bare ``usdt``."""
    _prefix, slash, rest = name.partition("/")
    if not slash or not rest:
        return None
    parts = rest.split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"invalid section {name!r}, expected usdt/<path>:<provider>:<name>")
    return parts[0], parts[1], parts[2]


# --------------------------------------------------------------------------------------
# the program's USDT maps, and spec ids
# --------------------------------------------------------------------------------------

_ID_LOCK = threading.Lock()
_USED_IDS: dict[int, set[int]] = {}  # specs map id -> spec ids in use


def _prog_map_ids(prog_fd: int) -> list[int]:
    info = attr.ProgInfo()
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr.obj_get_info_by_fd(prog_fd, info))
    count = int(info.nr_map_ids)
    if not count:
        return []
    ids = (ctypes.c_uint32 * count)()
    info = attr.ProgInfo(nr_map_ids=count, map_ids=ctypes.addressof(ids))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr.obj_get_info_by_fd(prog_fd, info))
    return [int(ids[i]) for i in range(min(count, int(info.nr_map_ids)))]


def find_specs_map(program: Program) -> tuple[Fd, dict[str, Any]] | None:
    """An fd of the program's ``__bpf_usdt_specs`` map and its info; None when the
    program does not use it (a BPF_USDT() without arguments reads no spec)."""
    from bpfobj.maps import map_info

    want = SPECS_MAP[: attr.BPF_OBJ_NAME_LEN - 1]
    for map_id in _prog_map_ids(program.fd):
        fd = bpf_fd(Cmd.MAP_GET_FD_BY_ID, attr.get_fd_by_id(map_id))
        info = map_info(fd.fileno())
        if info["name"] == want and info["value_size"] == _SPEC_SIZE:
            return fd, info
        fd.close()
    return None


def _allocate(map_id: int, max_entries: int, count: int) -> list[int]:
    with _ID_LOCK:
        used = _USED_IDS.setdefault(map_id, set())
        free = [i for i in range(max_entries) if i not in used][:count]
        if len(free) < count:
            raise NotSupportedError(
                f"usdt: no free spec ids ({max_entries} in {SPECS_MAP})",
                hint="raise BPF_USDT_MAX_SPEC_CNT in the BPF program")
        used.update(free)
        return free


def _release(map_id: int, ids: list[int]) -> None:
    with _ID_LOCK:
        _USED_IDS.get(map_id, set()).difference_update(ids)


# --------------------------------------------------------------------------------------
# attach
# --------------------------------------------------------------------------------------


def attach_usdt(program: Program, binary: str | None = None, provider: str | None = None,
                name: str | None = None, *, pid: int = -1, cookie: int = 0,
                **_: Any) -> Link:
    """Attach a USDT program to every ``provider:name`` probe site of `binary` (default:
    the section's), for process `pid` (-1: all; 0: this one); `cookie` is what
    ``bpf_usdt_cookie()`` returns (libbpf bpf_program__attach_usdt())."""
    from bpfobj.attach.uprobe import attach_uprobe

    if binary is None or provider is None or name is None:
        parsed = sec_target(program, parse_usdt_section,
                            'SEC("usdt") names no probe: pass binary=, provider= and name=')
        binary, provider, name = (binary or parsed[0], provider or parsed[1],
                                  name or parsed[2])
    feats = features()
    if not feats.bpf_cookie:
        raise NotSupportedError("usdt attach needs BPF cookies (Linux 5.15+)",
                                program=program.name)
    if pid == 0:
        pid = os.getpid()
    path = resolve_binary(binary, pid=pid if pid > 0 else None)
    with NativeElf(path) as elf:
        check_machine(elf, host().elf_machine)
        targets = collect_targets(elf, provider, name)
    found = find_specs_map(program)
    # one spec per distinct argument string (libbpf allocate_spec_id())
    spec_strs = list(dict.fromkeys(t.spec for t in targets))
    if found is not None:
        specs_fd, info = found
        map_id = int(info["id"])
        ids = _allocate(map_id, int(info["max_entries"]), len(spec_strs))
    else:
        ids = list(range(len(spec_strs)))  # nothing reads them
    spec_id = dict(zip(spec_strs, ids))
    parts: list[Link] = []

    def release() -> None:
        if found is not None:
            specs_fd.close()
            _release(map_id, ids)

    try:
        first = {t.spec: t for t in reversed(targets)}
        for spec, sid in spec_id.items():
            if found is None:
                break
            bpf(Cmd.MAP_UPDATE_ELEM, attr.map_update_elem(
                specs_fd.fileno(), sid.to_bytes(4, sys.byteorder),
                pack_spec(first[spec].args, cookie)),
                what=f"cannot write the USDT spec of {provider}:{name}")
        what = f"{path}:{provider}:{name}"
        if feats.uprobe_multi_link:
            from bpfobj.attach.uprobe import attach_uprobe_multi

            link = attach_uprobe_multi(
                program, path, offsets=[t.rel_ip for t in targets],
                ref_ctr_offsets=[t.sema_off for t in targets],
                cookies=[spec_id[t.spec] for t in targets], pid=pid)
            link.kind, link.target = "usdt", what
            link.add_undo(release)
            return link
        for t in targets:
            parts.append(attach_uprobe(program, path, offset=t.rel_ip, pid=pid,
                                       ref_ctr_offset=t.sema_off, cookie=spec_id[t.spec]))
    except BaseException:
        for part in parts:
            try:
                part.close()
            except BpfObjError:
                pass
        release()
        raise
    group = Link.group(parts, kind="usdt", target=what, program=program)
    group.add_undo(release)
    return group
