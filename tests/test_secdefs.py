"""bpfobj.elf.secdefs against libbpf.

Two references:

* the system libbpf (libbpf-dev 1.1, Debian 12) through tests/harness/sec_type.c, which runs
  ``libbpf_prog_type_by_name()`` / ``libbpf_attach_type_by_name()`` on names read from stdin;
* the ``section_defs[]`` source text of libbpf.c in Linux 6.12 (libbpf v1.5), which the
  table must copy entry by entry.

libbpf 1.1 predates some 6.12 definitions. `NEW_IN_6_12` lists those defs and
`NEW_NAMES_6_12` the hand-picked names that only 6.12 knows, with the 6.12 answer; every
other name must classify exactly as libbpf 1.1 does.
"""

from __future__ import annotations

import random
import re
import subprocess
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import harnessbuild
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfobj.elf.secdefs import (
    SECTION_DEFS,
    AttachKind,
    ProgramSection,
    SecDef,
    SecFlag,
    attach_type_by_name,
    find_sec_def,
    load_expected_attach_type,
    parse_section,
    prog_type_by_name,
    sec_def_matches,
)
from bpfobj.errors import SpecError
from bpfobj.uapi import AttachType, ProgType

ROOT = Path(__file__).resolve().parent.parent
LIBBPF_C_612 = Path("/work/src/linux-source-6.12/tools/lib/bpf/libbpf.c")

A = AttachType
P = ProgType

# --------------------------------------------------------------------------------------------
# The differences between libbpf 1.1 (system) and the 6.12 table bpfobj mirrors.

#: defs of the 6.12 table that libbpf 1.1's section_defs[] lacks: names they select are
#: unknown (-ESRCH) to libbpf 1.1. (libbpf 1.1 also had "usdt+" with SEC_NONE where 6.12 has
#: SEC_USDT; that changes load-time behaviour only, not prog_type_by_name().)
NEW_IN_6_12: frozenset[str] = frozenset(
    {
        "kprobe.session+",
        "uprobe.multi+",
        "uretprobe.multi+",
        "uprobe.multi.s+",
        "uretprobe.multi.s+",
        "usdt.s+",
        "tc/ingress",
        "tc/egress",
        "tcx/ingress",
        "tcx/egress",
        "netkit/primary",
        "netkit/peer",
        "sk_skb/verdict",
        "cgroup/connect_unix",
        "cgroup/sendmsg_unix",
        "cgroup/recvmsg_unix",
        "cgroup/getpeername_unix",
        "cgroup/getsockname_unix",
        "struct_ops.s+",
        "netfilter",
    }
)

#: hand-picked names that libbpf 1.1 rejects and 6.12 knows, with the 6.12 answer
NEW_NAMES_6_12: dict[str, tuple[ProgType, AttachType | None]] = {
    "tcx/ingress": (P.SCHED_CLS, A.TCX_INGRESS),
    "tcx/egress": (P.SCHED_CLS, A.TCX_EGRESS),
    "tc/ingress": (P.SCHED_CLS, A.TCX_INGRESS),
    "tc/egress": (P.SCHED_CLS, A.TCX_EGRESS),
    "netkit/primary": (P.SCHED_CLS, A.NETKIT_PRIMARY),
    "netkit/peer": (P.SCHED_CLS, A.NETKIT_PEER),
    "uprobe.multi": (P.KPROBE, A.TRACE_UPROBE_MULTI),
    "uprobe.multi//bin/bash:readline*": (P.KPROBE, A.TRACE_UPROBE_MULTI),
    "uretprobe.multi//usr/lib/libc.so.6:malloc": (P.KPROBE, A.TRACE_UPROBE_MULTI),
    "uprobe.multi.s//bin/bash:readline": (P.KPROBE, A.TRACE_UPROBE_MULTI),
    "uretprobe.multi.s//bin/bash:readline": (P.KPROBE, A.TRACE_UPROBE_MULTI),
    "kprobe.session": (P.KPROBE, A.TRACE_KPROBE_SESSION),
    "kprobe.session/bpf_fentry_test*": (P.KPROBE, A.TRACE_KPROBE_SESSION),
    "usdt.s": (P.KPROBE, None),
    "usdt.s//usr/bin/python3:python:function__entry": (P.KPROBE, None),
    "sk_skb/verdict": (P.SK_SKB, A.SK_SKB_VERDICT),
    "cgroup/connect_unix": (P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT),
    "cgroup/sendmsg_unix": (P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG),
    "cgroup/recvmsg_unix": (P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG),
    "cgroup/getpeername_unix": (P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME),
    "cgroup/getsockname_unix": (P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME),
    "struct_ops.s": (P.STRUCT_OPS, None),
    "struct_ops.s/test_1": (P.STRUCT_OPS, None),
    "netfilter": (P.NETFILTER, A.NETFILTER),
}

