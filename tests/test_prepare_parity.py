"""bpfobj's prepared instructions must equal libbpf's final instructions.

For every real-world-shaped program under tests/progs/real_*.c (built with vmlinux.h),
load it with libbpf (tests/harness/libbpf_prepare.c: ``bpf_object__load`` then
``bpf_program__insns``) and prepare it with ``python -m bpfobj prepare OBJ --json``, both
against this kernel's /sys/kernel/btf/vmlinux, and compare every program's instructions
after :func:`prepare_parity.normalize` (map references by map name/section instead of
fd/index; everything else byte for byte).

The objects (see each file's header comment for details):

real_execsnoop.c    tracepoints, task_struct BPF_CORE_READ chains, hash + perf + cgroup
                    array maps, .rodata filters and a .rodata struct as a map value, .bss
real_opensnoop.c    four tracepoints, bpf_probe_read_user_str into a ring buffer, .rodata,
                    .bss and .data maps
real_exitsnoop.c    sched_process_exit, bpf_core_field_exists with a ___o flavor whose field
                    is missing (poisoned dead branch), field size/offset relocations
real_biolatency.c   tp_btf block_rq_* on struct request *, LINUX_KERNEL_VERSION (.kconfig),
                    request___x / trace_event_raw_block_rq_complet*___x flavors guarded by
                    bpf_core_field_exists / bpf_core_type_exists, histogram maps
real_subprogs.c     static, global, __hidden and __weak subprograms, bpf_loop and
                    bpf_for_each_map_elem callbacks, CO-RE inside a .text subprogram, three
                    programs appending the shared subprograms in different orders
real_schedstat.c    its own trimmed kernel types instead of vmlinux.h, so CO-RE changes
                    values: new offsets, LDX size 4 -> 8, enum value, type id/size, a
                    poisoned ld_imm64 for a missing enumerator

libbpf's final instructions exist only after a real load, so the module needs root.
The harness tests (``test_libbpf_*``) check libbpf's side on its own: each object loads
and its map references all resolve.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prepare_parity as pp
import pytest

PROGS = Path(__file__).resolve().parent / "progs"
REAL_SOURCES = sorted(p.name for p in PROGS.glob("real_*.c"))
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

# How each comparison names its target BTF: libbpf's default (no btf_custom_path: the
# running kernel's vmlinux, plus module BTFs for types vmlinux lacks) against bpfobj's
# default, and the same file passed explicitly to both with --btf.
TARGETS = {"default": None, "btf-path": VMLINUX_BTF}


def _module_skip_reason() -> str | None:
    if (reason := pp.not_root_reason()) is not None:
        return reason
    if not VMLINUX_BTF.exists():
        return f"{VMLINUX_BTF} is missing (kernel without CONFIG_DEBUG_INFO_BTF)"
    if (reason := pp.harness_missing_reason()) is not None:
        return reason
    return None


_SKIP = _module_skip_reason()
if _SKIP is not None:
    pytest.skip(_SKIP, allow_module_level=True)


@pytest.fixture(scope="module")
def harness() -> Path:
    try:
        return pp.build_harness()
    except Exception as exc:  # CalledProcessError carries gcc's stderr
        pytest.fail(f"building {pp.HARNESS_SRC} failed: {getattr(exc, 'stderr', exc)}")


@pytest.fixture(scope="module")
def real_objects(bpf_build: Callable[..., Path]) -> dict[str, Path]:
    """source name -> object path, every real_*.c built with vmlinux.h."""
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (needed to dump vmlinux.h)")
    return {src: bpf_build(src, vmlinux=True) for src in REAL_SOURCES}


_libbpf_cache: dict[tuple[str, str], dict[str, Any]] = {}


def libbpf_view(harness: Path, obj: Path, btf: Path | None) -> dict[str, Any]:
    key = (str(obj), str(btf))
    if key not in _libbpf_cache:
        _libbpf_cache[key] = pp.run_libbpf(obj, btf, harness=harness)
    return _libbpf_cache[key]


def test_real_programs_exist() -> None:
    assert len(REAL_SOURCES) >= 5, REAL_SOURCES


@pytest.mark.parametrize("source", REAL_SOURCES)
def test_libbpf_loads(source: str, harness: Path, real_objects: dict[str, Path]) -> None:
    """libbpf's side alone: the object loads and its final instructions are well formed."""
    view = libbpf_view(harness, real_objects[source], None)
    if "error" in view:
        pytest.fail(pp.libbpf_failure(view))
    assert view["programs"], "no program was loaded"
    for prog in view["programs"]:
        assert prog["insns"], prog["name"]
        assert len(prog["insns"]) == prog["insn_cnt"]
        for ref in prog["map_refs"]:
            assert ref["map_index"] >= 0, f"{prog['name']}: map fd at insn {ref['insn']} unknown"
    assert pp.check_map_refs(view) == []
    norm = pp.normalize(view)
    for name, prog in norm["programs"].items():
        leftover = [s for s in prog["insns"] if "<unknown map" in s]
        assert not leftover, f"{name}: {leftover}"


