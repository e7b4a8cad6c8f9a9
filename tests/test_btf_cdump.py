"""The C header dump (bpfobj.btf.cdump, `bpfobj btf dump --format c`).

* byte identity with `bpftool btf dump file X format c` for vmlinux, every test object and
  split BTF; which bpftool flavour is installed is found by probing it with a tiny BTF;
* the header compiles with clang-19 ``-target bpf`` and its layouts match the BTF: static
  asserts of sizeof / offsetof for every named struct, union and enum;
* CO-RE acceptance: real_*.c programs compiled against our header get the same
  instructions and the same .BTF.ext CO-RE records as against bpftool's;
* libbpf btf_dump.c corner cases on hand-built BTF.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import bpfbuild
import pytest
from core_btf.builder import std_ints
from elftools.elf.elffile import ELFFile
from test_btf_dump import (
    BPFTOOLS,
    VMLINUX,
    _split_pair,
    assert_same_text,
    needs_bpftool,
    needs_vmlinux,
    run_bpftool,
)

from bpfobj.btf import Btf, BtfExt
from bpfobj.btf import types as T
from bpfobj.btf.cdump import (
    EPILOGUE,
    FLAVOURS,
    PREAMBLE,
    CDumper,
    CDumpOptions,
    dump_c,
    sorted_type_ids,
)
from bpfobj.btf.dump import dump_raw_text, open_btf
from bpfobj.btf.writer import BtfBuilder
from bpfobj.cli.main import main
from bpfobj.errors import BtfError
from bpfobj.uapi import BtfFuncLinkage, BtfKind, CoreReloKind

needs_clang = pytest.mark.skipif(not bpfbuild.have_clang(), reason="clang-19 is not installed")
REAL_SOURCES = ("real_execsnoop.c", "real_biolatency.c", "real_exitsnoop.c", "real_opensnoop.c")


# ---------------------------------------------------------------------------------------
# Which bpftool is this?
# ---------------------------------------------------------------------------------------


def _probe_btf() -> bytes:
    b = BtfBuilder()
    ints = std_ints(b)
    b.add_enum("", values=[("AAA_PROBE_FIRST", 0)])  # ranks first when sorted
    b.add_struct("zz_first", 4, [("x", ints["int"], 0)])
    b.add_struct("aa_second", 4, [("y", ints["int"], 0)])
    b.add_enum("probe_byte", values=[("PB_A", 0), ("PB_B", 1)], size=1)
    proto = b.add_func_proto(ints["int"])
    b.add_typedef("probe_fn_t", b.add_ptr(proto))
    proto = b.add_func_proto(ints["int"], [("x", ints["int"])])
    func = b.add_func("probe_kfunc", proto, BtfFuncLinkage.GLOBAL)
    b.add_decl_tag("bpf_kfunc", func)
    b.add_decl_tag("bpf_fastcall", func)
    return b.encode()


_PROBED: dict[str, CDumpOptions] = {}


def bpftool_options(bpftool: str, tmp_dir: Path) -> CDumpOptions:
    """The CDumpOptions that describe `bpftool`'s C output, found by dumping a probe BTF:
    enum mode() attributes, `(void)`, sorted order, kfunc prototypes, __bpf_fastcall."""
    if bpftool not in _PROBED:
        probe = tmp_dir / "probe.btf"
        probe.write_bytes(_probe_btf())
        out = run_bpftool(bpftool, "btf", "dump", "file", probe, "format", "c")
        _PROBED[bpftool] = CDumpOptions(
            sort=out.index("struct aa_second") < out.index("struct zz_first"),
            sort_drop_first="AAA_PROBE_FIRST" not in out,
            kfuncs="#define __ksym" in out,
            fastcall="__bpf_fastcall" in out,
            void_params="(*probe_fn_t)(void)" in out,
            enum_size_attrs="mode(byte)" in out,
        )
        # the probe itself must come out the same
        assert dump_c(Btf.parse(probe.read_bytes()), _PROBED[bpftool]) == out
    return _PROBED[bpftool]


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("probe")


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    return open_btf(VMLINUX)


@pytest.fixture(scope="module")
def vmlinux_h(vmlinux: Btf) -> str:
    """Our default-flavour header of the running kernel."""
    return dump_c(vmlinux)


@pytest.fixture(scope="module")
def test_objects(bpf_build: Callable[..., Path]) -> dict[str, Path]:
    from test_btf_dump import dump_objects

    return dump_objects(bpf_build)


# ---------------------------------------------------------------------------------------
# Identity with bpftool
# ---------------------------------------------------------------------------------------


@needs_bpftool
@needs_vmlinux
@pytest.mark.parametrize("bpftool", BPFTOOLS)
def test_c_vmlinux_identical(bpftool: str, vmlinux: Btf, probe_dir: Path) -> None:
    opts = bpftool_options(bpftool, probe_dir)
    ref = run_bpftool(bpftool, "btf", "dump", "file", VMLINUX, "format", "c")
    warnings: list[str] = []
    assert_same_text(dump_c(vmlinux, opts, warnings=warnings), ref, f"vmlinux C {opts}")
    assert warnings == []


@needs_bpftool
@pytest.mark.parametrize("bpftool", BPFTOOLS)
def test_c_objects_identical(
    bpftool: str, test_objects: dict[str, Path], probe_dir: Path
) -> None:
    opts = bpftool_options(bpftool, probe_dir)
    for name, path in sorted(test_objects.items()):
        ref = run_bpftool(bpftool, "btf", "dump", "file", path, "format", "c")
        assert_same_text(dump_c(open_btf(path), opts), ref, f"{name} C")


@needs_bpftool
@pytest.mark.parametrize("bpftool", BPFTOOLS)
def test_c_split_identical(bpftool: str, tmp_path: Path, probe_dir: Path) -> None:
    """Split BTF dumps its base's types too, as bpftool does."""
    opts = bpftool_options(bpftool, probe_dir)
    bpath, spath = _split_pair(tmp_path)
    ref = run_bpftool(bpftool, "-B", bpath, "btf", "dump", "file", spath, "format", "c")
    out = dump_c(open_btf(spath, base=bpath), opts)
    assert_same_text(out, ref, "split C")
    assert "struct node {" in out and "struct mod_state {" in out