# Names that both know (or both reject): the brief's odd ones and common real-world sections.
ODD_NAMES = [
    "tp/",
    "tp",
    "tp/syscalls/sys_enter_execve",
    "tracepoint/sched/sched_switch",
    "tpx",
    "kprobe",
    "kprobe/",
    "kprobe/do_unlinkat",
    "kprobe/do_unlinkat+0x10",
    "kprobex",
    "kprobe.multi/bpf_fentry_test*",
    "kretprobe.multi",
    "kprobe.multix",
    "xdp.frags/devmap",
    "xdp.frags/cpumap",
    "xdp.frags",
    "xdp.frags/",
    "xdp.frags/other",
    "xdp/devmap",
    "xdp/cpumap",
    "xdp/",
    "xdp/foo",
    "xdp",
    "xdp_",
    "uprobe//bin/bash:readline",
    "uprobe/bin/bash:readline",
    "uprobe.s//bin/bash:readline+8",
    "uretprobe//lib/libc.so.6:malloc",
    "uretprobe.s//lib/libc.so.6:malloc",
    "uprobe",
    "uprobe.",
    "uprobe.x/y",
    "fentry/",
    "fentry",
    "fentry/do_unlinkat",
    "fentry.s/bpf_fentry_test1",
    "fexit/do_unlinkat",
    "fmod_ret/bpf_modify_return_test",
    "freplace/xdp_prog",
    "tp_btf/sched_switch",
    "ksyscall/execve",
    "kretsyscall/execve",
    "ksyscall",
    "usdt",
    "usdt//usr/bin/python3:python:function__entry",
    "struct_ops/x",
    "struct_ops",
    "struct_opsx",
    "tc",
    "tc/",
    "tc/foo",
    "tcx",
    "tcx/",
    "tcx/ingressx",
    "netkit",
    "netkit/",
    "socket",
    "socket/",
    "socket1",
    "sk_skb/stream_parser",
    "sk_skb/stream_verdict",
    "sk_skb",
    "sk_skb/",
    "sk_skb/other",
    "sk_msg",
    "sk_reuseport",
    "sk_reuseport/migrate",
    "sk_reuseport/other",
    "cgroup/connect4",
    "cgroup/connect6",
    "cgroup/sock",
    "cgroup/sock_create",
    "cgroup/sock_release",
    "cgroup/skb",
    "cgroup_skb/ingress",
    "cgroup_skb/egress",
    "cgroup/dev",
    "cgroup/",
    "cgroup",
    "cgroup/connect",
    "lsm/file_open",
    "lsm.s/file_open",
    "lsm_cgroup/socket_bind",
    "lsm",
    "lsm.s",
    "iter/task",
    "iter.s/task",
    "iter/bpf_map_elem",
    "syscall",
    "syscall/",
    "raw_tp/sys_enter",
    "raw_tracepoint/sched_switch",
    "raw_tp.w/bpf_test_finish",
    "raw_tracepoint.w/bpf_test_finish",
    "raw_tp.w",
    "perf_event",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "lwt_seg6local",
    "sockops",
    "lirc_mode2",
    "flow_dissector",
    "sk_lookup",
    "sk_lookup/",
    "classifier",
    "action",
    # unknown everywhere
    "",
    "/",
    "+",
    "?",
    "license",
    ".text",
    ".maps",
    ".rodata",
    "maps",
    "xdp_prog",
    "Kprobe/foo",
    " kprobe/foo",
    "kprobe /foo",
    "tracepoint+",
    "kprobe+",
    "fentry+/foo",
    "prog",
    "unknown/section",
]


