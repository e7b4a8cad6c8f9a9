"""Raw BTF for the tests that need bytes no writer produces, and a .BTF.ext encoder.

Well-formed BTF is built with `bpfobj.btf.writer.BtfBuilder`. `RawBtf` is for the rest:
records written word by word (bad name offsets, reserved bits, truncated records, kinds
the reader does not know), split BTF with its own copy of the base's strings, and header
fields the writer always gets right (version, flags, bytes past the known fields):

    r = RawBtf()
    i = r.add("INT", "int", 4, [32])               # name, size or type, then the words after
    r.raw([0x7777, info(KIND["PTR"]), i])          # any record, as u32 words
    raw = r.build(version=2)                       # bytes of raw BTF

Every ``add``/``raw`` returns the new type id. Nothing here validates. `build_ext` encodes
a .BTF.ext whose strings are added to a BTF builder (the writer's or a `RawBtf`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Protocol

KIND = {
    "INT": 1,
    "PTR": 2,
    "ARRAY": 3,
    "STRUCT": 4,
    "UNION": 5,
    "ENUM": 6,
    "FWD": 7,
    "TYPEDEF": 8,
    "VOLATILE": 9,
    "CONST": 10,
    "RESTRICT": 11,
    "FUNC": 12,
    "FUNC_PROTO": 13,
    "VAR": 14,
    "DATASEC": 15,
    "FLOAT": 16,
    "DECL_TAG": 17,
    "TYPE_TAG": 18,
    "ENUM64": 19,
}


def info(kind: int, vlen: int = 0, kflag: bool = False) -> int:
    return (int(kflag) << 31) | ((kind & 0x1F) << 24) | (vlen & 0xFFFF)


class RawBtf:
    """Type records as u32 words and a string table; ``start_id``/``str_start`` make split
    BTF (whose strings never reuse the base's: "" is offset 0, the rest get a copy)."""

    def __init__(self, *, start_id: int = 1, str_start: int = 0, split: bool = False) -> None:
        self.start_id = start_id
        self.str_start = str_start
        self.split = split
        self.words: list[int] = []
        self.count = 0
        # Base BTF must start with "", split BTF may start with anything.
        self.strtab = bytearray() if split else bytearray(b"\0")
        self._strs: dict[str, int] = {}

    def add_string(self, s: str) -> int:
        if s == "":
            return 0  # split BTF too: offset 0 is the base's "" (as libbpf encodes it)
        off = self._strs.get(s)
        if off is None:
            off = self.str_start + len(self.strtab)
            self.strtab += s.encode() + b"\0"
            self._strs[s] = off
        return off

    def raw(self, words: Iterable[int]) -> int:
        """Append raw u32 words as one record (the caller knows what it is doing)."""
        self.words.extend(w & 0xFFFFFFFF for w in words)
        self.count += 1
        return self.start_id + self.count - 1

    def add(
        self,
        kind: str | int,
        name: str,
        size_or_type: int,
        extra: Sequence[int] = (),
        vlen: int = 0,
        kflag: bool = False,
    ) -> int:
        """A record: name, info, size or type, then `extra` words."""
        k = KIND[kind] if isinstance(kind, str) else kind
        return self.raw([self.add_string(name), info(k, vlen, kflag), size_or_type, *extra])

    def build(
        self,
        *,
        byteorder: str = "little",
        hdr_len: int = 24,
        layout: Sequence[tuple[int, int]] | None = None,
        header_tail: bytes = b"",
        version: int = 1,
        flags: int = 0,
    ) -> bytes:
        """Header + types + [layout] + strings. `hdr_len` >= 32 writes layout fields;
        `header_tail` fills the header bytes past the known fields (hdr_len > 32)."""
        fmt = "<" if byteorder == "little" else ">"
        types = struct.pack(f"{fmt}{len(self.words)}I", *self.words)
        lay = b"".join(struct.pack(f"{fmt}BBH", a, b, 0) for a, b in (layout or ()))
        type_off, type_len = 0, len(types)
        layout_off, layout_len = type_len, len(lay)
        str_off, str_len = type_len + len(lay), len(self.strtab)
        head = struct.pack(f"{fmt}HBBI", 0xEB9F, version, flags, hdr_len)
        head += struct.pack(f"{fmt}4I", type_off, type_len, str_off, str_len)
        if hdr_len >= 32:
            head += struct.pack(f"{fmt}2I", layout_off if lay else 0, layout_len)
        elif lay:
            raise ValueError("a layout section needs hdr_len >= 32")
        head += header_tail
        head = head[:hdr_len].ljust(hdr_len, b"\0")
        return head + types + lay + bytes(self.strtab)


class Strings(Protocol):
    """A BTF builder's string table: `bpfobj.btf.writer.BtfBuilder` or `RawBtf`."""

    def add_string(self, s: str) -> int: ...


def build_ext(
    strings: Strings,
    *,
    func_info: dict[str, list[tuple[int, int]]] | None = None,
    line_info: dict[str, list[tuple[int, str, str, int, int]]] | None = None,
    core_relos: dict[str, list[tuple[int, int, str, int]]] | None = None,
    byteorder: str = "little",
    hdr_len: int = 32,
    rec_sizes: tuple[int, int, int] = (8, 16, 16),
    header_tail: bytes = b"",
    order: Sequence[str] = ("func", "line", "core"),
) -> bytes:
    """Encode a .BTF.ext whose strings are added to `strings` (build the BTF after this).

    line_info records are (insn_off, file, line_text, line_num, col); core relos are
    (insn_off, type_id, access_str, kind). Records are padded to `rec_sizes`.
    """
    fmt = "<" if byteorder == "little" else ">"

    def sub(blocks: dict[str, list[bytes]] | None, rec_size: int) -> bytes:
        if not blocks:
            return b""
        out = struct.pack(f"{fmt}I", rec_size)
        for sec, recs in blocks.items():
            out += struct.pack(f"{fmt}II", strings.add_string(sec), len(recs))
            for r in recs:
                out += r.ljust(rec_size, b"\xaa")
        return out

    fi = {
        s: [struct.pack(f"{fmt}II", o, t) for o, t in recs] for s, recs in (func_info or {}).items()
    }
    li = {
        s: [
            struct.pack(f"{fmt}IIII", o, strings.add_string(f), strings.add_string(text), n << 10 | c)
            for o, f, text, n, c in recs
        ]
        for s, recs in (line_info or {}).items()
    }
    cr = {
        s: [struct.pack(f"{fmt}IIII", o, t, strings.add_string(a), k) for o, t, a, k in recs]
        for s, recs in (core_relos or {}).items()
    }
    parts = {
        "func": sub(fi, rec_sizes[0]),
        "line": sub(li, rec_sizes[1]),
        "core": sub(cr, rec_sizes[2]),
    }
    offs: dict[str, tuple[int, int]] = {}
    body = b""
    for key in order:
        offs[key] = (len(body), len(parts[key]))
        body += parts[key]
    head = struct.pack(f"{fmt}HBBI", 0xEB9F, 1, 0, hdr_len)
    head += struct.pack(f"{fmt}4I", *offs["func"], *offs["line"])
    if hdr_len >= 32:
        head += struct.pack(f"{fmt}2I", *offs["core"])
    head = (head + header_tail)[:hdr_len].ljust(hdr_len, b"\0")
    return head + body


# ----------------------------------------------------------------------------------------
# Sanity tests of RawBtf itself (the reader tests rely on it).
# ----------------------------------------------------------------------------------------


def test_builder_layout() -> None:
    b = RawBtf()
    i = b.add("INT", "int", 4, [1 << 24 | 32])
    assert i == 1
    assert b.add("PTR", "", i) == 2
    raw = b.build()
    magic, version, flags, hdr_len, toff, tlen, soff, slen = struct.unpack_from("<HBBIIIII", raw)
    assert (magic, version, flags, hdr_len) == (0xEB9F, 1, 0, 24)
    assert (toff, tlen) == (0, 7 * 4)
    assert raw[24 + soff : 24 + soff + slen] == b"\0int\0"


def test_builder_big_endian_and_layout() -> None:
    b = RawBtf()
    b.add("INT", "int", 4, [32])
    raw = b.build(byteorder="big", hdr_len=32, layout=[(0, 0), (4, 0)])
    assert raw[:2] == b"\xeb\x9f"
    (hdr_len,) = struct.unpack_from(">I", raw, 4)
    assert hdr_len == 32
    layout_off, layout_len = struct.unpack_from(">II", raw, 24)
    assert (layout_off, layout_len) == (16, 8)


# ----------------------------------------------------------------------------------------
# bpftool's JSON view of a decoded type (`bpftool -j btf dump file X`), for comparisons.
# ----------------------------------------------------------------------------------------

_INT_ENC = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_FUNC_LINKAGE = {0: "static", 1: "global", 2: "extern"}
_VAR_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def bpftool_json(t: object) -> dict[str, object]:
    """What bpftool v7 prints for `t` (a bpfobj.btf.types instance) with -j."""
    from bpfobj.btf import types as T

    assert isinstance(t, T.BtfType)
    out: dict[str, object] = {"id": t.id, "kind": t.kind.name, "name": t.name or "(anon)"}
    if isinstance(t, T.Int):
        out.update(
            size=t.size,
            bits_offset=t.bit_offset,
            nr_bits=t.nr_bits,
            encoding=_INT_ENC.get(t.encoding, "UNKN"),
        )
    elif isinstance(t, T.Ptr | T.Typedef | T.Volatile | T.Const | T.Restrict | T.TypeTag):
        out["type_id"] = t.type
    elif isinstance(t, T.Array):
        out.update(type_id=t.type, index_type_id=t.index_type, nr_elems=t.nelems)
    elif isinstance(t, T.Struct | T.Union):
        members = []
        for m in t.members:
            d: dict[str, object] = {
                "name": m.name or "(anon)",
                "type_id": m.type,
                "bits_offset": m.bit_offset,
            }
            if m.bitfield_size:
                d["bitfield_size"] = m.bitfield_size
            members.append(d)
        out.update(size=t.size, vlen=len(t.members), members=members)
    elif isinstance(t, T.Enum | T.Enum64):
        values = [{"name": v.name, "val": v.value} for v in t.values]
        if isinstance(t, T.Enum) and not t.signed:
            # bpftool quirk: it passes the __s32 btf_enum.val to jsonw_uint_field(), so an
            # unsigned value >= 2^31 comes out sign-extended to 64 bits (the text dump is right).
            for v in values:
                if v["val"] >= 1 << 31:  # type: ignore[operator]
                    v["val"] += (1 << 64) - (1 << 32)  # type: ignore[operator]
        out.update(
            encoding="SIGNED" if t.signed else "UNSIGNED",
            size=t.size,
            vlen=len(t.values),
            values=values,
        )
    elif isinstance(t, T.Fwd):
        out["fwd_kind"] = "union" if t.is_union else "struct"
    elif isinstance(t, T.Func):
        out.update(type_id=t.type, linkage=_FUNC_LINKAGE[t.linkage])
    elif isinstance(t, T.FuncProto):
        out.update(
            ret_type_id=t.return_type,
            vlen=len(t.params),
            params=[{"name": p.name or "(anon)", "type_id": p.type} for p in t.params],
        )
    elif isinstance(t, T.Var):
        out.update(type_id=t.type, linkage=_VAR_LINKAGE[t.linkage])
    elif isinstance(t, T.Datasec):
        out.update(
            size=t.size,
            vlen=len(t.vars),
            vars=[{"type_id": v.type, "offset": v.offset, "size": v.size} for v in t.vars],
        )
    elif isinstance(t, T.Float):
        out["size"] = t.size
    elif isinstance(t, T.DeclTag):
        out.update(type_id=t.type, component_idx=t.component_idx)
    return out
