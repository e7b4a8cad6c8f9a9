"""BTF sanitisation for older kernels: rewrite what the kernel does not understand.

A port of libbpf's bpf_object__sanitize_btf (libbpf.c; the rules of Linux 6.12 plus the
layout-section rule of later libbpf), driven by a `BtfFeatures` record instead of kernel
probes, so it stays pure: the kernel layer probes (features.c: probe_kern_btf_*) and hands
the answers over as data. Each rule keeps every type id and record size, so .BTF.ext,
map definitions and instructions referring to type ids stay valid:

==================  ===============================================================
feature missing     rewrite (libbpf)
==================  ===============================================================
datasec             VAR -> INT (size 1, 8 bits, name kept); DATASEC -> STRUCT whose
                    members are its variables (name of the VAR, offset*8), with '.'
                    and '?' in its name turned into '_' (in place, in the strings)
decl_tag            DECL_TAG -> INT (size 1, 8 bits)
qmark_datasec       a DATASEC name starting with '?' gets '_' instead
func                FUNC_PROTO -> ENUM (size 4, one enumerator per parameter: name,
                    value = type id); FUNC -> TYPEDEF of it
func_global         FUNC with global/extern linkage -> static
float               FLOAT -> anonymous STRUCT of the same size, no members
type_tag            TYPE_TAG -> anonymous CONST
enum64              ENUM loses its kind_flag (signedness); ENUM64 -> UNION of the same
                    size whose members are the enumerators, typed by an appended
                    INT "enum64_placeholder" (size 1), all at offset 0
layout_header       the layout section is dropped (layout_off/len zeroed, the strings
                    moved right after the types; hdr_len is kept)
==================  ===============================================================

With every feature present nothing changes and the input bytes come back as they are.
"""

from __future__ import annotations

from bpfobj import records
from bpfobj.btf import types as T
from bpfobj.btf.writer import BtfBuilder
from bpfobj.uapi import BtfFuncLinkage

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from bpfobj.btf.reader import Btf

ENUM64_PLACEHOLDER = "enum64_placeholder"


@records.frozen(kw_only=True)
class BtfFeatures:
    """What the target kernel's BTF loader accepts (libbpf FEAT_BTF_* probes).

    func: BTF_KIND_FUNC / FUNC_PROTO (4.20/5.0); func_global: global FUNC linkage (5.6);
    datasec: VAR / DATASEC (5.2); qmark_datasec: DATASEC names starting with '?';
    float: FLOAT (5.13); decl_tag: DECL_TAG (5.16); type_tag: TYPE_TAG (5.17);
    enum64: ENUM64 and signed ENUM (6.0); layout_header: the header's layout_off/len and
    the layout section (7.1).
    """

    func: bool
    func_global: bool
    datasec: bool
    qmark_datasec: bool
    float: bool
    decl_tag: bool
    type_tag: bool
    enum64: bool
    layout_header: bool

    @classmethod
    def all(cls) -> BtfFeatures:
        """Every feature: sanitisation changes nothing."""
        return cls(**dict.fromkeys((f.name for f in records.fields(cls)), True))

    @classmethod
    def none(cls) -> BtfFeatures:
        """No feature beyond plain BTF (a 4.18/4.19 kernel): every rule applies."""
        return cls(**dict.fromkeys((f.name for f in records.fields(cls)), False))

    @property
    def needs_sanitization(self) -> bool:
        """libbpf btf_needs_sanitization(): a kind (or kind use) the kernel lacks, so types
        must be rewritten. A missing layout section alone is not one: dropping it touches
        only the header (`drops_layout`)."""
        return not all(records.astuple(records.evolve(self, layout_header=True)))

    def missing(self) -> list[str]:
        """Names of the missing features (for logs)."""
        return [f.name for f in records.fields(type(self)) if not getattr(self, f.name)]