# --------------------------------------------------------------------------------------------
# The libbpf 1.1 harness.


def _harness_binary() -> Path:
    return harnessbuild.build_or_skip("sec_type", ("-Werror",))


#: a harness answer: (prog_type, expected_attach_type) as ints, or the errno
Answer = tuple[int, int] | int


def _parse_line(line: str) -> tuple[str, list[str]]:
    name, *cols = line.rstrip("\n").split("\t")
    return name, cols


def _check_name(name: str) -> None:
    assert "\n" not in name and "\0" not in name, name


class Libbpf11:
    """libbpf 1.1's answers, from the compiled harness (batch and interactive)."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def _run(self, names: list[str], *args: str) -> list[list[str]]:
        for n in names:
            _check_name(n)
        stdin = "".join(f"{n}\n" for n in names)
        proc = subprocess.run(
            [str(self.binary), *args], input=stdin, capture_output=True, text=True, check=True
        )
        lines = proc.stdout.splitlines()
        assert len(lines) == len(names), proc.stdout
        result = []
        for name, line in zip(names, lines):
            got, cols = _parse_line(line)
            assert got == name
            result.append(cols)
        return result

    @staticmethod
    def _answer(cols: list[str]) -> Answer:
        if cols[0] == "ERR":
            return int(cols[1])
        return int(cols[0]), int(cols[1])

    def prog_types(self, names: Iterable[str]) -> dict[str, Answer]:
        names = list(dict.fromkeys(names))
        return {n: self._answer(c) for n, c in zip(names, self._run(names))}

    def attach_types(self, names: Iterable[str]) -> dict[str, int | str]:
        """name -> attach type, or "ERR <errno>"."""
        names = list(dict.fromkeys(names))
        out: dict[str, int | str] = {}
        for n, c in zip(names, self._run(names, "-a")):
            out[n] = f"ERR {c[1]}" if c[0] == "ERR" else int(c[0])
        return out

    def query(self, name: str) -> Answer:
        """One name through a long-lived harness process (for property tests)."""
        _check_name(name)
        with self._lock:
            if self._proc is None:
                self._proc = subprocess.Popen(
                    [str(self.binary)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    bufsize=1,
                )
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(name + "\n")
            self._proc.stdin.flush()
            got, cols = _parse_line(self._proc.stdout.readline())
        assert got == name
        return self._answer(cols)

    def close(self) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
            self._proc = None


@pytest.fixture(scope="module")
def libbpf11() -> Iterator[Libbpf11]:
    h = Libbpf11(_harness_binary())
    yield h
    h.close()


ESRCH = 3
EINVAL = 22


def _ours(name: str) -> Answer:
    """bpfobj's answer in the harness's form: ints, None -> 0, unknown -> ESRCH."""
    try:
        pt, at = prog_type_by_name(name)
    except SpecError:
        return ESRCH
    return int(pt), 0 if at is None else int(at)


# --------------------------------------------------------------------------------------------
# Name corpora.


def _names_for_def(d: SecDef) -> list[str]:
    """Names that select, almost select, or extend the pattern of `d`."""
    p = d.prefix
    if p.endswith("+"):
        b = p[:-1]
        return [
            b,
            f"{b}/",
            f"{b}/target",
            f"{b}/a/b:c+0x10",
            f"{b}x",
            f"{b}.s",
            f"{b}.s/x",
            b[:-1],
            p,
        ]
    if p.endswith("/"):
        return [p, f"{p}x", p[:-1]]
    return [p, f"{p}/", f"{p}/x", f"{p}x", p[:-1], f"{p}.s"]


def table_names() -> list[str]:
    names: list[str] = []
    for d in SECTION_DEFS:
        names += _names_for_def(d)
    return list(dict.fromkeys(names))


def fuzz_names(count: int = 3000, seed: int = 1729) -> list[str]:
    """Deterministic mutations of the table's prefixes (cut, extend, change a character)."""
    rnd = random.Random(seed)
    bases = [d.prefix.rstrip("+") for d in SECTION_DEFS]
    alphabet = "/.+?:_sxmuw0" + "abcdefghijklmnopqrstuvwxyz"
    out: list[str] = []
    for _ in range(count):
        s = rnd.choice(bases)
        for _ in range(rnd.randint(1, 3)):
            op = rnd.randrange(4)
            if op == 0:
                s = s[: rnd.randint(0, len(s))]
            elif op == 1:
                s += "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 4)))
            elif op == 2 and s:
                i = rnd.randrange(len(s))
                s = s[:i] + rnd.choice(alphabet) + s[i + 1 :]
            else:
                s += rnd.choice(["/", ".s", ".s/", "/x", ".multi", ".w/", "4", "6", "_unix"])
        out.append(s)
    return list(dict.fromkeys(out))


