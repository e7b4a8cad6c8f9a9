"""BTF sanitisation against a real kernel: a clang-19 object whose BTF has kinds older
kernels lack goes in with its BTF all the same, because bpfobj rewrites those kinds first.

integration/guest/progs/btf_new_kinds.c carries FLOAT (Linux 5.13), DECL_TAG (5.16),
TYPE_TAG (5.17) and ENUM64 / signed ENUM (6.0) in the value type of its map and in its
program's types. On a kernel that lacks one of them (5.10 of the kernel matrix lacks all):

* the kernel refuses the object's BTF as clang wrote it (BPF_BTF_LOAD fails), so this is no
  vacuous check;
* the BTF bpfobj hands over has none of the missing kinds, and the kernel takes it;
* the whole object loads with its BTF (program and map carry a BTF id, the map its value
  type) and runs: the XDP program counts a packet into the BTF-described map value.

The kernel's answers are facts of kernel history (the versions above), not bpfobj's probes
read back: the probes are checked against them too. Runs on the host's kernel as well, where
every kind is supported and nothing is rewritten.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bpfobj import BpfObject
from bpfobj.btf.reader import Btf
from bpfobj.uapi import BtfKind

if TYPE_CHECKING:
    from conftest import GuestKernel

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "integration" / "guest" / "progs" / "btf_new_kinds.c"
XDP_PASS = 2

KINDS_SINCE = {
    BtfKind.FLOAT: ("float", (5, 13)),
    BtfKind.DECL_TAG: ("decl_tag", (5, 16)),
    BtfKind.TYPE_TAG: ("type_tag", (5, 17)),
    BtfKind.ENUM64: ("enum64", (6, 0)),
}
"""BTF kind -> (BtfFeatures field, the Linux version whose BTF loader accepts it)."""


def kinds(btf: Btf) -> set[BtfKind]:
    return {btf.kind(type_id) for type_id in btf}


@pytest.fixture(scope="module")
def path(bpf_build: Callable[..., Path]) -> Path:
    return bpf_build(SOURCE)


def lacking(kernel: GuestKernel) -> set[BtfKind]:
    return {kind for kind, (_, since) in KINDS_SINCE.items() if kernel.version[:2] < since}


def test_the_object_has_the_new_kinds(path: Path) -> None:
    with BpfObject.open(path) as obj:
        assert obj.spec.btf is not None
        assert set(KINDS_SINCE) <= kinds(obj.spec.btf)


def test_probes_match_kernel_history(guest_kernel: GuestKernel) -> None:
    from bpfobj.kernel.features import probe

    features = probe().btf_features()
    for kind, (field, since) in KINDS_SINCE.items():
        assert getattr(features, field) == (guest_kernel.version[:2] >= since), (kind, field)


def test_kernel_refuses_unsanitised_btf_and_takes_sanitised(
    path: Path, guest_kernel: GuestKernel
) -> None:
    from bpfobj.btf.fixup import load_btf_for_kernel
    from bpfobj.btf.sanitize import BtfFeatures
    from bpfobj.elf.reader import read_elf
    from bpfobj.errors import SyscallError
    from bpfobj.kernel.features import probe
    from bpfobj.loader import load_btf

    data = path.read_bytes()
    with BpfObject.open(path) as obj:
        spec = obj.spec
    every = BtfFeatures(func=True, func_global=True, datasec=True, qmark_datasec=True,
                        float=True, decl_tag=True, type_tag=True, enum64=True,
                        layout_header=False)
    raw = load_btf_for_kernel(spec, read_elf(data, spec.name), every)
    sanitised = load_btf_for_kernel(spec, read_elf(data, spec.name), probe().btf_features())
    assert raw is not None and sanitised is not None
    missing = lacking(guest_kernel)
    assert not kinds(Btf.parse(sanitised.raw)) & missing
    if missing:
        assert sanitised.raw != raw.raw
        with pytest.raises(SyscallError) as info:
            load_btf(raw.raw).close()
        assert info.value.errno == errno.EINVAL
    else:
        assert sanitised.raw == raw.raw
        load_btf(raw.raw).close()
    load_btf(sanitised.raw).close()


def test_object_loads_with_its_btf_and_runs(path: Path, guest_kernel: GuestKernel) -> None:
    with BpfObject.open(path) as obj:
        obj.load()
        prog = obj.programs["count_packets"]
        assert prog.info()["btf_id"] > 0, "the program went in without BTF"
        info = obj.maps["samples"].info()
        assert info["btf_id"] == prog.info()["btf_id"]
        assert info["btf_value_type_id"] > 0, "the map went in without its BTF value type"
        assert prog.test_run(bytes(64)).retval == XDP_PASS
        assert obj.bss.runs == 1
        value = obj.maps["samples"][0]
        assert (value["packets"], value["bytes"], value["last_len"]) == (1, 64, 64)
        assert (value["big"], value["sign"]) == (1 << 32, -1)
