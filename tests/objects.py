"""The catalogue of BPF test objects (tests/progs/obj_*.c) and libbpf's view of them.

Every test that wants "all the objects a loader must handle" (disassembly, fuzzing,
``bpfobj inspect``, libbpf parity) iterates over :data:`OBJECTS`::

    import objects

    @pytest.mark.parametrize("case", objects.OBJECTS, ids=objects.ids(objects.OBJECTS))
    def test_something(case, bpf_build):
        path = objects.build_case(case, bpf_build)   # skips if the case cannot be built here
        ...

``build_all(bpf_build)`` compiles every buildable case at once and maps case name -> path.

``libbpf_view(path)`` runs tests/harness/libbpf_open.c (built on demand with gcc against
the system libbpf-dev into build/harness/) and returns the JSON it printed: what
libbpf's ``bpf_object__open_file`` (open only, no load, no privileges) saw.
The ``libbpf_can_open`` / ``libbpf_unknown_programs`` facts below are for libbpf 1.1
(Debian 12's libbpf-dev), the version the parity test runs against.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpfbuild
import harnessbuild
import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGS = ROOT / "tests" / "progs"

BuildFn = Callable[..., Path]


@dataclass(frozen=True)
class ObjCase:
    """One test object: a source under tests/progs built with some `bpf_build` options."""

    name: str
    """Unique id (test id, key of `build_all`)."""
    source: str
    """File name under tests/progs."""
    build: dict[str, Any] = field(default_factory=dict, hash=False)
    """Keyword arguments for `bpf_build` (target, defines, cpu, extra, tag, vmlinux)."""
    libbpf_can_open: bool = True
    """Whether libbpf 1.1's bpf_object__open_file accepts it."""
    notes: str = ""
    features: frozenset[str] = frozenset()
    """Tags for what the object exercises (e.g. "subprog", "map-in-map", "core")."""
    libbpf_unknown_programs: frozenset[str] = frozenset()
    """Programs whose section libbpf 1.1 does not know (it leaves them "unspec")."""

    @property
    def needs_vmlinux(self) -> bool:
        return bool(self.build.get("vmlinux"))

    @property
    def big_endian(self) -> bool:
        return self.build.get("target") == "bpfeb"

    def path(self, bpf_build: BuildFn) -> Path:
        """Compile (cached) and return the object's path."""
        return bpf_build(self.source, **self.build)


def _f(*tags: str) -> frozenset[str]:
    return frozenset(tags)