def all_names() -> list[str]:
    return list(dict.fromkeys([*table_names(), *ODD_NAMES, *NEW_NAMES_6_12, *fuzz_names()]))


def compare(names: Iterable[str], libbpf: dict[str, Answer]) -> list[str]:
    """Check every name against libbpf 1.1; return the names only 6.12 knows."""
    only_612 = []
    for name in names:
        ref, ours = libbpf[name], _ours(name)
        if isinstance(ref, tuple):
            assert ours == ref, f"{name!r}: libbpf 1.1 says {ref}, bpfobj {ours}"
            continue
        assert ref == ESRCH, f"{name!r}: libbpf 1.1 errno {ref}"
        if ours == ESRCH:
            continue
        d = find_sec_def(name)
        assert d is not None and d.prefix in NEW_IN_6_12, (
            f"{name!r}: unknown to libbpf 1.1 but bpfobj matches {d} (not in NEW_IN_6_12)"
        )
        only_612.append(name)
    return only_612


# --------------------------------------------------------------------------------------------
# Against libbpf 1.1.


def test_all_names_against_libbpf_1_1(libbpf11: Libbpf11) -> None:
    names = all_names()
    assert len(names) > 2000
    ref = libbpf11.prog_types(names)
    only_612 = compare(names, ref)
    # the differences are exactly the names whose first match is a 6.12-only def
    assert set(NEW_NAMES_6_12) <= set(only_612)
    print(f"compared {len(names)} names with libbpf 1.1; {len(only_612)} known only to 6.12")


def test_new_names_are_unknown_to_1_1_and_match_6_12(libbpf11: Libbpf11) -> None:
    ref = libbpf11.prog_types(NEW_NAMES_6_12)
    for name, expected in NEW_NAMES_6_12.items():
        assert ref[name] == ESRCH, f"{name!r}: libbpf 1.1 knows it after all: {ref[name]}"
        assert prog_type_by_name(name) == expected, name
        sec = parse_section(name)
        assert sec is not None and (sec.prog_type, sec.expected_attach_type) == expected


def test_new_in_6_12_is_exactly_the_defs_1_1_lacks(libbpf11: Libbpf11) -> None:
    # Probe every def with a name it selects; 1.1 must agree except for NEW_IN_6_12.
    probes = {
        d.prefix: (d.prefix + "x" if d.prefix.endswith("/") else d.base) for d in SECTION_DEFS
    }
    ref = libbpf11.prog_types(probes.values())
    lacking = set()
    for prefix, name in probes.items():
        assert find_sec_def(name) is not None and find_sec_def(name).prefix == prefix  # type: ignore[union-attr]
        if ref[name] != _ours(name):
            assert ref[name] == ESRCH, (name, ref[name])
            lacking.add(prefix)
    assert lacking == NEW_IN_6_12


