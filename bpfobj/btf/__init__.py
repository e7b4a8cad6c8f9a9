"""BTF: the type format of BPF objects and of the kernel.

    from bpfobj.btf import Btf, load_kernel_btf
    vmlinux = load_kernel_btf()                  # lazy: ~126k types, indexed, not decoded
    (tid,) = vmlinux.find("task_struct", BtfKind.STRUCT)
    vmlinux.type(tid).members[0]; vmlinux.size_of(tid)

`Btf` reads raw BTF (`bpfobj.btf.reader`), `BtfExt` the .BTF.ext section
(`bpfobj.btf.ext`), and `bpfobj.btf.types` holds the decoded type classes. Offline code:
it takes bytes and never touches the kernel except to read /sys/kernel/btf files.

Names are imported on first use so that ``import bpfobj.btf`` stays cheap.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf.ext import BtfExt, CoreRelo, FuncInfo, LineInfo
    from bpfobj.btf.reader import Btf, BtfHeader, load_kernel_btf, load_raw_file

_LAZY = {
    "Btf": "bpfobj.btf.reader",
    "BtfHeader": "bpfobj.btf.reader",
    "load_kernel_btf": "bpfobj.btf.reader",
    "load_raw_file": "bpfobj.btf.reader",
    "BtfExt": "bpfobj.btf.ext",
    "FuncInfo": "bpfobj.btf.ext",
    "LineInfo": "bpfobj.btf.ext",
    "CoreRelo": "bpfobj.btf.ext",
}

__all__ = [
    "Btf",
    "BtfExt",
    "BtfHeader",
    "CoreRelo",
    "FuncInfo",
    "LineInfo",
    "load_kernel_btf",
    "load_raw_file",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bpfobj.btf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
