"""freplace (BPF_PROG_TYPE_EXT): tests/progs/freplace_xdp.c replaces the global function
xdp_verdict() (XDP_PASS) of tests/progs/freplace_target.c's XDP program with XDP_DROP;
BPF_PROG_TEST_RUN of the target shows the verdict before, during and after the link."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bpfobj import BpfObject
from bpfobj.btf.reader import Btf
from bpfobj.errors import NotSupportedError, PhaseError, SpecError, SyscallError
from bpfobj.uapi import BtfKind, ProgType

XDP_DROP, XDP_PASS = 1, 2
PACKET = bytes(64)


@pytest.fixture
def target(bpf_build: Callable[..., Path]) -> Iterator[BpfObject]:
    with BpfObject.open(bpf_build("freplace_target.c")) as obj:
        obj.load()
        yield obj


def test_target_function_id_from_the_programs_btf(target: BpfObject) -> None:
    """libbpf libbpf_find_prog_btf_id(): the FUNC in the BTF the kernel holds for the
    target program (read back through its btf_id), the same id as in the object's BTF."""
    from bpfobj.kernel.btfobj import find_prog_btf_id, prog_btf_bytes

    main = target.programs["xdp_main"]
    got = find_prog_btf_id("xdp_verdict", main.fd)
    assert target.spec.btf is not None
    assert got == target.spec.btf.find("xdp_verdict", BtfKind.FUNC)[0]
    kernel_copy = Btf.parse(prog_btf_bytes(main.fd), cache=None)
    assert kernel_copy.name(got) == "xdp_verdict"
    with pytest.raises(NotSupportedError, match=r"no function 'nope'.*xdp_verdict"):
        find_prog_btf_id("nope", main.fd)


def test_freplace_needs_a_target(bpf_build: Callable[..., Path]) -> None:
    with BpfObject.open(bpf_build("freplace_xdp.c")) as obj:
        assert obj.spec.programs["xdp_drop_all"].type == ProgType.EXT
        with pytest.raises(SpecError, match=r"set_attach_target\('xdp_drop_all', "
                                            r"target_program, 'xdp_verdict'\)"):
            obj.load()


def test_set_attach_target_checks(bpf_build: Callable[..., Path], target: BpfObject) -> None:
    with BpfObject.open(bpf_build("freplace_xdp.c")) as obj:
        with pytest.raises(SpecError, match="no program named 'nope'"):
            obj.set_attach_target("nope", target.programs["xdp_main"])
        with pytest.raises(SpecError, match="needs a target program or a function"):
            obj.set_attach_target("xdp_drop_all")
        obj.set_attach_target("xdp_drop_all", target.programs["xdp_main"], "nope")
        with pytest.raises(NotSupportedError, match="no function 'nope'"):
            obj.load()


def test_freplace_replaces_the_function(bpf_build: Callable[..., Path], target: BpfObject,
                                        info_attach_btf_id: Callable[[int], int]) -> None:
    main = target.programs["xdp_main"]
    assert main.test_run(PACKET).retval == XDP_PASS
    with BpfObject.open(bpf_build("freplace_xdp.c")) as obj:
        obj.set_attach_target("xdp_drop_all", main)  # the function from the section
        try:
            obj.load()
        except SyscallError as exc:
            if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, 524):
                pytest.skip("this kernel refuses BPF trampoline programs (freplace needs "
                            f"them, like fentry: BPF_PROG_LOAD "
                            f"{errno.errorcode.get(exc.errno, exc.errno)})")
            raise
        prog = obj.programs["xdp_drop_all"]
        assert prog.attach_btf_id > 0
        assert prog.info()["attach_btf_id"] == info_attach_btf_id(prog.attach_btf_id)
        with pytest.raises(PhaseError, match="after load"):
            obj.set_attach_target("xdp_drop_all", main)
        try:
            link = prog.attach()
        except NotSupportedError as exc:  # arm64 before 6.4: loads, but has no trampolines
            pytest.skip(f"freplace attach needs BPF trampolines: {exc}")
        try:
            assert main.test_run(PACKET).retval == XDP_DROP
        finally:
            link.close()
        assert main.test_run(PACKET).retval == XDP_PASS