def test_qmark_is_not_stripped_by_prog_type_by_name(libbpf11: Libbpf11) -> None:
    names = [f"?{n}" for n in [*ODD_NAMES, *table_names()]]
    ref = libbpf11.prog_types(names)
    for name in names:
        assert ref[name] == ESRCH, name
        with pytest.raises(SpecError):
            prog_type_by_name(name)


def test_qmark_sections_classify_like_the_stripped_name(libbpf11: Libbpf11) -> None:
    # bpf_object__init_prog() strips one '?' and then matches like libbpf_prog_type_by_name()
    names = [*ODD_NAMES, *table_names()]
    ref = libbpf11.prog_types(names)
    for name in names:
        sec = parse_section(f"?{name}")
        plain = parse_section(name)
        if sec is None:
            assert plain is None
            assert ref[name] == ESRCH or name in NEW_NAMES_6_12
            continue
        assert plain is not None
        assert sec.autoload is False and plain.autoload is True
        assert sec.sec_name == name and sec.name == f"?{name}"
        assert sec.sec_def is plain.sec_def
        got = (int(sec.prog_type), int(sec.expected_attach_type or 0))
        if isinstance(ref[name], tuple):
            assert got == ref[name], name
        else:
            assert sec.sec_def.prefix in NEW_IN_6_12, name


def test_attach_type_by_name_against_libbpf_1_1(libbpf11: Libbpf11) -> None:
    names = [*ODD_NAMES, *table_names()]
    ref = libbpf11.attach_types(names)
    for name in names:
        try:
            at = attach_type_by_name(name)
            ours: int | str = 0 if at is None else int(at)
        except SpecError:
            ours = f"ERR {EINVAL}"
        if ref[name] == ours:
            continue
        # 1.1 lacks the 6.12 attachable defs (sk_skb/verdict, cgroup/*_unix)
        d = find_sec_def(name)
        assert ref[name] == f"ERR {EINVAL}" and d is not None and d.prefix in NEW_IN_6_12, (
            name,
            ref[name],
            ours,
        )


_ALPHABET = st.sampled_from(list("/.+?:_sxtpkrobeiulmfacngdwy04 *"))


