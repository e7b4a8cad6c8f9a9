"""Loading objects into the running kernel: real programs, test runs, externs, verifier
errors, phases and file descriptor hygiene."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bpfobj import BpfObject
from bpfobj.errors import LinkError, PhaseError, SyscallError, VerifierError
from bpfobj.object import Phase
from bpfobj.uapi import PSEUDO_MAP_FD, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE, PSEUDO_MAP_VALUE

ROOT = Path(__file__).resolve().parent.parent
EXECSNOOP = ROOT / "examples" / "build" / "execsnoop.bpf.o"

REAL = [
    "real_execsnoop.c",
    "real_opensnoop.c",
    "real_exitsnoop.c",
    "real_biolatency.c",
    "real_schedstat.c",
    "real_subprogs.c",
]

XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3
TC_ACT_SHOT = 2


def _check_loaded(obj: BpfObject) -> None:
    """Every program and map has a live fd the kernel knows, with the object's BTF."""
    assert obj.phase is Phase.LOADED
    for name, prog in obj.programs.items():
        info = prog.info()
        assert info["type"] == prog.type
        assert info["name"] == name[:15]
        assert info["xlated_prog_len"] > 0
        assert info["btf_id"] > 0, "the object's BTF went to the kernel with the program"
        # the verifier drops the records of dead code it removes
        assert 0 < info["nr_line_info"] <= len(prog.prepared.line_info)
        assert 0 < info["nr_func_info"] <= len(prog.prepared.func_info)
    for name, m in obj.maps.items():
        info = m.info()
        assert info["type"] == m.type, name
        assert info["value_size"] == m.value_size


@pytest.mark.parametrize("source", REAL)
def test_real_programs_load(source: str, bpf_build, pin_root: str) -> None:
    path = bpf_build(source, vmlinux=True)
    with BpfObject.open(path) as obj:
        programs = obj.load(pin_root=pin_root)
        assert set(programs) == set(obj.prepared.programs)
        _check_loaded(obj)
        fds = [p.fd for p in programs.values()] + [m.fd for m in obj.maps.values()]
    for fd in fds:  # closed with the object
        with pytest.raises(OSError):
            os.fstat(fd)


def test_example_execsnoop_loads(pin_root: str) -> None:
    if not EXECSNOOP.exists():
        build = ROOT / "examples" / "build.sh"
        try:
            subprocess.run(["bash", str(build)], check=True, capture_output=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"{EXECSNOOP} is missing and examples/build.sh failed: {exc}")
    with BpfObject.open(EXECSNOOP) as obj:
        obj.load(pin_root=pin_root)
        _check_loaded(obj)
        rodata = [name for name in obj.maps if name.startswith(".rodata")]
        assert rodata
        for name in rodata:
            assert obj.maps[name].frozen


def test_prepared_insns_stay_symbolic(bpf_build, pin_root: str) -> None:
    """Map references are rewritten in a copy: the prepared program keeps MAP_IDX."""
    with BpfObject.open(bpf_build("load_maps.c")) as obj:
        before = {n: list(p.insns) for n, p in obj.prepare().programs.items()}
        obj.load(pin_root=pin_root)
        for name, pp in obj.prepared.programs.items():
            assert pp.insns == before[name]
            sent = obj.programs[name].insns
            for ref in pp.map_refs:
                assert pp.insns[ref.insn].src in (PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE)
                assert pp.insns[ref.insn].imm == ref.map_index
                want = PSEUDO_MAP_FD if ref.value_off is None else PSEUDO_MAP_VALUE
                assert sent[ref.insn].src == want
                assert sent[ref.insn].imm == obj.maps[ref.map].fd


