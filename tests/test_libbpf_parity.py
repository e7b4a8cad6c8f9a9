"""bpfobj's open-time view of each catalogue object must match libbpf's.

For every object in tests/objects.py that libbpf can open, run the libbpf harness
(tests/harness/libbpf_open.c: bpf_object__open_file, no load) and
``python -m bpfobj inspect OBJ --json`` and compare:

programs (keyed by name; .text subprograms are not programs)
    section, type, insn_cnt (own instructions only: libbpf appends subprograms at load),
    autoload, and expected_attach_type where libbpf sets one. libbpf drops the leading
    '?' of SEC("?...") from the section name; bpfobj may report it either way. Programs
    whose section libbpf 1.1 does not know (it leaves them "unspec", listed per object in
    ObjCase.libbpf_unknown_programs) are compared without type/attach type.
maps
    BTF-defined maps are keyed by name; libbpf's internal maps (.data, .rodata, .bss,
    .data.*, .rodata.*, .bss.*, .kconfig) by section, because libbpf names them after a
    truncated object file name (see the harness's header comment). Compared: type,
    key_size, value_size, max_entries, flags (and numa_node / map_extra when bpfobj
    reports them). libbpf keeps map-in-map inner definitions out of the object's map list;
    if bpfobj lists them as "<outer>.inner" they are checked against libbpf's inner map.

The other tests here check the harness and the catalogue themselves: every object
builds, and libbpf opens exactly the objects the catalogue says it can.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import harnessbuild
import objects
import pytest
from objects import OBJECTS, ObjCase

ROOT = Path(__file__).resolve().parent.parent
EM_BPF = 247
INTERNAL_PREFIXES = (".data", ".rodata", ".bss", ".kconfig")
MAP_FIELDS = ("type", "key_size", "value_size", "max_entries", "flags")
OPTIONAL_MAP_FIELDS = ("numa_node", "map_extra")
MAP_IN_MAP = ("array_of_maps", "hash_of_maps")


@pytest.fixture(scope="session")
def harness() -> Path:
    return harnessbuild.build_or_skip("libbpf_open")


def _is_libbpf_11(view: dict[str, Any]) -> bool:
    return str(view.get("libbpf_version", "")).lstrip("v").startswith("1.1")


def bpfobj_inspect(path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bpfobj", "inspect", str(path), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"bpfobj inspect {path.name} --json exited {proc.returncode}\n"
            f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
        )
    try:
        data: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"bpfobj inspect printed no JSON ({exc}): {proc.stdout[:2000]}")
    return data


# ---------------------------------------------------------------------------------------
# comparison


def _map_is_internal(m: dict[str, Any]) -> bool:
    section = m.get("section") or ""
    return bool(m.get("internal")) or section.startswith(INTERNAL_PREFIXES)


def _map_key(m: dict[str, Any]) -> str:
    """Internal maps by section (their names depend on the file name), others by name."""
    if _map_is_internal(m):
        return f"section {m.get('section')}"
    return f"map {m.get('name')}"


def _index(items: list[dict[str, Any]], key: Any, what: str, problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        k = key(item)
        if k in out:
            problems.append(f"{what}: duplicate {k!r}")
        out[k] = item
    return out


def compare_programs(
    case: ObjCase, lb: list[dict[str, Any]], ours: list[dict[str, Any]]
) -> list[str]:
    problems: list[str] = []
    lb_by = _index(lb, lambda p: p["name"], "libbpf programs", problems)
    our_by = _index(ours, lambda p: p.get("name"), "bpfobj programs", problems)
    for name in sorted(lb_by.keys() - our_by.keys()):
        problems.append(f"program {name}: libbpf has it, bpfobj does not")
    for name in sorted(our_by.keys() - lb_by.keys()):
        problems.append(f"program {name}: bpfobj has it, libbpf does not (a subprogram?)")
    for name in sorted(lb_by.keys() & our_by.keys()):
        want, got = lb_by[name], our_by[name]
        section = got.get("section")
        if section not in (want["section"], "?" + want["section"]):
            problems.append(f"program {name}: section {section!r}, libbpf {want['section']!r}")
        for fld in ("insn_cnt", "autoload"):
            if got.get(fld) != want[fld]:
                problems.append(f"program {name}: {fld} {got.get(fld)!r}, libbpf {want[fld]!r}")
        if name in case.libbpf_unknown_programs:
            continue  # libbpf 1.1 does not know the section: nothing to compare against
        if got.get("type") != want["type"]:
            problems.append(f"program {name}: type {got.get('type')!r}, libbpf {want['type']!r}")
        eat = want["expected_attach_type"]
        if eat is not None and got.get("expected_attach_type") != eat:
            problems.append(
                f"program {name}: expected_attach_type "
                f"{got.get('expected_attach_type')!r}, libbpf {eat!r}"
            )
    return problems


def _compare_map_fields(
    label: str, want: dict[str, Any], got: dict[str, Any], problems: list[str]
) -> None:
    for fld in MAP_FIELDS:
        if got.get(fld) != want.get(fld):
            problems.append(f"{label}: {fld} {got.get(fld)!r}, libbpf {want.get(fld)!r}")
    for fld in OPTIONAL_MAP_FIELDS:
        if fld in got and fld in want and got[fld] != want[fld]:
            problems.append(f"{label}: {fld} {got[fld]!r}, libbpf {want[fld]!r}")


def compare_maps(lb: list[dict[str, Any]], ours: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    inner = {
        f"map {m['name']}.inner": m["inner_map"]
        for m in lb
        if m["type"] in MAP_IN_MAP and m.get("inner_map")
    }
    ours_inner = [m for m in ours if _map_key(m) in inner]
    ours = [m for m in ours if _map_key(m) not in inner]
    lb_by = _index(lb, _map_key, "libbpf maps", problems)
    our_by = _index(ours, _map_key, "bpfobj maps", problems)
    for key in sorted(lb_by.keys() - our_by.keys()):
        problems.append(f"{key}: libbpf has it, bpfobj does not")
    for key in sorted(our_by.keys() - lb_by.keys()):
        problems.append(f"{key}: bpfobj has it, libbpf does not")
    for key in sorted(lb_by.keys() & our_by.keys()):
        _compare_map_fields(key, lb_by[key], our_by[key], problems)
    for m in ours_inner:
        _compare_map_fields(f"{_map_key(m)} (inner)", inner[_map_key(m)], m, problems)
    return problems


# ---------------------------------------------------------------------------------------
# tests


@pytest.mark.parametrize("case", OBJECTS, ids=objects.ids(OBJECTS))
def test_catalogue_object_builds(case: ObjCase, bpf_build: objects.BuildFn) -> None:
    path = objects.build_case(case, bpf_build)
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", path
    assert head[4] == 2, "not ELFCLASS64"
    big = head[5] == 2
    assert big == case.big_endian, f"{path.name}: big-endian={big}"
    machine = int.from_bytes(head[18:20], "big" if big else "little")
    assert machine == EM_BPF, f"{path.name}: e_machine {machine}"
    assert (objects.PROGS / case.source).exists()


def test_catalogue_is_consistent() -> None:
    sources = {p.name for p in objects.PROGS.glob("obj_*.c")}
    used = {case.source for case in OBJECTS}
    assert sources == used, f"obj_*.c not in the catalogue: {sorted(sources - used)}"
    for case in OBJECTS:
        assert case.notes, case.name
        if case.libbpf_unknown_programs:
            assert case.libbpf_can_open, case.name


@pytest.mark.parametrize("case", OBJECTS, ids=objects.ids(OBJECTS))
def test_libbpf_opens_what_the_catalogue_says(
    case: ObjCase, bpf_build: objects.BuildFn, harness: Path
) -> None:
    path = objects.build_case(case, bpf_build)
    view = objects.libbpf_view(path, harness)
    opened = "error" not in view
    if _is_libbpf_11(view):
        assert opened == case.libbpf_can_open, json.dumps(view, indent=1)
    if not opened:
        assert view["errno"] > 0 and view["log"], view
        return
    names = [p["name"] for p in view["programs"]]
    assert names and len(names) == len(set(names)), names
    for prog in view["programs"]:
        assert prog["insn_cnt"] > 0, prog
        assert isinstance(prog["autoload"], bool), prog
        assert not prog["section"].startswith("?"), prog
    unknown = {p["name"] for p in view["programs"] if p["type"] == "unspec"}
    if _is_libbpf_11(view):
        assert unknown == case.libbpf_unknown_programs
    for m in view["maps"]:
        assert m["type"] and m["section"], m
        assert m["internal"] == m["section"].startswith(INTERNAL_PREFIXES), m


@pytest.mark.parametrize(
    "case", objects.libbpf_openable(), ids=objects.ids(objects.libbpf_openable())
)
def test_inspect_matches_libbpf(case: ObjCase, bpf_build: objects.BuildFn, harness: Path) -> None:
    path = objects.build_case(case, bpf_build)
    lb = objects.libbpf_view(path, harness)
    if "error" in lb:
        pytest.fail(f"libbpf could not open {path.name}: {lb['error']} {lb['log']}")
    ours = bpfobj_inspect(path)
    problems = compare_programs(case, lb["programs"], ours.get("programs", []))
    problems += compare_maps(lb["maps"], ours.get("maps", []))
    assert not problems, f"{case.name} ({path.name}) differs from libbpf:\n  " + "\n  ".join(
        problems
    )


def _as_inspect_json(view: dict[str, Any]) -> dict[str, Any]:
    """libbpf's view reshaped into the `bpfobj inspect --json` contract."""
    progs = [
        {
            k: p[k]
            for k in ("name", "section", "type", "expected_attach_type", "insn_cnt", "autoload")
        }
        for p in view["programs"]
    ]
    maps = [
        {k: m[k] for k in ("name", "section", "type", "key_size", "value_size", "max_entries")}
        | {"flags": m["flags"]}
        for m in view["maps"]
    ]
    return {"programs": progs, "maps": maps, "btf": {"types": 0}, "core_relos": 0}