@st.composite
def section_names(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        base = draw(st.sampled_from([d.prefix for d in SECTION_DEFS]))
        if draw(st.booleans()):
            base = base.rstrip("+")
        return base + draw(st.text(_ALPHABET, max_size=8))
    return draw(st.text(_ALPHABET, max_size=16))


@settings(max_examples=400, deadline=None)
@given(section_names())
def test_property_against_libbpf_1_1(libbpf11: Libbpf11, name: str) -> None:
    compare([name], {name: libbpf11.query(name)})


# --------------------------------------------------------------------------------------------
# Against the libbpf.c source of Linux 6.12.

_SEC_DEF_RE = re.compile(
    r'SEC_DEF\("(?P<sec>[^"]+)",\s*(?P<ptype>\w+),\s*(?P<atype>\w+),\s*(?P<flags>[\w |]+?)\s*'
    r"(?:,\s*(?P<fn>\w+))?\)"
)

_ATTACH_FN_KIND = {
    "attach_kprobe": AttachKind.KPROBE,
    "attach_uprobe": AttachKind.UPROBE,
    "attach_kprobe_multi": AttachKind.KPROBE_MULTI,
    "attach_kprobe_session": AttachKind.KPROBE_SESSION,
    "attach_uprobe_multi": AttachKind.UPROBE_MULTI,
    "attach_ksyscall": AttachKind.KSYSCALL,
    "attach_usdt": AttachKind.USDT,
    "attach_tp": AttachKind.TRACEPOINT,
    "attach_raw_tp": AttachKind.RAW_TP,
    "attach_trace": AttachKind.TRACING,
    "attach_lsm": AttachKind.LSM,
    "attach_iter": AttachKind.ITER,
}


def test_table_copies_libbpf_6_12_source() -> None:
    if not LIBBPF_C_612.exists():
        pytest.skip(f"{LIBBPF_C_612} is missing")
    text = LIBBPF_C_612.read_text()
    start = text.index("static const struct bpf_sec_def section_defs[] = {")
    body = text[start : text.index("};", start)]
    rows = [m.groupdict() for m in _SEC_DEF_RE.finditer(body)]
    assert len(rows) == body.count("SEC_DEF(")
    assert [r["sec"] for r in rows] == [d.prefix for d in SECTION_DEFS]
    for r, d in zip(rows, SECTION_DEFS):
        assert d.prog_type == ProgType[r["ptype"]], d
        if r["atype"] == "0":
            assert d.expected_attach_type is None, d
        else:
            assert r["atype"].startswith("BPF_")
            assert d.expected_attach_type == AttachType[r["atype"][4:]], d
        flags = SecFlag.NONE
        for f in r["flags"].split("|"):
            flags |= SecFlag[f.strip().removeprefix("SEC_")]
        assert d.flags == flags, d
        if r["fn"] is None:
            assert not d.auto_attach, d
        else:
            assert d.auto_attach and d.attach_kind == _ATTACH_FN_KIND[r["fn"]], d


# --------------------------------------------------------------------------------------------
# Table and matching rules.


def test_table_shape() -> None:
    prefixes = [d.prefix for d in SECTION_DEFS]
    assert len(prefixes) == len(set(prefixes)) == 101
    for d in SECTION_DEFS:
        if d.xdp_frags:
            assert d.prog_type == ProgType.XDP
        if d.attach_btf:
            assert d.prog_type in (ProgType.TRACING, ProgType.EXT, ProgType.LSM)


def test_every_def_is_reachable() -> None:
    # no def is shadowed by an earlier one: its own base name selects it
    for d in SECTION_DEFS:
        name = d.prefix + "x" if d.prefix.endswith("/") else d.base
        assert find_sec_def(name) is d, d.prefix


def test_matching_rules() -> None:
    plus = SecDef("kprobe+", ProgType.KPROBE, None, SecFlag.NONE, AttachKind.KPROBE)
    assert sec_def_matches(plus, "kprobe")
    assert sec_def_matches(plus, "kprobe/")
    assert sec_def_matches(plus, "kprobe/x/y")
    assert not sec_def_matches(plus, "kprobex")
    assert not sec_def_matches(plus, "kprobe.multi/x")
    assert not sec_def_matches(plus, "kprob")
    assert not sec_def_matches(plus, "kprobe+")
    slash = SecDef("sec/", ProgType.KPROBE, None, SecFlag.NONE, AttachKind.KPROBE)
    assert sec_def_matches(slash, "sec/")
    assert sec_def_matches(slash, "sec/x")
    assert not sec_def_matches(slash, "sec")
    assert not sec_def_matches(slash, "secx")
    exact = SECTION_DEFS[0]
    assert exact.prefix == "socket"
    assert exact.matches("socket")
    assert not exact.matches("socket/")
    assert not exact.matches("socket1")


def test_first_match_wins() -> None:
    assert find_sec_def("sk_reuseport/migrate").prefix == "sk_reuseport/migrate"  # type: ignore[union-attr]
    assert find_sec_def("xdp.frags/devmap").prefix == "xdp.frags/devmap"  # type: ignore[union-attr]
    assert find_sec_def("cgroup/sock_create").prefix == "cgroup/sock_create"  # type: ignore[union-attr]
    assert find_sec_def("tc/ingress").prefix == "tc/ingress"  # type: ignore[union-attr]
    assert find_sec_def("tc/other") is None  # "tc" is exact
    assert find_sec_def("uprobe.s/x").prefix == "uprobe.s+"  # type: ignore[union-attr]
    assert find_sec_def("uprobe.multi.s/x").prefix == "uprobe.multi.s+"  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# parse_section().


def _p(name: str) -> ProgramSection:
    sec = parse_section(name)
    assert sec is not None, name
    return sec


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("tp/syscalls/sys_enter_execve", "syscalls/sys_enter_execve"),
        ("tracepoint/sched/sched_switch", "sched/sched_switch"),
        ("tp", None),
        ("tp/", ""),
        ("raw_tp/sys_enter", "sys_enter"),
        ("raw_tp.w/bpf_test_finish", "bpf_test_finish"),
        ("raw_tp", None),
        ("kprobe/do_unlinkat", "do_unlinkat"),
        ("kprobe/do_unlinkat+0x10", "do_unlinkat+0x10"),
        ("kretprobe/do_unlinkat", "do_unlinkat"),
        ("kprobe", None),
        ("kprobe.multi/bpf_fentry_test*", "bpf_fentry_test*"),
        ("uprobe//bin/bash:readline", "/bin/bash:readline"),
        ("uprobe.s//bin/bash:readline+8", "/bin/bash:readline+8"),
        ("uprobe", None),
        ("uprobe.multi//bin/bash:read*", "/bin/bash:read*"),
        ("usdt//usr/bin/python3:python:function__entry", "/usr/bin/python3:python:function__entry"),
        ("ksyscall/execve", "execve"),
        ("kretsyscall/execve", "execve"),
        ("fentry/", ""),
        ("fentry", None),
        ("fentry/do_unlinkat", "do_unlinkat"),
        ("fexit.s/bpf_fentry_test1", "bpf_fentry_test1"),
        ("freplace/xdp_prog", "xdp_prog"),
        ("lsm.s/file_open", "file_open"),
        ("lsm_cgroup/socket_bind", "socket_bind"),
        ("iter.s/task", "task"),
        ("iter/bpf_map_elem", "bpf_map_elem"),
        ("struct_ops/x", "x"),
        ("struct_ops", None),
        ("tcx/ingress", None),
        ("xdp.frags/devmap", None),
        ("sk_skb/stream_parser", None),
        ("cgroup/connect4", None),
        ("socket", None),
        ("?kprobe/do_unlinkat", "do_unlinkat"),
    ],
)
def test_attach_target(name: str, target: str | None) -> None:
    assert _p(name).attach_target == target


