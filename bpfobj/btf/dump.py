"""The raw BTF listing of ``bpftool btf dump file PATH`` (format raw), byte for byte.

One line per type, ``[id] KIND 'name'`` and the kind's fields, then one tab-indented line
per member / enumerator / parameter / datasec variable: bpftool's ``dump_btf_type()``
(tools/bpf/bpftool/btf.c, identical in bpftool 7.1 and 7.5). Split BTF lists only its own
types, as ``dump_btf_raw()`` does.

`open_btf` resolves a path the way ``bpftool btf dump file`` does (a module under
/sys/kernel/btf is split on /sys/kernel/btf/vmlinux) and also reads ELF files with .BTF and
btfhub ``.btf.tar.xz`` archives.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from bpfobj.btf import types as T
from bpfobj.btf.reader import VMLINUX_BTF, Btf, load_kernel_btf
from bpfobj.btf.target import read_btf_blob

KERNEL_BTF_PREFIX = "/sys/kernel/btf/"

# btf_kind_str[] (bpftool btf.c), indexed by kind number; UNKNOWN past the known kinds.
KIND_STR = (
    "UNKNOWN", "INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF",
    "VOLATILE", "CONST", "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC", "FLOAT",
    "DECL_TAG", "TYPE_TAG", "ENUM64",
)  # fmt: skip
# btf_int_enc_str(): only single encoding bits have names.
_INT_ENC = {0: "(none)", T.INT_SIGNED: "SIGNED", T.INT_CHAR: "CHAR", T.INT_BOOL: "BOOL"}
# btf_func_linkage_str() / btf_var_linkage_str().
_FUNC_LINKAGE = ("static", "global", "extern")
_VAR_LINKAGE = ("static", "global", "extern")

# Chunks of output are joined in groups of this many types before being handed out.
_CHUNK = 4096


def open_btf(
    path: str | os.PathLike[str],
    base: Btf | str | os.PathLike[str] | None = None,
) -> Btf:
    """The BTF of `path` as ``bpftool btf dump file PATH`` reads it.

    `path` is raw BTF, an ELF file with a .BTF section (a BPF object, vmlinux, a .ko), or a
    btfhub ``.btf.tar.xz``. A path under /sys/kernel/btf other than vmlinux is split BTF and
    gets /sys/kernel/btf/vmlinux as its base unless `base` is given (bpftool's ``do_dump``);
    `base` (a `Btf` or a path read the same way) makes any other file split BTF on it.
    Raises BtfError.
    """
    p = os.fspath(path)
    base_btf = base if base is None or isinstance(base, Btf) else open_btf(base)
    if base_btf is None and p == VMLINUX_BTF:
        return load_kernel_btf(p)  # uses the on-disk index cache
    if base_btf is None and p.startswith(KERNEL_BTF_PREFIX):
        return load_kernel_btf(p)  # a module: split on vmlinux
    return Btf.parse(read_btf_blob(p), base=base_btf, name=p)


def _name(name: str) -> str:
    # btf_str(): a zero name offset prints "(anon)".
    return name or "(anon)"


def format_type(btf: Btf, type_id: int) -> str:
    """The raw listing of one type, newline-terminated, exactly as bpftool prints it."""
    t = btf.type(type_id)
    out = f"[{type_id}] {KIND_STR[t.kind]} '{_name(t.name)}'"
    if isinstance(t, T.Int):
        enc = _INT_ENC.get(t.encoding, "UNKN")
        out += f" size={t.size} bits_offset={t.bit_offset} nr_bits={t.nr_bits} encoding={enc}"
    elif isinstance(t, T.Ptr | T.Const | T.Volatile | T.Restrict | T.Typedef | T.TypeTag):
        out += f" type_id={t.type}"
    elif isinstance(t, T.Array):
        out += f" type_id={t.type} index_type_id={t.index_type} nr_elems={t.nelems}"
    elif isinstance(t, T.Struct | T.Union):
        parts = [f"{out} size={t.size} vlen={len(t.members)}"]
        for m in t.members:
            line = f"\n\t'{_name(m.name)}' type_id={m.type} bits_offset={m.bit_offset}"
            if m.bitfield_size:
                line += f" bitfield_size={m.bitfield_size}"
            parts.append(line)
        out = "".join(parts)
    elif isinstance(t, T.Enum | T.Enum64):
        enc = "SIGNED" if t.signed else "UNSIGNED"
        parts = [f"{out} encoding={enc} size={t.size} vlen={len(t.values)}"]
        if isinstance(t, T.Enum):
            parts.extend(f"\n\t'{_name(n)}' val={v}" for n, v in t.values)
        else:
            suffix = "LL" if t.signed else "ULL"
            parts.extend(f"\n\t'{_name(n)}' val={v}{suffix}" for n, v in t.values)
        out = "".join(parts)
    elif isinstance(t, T.Fwd):
        out += " fwd_kind=union" if t.is_union else " fwd_kind=struct"
    elif isinstance(t, T.Func):
        out += f" type_id={t.type} linkage={_FUNC_LINKAGE[t.linkage]}"
    elif isinstance(t, T.FuncProto):
        parts = [f"{out} ret_type_id={t.return_type} vlen={len(t.params)}"]
        parts.extend(f"\n\t'{_name(n)}' type_id={pt}" for n, pt in t.params)
        out = "".join(parts)
    elif isinstance(t, T.Var):
        out += f" type_id={t.type}, linkage={_VAR_LINKAGE[t.linkage]}"
    elif isinstance(t, T.Datasec):
        parts = [f"{out} size={t.size} vlen={len(t.vars)}"]
        count = len(btf) + 1  # btf__type_cnt()
        for v in t.vars:
            line = f"\n\ttype_id={v.type} offset={v.offset} size={v.size}"
            if v.type < count:
                line += f" ({KIND_STR[btf.kind(v.type)]} '{_name(btf.name(v.type))}')"
            parts.append(line)
        out = "".join(parts)
    elif isinstance(t, T.Float):
        out += f" size={t.size}"
    elif isinstance(t, T.DeclTag):
        out += f" type_id={t.type} component_idx={t.component_idx}"
    return out + "\n"


def dump_raw(btf: Btf, type_ids: Iterable[int] | None = None) -> Iterator[str]:
    """The raw listing as text chunks (bpftool's ``dump_btf_raw``): `type_ids` in the order
    given, or every type of this blob (split BTF: not its base's)."""
    ids = btf.own_ids() if type_ids is None else type_ids
    chunk: list[str] = []
    for tid in ids:
        chunk.append(format_type(btf, tid))
        if len(chunk) >= _CHUNK:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def dump_raw_text(btf: Btf, type_ids: Iterable[int] | None = None) -> str:
    """`dump_raw` joined into one string."""
    return "".join(dump_raw(btf, type_ids))


__all__ = ["KIND_STR", "dump_raw", "dump_raw_text", "format_type", "open_btf"]