@needs_bpftool
def test_every_flavour_matches_its_knobs(test_objects: dict[str, Path], probe_dir: Path) -> None:
    """The installed bpftool is one of the named flavours (up to the sort knob)."""
    opts = bpftool_options(BPFTOOLS[0], probe_dir)
    assert any(
        (f.kfuncs, f.fastcall, f.void_params, f.enum_size_attrs)
        == (opts.kfuncs, opts.fastcall, opts.void_params, opts.enum_size_attrs)
        for f in FLAVOURS.values()
    ), opts


@needs_vmlinux
def test_default_flavour_only_adds_enum_modes(vmlinux: Btf, vmlinux_h: str) -> None:
    """The default header is bpftool 7.1 (Debian)'s plus mode(byte)/mode(word) on 1- and
    8-byte enums, which that build lacks (so its enums come out 4 bytes wide)."""
    default = vmlinux_h
    debian = dump_c(vmlinux, CDumpOptions.flavour("bpftool-7.1-debian"))
    stripped = re.sub(r" __attribute__\(\(mode\((byte|word)\)\)\)", "", default)
    assert stripped == debian
    one_byte = [
        t.name
        for t in (vmlinux.type(i) for i in range(1, len(vmlinux) + 1))
        if isinstance(t, T.Enum) and t.name and t.values and t.size == 1
    ]
    for name in one_byte[:20]:
        assert re.search(rf"\nenum {name} {{\n[^}}]*}} __attribute__\(\(mode\(byte\)\)\);", default)