def test_xdp_tail_calls_through_initial_prog_array(bpf_build, pin_root: str) -> None:
    with BpfObject.open(bpf_build("load_maps.c")) as obj:
        obj.load(pin_root=pin_root)
        entry = obj.programs["xdp_entry"]
        packet = bytes(63)
        assert entry.test_run(b"\x00" + packet).retval == XDP_DROP  # jmp[0] = tail_drop
        assert entry.test_run(b"\x01" + packet).retval == XDP_TX  # jmp[1] = tail_tx
        assert entry.test_run(b"\x02" + packet).retval == XDP_PASS  # empty slot
        assert obj.bss.xdp_runs == 3
        # user space sees the kernel's ids of the programs in the slots
        jmp = obj.maps["jmp"]
        assert jmp[0] == obj.programs["tail_drop"].id
        assert jmp[1] == obj.programs["tail_tx"].id
        assert 2 not in jmp
        result = entry.test_run(b"\x00" + packet, repeat=50)
        assert result.retval == XDP_DROP and result.data[:1] == b"\x00"
        assert obj.bss.xdp_runs == 53


def test_tc_program_test_run(bpf_build, pin_root: str) -> None:
    with BpfObject.open(bpf_build("load_maps.c")) as obj:
        obj.load(pin_root=pin_root)
        result = obj.programs["tc_len"].test_run(bytes(100))
        assert result.retval == TC_ACT_SHOT
        assert obj.maps["array_map"][1] == 100


def test_xdp_program_packet_round_trip(bpf_build, pin_root: str) -> None:
    """update_maps reads its arguments from the packet and writes its results into it."""
    with BpfObject.open(bpf_build("load_maps.c")) as obj:
        obj.rodata.multiplier = 7
        obj.load(pin_root=pin_root)
        packet = struct.pack("<IIQQQ", 3, 0, 6, 0, 0)
        result = obj.programs["update_maps"].test_run(packet)
        assert result.retval == 42
        key, _, value, out, out2 = struct.unpack("<IIQQQ", result.data)
        assert (key, value, out, out2) == (3, 6, 1, ord("h"))


def test_syscall_program_context_round_trip(bpf_build) -> None:
    """A SEC("syscall") program gets its context from the test run and writes into it."""
    with BpfObject.open(bpf_build("load_syscall.c")) as obj:
        obj.rodata.multiplier = 7
        obj.load()
        ctx = struct.pack("<IIQQQ", 3, 0, 6, 0, 0)
        result = obj.programs["args_round_trip"].test_run(ctx=ctx)
        assert result.retval == 42
        key, _, value, out, out2 = struct.unpack("<IIQQQ", result.ctx)
        assert (key, value, out, out2) == (3, 6, 1, ord("h"))


def test_externs_from_the_running_kernel(bpf_build) -> None:
    from bpfobj.kernel import kallsyms
    from bpfobj.kernel.kconfig import kernel_version, read_config

    with BpfObject.open(bpf_build("load_externs.c")) as obj:
        obj.load()
        assert obj.programs["read_externs"].test_run(bytes(64)).retval == XDP_PASS
        config = read_config()
        bss = obj.bss
        assert bss.version == kernel_version() > 0
        assert bss.bpf_syscall == 1
        assert bss.hz == int(config.get("CONFIG_HZ", "0"))
        hostname = config.get("CONFIG_DEFAULT_HOSTNAME", '""').strip('"').encode()
        assert bss.hostname0 == (hostname[0] if hostname else 0)
        assert bss.missing_config == 0
        assert bss.wrapper == obj.features.syscall_wrapper == 1
        assert bss.vfs_read_addr == kallsyms.address("vfs_read") != 0
        assert bss.missing_addr == 0
        # the .kconfig map is frozen and readable through obj.kconfig
        assert obj.maps[".kconfig"].frozen
        kconfig = obj.kconfig.to_dict()
        assert kconfig["CONFIG_HZ"] == bss.hz
        assert kconfig["CONFIG_DEFAULT_HOSTNAME"] == hostname[:15]
        with pytest.raises(PhaseError, match="frozen"):
            obj.kconfig.CONFIG_HZ = 1000


def test_tp_btf_gets_its_attach_btf_id(bpf_build, info_attach_btf_id) -> None:
    from bpfobj.btf.reader import load_kernel_btf
    from bpfobj.uapi import BtfKind

    vmlinux = load_kernel_btf()
    (want,) = vmlinux.find("btf_trace_sched_switch", BtfKind.TYPEDEF)
    with BpfObject.open(bpf_build("load_externs.c")) as obj:
        obj.load()
        prog = obj.programs["on_switch"]
        assert prog.attach_btf_id == want
        assert prog.attach_btf_obj_fd == 0  # vmlinux, not a module
        assert prog.info()["attach_btf_id"] == info_attach_btf_id(want)