@pytest.mark.parametrize("source", REAL_SOURCES)
def test_normalize_self_check(source: str, harness: Path, real_objects: dict[str, Path]) -> None:
    """normalize() maps libbpf's fd form and bpfobj's index form to the same thing, and
    still sees a one-bit change anywhere (checked on libbpf's real output)."""
    view = libbpf_view(harness, real_objects[source], None)
    if "error" in view:
        pytest.fail(pp.libbpf_failure(view))
    fake = pp.as_bpfobj_shape(view)
    assert pp.check_map_refs(fake) == []
    expected = pp.normalize(view, loader="libbpf")
    assert pp.diff_programs(expected, pp.normalize(fake, loader="bpfobj")) == []

    prog = fake["programs"][0]
    for where in (0, len(prog["insns"]) // 2, len(prog["insns"]) - 1):
        raw = bytearray(bytes.fromhex(prog["insns"][where]))
        raw[2] ^= 0x01  # the low bit of off
        broken = {**fake, "programs": [{**prog, "insns": list(prog["insns"])}]}
        broken["programs"][0]["insns"][where] = raw.hex()
        diff = pp.diff_programs(expected, pp.normalize(broken, loader="bpfobj"))
        assert any(f"insn #{where} differs" in line for line in diff), diff
    # a map reference to the wrong map is a difference too
    for ref in prog["map_refs"]:
        other = (ref["map_index"] + 1) % len(fake["maps"])
        if pp.map_key(fake["maps"][other]) == pp.map_key(fake["maps"][ref["map_index"]]):
            continue
        insns = list(prog["insns"])
        first = pp.Insn.from_hex(insns[ref["insn"]])
        insns[ref["insn"]] = first.replace(imm=other).to_hex()
        broken = {**fake, "programs": [{**prog, "insns": insns}]}
        diff = pp.diff_programs(expected, pp.normalize(broken, loader="bpfobj"))
        assert any(f"insn #{ref['insn']} differs" in line for line in diff), diff
        break


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("source", REAL_SOURCES)
def test_prepare_matches_libbpf(
    source: str, target: str, harness: Path, real_objects: dict[str, Path]
) -> None:
    obj = real_objects[source]
    btf = TARGETS[target]
    view = libbpf_view(harness, obj, btf)
    if "error" in view:
        pytest.fail(pp.libbpf_failure(view))
    try:
        ours = pp.run_bpfobj(obj, btf)
    except pp.ParityError as exc:
        pytest.fail(str(exc))

    expected = pp.normalize(view, loader="libbpf")
    actual = pp.normalize(ours, loader="bpfobj")
    problems = pp.diff_programs(expected, actual, core=pp.placed_core_relos(view))
    problems += [f"bpfobj: {p}" for p in pp.check_map_refs(ours)]
    # every map a program references must exist on both sides with the same type
    for name, prog in actual["programs"].items():
        for _i, _kind, key, _off in prog["map_refs"]:
            if key in expected["maps"] and expected["maps"][key] != actual["maps"].get(key):
                problems.append(
                    f"{name}: map {key} is {actual['maps'].get(key)} in bpfobj, "
                    f"{expected['maps'][key]} in libbpf"
                )
    assert not problems, f"{source} ({target}):\n" + "\n".join(problems)


# The CO-RE suite's own cases (each compiled twice: the program, and -DTARGET=N as the
# target BTF), one program at a time: wherever libbpf can load the program, bpfobj's
# prepared instructions must equal libbpf's final ones.
CORE_CASES = [
    ("core_fields.c", "TARGET=1"),
    ("core_fields.c", "TARGET=2"),
    ("core_types.c", "TARGET=1"),
    ("core_ambig.c", "TARGET=1"),
]


@pytest.mark.parametrize(("source", "define"), CORE_CASES)
def test_core_suite_matches_libbpf_instructions(
    source: str, define: str, harness: Path, bpf_build: Callable[..., Path]
) -> None:
    obj = bpf_build(source)
    target = bpf_build(source, defines=(define,), tag=define.replace("=", ""))
    from bpfobj import BpfObject

    names = list(BpfObject.open(obj).spec.programs)
    compared, libbpf_failed = 0, []
    for name in names:
        view = pp.run_libbpf(obj, target, harness=harness, only=(name,))
        if "error" in view:
            libbpf_failed.append(name)
            continue
        ours = pp.run_bpfobj(obj, target, only=(name,))
        problems = pp.diff_programs(
            pp.normalize(view, loader="libbpf"), pp.normalize(ours, loader="bpfobj"),
            core=pp.placed_core_relos(view),
        )
        assert not problems, f"{source} {define} {name}:\n" + "\n".join(problems)
        compared += 1
    # Programs libbpf cannot load here (a poisoned or, with these fake target types, an
    # otherwise unverifiable access) have no final instructions to compare; their CO-RE
    # decisions are compared with libbpf's log in tests/test_core_libbpf.py.
    if define != "TARGET=2":  # TARGET=2 removes the types: every program is poisoned
        assert compared, f"libbpf loaded none of {names} ({libbpf_failed} failed)"
    print(f"{source} {define}: {compared} programs identical, libbpf failed {libbpf_failed}")