@needs_vmlinux
def test_sorted_has_the_same_definitions(vmlinux: Btf, vmlinux_h: str) -> None:
    """bpftool 7.5's sorted order emits the same definitions, only in another order (and
    so with other ___N suffixes and forward declarations)."""

    def definitions(text: str) -> Counter[str]:
        heads = re.findall(r"^(?:struct|union|enum)\b[^;\n]*\{$|^typedef\b", _body(text), re.M)
        return Counter(re.sub(r"___\d+", "", h) for h in heads)

    plain = vmlinux_h
    srt = dump_c(vmlinux, CDumpOptions(sort=True))
    assert plain != srt
    assert definitions(plain) == definitions(srt)
    assert sum(definitions(plain).values()) > 10000
    order = sorted_type_ids(vmlinux)
    assert sorted(order) == list(range(1, len(vmlinux) + 1))
    # bpftool 7.5 drops the first sorted entry and dumps void instead
    quirk = sorted_type_ids(vmlinux, drop_first=True)
    assert 0 in quirk and [t for t in quirk if t] == order[1:]
    first = vmlinux.type(order[0])
    assert isinstance(first, T.Enum | T.Enum64) and not first.name


# ---------------------------------------------------------------------------------------
# Compiling the header: layouts match the BTF
# ---------------------------------------------------------------------------------------


def _inexpressible(btf: Btf, d: CDumper, tid: int, memo: dict[int, bool]) -> bool:
    """Whether `tid` holds, by value, something whose size C cannot reproduce from BTF
    (libbpf's output has the same limits, so these are not checked):

    * __builtin_va_list: the compiler's own type (24 bytes on x86-64 GCC, a pointer for
      -target bpf);
    * a union larger than its largest member (btf_dump pads structs only; the kernel's
      transparent unions come out of pahole with no members at all)."""
    if tid in memo:
        return memo[tid]
    memo[tid] = False
    t = btf.type(tid)
    res = False
    if isinstance(t, T.Typedef) and t.name == "__builtin_va_list":
        res = True
    elif isinstance(t, T.Typedef | T.Const | T.Volatile | T.Restrict | T.TypeTag | T.Array):
        res = _inexpressible(btf, d, t.type, memo)
    elif isinstance(t, T.Struct | T.Union):
        res = any(_inexpressible(btf, d, m.type, memo) for m in t.members)
        if isinstance(t, T.Union):
            largest = max((max(0, d.resolve_size(m.type)) for m in t.members), default=0)
            res = res or t.size > largest
    memo[tid] = res
    return res


def layout_asserts(btf: Btf, d: CDumper) -> list[str]:
    """_Static_assert lines: sizeof of every named struct/union/enum/typedef and offsetof of
    every named non-bitfield member, as the BTF says (names as the dumper emitted them)."""
    memo: dict[int, bool] = {}
    lines = []
    for tid in range(1, len(btf) + 1):
        t = btf.type(tid)
        if not t.name or _inexpressible(btf, d, tid, memo):
            continue
        if isinstance(t, T.Struct | T.Union):
            kw = "struct" if isinstance(t, T.Struct) else "union"
            c = f"{kw} {d.type_name(tid)}"
            lines.append(f'_Static_assert(sizeof({c}) == {t.size}, "{c}");')
            for m in t.members:
                if m.name and not m.bitfield_size:
                    lines.append(
                        f"_Static_assert(__builtin_offsetof({c}, {m.name}) == "
                        f'{m.bit_offset // 8}, "{c}.{m.name}");'
                    )
        elif isinstance(t, T.Enum | T.Enum64) and t.values:
            c = f"enum {d.type_name(tid)}"
            lines.append(f'_Static_assert(sizeof({c}) == {t.size}, "{c}");')
        elif isinstance(t, T.Typedef):
            size = d.resolve_size(tid)
            if size > 0 and btf.kind(btf.resolve(tid)) != BtfKind.FUNC_PROTO:
                name = d.ident_name(tid)
                lines.append(f'_Static_assert(sizeof({name}) == {size}, "{name}");')
    return lines