OBJECTS: list[ObjCase] = [
    ObjCase(
        "minimal",
        "obj_minimal.c",
        notes="one tracepoint program, bpf_printk (.rodata fmt string), license and version sections",
        features=_f("tracepoint", "license", "version", "rodata"),
    ),
    ObjCase(
        "multiprog",
        "obj_multiprog.c",
        notes=(
            "two programs in tp/syscalls/sys_enter_openat and two in xdp; static __noinline "
            "subprograms (one nested, one shared across sections), global and __hidden global "
            "__noinline subprograms; bpf_loop and bpf_for_each_map_elem with static callbacks "
            "(BPF_PSEUDO_FUNC ld_imm64); a .rodata.cst16 constant pool (no DATASEC)"
        ),
        features=_f("multi-prog-section", "subprog", "global-subprog", "callback", "raw_tp"),
    ),
    ObjCase(
        "multiprog-v4",
        "obj_multiprog.c",
        {"cpu": "v4", "tag": "v4"},
        notes="obj_multiprog.c with -mcpu=v4 (sign-extending loads/movs, gotol, bswap, sdiv/smod encodings)",
        features=_f("multi-prog-section", "subprog", "callback", "cpu-v4"),
    ),
    ObjCase(
        "sections",
        "obj_sections.c",
        notes=(
            "one program per section kind libbpf 1.1 knows: tp/tracepoint, raw_tp/raw_tracepoint, "
            "raw_tp.w, tp_btf, fentry/fexit/fmod_ret (+ .s sleepable), kprobe/kretprobe/ksyscall/"
            "kprobe.multi, uprobe/uretprobe/uprobe.s, lsm/lsm.s, perf_event, iter/iter.s, syscall, "
            "xdp/xdp.frags/xdp/devmap/xdp/cpumap, tc/classifier/action, cgroup_skb/ingress (attach "
            "type 0 that means something)/egress, cgroup/skb, cgroup/sock_create, cgroup/connect4, "
            "cgroup/sysctl, cgroup/getsockopt, cgroup/dev, socket, sockops, sk_skb/*, sk_msg, "
            "sk_lookup, sk_reuseport, flow_dissector, lwt_in; '?'-prefixed (autoload off) tp, xdp, "
            "fentry.s and lsm; version section"
        ),
        features=_f("sections", "sleepable", "no-autoload", "version"),
    ),
    ObjCase(
        "new-sections",
        "obj_new_sections.c",
        notes=(
            "sections added after libbpf 1.1 (tc/ingress, tc/egress, tcx/*, netkit/primary, "
            "netfilter, uprobe.multi, kprobe.session): libbpf 1.1 opens the object but leaves "
            "those programs unspec"
        ),
        features=_f("sections", "newer-libbpf"),
        libbpf_unknown_programs=_f(
            "tc_ingress",
            "tc_egress",
            "tcx_ingress",
            "tcx_egress",
            "netkit_primary",
            "nf_hook",
            "uprobe_multi",
            "kprobe_session",
        ),
    ),
    ObjCase(
        "maps",
        "obj_maps.c",
        notes=(
            "BTF maps: hash (BTF struct key/value and size-only key/value), array, percpu_hash "
            "(BPF_F_NO_PREALLOC), percpu_array, lru_hash, lru_percpu_hash (BPF_F_NO_COMMON_LRU), "
            "ringbuf (256 KiB, and 10000 which libbpf rounds up to 16384 at open), "
            "perf_event_array (max_entries 0), stack_trace, lpm_trie (BPF_F_NO_PREALLOC), queue "
            "and stack (no key), pinning LIBBPF_PIN_BY_NAME, "
            "numa_node with BPF_F_NUMA_NODE, BPF_F_MMAPABLE|BPF_F_RDONLY_PROG array, devmap, "
            "sockhash; ARRAY_OF_MAPS and HASH_OF_MAPS with __array(values, struct inner) and "
            "initial .values, an ARRAY_OF_MAPS with an inline anonymous ringbuf inner; prog_array "
            "with initial .values = { [0] = &tail_a, [3] = &tail_b }"
        ),
        features=_f("maps", "map-in-map", "prog-array-init", "pinning", "numa"),
    ),
    ObjCase(
        "maps-bpfeb",
        "obj_maps.c",
        {"target": "bpfeb", "tag": "bpfeb"},
        libbpf_can_open=False,
        notes="obj_maps.c big-endian; libbpf 1.1 rejects foreign-endian objects (-LIBBPF_ERRNO__ENDIAN, 'Endian mismatch')",
        features=_f("maps", "map-in-map", "big-endian"),
    ),
    ObjCase(
        "bloom",
        "obj_bloom.c",
        notes=(
            "a bloom_filter map (no key, map_extra 3: the number of hash functions; Linux "
            "5.16+, apart from obj_maps.c so that it loads on older kernels) and two xdp "
            "programs that push to it and peek into it"
        ),
        features=_f("maps", "map_extra"),
    ),
    ObjCase(
        "globals",
        "obj_globals.c",
        notes=(
            "global data: .data, .rodata (const volatile scalars, struct, char array), .bss, "
            ".data.custom, .rodata.custom, .bss.custom, .data.a_rather_long_custom_section "
            "(kernel map name truncated), .data.statics (only static vars: map not mmapable), "
            "__hidden var, string literals in .rodata.str1.1 (no DATASEC)"
        ),
        features=_f("global-data", "custom-data-sections", "subprog"),
    ),
    ObjCase(
        "globals-v1",
        "obj_globals.c",
        {"cpu": "v1", "tag": "v1"},
        notes="obj_globals.c with -mcpu=v1 (no jmp32, no alu32)",
        features=_f("global-data", "cpu-v1"),
    ),
    ObjCase(
        "globals-bpfeb",
        "obj_globals.c",
        {"target": "bpfeb", "tag": "bpfeb"},
        libbpf_can_open=False,
        notes="obj_globals.c big-endian (initial values of .data/.rodata in big-endian); libbpf 1.1: 'Endian mismatch'",
        features=_f("global-data", "big-endian"),
    ),
    ObjCase(
        "externs",
        "obj_externs.c",
        {"vmlinux": True},
        notes=(
            "kconfig externs (LINUX_KERNEL_VERSION, strong bool, __weak bool/tristate/int/"
            "unsigned long/char[16]) -> internal .kconfig map (value_size 38); ksyms: typed "
            "`const struct rq runqueues`, typeless `const void bpf_prog_active`, weak typed and "
            "weak typeless; kfuncs bpf_task_acquire/bpf_task_release and a weak missing kfunc; "
            "tp_btf programs; vmlinux.h"
        ),
        features=_f("kconfig", "ksym", "kfunc", "tp_btf", "vmlinux"),
    ),
    ObjCase(
        "core",
        "obj_core.c",
        {"vmlinux": True},
        notes=(
            "CO-RE on task_struct via vmlinux.h: BPF_CORE_READ chains (real_parent->tgid, "
            "cred->uid.val, group_leader->pid), field exists/size/offset, type exists, enum "
            "value (exists), BPF_CORE_READ_BITFIELD_PROBED, ___flavor struct (state vs __state), "
            "BPF_CORE_READ_STR_INTO; tp_btf, kprobe and fentry programs; ringbuf"
        ),
        features=_f("core", "vmlinux", "tp_btf", "fentry", "kprobe"),
    ),
    ObjCase(
        "kprobes",
        "obj_kprobes.c",
        notes=(
            "pt_regs probes for the host arch (x86): BPF_KPROBE/BPF_KRETPROBE, PT_REGS_IP/SP/FP/"
            "PARM5, uprobe/uretprobe on libc, BPF_KSYSCALL (CO-RE read of the wrapper's regs and "
            "libbpf's LINUX_HAS_SYSCALL_WRAPPER kconfig extern -> .kconfig map)"
        ),
        features=_f("kprobe", "uprobe", "ksyscall", "kconfig", "core"),
    ),
    ObjCase(
        "kprobes-arm64",
        "obj_kprobes.c",
        {"defines": ("__TARGET_ARCH_arm64",), "tag": "arm64"},
        notes="obj_kprobes.c for arm64 (struct user_pt_regs offsets, orig_x0 for syscalls)",
        features=_f("kprobe", "uprobe", "ksyscall", "kconfig", "core", "arm64"),
    ),
    ObjCase(
        "legacy-maps",
        "obj_legacy_maps.c",
        libbpf_can_open=False,
        notes=(
            'legacy struct bpf_map_def SEC("maps") definitions (array, hash with '
            "BPF_F_NO_PREALLOC, prog_array), socket and kprobe programs, version 0xFFFFFFFE; "
            "libbpf >= 1.0 rejects it at open (-ENOTSUP, 'legacy map definitions in 'maps' "
            "section are not supported by libbpf v1.0+')"
        ),
        features=_f("legacy-maps", "version"),
    ),
    ObjCase(
        "static-prog",
        "obj_static_prog.c",
        libbpf_can_open=False,
        notes=(
            'a static (STB_LOCAL) function in SEC("xdp"); libbpf rejects the object at open '
            "(-ENOTSUP, \"sec 'xdp': program 'static_xdp' is static and not supported\")"
        ),
        features=_f("negative", "subprog"),
    ),
    ObjCase(
        "arena-globals",
        "obj_arena_globals.c",
        {"vmlinux": True},
        libbpf_can_open=False,
        notes=(
            "__arena globals (.addr_space.1: scalars, a struct, an array, a string, a static) "
            "in a 4-page arena, used from syscall programs and a .text subprogram; libbpf "
            "1.1 predates arenas (1.4) and fails at open (\"bad map relo against 'counter' "
            "in section '.addr_space.1'\")"
        ),
        features=_f("arena", "subprog"),
    ),
]