def test_autoload() -> None:
    assert _p("xdp").autoload is True
    sec = _p("?xdp")
    assert sec.autoload is False
    assert sec.name == "?xdp" and sec.sec_name == "xdp"
    assert parse_section("??xdp") is None  # only one '?' is stripped
    assert parse_section("?") is None
    assert parse_section("xdp?") is None


@pytest.mark.parametrize(
    ("name", "sleepable"),
    [
        ("uprobe.s//bin/bash:readline", True),
        ("uretprobe.s//bin/bash:readline", True),
        ("uprobe//bin/bash:readline", False),
        ("uprobe.multi.s//bin/bash:readline", True),
        ("uretprobe.multi.s//bin/bash:readline", True),
        ("usdt.s", True),
        ("usdt", False),
        ("fentry.s/x", True),
        ("fmod_ret.s/x", True),
        ("fexit.s/x", True),
        ("fentry/x", False),
        ("lsm.s/file_open", True),
        ("?lsm.s/file_open", True),
        ("lsm/file_open", False),
        ("iter.s/task", True),
        ("iter/task", False),
        ("syscall", True),
        ("struct_ops.s/x", True),
        ("struct_ops/x", False),
        ("xdp", False),
        ("kprobe/x", False),
    ],
)
def test_sleepable(name: str, sleepable: bool) -> None:
    assert _p(name).sleepable is sleepable


def test_xdp_frags_and_types() -> None:
    for name, attach in [
        ("xdp.frags", A.XDP),
        ("xdp.frags/devmap", A.XDP_DEVMAP),
        ("xdp.frags/cpumap", A.XDP_CPUMAP),
    ]:
        sec = _p(name)
        assert sec.xdp_frags and sec.prog_type == P.XDP and sec.expected_attach_type == attach
    for name in ("xdp", "xdp/devmap", "xdp/cpumap", "tc"):
        assert not _p(name).xdp_frags
    assert parse_section("xdp.frags/other") is None
    assert parse_section("xdp/foo") is None