def compile_with_asserts(btf: Btf, options: CDumpOptions, workdir: Path) -> str:
    """Dump `btf`, compile header + layout asserts with clang -target bpf; '' or errors."""
    d = CDumper(btf, options)
    header = "".join(d.header())
    (workdir / "vmlinux.h").write_text(header)
    src = workdir / "check.c"
    src.write_text('#include "vmlinux.h"\n' + "\n".join(layout_asserts(btf, d)) + "\n")
    res = subprocess.run(
        [bpfbuild.CLANG, "-target", "bpf", "-fsyntax-only", "-ferror-limit=0",
         "-I", str(workdir), str(src)],
        capture_output=True, text=True,
    )  # fmt: skip
    return res.stderr if res.returncode else ""


@needs_clang
@needs_vmlinux
def test_vmlinux_header_compiles_with_btf_layouts(vmlinux: Btf, tmp_path: Path) -> None:
    errors = compile_with_asserts(vmlinux, CDumpOptions(), tmp_path)
    assert errors == "", errors[:4000]


@needs_clang
def test_object_headers_compile_with_btf_layouts(
    test_objects: dict[str, Path], tmp_path: Path
) -> None:
    for name, path in sorted(test_objects.items()):
        work = tmp_path / name
        work.mkdir()
        # bpftool-7.5 without its drop-the-first-sorted-type bug (see sort_drop_first)
        sorted_kfuncs = CDumpOptions(sort=True, kfuncs=True, fastcall=True)
        for opts in (CDumpOptions(), sorted_kfuncs):
            errors = compile_with_asserts(open_btf(path), opts, work)
            assert errors == "", f"{name} ({opts}):\n{errors[:4000]}"


@needs_clang
def test_dump_layouts_renames_duplicates(test_objects: dict[str, Path]) -> None:
    text = dump_c(open_btf(test_objects["dump_layouts-bpfel"]))
    assert "struct dup {" in text and "struct dup___2 {" in text
    assert "\tDUPV = 1," in text and "\tDUPV___2 = 2," in text
    assert "} __attribute__((packed));" in text
    assert "enum tiny_enum {\n\tTINY_A = 0,\n\tTINY_B = 200,\n} __attribute__((mode(byte)));" in text
    assert "\tint (* (*fret)(int))(long);\n" in text
    assert "\tvoid (*fps[4])(void);\n" in text
    assert '\tint __attribute__((btf_type_tag("user"))) *uptr;\n' in text


# ---------------------------------------------------------------------------------------
# CO-RE acceptance: same relocations and instructions as with bpftool's vmlinux.h
# ---------------------------------------------------------------------------------------


CoreRecords = dict[str, list[tuple[int, CoreReloKind, str, str]]]


def _core_view(path: Path) -> tuple[dict[str, bytes], CoreRecords]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        secs = {s.name: s.data() for s in elf.iter_sections()}
        code = {s.name: s.data() for s in elf.iter_sections() if s["sh_flags"] & 0x4}
    btf = Btf.parse(secs[".BTF"])
    ext = BtfExt.parse(secs[".BTF.ext"], btf)
    relos = {
        sec: [(r.insn_off, r.kind, r.access_str, btf.name(r.type_id)) for r in rs]
        for sec, rs in ext.core_relos.items()
    }
    return code, relos


@pytest.fixture(scope="module")
def our_vmlinux_dir(vmlinux_h: str) -> Path:
    header = vmlinux_h
    out = bpfbuild.OUT / "include-bpfobj" / hashlib.sha256(header.encode()).hexdigest()[:16]
    if not (out / "vmlinux.h").exists():
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f"vmlinux.h.{id(header)}.tmp"
        tmp.write_text(header)
        tmp.rename(out / "vmlinux.h")
    return out


