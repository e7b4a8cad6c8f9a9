"""bpfobj: a pure-Python, staged BPF object loader.

    obj = bpfobj.BpfObject.open("probe.bpf.o")   # parse ELF, BTF, BTF.ext: no kernel needed
    obj.spec.programs["handle_exec"]            # ProgramSpec: pure data

Attributes are imported lazily so that ``import bpfobj`` stays cheap for command-line tools.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.errors import BpfObjError
    from bpfobj.object import BpfObject

_LAZY = {
    "BpfObject": "bpfobj.object",
    "BpfObjError": "bpfobj.errors",
}

__all__ = ["BpfObjError", "BpfObject", "__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bpfobj' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