def test_attach_kind_and_btf() -> None:
    assert _p("tp/a/b").attach_kind is AttachKind.TRACEPOINT
    assert _p("raw_tp.w/x").attach_kind is AttachKind.RAW_TP
    assert _p("kretprobe/x").attach_kind is AttachKind.KPROBE
    assert _p("uretprobe.s//bin/sh:main").attach_kind is AttachKind.UPROBE
    assert _p("ksyscall/execve").attach_kind is AttachKind.KSYSCALL
    assert _p("usdt.s").attach_kind is AttachKind.USDT
    assert _p("fmod_ret/x").attach_kind is AttachKind.TRACING
    assert _p("lsm/x").attach_kind is AttachKind.LSM
    assert _p("iter/task").attach_kind is AttachKind.ITER
    assert _p("xdp").attach_kind is AttachKind.XDP
    assert _p("tc/ingress").attach_kind is AttachKind.TCX
    assert _p("tc").attach_kind is AttachKind.TC
    assert _p("cgroup/connect4").attach_kind is AttachKind.CGROUP
    assert _p("fentry/x").attach_btf and _p("freplace/x").attach_btf
    assert not _p("kprobe/x").attach_btf
    assert _p("kprobe").sec_def.auto_attach and not _p("xdp").sec_def.auto_attach


def test_load_expected_attach_type() -> None:
    xdp = _p("xdp")
    assert load_expected_attach_type(xdp) == A.XDP
    assert load_expected_attach_type(xdp, kernel_has_exp_attach_type=False) is None
    # SEC_ATTACHABLE without _OPT keeps it
    dev = _p("xdp/devmap")
    assert load_expected_attach_type(dev, kernel_has_exp_attach_type=False) == A.XDP_DEVMAP
    usdt = _p("usdt/x:y:z")
    assert usdt.expected_attach_type is None
    assert load_expected_attach_type(usdt) is None
    assert (
        load_expected_attach_type(usdt, kernel_has_uprobe_multi_link=True) == A.TRACE_UPROBE_MULTI
    )
    assert (
        load_expected_attach_type(usdt.sec_def, kernel_has_uprobe_multi_link=True)
        == A.TRACE_UPROBE_MULTI
    )
    assert load_expected_attach_type(_p("kprobe/x"), kernel_has_uprobe_multi_link=True) is None


def test_prog_type_by_name_errors() -> None:
    with pytest.raises(SpecError, match="failed to guess program type") as info:
        prog_type_by_name("nope")
    assert info.value.section == "nope"
    assert info.value.hint is not None and "kprobe+" in info.value.hint
    with pytest.raises(SpecError):
        attach_type_by_name("kprobe/x")  # known but not SEC_ATTACHABLE
    assert attach_type_by_name("cgroup_skb/ingress") == A.CGROUP_INET_INGRESS
    assert prog_type_by_name("cgroup_skb/ingress") == (P.CGROUP_SKB, A.CGROUP_INET_INGRESS)
    assert prog_type_by_name("cgroup/skb") == (P.CGROUP_SKB, None)


@given(st.text(max_size=24))
def test_property_parse_consistency(name: str) -> None:
    sec = parse_section(name)
    stripped = name[1:] if name.startswith("?") else name
    d = find_sec_def(stripped)
    if sec is None:
        assert d is None
        return
    assert sec.sec_def is d and d.matches(stripped)
    assert sec.autoload is not name.startswith("?")
    assert (sec.prog_type, sec.expected_attach_type) == prog_type_by_name(stripped)
    if sec.attach_target is not None:
        assert stripped.endswith(sec.attach_target)
        assert stripped == f"{d.base}/{sec.attach_target}" or d.prefix.endswith("/")