@needs_bpftool
@needs_vmlinux
@pytest.mark.parametrize("source", REAL_SOURCES)
def test_core_programs_same_as_with_bpftool_header(
    source: str, bpf_build: Callable[..., Path], our_vmlinux_dir: Path
) -> None:
    ref = bpf_build(source, vmlinux=True)
    ours = bpf_build(source, extra=("-I", str(our_vmlinux_dir)), tag="bpfobj-vmlinux")
    ref_code, ref_relos = _core_view(ref)
    our_code, our_relos = _core_view(ours)
    assert sum(map(len, ref_relos.values())) > 0
    assert our_relos == ref_relos
    assert our_code == ref_code


# ---------------------------------------------------------------------------------------
# btf_dump.c corner cases on hand-built BTF
# ---------------------------------------------------------------------------------------


def _body(text: str) -> str:
    assert text.startswith(PREAMBLE) and text.endswith(EPILOGUE)
    return text[len(PREAMBLE) : -len(EPILOGUE)]


def test_va_list_fixups_and_aliases() -> None:
    b = BtfBuilder()
    ints = std_ints(b)
    b.add_typedef("__gnuc_va_list", 0)  # old GCC: a typedef of void
    b.add_typedef("__builtin_va_list", b.add_ptr(ints["char"]))  # the compiler's own: not emitted
    b.add_typedef("va_list", b.add_typedef("__builtin_va_list", ints["char"]))
    b.add_typedef("poly8_t", b.add_int("__Poly8_t", 1))  # emitted when something refers to it
    out = _body(dump_c(b.to_btf()))
    assert "typedef __builtin_va_list __gnuc_va_list;\n\n" in out
    assert "typedef char *__builtin_va_list" not in out
    assert "typedef __builtin_va_list va_list;\n\n" in out
    assert "typedef unsigned char __Poly8_t;\n\n" in out


def test_pointer_size_4_padding() -> None:
    """A 32-bit target (long is 4 bytes): padding uses `long: 32`."""
    b = BtfBuilder()
    i32 = b.add_int("int", 4, signed=True)
    b.add_int("long int", 4, signed=True)
    b.add_struct("s", 16, [("a", i32, 0), ("b", i32, 96)])
    out = _body(dump_c(b.to_btf()))
    assert out == "struct s {\n\tint a;\n\tlong: 32;\n\tlong: 32;\n\tint b;\n};\n\n"


def test_anonymous_enums_and_name_dups() -> None:
    b = BtfBuilder()
    ints = std_ints(b)
    b.add_enum("", values=[("TOP_A", 1), ("TOP_B", 2)])  # unreferenced: a top-level constant block
    inner = b.add_enum("", values=[("IN_A", 0)])
    b.add_struct("holder", 4, [("e", inner, 0)])
    b.add_struct("twice", 4, [("x", ints["int"], 0)])
    b.add_struct("twice", 8, [("y", ints["long"], 0)])
    b.add_typedef("TOP_A", ints["int"])  # typedefs share the enumerators' namespace
    b.add_enum("empty_fwd_enum", values=[])
    b.add_enum("empty_fwd_enum", values=[])
    out = _body(dump_c(b.to_btf()))
    assert "enum {\n\tTOP_A = 1,\n\tTOP_B = 2,\n};\n\n" in out
    assert "struct holder {\n\tenum {\n\t\tIN_A = 0,\n\t} e;\n};\n\n" in out
    assert "struct twice {\n\tint x;\n};\n\nstruct twice___2 {\n\tlong y;\n};\n\n" in out
    assert "typedef int TOP_A___2;\n\n" in out
    assert out.count("enum empty_fwd_enum;\n\n") == 2  # enum fwds are never renamed


