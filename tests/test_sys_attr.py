"""The ctypes layouts of bpfobj.sys.attr against the C compiler's, and the kernel layer's
pure helpers (no privileges needed).

A small C program prints ``offsetof``/``sizeof`` of every field bpfobj lays out, compiled
once against the host's UAPI headers (/usr/include/linux/bpf.h, Linux 6.1 here) and once
against Linux 6.12's (/work/src/linux-source-6.12 or $BPFOBJ_UAPI_6_12); fields a header
does not know yet are left out of that header's run.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bpfobj.sys import attr, perf
from bpfobj.sys.syscall import Cmd

ROOT = Path(__file__).resolve().parent.parent
CC = os.environ.get("CC", "gcc")
UAPI_612 = Path(os.environ.get("BPFOBJ_UAPI_6_12", "/work/src/linux-source-6.12/include/uapi"))

ATTR_LAYOUTS = sorted(set(attr.LAYOUTS.values()), key=lambda c: c.__name__)
INFO_LAYOUTS = {
    attr.MapInfo: "struct bpf_map_info",
    attr.ProgInfo: "struct bpf_prog_info",
    attr.BtfInfo: "struct bpf_btf_info",
}

# link_create's per-kind union is laid out as u64 words u0..u5 (offset 16 + 8 * i): the C
# member at each offset and the word (+ byte) it lives in.
LINK_CREATE_UNION = [
    ("link_create.target_btf_id", "u0", 0),
    ("link_create.iter_info", "u0", 0),
    ("link_create.iter_info_len", "u1", 0),
    ("link_create.perf_event.bpf_cookie", "u0", 0),
    ("link_create.kprobe_multi.flags", "u0", 0),
    ("link_create.kprobe_multi.cnt", "u0", 4),
    ("link_create.kprobe_multi.syms", "u1", 0),
    ("link_create.kprobe_multi.addrs", "u2", 0),
    ("link_create.kprobe_multi.cookies", "u3", 0),
    ("link_create.tracing.target_btf_id", "u0", 0),
    ("link_create.tracing.cookie", "u1", 0),
    ("link_create.tcx.relative_fd", "u0", 0),
    ("link_create.tcx.expected_revision", "u1", 0),
    ("link_create.uprobe_multi.path", "u0", 0),
    ("link_create.uprobe_multi.offsets", "u1", 0),
    ("link_create.uprobe_multi.ref_ctr_offsets", "u2", 0),
    ("link_create.uprobe_multi.cookies", "u3", 0),
    ("link_create.uprobe_multi.cnt", "u4", 0),
    ("link_create.uprobe_multi.flags", "u4", 4),
    ("link_create.uprobe_multi.pid", "u5", 0),
]


def _expected() -> list[tuple[str, str, int, int]]:
    """(C aggregate, member path, python offset, python size) for every checked field."""
    out = []
    for cls in ATTR_LAYOUTS:
        for path, off, size in attr.fields_of(cls):
            out.append(("union bpf_attr", path, off, size))
    for cls, agg in INFO_LAYOUTS.items():
        for path, off, size in attr.fields_of(cls):
            if path != "gpl_flags":
                out.append((agg, path, off, size))
    for path, word, extra in LINK_CREATE_UNION:
        field = getattr(attr.LinkCreateAttr, word)
        out.append(("union bpf_attr", path, field.offset + extra, -1))
    for name, ctype in perf.PerfEventAttr._fields_:
        if not name.startswith("_") and name != "flags":
            out.append(("struct perf_event_attr", name, getattr(perf.PerfEventAttr, name).offset,
                        ctypes.sizeof(ctype)))
    return out


def _c_source(fields: list[tuple[str, str, int, int]]) -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <linux/bpf.h>",
        "#include <linux/perf_event.h>",
        "int main(void) {",
    ]
    for agg, path, _, _ in fields:  # one line each, so that errors name the field's line
        lines.append(f'  printf("{agg}|{path}|%zu|%zu\\n", offsetof({agg}, {path}), '
                     f"sizeof((({agg} *)0)->{path}));")
    lines.append('  printf("sizeof|union bpf_attr|%zu|0\\n", sizeof(union bpf_attr));')
    for agg in INFO_LAYOUTS.values():
        lines.append(f'  printf("sizeof|{agg}|%zu|0\\n", sizeof({agg}));')
    lines.append('  printf("sizeof|struct perf_event_attr|%zu|0\\n", sizeof(struct perf_event_attr));')
    lines.append("  return 0;\n}")
    return "\n".join(lines) + "\n"


def _compile_and_run(tmp: Path, include: list[str], tag: str) -> tuple[dict[tuple[str, str], tuple[int, int]], int]:
    """Offsets the compiler gives; fields the header lacks are dropped (by the line the
    compiler complains about) and counted."""
    fields = _expected()
    dropped = 0
    for _ in range(40):
        src = tmp / f"layout_{tag}.c"
        src.write_text(_c_source(fields))
        exe = tmp / f"layout_{tag}"
        res = subprocess.run([CC, *include, "-o", str(exe), str(src)], capture_output=True,
                             text=True)
        if res.returncode == 0:
            break
        bad = {int(m.group(1)) for m in re.finditer(rf"{re.escape(src.name)}:(\d+):\d+: error",
                                                    res.stderr)}
        if not bad:
            pytest.fail(f"cannot compile the layout program:\n{res.stderr[-2000:]}")
        first = 6  # line number of the first field's line
        keep = [f for i, f in enumerate(fields) if first + i not in bad]
        dropped += len(fields) - len(keep)
        fields = keep
    else:
        pytest.fail("the layout program never compiled")
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for line in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines():
        agg, path, off, size = line.split("|")
        out[(agg, path)] = (int(off), int(size))
    return out, dropped


def _check(c: dict[tuple[str, str], tuple[int, int]]) -> int:
    checked = 0
    for agg, path, off, size in _expected():
        got = c.get((agg, path))
        if got is None:
            continue
        assert got[0] == off, f"{agg} {path}: C offset {got[0]}, bpfobj {off}"
        if size >= 0:
            assert got[1] == size, f"{agg} {path}: C size {got[1]}, bpfobj {size}"
        checked += 1
    return checked


@pytest.fixture(scope="module")
def cc() -> str:
    if shutil.which(CC) is None:
        pytest.skip(f"{CC} is not installed")
    if not Path("/usr/include/linux/bpf.h").exists():
        pytest.skip("/usr/include/linux/bpf.h is missing (apt-get install linux-libc-dev)")
    return CC


def test_layouts_match_host_uapi(cc: str, tmp_path: Path) -> None:
    c, dropped = _compile_and_run(tmp_path, [], "host")
    checked = _check(c)
    assert checked > 150
    assert dropped < 40  # only post-6.1 fields are missing from the host's header
    # every layout fits in the kernel's union (older kernels check the tail is zero)
    for cls, agg in INFO_LAYOUTS.items():
        if cls is not attr.ProgInfo:  # 6.1's bpf_prog_info is the same size as 6.12's
            assert ctypes.sizeof(cls) == c[("sizeof", agg)][0], agg
    assert ctypes.sizeof(perf.PerfEventAttr) <= c[("sizeof", "struct perf_event_attr")][0]


def test_layouts_match_612_uapi(cc: str, tmp_path: Path) -> None:
    if not (UAPI_612 / "linux" / "bpf.h").exists():
        pytest.skip(f"no Linux 6.12 UAPI headers at {UAPI_612}")
    c, dropped = _compile_and_run(tmp_path, ["-I", str(UAPI_612)], "612")
    assert dropped == 0  # 6.12 knows every field bpfobj lays out
    assert _check(c) == len(_expected())
    union = c[("sizeof", "union bpf_attr")][0]
    for cls in ATTR_LAYOUTS:
        assert ctypes.sizeof(cls) <= union, cls.__name__
    assert ctypes.sizeof(attr.ProgLoadAttr) == union  # PROG_LOAD is the biggest member
    for cls, agg in INFO_LAYOUTS.items():
        assert ctypes.sizeof(cls) == c[("sizeof", agg)][0], agg


def test_every_command_has_a_layout() -> None:
    wanted = {
        Cmd.MAP_CREATE, Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM, Cmd.MAP_DELETE_ELEM,
        Cmd.MAP_GET_NEXT_KEY, Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_UPDATE_BATCH, Cmd.MAP_DELETE_BATCH,
        Cmd.MAP_FREEZE, Cmd.PROG_LOAD, Cmd.BTF_LOAD, Cmd.OBJ_PIN, Cmd.OBJ_GET,
        Cmd.OBJ_GET_INFO_BY_FD, Cmd.PROG_TEST_RUN, Cmd.BTF_GET_FD_BY_ID, Cmd.LINK_CREATE,
        Cmd.LINK_DETACH, Cmd.RAW_TRACEPOINT_OPEN, Cmd.PROG_ATTACH, Cmd.PROG_DETACH,
        Cmd.ENABLE_STATS,
    }
    assert wanted <= set(attr.LAYOUTS)


# -- builders ----------------------------------------------------------------------------


def test_builders_fill_fields_and_keep_buffers_alive() -> None:
    a = attr.map_create(1, 4, 8, 16, name="a_name_longer_than_fifteen", flags=1)
    assert bytes(a.map_name) == b"a_name_longer_t"  # BPF_OBJ_NAME_LEN - 1
    assert (a.map_type, a.key_size, a.value_size, a.max_entries, a.map_flags) == (1, 4, 8, 16, 1)
    insns = bytes(16)
    log = bytearray(100)
    p = attr.prog_load(6, insns, "GPL", log_buf=log, log_level=2, fd_array=[5, 6])
    assert p.insn_cnt == 2 and p.log_size == 100 and p.log_level == 2
    assert ctypes.string_at(p.license) == b"GPL"
    assert ctypes.string_at(p.insns, 16) == insns
    assert list((ctypes.c_int32 * 2).from_address(p.fd_array)) == [5, 6]
    # the kernel writes into the caller's bytearray itself
    ctypes.memmove(p.log_buf, b"hello", 5)
    assert log[:5] == b"hello"
    # no log buffer: no log level (the kernel rejects a level without a buffer)
    assert attr.prog_load(6, insns, "GPL", log_level=1).log_level == 0
    e = attr.map_elem(3, b"\x01\x02\x03\x04", bytearray(8), out=True)
    assert ctypes.string_at(e.key, 4) == b"\x01\x02\x03\x04"
    u = attr.link_create(7, 0xFFFFFFFF, 48, uprobe_multi=("/bin/true", [16, 32], None, [9, 9], 1, 42))
    assert ctypes.string_at(u.u0) == b"/bin/true"
    assert list((ctypes.c_uint64 * 2).from_address(u.u1)) == [16, 32]
    assert u.u2 == 0 and u.u4 == 2 | (1 << 32) and u.u5 == 42


def test_offline_guard_refuses_bpf_calls() -> None:
    from bpfobj.errors import PhaseError
    from bpfobj.sys import offline
    from bpfobj.sys.syscall import bpf

    with offline("prepare phase"), pytest.raises(PhaseError, match="prepare phase"):
        bpf(Cmd.MAP_CREATE, attr.map_create(2, 4, 4, 1))
    with offline("open phase"), pytest.raises(PhaseError, match="BPF_PROG_LOAD"):
        bpf(Cmd.PROG_LOAD, attr.prog_load(1, bytes(16), "GPL"))


def test_fd_closes_once_and_on_gc() -> None:
    import gc

    from bpfobj.errors import PhaseError
    from bpfobj.sys.syscall import Fd

    r, w = os.pipe()
    fd = Fd(r)
    assert int(fd) == r and not fd.closed
    fd.close()
    fd.close()
    assert fd.closed
    with pytest.raises(PhaseError):
        fd.fileno()
    with pytest.raises(OSError):
        os.fstat(r)
    Fd(w)  # dropped at once: the finalizer closes it
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(w)


# -- pure helpers of the kernel layer ----------------------------------------------------


def test_kconfig_values_follow_libbpf() -> None:
    from bpfobj.errors import LinkError
    from bpfobj.kernel.kconfig import kconfig_data, kernel_version_code
    from bpfobj.spec import Extern, ExternKind, KconfigType

    def ext(name: str, t: KconfigType, size: int, off: int, weak: bool = False,
            signed: bool = False) -> Extern:
        return Extern(name, ExternKind.KCONFIG, 0, weak, 0, kcfg_type=t, kcfg_size=size,
                      kcfg_align=size, kcfg_offset=off, kcfg_signed=signed)

    externs = [
        ext("CONFIG_HZ", KconfigType.INT, 4, 0),
        ext("CONFIG_BPF", KconfigType.BOOL, 1, 4),
        ext("CONFIG_TRI", KconfigType.TRISTATE, 4, 8),
        ext("CONFIG_STR", KconfigType.CHAR_ARRAY, 6, 12),
        ext("CONFIG_MISSING", KconfigType.BOOL, 1, 18, weak=True),
        ext("CONFIG_NEG", KconfigType.INT, 2, 20, signed=True),
    ]
    config = {"CONFIG_HZ": "0x100", "CONFIG_BPF": "y", "CONFIG_TRI": "m",
              "CONFIG_STR": '"abcdefgh"', "CONFIG_NEG": "-3"}
    data = kconfig_data(externs, 24, config=config)
    assert int.from_bytes(data[0:4], "little") == 256
    assert data[4] == 1
    assert int.from_bytes(data[8:12], "little") == 2  # TRI_MODULE
    assert data[12:18] == b"abcde\0"  # truncated to size - 1
    assert data[18] == 0
    assert int.from_bytes(data[20:22], "little", signed=True) == -3
    with pytest.raises(LinkError, match="strong"):
        kconfig_data([ext("CONFIG_NOPE", KconfigType.BOOL, 1, 0)], 4, config={})
    with pytest.raises(LinkError, match="doesn't fit"):
        kconfig_data([ext("CONFIG_HZ", KconfigType.INT, 1, 0)], 4, config=config)
    with pytest.raises(LinkError, match="tristate"):
        kconfig_data([ext("CONFIG_TRI", KconfigType.BOOL, 1, 0)], 4, config=config)
    assert kernel_version_code(6, 1, 300) == (6 << 16) | (1 << 8) | 255


def test_raw_btf_blob_header() -> None:
    import struct

    from bpfobj.btf.reader import Btf
    from bpfobj.kernel.features import raw_btf

    blob = raw_btf([1, 1 << 24, 4, (1 << 24) | 32], b"\0int\0")
    magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", blob)
    assert (magic, version, hdr_len) == (0xEB9F, 1, 24)
    btf = Btf.parse(blob, name="probe")
    assert btf.type(1).name == "int"