def test_perf_event_link_and_raw_tracepoint(bpf_build, count_fds: Callable[[], int]) -> None:
    """bpfobj.sys.perf and the LINK_CREATE / RAW_TRACEPOINT_OPEN attrs on real events (a
    perf event link where the kernel has them, 5.15+; the ioctl way everywhere)."""
    from bpfobj.kernel.features import probe
    from bpfobj.sys import attr, perf
    from bpfobj.sys.syscall import Cmd, bpf_fd
    from bpfobj.uapi import AttachType

    perf_link = probe().perf_link
    before = count_fds()
    with BpfObject.open(bpf_build("load_tracepoints.c")) as obj:
        obj.load()
        tp, raw = obj.programs["on_tp"], obj.programs["on_raw"]
        with perf.open_tracepoint("syscalls", "sys_enter_getppid") as event:
            with contextlib.ExitStack() as links:
                if perf_link:
                    links.enter_context(bpf_fd(Cmd.LINK_CREATE, attr.link_create(
                        tp.fd, int(event), AttachType.PERF_EVENT)))
                links.enter_context(bpf_fd(Cmd.RAW_TRACEPOINT_OPEN,
                                           attr.raw_tracepoint_open("sys_enter", raw.fd)))
                for _ in range(10):
                    os.getppid()
                assert obj.bss.tp_hits >= (10 if perf_link else 0)
                assert obj.bss.raw_hits >= 10
            hits = obj.bss.tp_hits
            os.getppid()
            assert obj.bss.tp_hits == hits  # the link is gone with its fd
        with perf.open_tracepoint("syscalls", "sys_enter_getppid") as event:  # the ioctl way
            perf.set_bpf(int(event), tp.fd)
            perf.enable(int(event))
            os.getppid()
            assert obj.bss.tp_hits > hits
    assert count_fds() == before


def test_verifier_log_buffer_grows(bpf_build, monkeypatch: pytest.MonkeyPatch) -> None:
    from bpfobj import loader

    monkeypatch.setattr(loader, "LOG_BUF_START", 256)
    obj = BpfObject.open(bpf_build("load_fail.c", vmlinux=True))
    _only(obj, "oob_read")
    with pytest.raises(VerifierError) as info:
        obj.load()
    obj.close()
    log = info.value.log
    assert len(log) > 256
    # The whole log, from its head to the verdict: the buffer grew rather than keeping a
    # truncated log. The head: the state on entry (R1 the context: 'ctx()' 6.2+,
    # 'ctx(off=0,imm=0)' 6.0-6.1; 5.10 prints none), the function's first source line
    # (' @ file:line' on newer kernels) and instruction 0.
    head = (r"(0: R1=ctx\((off=0,imm=0)?\) R10=fp0\n)?"
            r"; int oob_read\(struct xdp_md \*ctx\)( @ load_fail\.c:\d+)?\n0: \(b7\) r1 = 0\b")
    assert re.match(head, log), log[:200]
    assert "invalid access to map value" in log


def test_features_are_cached_per_boot() -> None:
    import json

    from bpfobj.kernel import features

    f = features.probe()
    assert f.boot_id == features.boot_id() != ""
    assert f.global_data and f.btf and f.prog_name
    path = features.cache_file()
    if path is not None and os.path.exists(path):
        with open(path) as fh:
            doc = json.load(fh)
        assert doc["boot_id"] == f.boot_id
        assert features.Features(**doc["features"]) == f
    assert features.probe_all() == f  # the cache says what probing says
    assert f.btf_features().enum64 == f.btf_enum64