def test_comparison_catches_differences(bpf_build: objects.BuildFn, harness: Path) -> None:
    """The comparator accepts libbpf's own view (renamed internal maps, '?' sections,
    listed inner maps) and reports each kind of difference."""
    case = objects.by_name("maps")
    view = objects.libbpf_view(objects.build_case(case, bpf_build), harness)
    glob = objects.libbpf_view(objects.build_case(objects.by_name("globals"), bpf_build), harness)
    view["maps"] += glob["maps"]
    ours = _as_inspect_json(view)
    for m in ours["maps"]:
        if m["section"] in (".data", ".rodata", ".bss"):
            m["name"] = "other_o" + m["section"]  # internal names follow the file name
    ours["programs"][0]["section"] = "?" + ours["programs"][0]["section"]
    outer = next(m for m in view["maps"] if m["inner_map"])
    ours["maps"].append(dict(outer["inner_map"]))
    assert compare_programs(case, view["programs"], ours["programs"]) == []
    assert compare_maps(view["maps"], ours["maps"]) == []

    bad = json.loads(json.dumps(ours))
    bad["programs"][1]["insn_cnt"] += 1
    bad["programs"][2]["expected_attach_type"] = None
    bad["programs"].pop()
    problems = compare_programs(case, view["programs"], bad["programs"])
    assert len(problems) == 3, problems
    bad["maps"][0]["max_entries"] += 1
    next(m for m in bad["maps"] if m["section"] == ".bss")["flags"] = 0
    bad["maps"][-1]["value_size"] = 1  # the inner map
    bad["maps"].append({"name": "extra", "section": ".maps", "type": "hash"})
    problems = compare_maps(view["maps"], bad["maps"])
    assert len(problems) == 4, problems
