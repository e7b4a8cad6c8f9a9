"""A tiny test-only raw BTF encoder for the CO-RE tests (hand-built local and target BTF).

    b = BtfBuilder()
    i32 = b.int("int", 4, signed=True)
    s = b.struct("foo", 8, [("a", i32, 0), ("b", i32, 32)])      # bit offsets
    b.struct("bits", 4, [("x", u32, 0, 3)])                        # bitfield: kind_flag set
    raw = b.build()                                                # bytes, Btf.parse(raw)

Every method returns the new type id. Types may refer to ids defined later (they are plain
numbers), and `set_members` fills a struct declared earlier. Nothing is validated: tests
build odd BTF on purpose. `build(byteorder="big")` writes big-endian BTF.
`BtfBuilder(base=other)` builds split BTF (a module's) on top of `other`: its ids and
string offsets continue the base's; `parse(base=other_btf)` reads it back.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

K = {
    "INT": 1, "PTR": 2, "ARRAY": 3, "STRUCT": 4, "UNION": 5, "ENUM": 6, "FWD": 7,
    "TYPEDEF": 8, "VOLATILE": 9, "CONST": 10, "RESTRICT": 11, "FUNC": 12, "FUNC_PROTO": 13,
    "VAR": 14, "DATASEC": 15, "FLOAT": 16, "DECL_TAG": 17, "TYPE_TAG": 18, "ENUM64": 19,
}  # fmt: skip

Member = tuple[Any, ...]  # (name, type, bit_offset[, bitfield_size])


class BtfBuilder:
    def __init__(self, base: BtfBuilder | None = None) -> None:
        self.types: list[dict[str, Any]] = []
        self.strs = bytearray(b"\0")
        self._off: dict[str, int] = {"": 0}
        self.start_id = base.next_id if base is not None else 1
        self.str_start = len(base.strs) if base is not None else 0

    # -- strings and ids ------------------------------------------------------------------

    def s(self, text: str) -> int:
        off = self._off.get(text)
        if off is None:
            off = self._off[text] = self.str_start + len(self.strs)
            self.strs += text.encode() + b"\0"
        return off

    def _add(self, **t: Any) -> int:
        self.types.append(t)
        return self.start_id + len(self.types) - 1

    @property
    def next_id(self) -> int:
        return self.start_id + len(self.types)

    # -- kinds ---------------------------------------------------------------------------

    def int(
        self, name: str, size: int, *, signed: bool = False, char: bool = False,
        bool_: bool = False, bits: int | None = None, offset: int = 0,
    ) -> int:  # fmt: skip
        enc = (1 if signed else 0) | (2 if char else 0) | (4 if bool_ else 0)
        nbits = size * 8 if bits is None else bits
        return self._add(
            kind="INT", name=name, size=size, extra=[(enc << 24) | (offset << 16) | nbits]
        )

    def ptr(self, t: int) -> int:
        return self._add(kind="PTR", name="", type=t)

    def typedef(self, name: str, t: int) -> int:
        return self._add(kind="TYPEDEF", name=name, type=t)

    def const(self, t: int) -> int:
        return self._add(kind="CONST", name="", type=t)

    def volatile(self, t: int) -> int:
        return self._add(kind="VOLATILE", name="", type=t)

    def restrict(self, t: int) -> int:
        return self._add(kind="RESTRICT", name="", type=t)

    def type_tag(self, name: str, t: int) -> int:
        return self._add(kind="TYPE_TAG", name=name, type=t)

    def array(self, elem: int, nelems: int, index_type: int = 0) -> int:
        return self._add(kind="ARRAY", name="", size=0, arr=(elem, index_type, nelems))

    def struct(self, name: str, size: int, members: Sequence[Member] = ()) -> int:
        return self._add(kind="STRUCT", name=name, size=size, members=list(members))

    def union(self, name: str, size: int, members: Sequence[Member] = ()) -> int:
        return self._add(kind="UNION", name=name, size=size, members=list(members))

    def set_members(self, tid: int, members: Sequence[Member]) -> None:
        self.types[tid - self.start_id]["members"] = list(members)

    def enum(
        self, name: str, values: Sequence[tuple[str, int]], size: int = 4, signed: bool = False
    ) -> int:
        return self._add(kind="ENUM", name=name, size=size, values=list(values), kflag=signed)

    def enum64(
        self, name: str, values: Sequence[tuple[str, int]], size: int = 8, signed: bool = False
    ) -> int:
        return self._add(kind="ENUM64", name=name, size=size, values=list(values), kflag=signed)

    def fwd(self, name: str, union: bool = False) -> int:
        return self._add(kind="FWD", name=name, kflag=union, type=0)

    def func_proto(self, ret: int, params: Sequence[tuple[str, int]] = ()) -> int:
        return self._add(kind="FUNC_PROTO", name="", type=ret, params=list(params))

    def func(self, name: str, proto: int, linkage: int = 1) -> int:
        return self._add(kind="FUNC", name=name, type=proto, vlen=linkage)

    def var(self, name: str, t: int, linkage: int = 1) -> int:
        return self._add(kind="VAR", name=name, type=t, extra=[linkage])

    def float(self, name: str, size: int) -> int:
        return self._add(kind="FLOAT", name=name, size=size)

    # -- encoding ------------------------------------------------------------------------

    def build(self, byteorder: str = "little") -> bytes:
        e = "<" if byteorder == "little" else ">"
        words: list[int] = []
        for t in self.types:
            kind = K[t["kind"]]
            name_off = self.s(t["name"]) if t["name"] else 0
            members = t.get("members")
            values = t.get("values")
            params = t.get("params")
            kflag = bool(t.get("kflag"))
            vlen = t.get("vlen", 0)
            if members is not None:
                vlen = len(members)
                kflag = any(len(m) > 3 and m[3] for m in members)
            elif values is not None:
                vlen = len(values)
            elif params is not None:
                vlen = len(params)
            info = (int(kflag) << 31) | (kind << 24) | vlen
            third = t["size"] if "size" in t else t.get("type", 0)
            words += [name_off, info, third]
            words += t.get("extra", [])
            if "arr" in t:
                words += list(t["arr"])
            if members is not None:
                for m in members:
                    mname, mtype, off = m[0], m[1], m[2]
                    bsz = m[3] if len(m) > 3 else 0
                    offset = (bsz << 24 | off) if kflag else off
                    words += [self.s(mname) if mname else 0, mtype, offset]
            if values is not None:
                for vname, v in values:
                    if t["kind"] == "ENUM":
                        words += [self.s(vname), v & 0xFFFFFFFF]
                    else:
                        v &= (1 << 64) - 1
                        words += [self.s(vname), v & 0xFFFFFFFF, v >> 32]
            if params is not None:
                for pname, ptype in params:
                    words += [self.s(pname) if pname else 0, ptype]
        type_sec = struct.pack(f"{e}{len(words)}I", *words)
        str_sec = bytes(self.strs)
        hdr = struct.pack(
            f"{e}HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(type_sec), len(type_sec), len(str_sec)
        )
        return hdr + type_sec + str_sec

    def parse(self, byteorder: str = "little", name: str = "", base: Any = None) -> Any:
        """The built BTF, read back with bpfobj's reader (split on `base` if given)."""
        from bpfobj.btf import Btf

        return Btf.parse(self.build(byteorder), base=base, name=name, cache=False)


def std_ints(b: BtfBuilder) -> dict[str, int]:
    """The usual integer types (and `long`, which fixes the pointer size at 8)."""
    return {
        "int": b.int("int", 4, signed=True),
        "uint": b.int("unsigned int", 4),
        "long": b.int("long", 8, signed=True),
        "ulong": b.int("unsigned long", 8),
        "char": b.int("char", 1, signed=True, char=True),
        "short": b.int("short", 2, signed=True),
        "u8": b.int("unsigned char", 1),
        "u16": b.int("unsigned short", 2),
    }