def test_forward_declarations_and_cycles() -> None:
    b = BtfBuilder()
    ints = std_ints(b)
    a = b.add_struct("a", 8)
    bb = b.add_struct("b", 16, [("a", a, 0), ("n", ints["long"], 64)])
    b.add_member(a, "pb", b.add_ptr(bb), 0)
    out = _body(dump_c(b.to_btf()))
    assert out == (
        "struct b;\n\nstruct a {\n\tstruct b *pb;\n};\n\n"
        "struct b {\n\tstruct a a;\n\tlong n;\n};\n\n"
    )
    # a struct embedding itself cannot be written in C
    c = BtfBuilder()
    ints = std_ints(c)
    loop = c.add_struct("loop", 8)
    c.add_member(loop, "self", loop, 0)
    with pytest.raises(BtfError, match="unsatisfiable type cycle"):
        dump_c(c.to_btf())


def test_emit_type_decl_and_roots() -> None:
    b = BtfBuilder()
    ints = std_ints(b)
    arr = b.add_array(b.add_ptr(b.add_const(ints["char"])), 0, 4)
    proto = b.add_func_proto(b.add_ptr(ints["int"]), [("x", ints["int"]), ("", 0)])
    fp = b.add_ptr(proto)
    s = b.add_struct("only_me", 40, [("f", fp, 0), ("names", arr, 64)])
    b.add_struct("not_me", 4, [("x", ints["int"], 0)])
    btf = b.to_btf()
    d = CDumper(btf)
    assert d.emit_type_decl(arr, "names") == "const char *names[4]"
    assert d.emit_type_decl(fp, "cb") == "int * (*cb)(int x, ...)"
    assert d.emit_type_decl(proto) == "int *(int x, ...)"
    text = dump_c(btf, type_ids=[s])
    assert "struct only_me" in text and "not_me" not in text