_BY_NAME = {case.name: case for case in OBJECTS}
assert len(_BY_NAME) == len(OBJECTS), "duplicate ObjCase names"


def by_name(name: str) -> ObjCase:
    return _BY_NAME[name]


def ids(cases: Iterable[ObjCase]) -> list[str]:
    return [case.name for case in cases]


def libbpf_openable() -> list[ObjCase]:
    return [case for case in OBJECTS if case.libbpf_can_open]


def cannot_build_reason(case: ObjCase) -> str | None:
    """Why `case` cannot be built on this machine (None when it can)."""
    if not bpfbuild.have_clang():
        return f"{bpfbuild.CLANG} is not installed (apt-get install clang-19)"
    if case.needs_vmlinux:
        if not bpfbuild.VMLINUX_BTF.exists():
            return f"{bpfbuild.VMLINUX_BTF} is missing (kernel without CONFIG_DEBUG_INFO_BTF)"
        if shutil.which("bpftool") is None:
            return "bpftool is not installed (needed to dump vmlinux.h)"
    return None


def build_case(case: ObjCase, bpf_build: BuildFn) -> Path:
    """Build `case`; inside pytest, skip when this machine cannot build it."""
    reason = cannot_build_reason(case)
    if reason is not None:
        pytest.skip(reason)
    return case.path(bpf_build)


def build_all(bpf_build: BuildFn) -> dict[str, Path]:
    """Compile every catalogue object this machine can build; case name -> object path."""
    return {
        case.name: case.path(bpf_build) for case in OBJECTS if cannot_build_reason(case) is None
    }


# ---------------------------------------------------------------------------------------
# libbpf's side: tests/harness/libbpf_open.c


def build_harness() -> Path:
    """Compile tests/harness/libbpf_open.c (cached by content, see harnessbuild)."""
    return harnessbuild.build("libbpf_open")


def libbpf_view(obj: Path, harness: Path | None = None) -> dict[str, Any]:
    """What libbpf's bpf_object__open_file saw in `obj` (the harness's JSON).

    On a failed open the dict has "error" and "errno" instead of "programs"/"maps";
    libbpf's warnings are in "log" either way (nothing reaches stderr).
    """
    exe = harness or build_harness()
    proc = subprocess.run([str(exe), str(obj)], capture_output=True, text=True, timeout=60)
    if proc.returncode not in (0, 2):
        raise RuntimeError(f"{exe} {obj} exited {proc.returncode}: {proc.stderr.strip()}")
    view: dict[str, Any] = json.loads(proc.stdout)
    return view
