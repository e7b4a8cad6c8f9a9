"""Helpers to compare bpfobj's `prepare` output with libbpf's final instructions.

libbpf's side is tests/harness/libbpf_prepare.c: it opens and *loads* an object with the
system libbpf (root only) and prints every loaded program's instructions after
``bpf_object__load`` (``bpf_program__insns``), the maps with their fds, and libbpf's whole
debug log. bpfobj's side is ``python -m bpfobj prepare OBJ --json [--btf PATH]``.

The two can only differ where they legitimately must: map references. libbpf's final
ld_imm64 carries ``src_reg = BPF_PSEUDO_MAP_FD (1)`` / ``BPF_PSEUDO_MAP_VALUE (2)`` and
``imm = map fd``; bpfobj's carries ``BPF_PSEUDO_MAP_IDX (5)`` / ``BPF_PSEUDO_MAP_IDX_VALUE (6)``
and ``imm = map index``. :func:`normalize` turns both into the same shape:

* the first slot of a map-referencing ld_imm64 gets ``imm = 0`` and src_reg 1 (MAP_FD and
  MAP_IDX) or 2 (MAP_VALUE and MAP_IDX_VALUE), and the map it names is appended to its text
  as ``"<hex> map_fd(KEY)"`` / ``"<hex> map_value(KEY)+OFF"``;
* the second slot is left as is (for *_VALUE it holds the value offset in both loaders);
* KEY is the map's name for ``.maps`` maps and its ELF section for internal maps
  (libbpf names those "<object name prefix>.rodata", bpfobj ".rodata"), see :func:`map_key`;
* every other instruction is compared byte for byte as the 16-hex-char string both print
  (the 8 bytes of ``struct bpf_insn`` in memory order).

Everything here assumes a little-endian host and object (x86-64, arm64): the objects are
built for the host and loaded into its kernel.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harnessbuild

ROOT = Path(__file__).resolve().parent.parent
HARNESS_SRC = harnessbuild.source("libbpf_prepare")

LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW
JMP_CALL = 0x85  # BPF_JMP | BPF_CALL
PSEUDO_MAP_FD = 1
PSEUDO_MAP_VALUE = 2
PSEUDO_MAP_IDX = 5
PSEUDO_MAP_IDX_VALUE = 6
CORE_POISON_IMM = 0xBAD2310  # call 195896080: libbpf's "bad relo" for a failed CO-RE relo
MAP_POISON_BASE = 2001000000  # call 2001000000 + map index: ld_imm64 of a non-created map


class ParityError(RuntimeError):
    """A side could not produce its JSON (crash, no JSON, or a failed load/prepare)."""


# ---------------------------------------------------------------------------------------
# instructions


@dataclass(frozen=True)
class Insn:
    """One decoded struct bpf_insn (little-endian memory order)."""

    code: int
    dst: int
    src: int
    off: int
    imm: int

    @classmethod
    def from_hex(cls, text: str) -> Insn:
        raw = bytes.fromhex(text)
        if len(raw) != 8:
            raise ValueError(f"instruction {text!r} is not 8 bytes")
        code, regs, off, imm = struct.unpack("<BBhi", raw)
        return cls(code, regs & 0x0F, regs >> 4, off, imm)

    def to_hex(self) -> str:
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm).hex()

    def replace(self, **changes: int) -> Insn:
        fields = {"code": self.code, "dst": self.dst, "src": self.src, "off": self.off}
        fields["imm"] = self.imm
        fields.update(changes)
        return Insn(**fields)

    def describe(self) -> str:
        return (
            f"code=0x{self.code:02x} dst=r{self.dst} src={self.src} off={self.off} imm={self.imm}"
        )


def map_key(m: Mapping[str, Any]) -> str:
    """How a map is named across loaders: its name for .maps maps, else its ELF section."""
    section = m.get("section")
    if not section or section in (".maps", "maps"):
        return str(m["name"])
    return str(section)


def map_type_label(value: Any) -> str:
    """A map type as libbpf_bpf_map_type_str() spells it ("hash", "perf_event_array")."""
    if isinstance(value, int):
        from bpfobj.uapi import MapType, name_of

        return name_of(value, MapType)
    text = str(value).lower()
    return text.removeprefix("bpf_map_type_")


def normalize_insns(
    insns: Sequence[str], map_of: Mapping[tuple[int, int], str]
) -> tuple[list[str], list[tuple[int, str, str, int]]]:
    """Normalise one program's instructions.

    ``map_of[(src_reg, imm)]`` names the map (by :func:`map_key`) an ld_imm64 with that
    pseudo src_reg and imm refers to; ld_imm64s with a src_reg in 1, 2, 5, 6 are rewritten
    as described in the module docstring. Returns the normalised instruction strings and
    the map references found, as ``(insn index, "fd"|"value", map key, value_off)``.
    """
    out: list[str] = []
    refs: list[tuple[int, str, str, int]] = []
    i = 0
    while i < len(insns):
        insn = Insn.from_hex(insns[i])
        if insn.code == LD_IMM64 and i + 1 < len(insns):
            second = Insn.from_hex(insns[i + 1])
            if insn.src in (PSEUDO_MAP_FD, PSEUDO_MAP_IDX, PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX_VALUE):
                is_value = insn.src in (PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX_VALUE)
                key = map_of.get(
                    (insn.src, insn.imm), f"<unknown map src={insn.src} imm={insn.imm}>"
                )
                plain = insn.replace(src=PSEUDO_MAP_VALUE if is_value else PSEUDO_MAP_FD, imm=0)
                if is_value:
                    out.append(f"{plain.to_hex()} map_value({key})+{second.imm}")
                    refs.append((i, "value", key, second.imm))
                else:
                    out.append(f"{plain.to_hex()} map_fd({key})")
                    refs.append((i, "fd", key, 0))
            else:
                out.append(insns[i].lower())
            out.append(insns[i + 1].lower())
            i += 2
            continue
        out.append(insns[i].lower())
        i += 1
    return out, refs


def normalize(side: Mapping[str, Any], *, loader: str | None = None) -> dict[str, Any]:
    """Make libbpf's or bpfobj's JSON comparable.

    `loader` is "libbpf" or "bpfobj"; by default it is guessed ("libbpf_version" is only
    in the harness's output). Returns::

        {"loader": ..., "maps": {KEY: type label},
         "programs": {name: {"section", "insns": [normalised], "map_refs": [(i, kind, KEY, off)]}}}

    libbpf's map references are resolved by fd (the harness prints every map's fd),
    bpfobj's by index into its "maps" list.
    """
    if loader is None:
        loader = "libbpf" if "libbpf_version" in side else "bpfobj"
    if "error" in side:
        raise ParityError(f"{loader} failed: {side.get('message') or side['error']}")
    maps: list[Mapping[str, Any]] = list(side.get("maps", []))
    map_of: dict[tuple[int, int], str] = {}
    for pos, m in enumerate(maps):
        key = map_key(m)
        if loader == "libbpf":
            fd = int(m["fd"])
            map_of[(PSEUDO_MAP_FD, fd)] = key
            map_of[(PSEUDO_MAP_VALUE, fd)] = key
        else:
            idx = int(m.get("index", pos))
            map_of[(PSEUDO_MAP_IDX, idx)] = key
            map_of[(PSEUDO_MAP_IDX_VALUE, idx)] = key
    programs: dict[str, dict[str, Any]] = {}
    for p in side.get("programs", []):
        insns, refs = normalize_insns(p["insns"], map_of)
        programs[str(p["name"])] = {
            "section": str(p.get("section", "")).removeprefix("?"),
            "insns": insns,
            "map_refs": refs,
        }
    return {
        "loader": loader,
        "maps": {map_key(m): map_type_label(m.get("type")) for m in maps},
        "programs": programs,
    }


def check_map_refs(side: Mapping[str, Any]) -> list[str]:
    """Cross-check a side's own "map_refs" against what its instructions say.

    Returns problems (empty when consistent): every map ld_imm64 must be listed at its
    first slot's index, with the same map (its "map_index" into "maps", else its "map"
    name) and value offset, and nothing else may be listed. Works for both loaders.
    """
    norm = normalize(side)
    maps = list(side.get("maps", []))
    by_index = {int(m.get("index", pos)): map_key(m) for pos, m in enumerate(maps)}
    by_name = {str(m["name"]): map_key(m) for m in maps}
    problems: list[str] = []
    for p in side.get("programs", []):
        name = str(p["name"])
        from_insns = sorted(
            (i, key, off) for i, _kind, key, off in norm["programs"][name]["map_refs"]
        )
        listed = []
        for r in p.get("map_refs", []):
            idx = r.get("map_index")
            if idx is not None and int(idx) in by_index:
                key = by_index[int(idx)]
            else:
                key = by_name.get(str(r.get("map")), f"<unknown map {r.get('map')!r}>")
            listed.append((int(r["insn"]), key, int(r.get("value_off") or 0)))
        if from_insns != sorted(listed):
            problems.append(
                f"{name}: map_refs list {sorted(listed)} but the instructions say {from_insns}"
            )
    return problems


def _context(insns: Sequence[str], at: int, width: int = 3) -> list[str]:
    lines = []
    for j in range(max(0, at - width), min(len(insns), at + width + 1)):
        text = insns[j]
        try:
            desc = Insn.from_hex(text.split()[0]).describe()
        except ValueError:
            desc = "?"
        lines.append(f"  {'>' if j == at else ' '} {j:5d}: {text:40s} {desc}")
    return lines


def diff_programs(
    expected: Mapping[str, Any],
    actual: Mapping[str, Any],
    *,
    limit: int = 8,
    core: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> list[str]:
    """Human-readable differences between two :func:`normalize` results (empty if equal).

    `expected` is normally libbpf's, `actual` bpfobj's. Programs are matched by name;
    within a program at most `limit` differing instructions are shown, with context.
    `core` (e.g. :func:`placed_core_relos` of libbpf's view) adds the CO-RE decision
    made at a differing instruction, if any.
    """
    out: list[str] = []
    exp_progs = expected["programs"]
    act_progs = actual["programs"]
    missing = sorted(set(exp_progs) - set(act_progs))
    extra = sorted(set(act_progs) - set(exp_progs))
    if missing:
        out.append(f"programs only {expected['loader']} has: {missing}")
    if extra:
        out.append(f"programs only {actual['loader']} has: {extra}")
    for name in sorted(set(exp_progs) & set(act_progs)):
        e, a = exp_progs[name], act_progs[name]
        if e["section"] != a["section"]:
            out.append(f"{name}: section {e['section']!r} vs {a['section']!r}")
        ei, ai = e["insns"], a["insns"]
        if len(ei) != len(ai):
            out.append(
                f"{name}: {len(ei)} insns ({expected['loader']}) vs {len(ai)} ({actual['loader']})"
            )
        shown = 0
        for j in range(min(len(ei), len(ai))):
            if ei[j] == ai[j]:
                continue
            if shown == limit:
                out.append(f"{name}: ... more differing instructions")
                break
            shown += 1
            out.append(f"{name}: insn #{j} differs")
            out.append(f"  {expected['loader']}:")
            out.extend(_context(ei, j))
            out.append(f"  {actual['loader']}:")
            out.extend(_context(ai, j))
            for rec in (core or {}).get(name, ()):
                if rec.get("insn") == j:
                    out.append(
                        f"  CO-RE at #{j} ({rec.get('origin', name)} relo #{rec.get('relo')}): "
                        f"{rec.get('kind')} {rec.get('local_spec')} -> "
                        f"{rec.get('target_spec')}: {rec.get('outcome')} "
                        f"{rec.get('old')} -> {rec.get('new')}"
                    )
    return out


# ---------------------------------------------------------------------------------------
# libbpf's side


def harness_missing_reason() -> str | None:
    """Why the libbpf harness cannot be built or run here (None when it can)."""
    return harnessbuild.missing_reason()


def not_root_reason() -> str | None:
    """libbpf only has final instructions after a real load: that needs root."""
    if os.geteuid() != 0:
        return (
            "prepare parity needs root: libbpf's final instructions exist only after "
            "bpf_object__load() loads the programs into the kernel (CAP_BPF/CAP_SYS_ADMIN)"
        )
    return None


def build_harness() -> Path:
    """Compile tests/harness/libbpf_prepare.c (cached by content, see harnessbuild)."""
    return harnessbuild.build("libbpf_prepare")


def run_libbpf(
    obj: Path | str, btf: Path | str | None = None, *, harness: Path | None = None,
    only: Sequence[str] = (),
) -> dict[str, Any]:
    """Load `obj` with libbpf and return the harness's JSON.

    On a failed open/load the dict has "stage", "error" (errno) and "message" instead of
    "programs"/"maps" (the harness exits 1); libbpf's log is in "log" either way.
    Raises ParityError when the harness crashes or prints no JSON.
    """
    exe = harness or build_harness()
    cmd = [str(exe), str(obj)]
    if btf is not None:
        cmd += ["--btf", str(btf)]
    if only:
        cmd += ["--only", ",".join(only)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode not in (0, 1):
        raise ParityError(
            f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )
    try:
        data: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ParityError(f"{' '.join(cmd)} printed no JSON ({exc}): {proc.stdout[:2000]}") from exc
    return data


def libbpf_failure(view: Mapping[str, Any], tail: int = 60) -> str:
    """A readable account of a failed libbpf load (error and the end of its log)."""
    log = "\n".join(view.get("log", [])[-tail:])
    return f"libbpf {view.get('stage')} failed: errno {view.get('error')} ({view.get('message')})\n{log}"


# ---------------------------------------------------------------------------------------
# bpfobj's side


def run_bpfobj(
    obj: Path | str, btf: Path | str | None = None, *, only: Sequence[str] = ()
) -> dict[str, Any]:
    """``python -m bpfobj prepare OBJ --json [--btf PATH]`` (cwd = the checkout).

    Raises ParityError with bpfobj's stdout/stderr when it exits non-zero or prints no JSON.
    """
    cmd = [sys.executable, "-m", "bpfobj", "prepare", str(obj), "--json"]
    if btf is not None:
        cmd += ["--btf", str(btf)]
    for name in only:
        cmd += ["--program", name]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ParityError(
            f"{' '.join(cmd[1:])} exited {proc.returncode}\n"
            f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
        )
    try:
        data: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ParityError(f"bpfobj prepare printed no JSON ({exc}): {proc.stdout[:2000]}") from exc
    return data


# ---------------------------------------------------------------------------------------
# libbpf's CO-RE decisions, from its debug log

_RELO = re.compile(r"^(?:libbpf: )?prog '(?P<prog>[^']+)': relo #(?P<relo>\d+): (?P<rest>.*)$")
_SPEC = re.compile(r"^<(?P<kind>[a-z_]+)> \[(?P<id>\d+)\] (?P<spec>.*)$")
_CAND = re.compile(r"^matching candidate #\d+ <(?P<kind>[a-z_]+)> \[(?P<id>\d+)\] (?P<spec>.*)$")
_PATCH = re.compile(
    r"^patched insn #(?P<insn>\d+) \((?P<cls>[A-Z0-9/]+)\) (?P<what>imm64|imm|off|mem_sz) "
    r"(?P<old>\d+) -> (?P<new>\d+)$"
)
_POISON = re.compile(r"^substituting insn #(?P<insn>\d+) w/ invalid insn$")


def libbpf_core_relos(log: Iterable[str]) -> list[dict[str, Any]]:
    """libbpf's CO-RE decisions, parsed from its debug log (libbpf 1.1 wording).

    One dict per relocation libbpf applied, in log order, shaped like bpfobj's
    "core_relos" entries: program (the (sub)program libbpf relocated: a .text subprogram
    is named itself, not the entry program it ends up in), relo (index of the record in
    its ELF section's .BTF.ext CO-RE list), insn (index within that (sub)program, before
    subprograms are appended), kind ("byte_off", "field_exists", "type_exists", ...),
    local_type_id / local_spec, target_type_id / target_spec (first matching candidate;
    None when none matched), outcome ("patched" or "poisoned"), old / new (the patched
    value; for LDX size changes an extra {"mem_sz": (old, new)}).
    """
    relos: dict[tuple[str, int], dict[str, Any]] = {}
    order: list[tuple[str, int]] = []
    for line in log:
        m = _RELO.match(line)
        if not m:
            continue
        key = (m["prog"], int(m["relo"]))
        rest = m["rest"]
        rec = relos.get(key)
        if rec is None:
            rec = {
                "program": m["prog"],
                "relo": key[1],
                "insn": None,
                "kind": None,
                "local_type_id": None,
                "local_spec": None,
                "target_type_id": None,
                "target_spec": None,
                "outcome": None,
                "old": None,
                "new": None,
            }
            relos[key] = rec
            order.append(key)
        if (s := _SPEC.match(rest)) and rec["kind"] is None:
            rec["kind"] = s["kind"]
            rec["local_type_id"] = int(s["id"])
            rec["local_spec"] = s["spec"]
        elif (c := _CAND.match(rest)) and rec["target_type_id"] is None:
            rec["target_type_id"] = int(c["id"])
            rec["target_spec"] = c["spec"]
        elif p := _PATCH.match(rest):
            rec["insn"] = int(p["insn"])
            rec["outcome"] = "patched"
            if p["what"] == "mem_sz":
                rec["mem_sz"] = (int(p["old"]), int(p["new"]))
            else:
                rec["old"], rec["new"] = int(p["old"]), int(p["new"])
        elif q := _POISON.match(rest):
            # a poisoned ld_imm64 logs its second slot first: keep the first slot's index
            insn = int(q["insn"])
            rec["insn"] = insn if rec["outcome"] != "poisoned" else min(rec["insn"], insn)
            rec["outcome"] = "poisoned"
    return [relos[k] for k in order if relos[k]["outcome"] is not None]


def poisoned_insns(side: Mapping[str, Any]) -> dict[str, list[int]]:
    """Per program, the indexes of libbpf-style poison calls in its final instructions.

    ``call 0xbad2310`` marks a CO-RE relocation that found no target (libbpf keeps it in
    dead code; the verifier rejects it only if reachable); ``call 2001000000 + N`` an
    ld_imm64 of map #N that was not created (autocreate off).
    """
    found: dict[str, list[int]] = {}
    for p in side.get("programs", []):
        hits = []
        for j, text in enumerate(p["insns"]):
            insn = Insn.from_hex(text)
            if (
                insn.code == JMP_CALL
                and insn.src == 0
                and (
                    insn.imm == CORE_POISON_IMM
                    or MAP_POISON_BASE <= insn.imm < MAP_POISON_BASE + 1000
                )
            ):
                hits.append(j)
        if hits:
            found[str(p["name"])] = hits
    return found


_ADDED = re.compile(
    r"^(?:libbpf: )?prog '(?P<main>[^']+)': added (?P<n>\d+) insns from sub-prog '(?P<sub>[^']+)'$"
)


def libbpf_layout(view: Mapping[str, Any]) -> dict[str, list[tuple[str, int]]]:
    """Per loaded program, where libbpf put each piece: [(program or subprogram, start)].

    Rebuilt from the "added N insns from sub-prog" debug lines (libbpf appends depth first,
    in call order, and logs each append as it happens) and the final instruction count.
    """
    added: dict[str, list[tuple[str, int]]] = {}
    for line in view.get("log", []):
        if m := _ADDED.match(line):
            added.setdefault(m["main"], []).append((m["sub"], int(m["n"])))
    layout: dict[str, list[tuple[str, int]]] = {}
    for p in view.get("programs", []):
        name = str(p["name"])
        subs = added.get(name, [])
        pos = len(p["insns"]) - sum(n for _, n in subs)
        pieces = [(name, 0)]
        for sub, n in subs:
            pieces.append((sub, pos))
            pos += n
        layout[name] = pieces
    return layout


def placed_core_relos(view: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """libbpf's CO-RE decisions moved into each loaded program's final frame.

    Like :func:`libbpf_core_relos`, but per main program, with "insn" the index in its
    final instructions, "program" the main program and "origin" the (sub)program the
    record came from (a subprogram's records appear once per program that appends it).
    """
    by_origin: dict[str, list[dict[str, Any]]] = {}
    for rec in libbpf_core_relos(view.get("log", [])):
        by_origin.setdefault(rec["program"], []).append(rec)
    out: dict[str, list[dict[str, Any]]] = {}
    for main, pieces in libbpf_layout(view).items():
        recs = []
        for origin, base in pieces:
            for rec in by_origin.get(origin, []):
                recs.append({**rec, "program": main, "origin": origin, "insn": base + rec["insn"]})
        out[main] = sorted(recs, key=lambda r: r["insn"])
    return out


def as_bpfobj_shape(view: Mapping[str, Any]) -> dict[str, Any]:
    """libbpf's view rewritten the way bpfobj's prepare JSON spells things.

    Map references become MAP_IDX / MAP_IDX_VALUE with imm = map index, internal maps are
    named by their section, fds disappear. Used to check :func:`normalize` itself: the
    result must normalise to exactly what `view` normalises to.
    """
    maps = list(view.get("maps", []))
    index_of_fd = {int(m["fd"]): pos for pos, m in enumerate(maps)}
    out_maps = [
        {
            "index": pos,
            "name": m["name"] if m.get("section") == ".maps" else m["section"],
            "section": m["section"],
            "type": m["type"],
        }
        for pos, m in enumerate(maps)
    ]
    programs = []
    for p in view.get("programs", []):
        insns = list(p["insns"])
        refs = []
        j = 0
        while j < len(insns):
            insn = Insn.from_hex(insns[j])
            if insn.code == LD_IMM64 and insn.src in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE):
                idx = index_of_fd[insn.imm]
                is_value = insn.src == PSEUDO_MAP_VALUE
                src = PSEUDO_MAP_IDX_VALUE if is_value else PSEUDO_MAP_IDX
                insns[j] = insn.replace(src=src, imm=idx).to_hex()
                off = Insn.from_hex(insns[j + 1]).imm if is_value else 0
                refs.append(
                    {"insn": j, "map_index": idx, "map": out_maps[idx]["name"], "value_off": off}
                )
            j += 2 if insn.code == LD_IMM64 else 1
        programs.append(
            {"name": p["name"], "section": p["section"], "insns": insns, "map_refs": refs}
        )
    return {"maps": out_maps, "programs": programs, "core_relos": []}