def test_cli_c(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bpath, spath = _split_pair(tmp_path)
    assert main(["btf", "dump", str(spath), "--base", str(bpath), "-f", "c"]) == 0
    out = capsys.readouterr().out
    assert out == dump_c(open_btf(spath, base=bpath))
    assert main(["btf", "dump", str(bpath), "-f", "c", "--flavour", "bpftool-7.5"]) == 0
    out = capsys.readouterr().out
    assert "#define __ksym" in out and "/* BPF kfuncs */" in out
    assert main(["btf", "dump", str(bpath), "-f", "c", "--flavour", "bpftool-7.5",
                 "--no-sort"]) == 0  # fmt: skip
    assert capsys.readouterr().out == dump_c(
        open_btf(bpath), CDumpOptions(kfuncs=True, fastcall=True)
    )


# ---------------------------------------------------------------------------------------
# Differential: random BTF, bpftool vs bpfobj
# ---------------------------------------------------------------------------------------


def random_btf(seed: int) -> bytes:
    """A random but well-formed BTF: structs/unions with gaps, misaligned (packed) members
    and bitfields, anonymous members, duplicate names, typedefs, pointers, arrays, qualifiers,
    function prototypes, enums of every size, forward declarations."""
    import random

    rnd = random.Random(seed)
    b = BtfBuilder()
    ints = std_ints(b)
    scalars = [  # (type id, size)
        (ints["char"], 1), (ints["u8"], 1), (ints["short"], 2), (ints["u16"], 2),
        (ints["int"], 4), (ints["uint"], 4), (ints["long"], 8), (ints["ulong"], 8),
        (b.add_float("double", 8), 8), (b.add_int("__int128", 16, signed=True), 16),
    ]  # fmt: skip
    sized: list[tuple[int, int]] = list(scalars)
    names = ["alpha", "beta", "gamma", "delta", "eps"]
    for i in range(rnd.randint(1, 4)):
        size = rnd.choice((1, 2, 4, 8))
        is64 = size == 8 and rnd.random() < 0.5
        make = b.add_enum64 if is64 else b.add_enum
        vals = [(f"E{seed}_{i}_{j}", rnd.choice((0, 1, 200, -3, 1 << 33)) if is64
                 else rnd.choice((0, 1, 200, -3))) for j in range(rnd.randint(0, 3))]  # fmt: skip
        name = rnd.choice(["", *names])
        signed = any(v < 0 for _, v in vals)
        sized.append((make(name, size, vals, signed=signed), size))
    fwd = b.add_fwd(rnd.choice(names), union=rnd.random() < 0.3)
    pointees = [0, fwd] + [t for t, _ in sized]
    for i in range(rnd.randint(3, 8)):
        is_union = rnd.random() < 0.25
        members: list[tuple[str, int, int] | tuple[str, int, int, int]] = []
        off = 0
        for j in range(rnd.randint(0, 6)):
            mname = "" if rnd.random() < 0.1 else f"m{j}"
            r = rnd.random()
            if r < 0.2:  # bitfield on an int type
                t, tsz = rnd.choice(scalars[:8])
                bits = rnd.randint(1, tsz * 8)
                boff = 0 if is_union else off + rnd.choice((0, 0, 3))
                members.append((mname or "", t, boff, bits))
                off = boff + bits
                continue
            if r < 0.35:
                t, tsz, al = b.add_ptr(rnd.choice(pointees)), 8, 8
            elif r < 0.45:
                et, esz = rnd.choice(sized)
                n = rnd.randint(0, 4)
                t, tsz, al = b.add_array(et, 0, n), esz * n, min(esz, 8)
            elif r < 0.55:
                t, tsz = rnd.choice(sized)
                t = rnd.choice((b.add_const, b.add_volatile, lambda x: b.add_typedef(rnd.choice(names), x)))(t)
                al = min(tsz, 8)
            else:
                t, tsz = rnd.choice(sized)
                al = min(tsz, 8) or 1
            if is_union:
                boff = 0
            else:
                byte = (off + 7) // 8
                if rnd.random() < 0.85:
                    al = max(al, 1)
                    byte = -(-byte // al) * al + rnd.choice((0, 0, 0, al))
                boff = byte * 8
            members.append((mname, t, boff))
            off = boff + tsz * 8 if not is_union else max(off, tsz * 8)
        end = (off + 7) // 8
        size = end + rnd.choice((0, 0, 0, 1, 4, 8))
        name = "" if rnd.random() < 0.2 else rnd.choice(names)
        make_c = b.add_union if is_union else b.add_struct
        tid = make_c(name, size, members)
        sized.append((tid, size))
        pointees.append(tid)
        if rnd.random() < 0.3:
            proto = b.add_func_proto(rnd.choice(pointees), [
                (f"p{k}", b.add_ptr(rnd.choice(pointees))) for k in range(rnd.randint(0, 3))
            ] + ([("", 0)] if rnd.random() < 0.2 else []))  # fmt: skip
            b.add_typedef(f"fn{i}_t", b.add_ptr(proto))
    return b.encode()


@needs_bpftool
@pytest.mark.parametrize("bpftool", BPFTOOLS)
def test_random_btf_matches_bpftool(bpftool: str, tmp_path: Path, probe_dir: Path) -> None:
    opts = bpftool_options(bpftool, probe_dir)
    for seed in range(60):
        path = tmp_path / f"r{seed}.btf"
        path.write_bytes(random_btf(seed))
        res = subprocess.run(
            [bpftool, "btf", "dump", "file", str(path), "format", "c"],
            capture_output=True, text=True,
        )  # fmt: skip
        btf = open_btf(path)
        if res.returncode != 0:  # bpftool refuses (e.g. a type loop): so must we
            with pytest.raises(BtfError):
                dump_c(btf, opts)
            continue
        assert_same_text(dump_c(btf, opts), res.stdout, f"random BTF seed {seed}")
        raw = run_bpftool(bpftool, "btf", "dump", "file", path)
        assert_same_text(dump_raw_text(btf), raw, f"random BTF seed {seed} raw")