def sanitize_btf(btf: Btf | bytes, features: BtfFeatures, *, base: Btf | None = None) -> bytes:
    """Raw BTF with libbpf's sanitisation rules for `features` applied.

    `btf` is parsed BTF or raw bytes (split on `base` when given). Returns the input bytes
    unchanged when no feature is missing (libbpf loads obj->btf as it is then)."""
    from bpfobj.btf.reader import Btf as _Btf

    parsed = btf if isinstance(btf, _Btf) else _Btf.parse(btf, base=base, name="sanitize")
    if not features.needs_sanitization and (
        features.layout_header or parsed.header.layout_len == 0
    ):
        return parsed.raw
    builder = BtfBuilder.from_btf(parsed)
    sanitize_builder(builder, features)
    return builder.encode()


def sanitize_builder(b: BtfBuilder, features: BtfFeatures) -> int:
    """Apply the rules to `b` in place (bpf_object__sanitize_btf). Returns the id of the
    appended "enum64_placeholder" INT, or 0 when none was needed."""
    f = features
    if not f.layout_header and b.layout is not None:
        # Later libbpf: drop the layout section, strings follow the types; hdr_len stays.
        b.layout = None
    if not f.needs_sanitization:
        return 0
    placeholder = 0
    tid = 1
    # btf__type_cnt() is re-read every round in libbpf: the placeholder is visited too.
    while tid < len(b) + 1:
        if tid < b.start_id:
            tid = b.start_id
            continue
        kind_t = b.type(tid)
        new: T.BtfType | None = None
        if (not f.datasec and isinstance(kind_t, T.Var)) or (
            not f.decl_tag and isinstance(kind_t, T.DeclTag)
        ):
            # replace VAR/DECL_TAG with INT: size 1 is the safest choice (libbpf)
            new = T.Int(tid, kind_t.name, 1, 0, 0, 8)
        elif not f.datasec and isinstance(kind_t, T.Datasec):
            fixed = "".join("_" if c in ".?" else c for c in kind_t.name)
            name = _rename_in_place(b, tid, kind_t.name, fixed)
            members = tuple(
                T.Member(b.name(v.type), v.type, (v.offset * 8) & 0xFFFFFFFF) for v in kind_t.vars
            )
            new = T.Struct(tid, name, kind_t.size, members, False)
        elif not f.qmark_datasec and isinstance(kind_t, T.Datasec) and kind_t.name[:1] == "?":
            name = _rename_in_place(b, tid, kind_t.name, "_" + kind_t.name[1:])
            new = records.evolve(kind_t, name=name)
        elif not f.func and isinstance(kind_t, T.FuncProto):
            values = tuple(T.EnumValue(p.name, p.type) for p in kind_t.params)
            new = T.Enum(tid, kind_t.name, 4, values, False)
        elif not f.func and isinstance(kind_t, T.Func):
            new = T.Typedef(tid, kind_t.name, kind_t.type)
        elif not f.func_global and isinstance(kind_t, T.Func):
            # libbpf sets info to FUNC/static whatever the linkage was
            if kind_t.linkage != BtfFuncLinkage.STATIC:
                new = records.evolve(kind_t, linkage=BtfFuncLinkage.STATIC)
        elif not f.float and isinstance(kind_t, T.Float):
            # an equally-sized empty STRUCT, anonymous: C has no struct called "float"
            new = T.Struct(tid, "", kind_t.size, (), False)
        elif not f.type_tag and isinstance(kind_t, T.TypeTag):
            new = T.Const(tid, "", kind_t.type)
        elif not f.enum64 and isinstance(kind_t, T.Enum):
            if kind_t.signed:
                new = records.evolve(kind_t, signed=False)
        elif not f.enum64 and isinstance(kind_t, T.Enum64):
            if not placeholder:
                placeholder = b.add_int(ENUM64_PLACEHOLDER, 1)
            members = tuple(T.Member(v.name, placeholder, 0) for v in kind_t.values)
            new = T.Union(tid, kind_t.name, kind_t.size, members, False)
        if new is not None:
            b.set_type(tid, new)
        tid += 1
    return placeholder


def _rename_in_place(b: BtfBuilder, tid: int, name: str, new: str) -> str:
    """Write the sanitised DATASEC name over the old one in the string section, as libbpf
    edits the bytes in place (same length); returns `new`."""
    if new != name:
        off = b.name_offset(tid)
        if off >= b.start_str_off:
            b.rename_string(off, new)
    return new


__all__ = ["ENUM64_PLACEHOLDER", "BtfFeatures", "sanitize_btf", "sanitize_builder"]