def test_syscall_wrapper_is_probed_on_demand(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """Reading /proc/kallsyms costs ~75 ms: the feature probes a load needs leave it out,
    and the syscall-wrapper answer is probed (and cached per boot) when first asked."""
    from bpfobj.kernel import features, kallsyms

    monkeypatch.setenv("BPFOBJ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(features, "_ON_DEMAND_MEMORY", {})
    reads: list[str] = []
    real_lookup = kallsyms.lookup

    def counting(names, path=kallsyms.KALLSYMS):  # type: ignore[no-untyped-def]
        reads.append(path)
        return real_lookup(names, path)

    monkeypatch.setattr(kallsyms, "lookup", counting)
    f = features.probe(refresh=True)
    assert reads == []  # the batch did not read kallsyms
    wrapper = f.syscall_wrapper
    assert reads == [kallsyms.KALLSYMS]
    assert wrapper == kallsyms.exists(features.host().syscall_prefix + "bpf")
    reads.clear()
    monkeypatch.setattr(features, "_ON_DEMAND_MEMORY", {})  # a new process, same boot
    assert features.syscall_wrapper() == wrapper and reads == []  # from the cache file
    this_boot = json.dumps({"boot_id": features.boot_id(), "features": 3})
    for garbage in ("not json", '{"boot_id": "x"}', this_boot, "[]"):
        path = features.cache_file()
        assert path is not None
        with open(path.removesuffix(".json") + "-on-demand.json", "w") as fh:
            fh.write(garbage)
        monkeypatch.setattr(features, "_ON_DEMAND_MEMORY", {})
        assert features.syscall_wrapper() == wrapper  # probed again, and cached again


def test_a_killed_tool_still_leaves_a_warm_btf_cache(bpf_build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The kernel BTF's snapshot and index are written from a background thread a second
    after load, so a process stopped by SIGKILL (or a service manager's SIGTERM, which
    runs no exit hooks either) does not leave the next start cold."""
    import signal
    import sys
    import time

    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("needs /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)")
    obj = bpf_build("real_execsnoop.c", vmlinux=True)
    code = ("import sys, time\n"
            "from bpfobj import BpfObject\n"
            f"o = BpfObject.open({str(obj)!r})\n"
            "o.load()\n"
            "print('loaded', flush=True)\n"
            "time.sleep(60)\n")
    env = dict(os.environ, BPFOBJ_CACHE_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env,
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"loaded\n"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
                any((tmp_path / "btf").glob("*.idx")) and any((tmp_path / "btf").glob("*.key"))):
            time.sleep(0.05)  # (the snapshot's key is written last)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    files = sorted(p.suffix for p in (tmp_path / "btf").iterdir())
    assert files == [".btf", ".idx", ".key"], files


def test_missing_strong_ksym_fails_before_loading(bpf_build,
                                                  count_fds: Callable[[], int]) -> None:
    before = count_fds()
    obj = BpfObject.open(bpf_build("load_missing_ksym.c"))
    with pytest.raises(LinkError, match="bpfobj_surely_missing"):
        obj.load()
    obj.close()
    assert count_fds() == before


def _only(obj: BpfObject, *names: str) -> None:
    for name, prog in obj.spec.programs.items():
        prog.autoload = name in names


def test_verifier_error_names_the_source_line(bpf_build) -> None:
    obj = BpfObject.open(bpf_build("load_fail.c", vmlinux=True))
    _only(obj, "fine", "oob_read")
    with pytest.raises(VerifierError) as info:
        obj.load()
    err = info.value
    assert isinstance(err, OSError) and err.errno == errno.EACCES
    assert err.program == "oob_read"
    assert err.insn is not None
    assert err.source_line is not None
    assert err.source_line.startswith("load_fail.c:")
    assert "v[index_of_choice & 7]" in err.source_line
    assert "invalid access to map value" in err.log
    assert f"{err.insn}: (" in err.log  # the failing instruction as the verifier printed it
    text = str(err)
    assert "oob_read" in text and "invalid access to map value" in text
    assert "v[index_of_choice & 7]" in text
    # the load failed as a whole: nothing stays open, the object can be closed
    assert obj.phase is Phase.PREPARED
    obj.close()


def test_verifier_error_explains_a_poisoned_core_relocation(bpf_build) -> None:
    obj = BpfObject.open(bpf_build("load_fail.c", vmlinux=True))
    _only(obj, "core_poison")
    with pytest.raises(VerifierError) as info:
        obj.load()
    obj.close()
    err = info.value
    assert err.program == "core_poison"
    record = err.core_record  # type: ignore[attr-defined]
    assert record.outcome == "poisoned" and record.insn == err.insn
    assert "unknown#195896080" in err.log
    text = str(err)
    assert "CO-RE relocation #" in text
    assert "byte_off" in text
    assert "bpfobj_no_such_field" in text
    assert "bpf_core_field_exists" in (err.hint or "")


def test_log_level_keeps_the_verifier_log(bpf_build) -> None:
    with BpfObject.open(bpf_build("load_fail.c", vmlinux=True)) as obj:
        _only(obj, "fine")
        obj.load(log_level=2)
        assert "processed" in obj.programs["fine"].log


def test_phases_in_order(bpf_build, pin_root: str) -> None:
    obj = BpfObject.open(bpf_build("load_maps.c"))
    assert obj.phase is Phase.OPENED
    with pytest.raises(PhaseError, match="maps do not exist"):
        obj.maps  # noqa: B018
    with pytest.raises(PhaseError, match="not loaded"):
        obj.programs  # noqa: B018
    obj.load(pin_root=pin_root)  # runs prepare and create_maps first
    assert obj.phase is Phase.LOADED
    with pytest.raises(PhaseError, match="already loaded"):
        obj.load()
    with pytest.raises(PhaseError, match="already created"):
        obj.create_maps()
    with pytest.raises(PhaseError):
        obj.prepare()
    with pytest.raises(KeyError, match="maps are"):
        obj.maps["nope"]
    obj.close()
    with pytest.raises(PhaseError, match="closed"):
        obj.maps  # noqa: B018


def test_create_maps_then_load(bpf_build, pin_root: str) -> None:
    with BpfObject.open(bpf_build("load_maps.c")) as obj:
        maps = obj.create_maps(pin_root=pin_root)
        assert obj.phase is Phase.MAPS_CREATED
        maps["hash_map"][9] = {"count": 1, "sum": 2}
        obj.load()
        packet = struct.pack("<IIQQQ", 9, 0, 1, 0, 0)
        obj.programs["update_maps"].test_run(packet)
        assert obj.maps["hash_map"][9] == {"count": 2, "sum": 5}


def test_refuses_other_byte_order(bpf_build) -> None:
    from bpfobj.errors import NotSupportedError

    with BpfObject.open(bpf_build("obj_minimal.c", target="bpfeb", tag="bpfeb")) as obj, \
            pytest.raises(NotSupportedError, match="big-endian"):
        obj.load()


def test_syscall_errors_carry_errno_and_command(bpf_build, pin_root: str) -> None:
    with BpfObject.open(bpf_build("load_maps.c")) as obj:
        obj.load(pin_root=pin_root)
        with pytest.raises(SyscallError) as info:
            obj.maps["array_map"].delete(0)  # arrays cannot delete
        assert info.value.errno == errno.EINVAL
        assert info.value.command == "BPF_MAP_DELETE_ELEM"
        assert "array_map" in str(info.value)


def test_open_load_close_1000_times_leaks_no_fd(bpf_build, count_fds: Callable[[], int]) -> None:
    """1,000 open/load/close cycles, every fifth failing in the verifier, and the process
    has exactly the descriptors it had before."""
    data = Path(bpf_build("load_fail.c", vmlinux=True)).read_bytes()
    BpfObject.open(data=data, name="warmup").close()  # imports, feature cache
    before = count_fds()
    failures = 0
    for i in range(1000):
        obj = BpfObject.open(data=data, name="load_fail")
        bad = i % 5 == 0
        _only(obj, "oob_read" if bad else "fine")
        try:
            obj.load()
            assert not bad
            assert obj.programs["fine"].test_run(bytes(64)).retval == XDP_PASS
        except VerifierError:
            assert bad
            failures += 1
        obj.close()
    assert failures == 200
    assert count_fds() == before
