"""`BtfBuilder`: build, copy and edit BTF, and encode it as raw BTF bytes.

    b = BtfBuilder()                                  # or BtfBuilder(base=vmlinux): split
    i = b.add_int("int", 4, signed=True)
    s = b.add_struct("pair", 8, [("a", i, 0), ("b", i, 32)])
    raw = b.encode()                                  # header + types + strings
    b2 = BtfBuilder.from_btf(Btf.parse(raw))          # copy, then edit with set_type()

The model is libbpf's btf.c builder (btf__add_*, btf__add_str, btf__raw_data):

* every ``add_*`` returns the new type id; ids continue the base's for split BTF;
* strings are deduplicated: `add_string` returns the offset of an identical string if the
  table (or the base's) already has one, else appends it. Names are interned when a type is
  added or set, so the string table follows the order in which names first appear;
* types are the frozen classes of `bpfobj.btf.types`; edit one with
  ``b.set_type(tid, records.evolve(b.type(tid), ...))`` or replace it by any other kind.

`BtfBuilder.from_btf` is lazy: a copied type stays a raw record of the source until it is
read through `type()` or replaced, and `encode` copies untouched records word for word, so
copying kernel BTF to change a few types costs milliseconds. ``lazy=False`` decodes every
type and encodes each one from its decoded form (the round trip the tests check). The
source's string section is kept as it is (offsets stay valid) unless ``keep_strings=False``
asks for a fresh table holding only the names the types use, in type order.

Offline and pure: bytes in, bytes out.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence

from bpfobj import records
from bpfobj.btf import index as _index
from bpfobj.btf import types as T
from bpfobj.errors import BtfError
from bpfobj.uapi import BtfFuncLinkage, BtfKind, BtfVarLinkage

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf.reader import Btf

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
HDR_LEN = 24  # struct btf_header up to str_len (linux/btf.h, 6.12)
HDR_LAYOUT_LEN = 32  # ... with layout_off/layout_len (newer kernels)
MAX_VLEN = 0xFFFF  # BTF_MAX_VLEN (6.12)
MAX_TYPE_ID = 0x7FFFFFFF  # libbpf BTF_MAX_NR_TYPES
_U32 = 0xFFFFFFFF
_HOST = sys.byteorder

# libbpf btf__add_int / btf__add_float: accepted byte sizes.
_INT_SIZES = frozenset({1, 2, 4, 8, 16})
_FLOAT_SIZES = frozenset({2, 4, 8, 12, 16})
_ENUM_SIZES = frozenset({1, 2, 4, 8})

MemberLike = T.Member | tuple[str, int, int] | tuple[str, int, int, int]
ParamLike = T.Param | tuple[str, int]
SecinfoLike = T.VarSecinfo | tuple[int, int, int]
EnumValueLike = T.EnumValue | tuple[str, int]


def _info(kind: int, vlen: int = 0, kflag: bool = False) -> int:
    return (int(kflag) << 31) | (kind << 24) | vlen


def _err(message: str, type_id: int | None = None, hint: str | None = None) -> BtfError:
    return BtfError(
        message,
        type=f"[{type_id}]" if type_id is not None else None,
        hint=hint or "fix the arguments given to the BTF builder",
    )


class BtfBuilder:
    """A mutable BTF: types and a deduplicated string table; `encode()` writes raw BTF."""

    __slots__ = (
        "_base_str_index",
        "_src",
        "_src_offs",
        "_src_words",
        "_str_index",
        "_strtab",
        "_types",
        "_unknown_order",
        "base",
        "byteorder",
        "hdr_len",
        "layout",
        "start_id",
        "start_str_off",
    )

    byteorder: str
    base: Btf | None
    start_id: int
    start_str_off: int
    hdr_len: int
    # The layout section to write: (info_sz, elem_sz, flags) per kind, or None for none.
    layout: tuple[tuple[int, int, int], ...] | None
    _types: list[T.BtfType | None]  # own types; None: the source's record, untouched
    _strtab: bytearray  # own string section
    _str_index: dict[bytes, int] | None  # string -> first offset; built on first need
    _base_str_index: dict[bytes, int] | None
    _src: Btf | None
    _src_words: array[int] | None  # the source's type section, host order
    _src_offs: array[int] | None  # word offset of each source record (+ end sentinel)
    _unknown_order: str  # byte order of `Unknown.data` (the source's)

    def __init__(self, byteorder: str = "little", base: Btf | None = None) -> None:
        if byteorder not in ("little", "big"):
            raise _err(f"byte order must be 'little' or 'big', not {byteorder!r}")
        self.byteorder = byteorder
        self.base = base
        self.start_id = 1 if base is None else len(base) + 1
        self.start_str_off = 0 if base is None else _str_end(base)
        self.hdr_len = HDR_LEN
        self.layout = None
        self._types = []
        # Base BTF starts with "" at offset 0; split BTF uses the base's "" (libbpf).
        self._strtab = bytearray() if base is not None else bytearray(b"\0")
        self._str_index = {} if base is not None else {b"": 0}
        self._base_str_index = None
        self._src = None
        self._src_words = None
        self._src_offs = None
        self._unknown_order = byteorder

    # ----------------------------------------------------------------------------------
    # Copying a parsed Btf
    # ----------------------------------------------------------------------------------

    @classmethod
    def from_btf(
        cls,
        btf: Btf,
        *,
        byteorder: str | None = None,
        lazy: bool = True,
        keep_strings: bool = True,
    ) -> BtfBuilder:
        """A builder holding every type of `btf` (its own types: split BTF keeps its base).

        `byteorder` defaults to the source's. ``lazy`` keeps untouched types as raw records
        (see the module doc); ``keep_strings=False`` (implies ``lazy=False``) starts a fresh
        string table holding the names the types use, in type order."""
        self = cls(byteorder or btf.byteorder, btf.base)
        if self.start_id != btf.start_id:
            raise _err(
                f"source BTF starts at id {btf.start_id}, its base ends at {self.start_id - 1}"
            )
        hdr = btf.header
        raw = btf.raw
        self.hdr_len = max(HDR_LEN, hdr.hdr_len)
        self._unknown_order = btf.byteorder
        layout_src: list[tuple[int, int]] | None = None
        if hdr.layout_len:
            p0 = hdr.hdr_len + hdr.layout_off
            fmt = "<" if btf.byteorder == "little" else ">"
            self.layout = tuple(
                struct.unpack_from(f"{fmt}BBH", raw, p) for p in range(p0, p0 + hdr.layout_len, 4)
            )
            layout_src = [(a, b) for a, b, _ in self.layout]
        elif btf.base is not None:
            layout_src = _layout_of(btf.base)

        self._types = [None] * btf.own_count
        self._src = btf
        if not keep_strings:
            lazy = False
        if lazy:  # the source's records, to copy untouched ones word for word
            t0 = hdr.hdr_len + hdr.type_off
            words = array("I")
            words.frombytes(raw[t0 : t0 + hdr.type_len])
            if btf.byteorder != _HOST:
                words.byteswap()
            offs = _index.walk(words, len(words), layout_src)
            offs.append(len(words))
            self._src_words = words
            self._src_offs = offs

        if not keep_strings:
            self._strtab = bytearray() if btf.base is not None else bytearray(b"\0")
            self._str_index = {} if btf.base is not None else {b"": 0}
        else:
            s0 = hdr.hdr_len + hdr.str_off
            self._strtab = bytearray(raw[s0 : s0 + hdr.str_len])
            self._str_index = None  # built on the first add_string

        if not lazy:
            types = self._types
            for i, tid in enumerate(btf.own_ids()):
                t = btf.type(tid)
                if not keep_strings:
                    self._intern_type(t)
                types[i] = t
            self._src = None
        return self

    # ----------------------------------------------------------------------------------
    # Strings
    # ----------------------------------------------------------------------------------

    def add_string(self, s: str | bytes) -> int:
        """The offset of `s` in the string section, appending it if absent (libbpf
        btf__add_str: the base's strings are reused first). "" is always offset 0."""
        b = s if isinstance(s, bytes) else s.encode("utf-8", "surrogateescape")
        if not b:
            return 0
        off = self._find_bytes(b)
        if off is not None:
            return off
        return self._append_string(b)

    def find_string(self, s: str | bytes) -> int | None:
        """The offset of `s`, or None if neither this table nor the base's holds it."""
        b = s if isinstance(s, bytes) else s.encode("utf-8", "surrogateescape")
        if not b:
            return 0
        return self._find_bytes(b)

    def string(self, offset: int) -> str:
        """The string at `offset` (the base's for offsets below `start_str_off`)."""
        if offset < self.start_str_off:
            if self.base is None:
                raise _err(f"string offset {offset} is negative")
            return self.base.string(offset)
        local = offset - self.start_str_off
        tab = self._strtab
        if local >= len(tab):
            raise _err(f"string offset 0x{offset:x} is past the string section")
        end = tab.find(b"\0", local)
        return bytes(tab[local:end]).decode("utf-8", "surrogateescape")

    def rename_string(self, offset: int, new: str | bytes) -> None:
        """Overwrite the string at `offset` (own section) with `new` of the same length, in
        place, as libbpf's sanitizer does to DATASEC names: every record using the offset
        sees the new name."""
        b = new if isinstance(new, bytes) else new.encode("utf-8", "surrogateescape")
        local = offset - self.start_str_off
        tab = self._strtab
        if local < 0 or local >= len(tab):
            raise _err(f"string offset 0x{offset:x} is not in this BTF's own string section")
        end = tab.find(b"\0", local)
        old = bytes(tab[local:end])
        if len(b) != len(old) or b"\0" in b:
            raise _err(f"cannot rename {old!r} to {b!r} in place: lengths differ")
        index = self._own_index()
        if index.get(old) == offset:
            del index[old]
            # another copy of `old` further on (if any) is not indexed: dedup still works
        tab[local:end] = b
        index.setdefault(b, offset)

    @property
    def strings_size(self) -> int:
        """Bytes of this BTF's own string section."""
        return len(self._strtab)

    def _find_bytes(self, b: bytes) -> int | None:
        if self.base is not None:
            off = self._base_index().get(b)
            if off is not None:
                return off
        return self._own_index().get(b)

    def _append_string(self, b: bytes) -> int:
        if b"\0" in b:
            raise _err(f"string {b!r} contains a NUL byte")
        index = self._own_index()
        off = self.start_str_off + len(self._strtab)
        self._strtab += b
        self._strtab.append(0)
        index[b] = off
        return off

    def _own_index(self) -> dict[bytes, int]:
        if self._str_index is None:
            self._str_index = _string_index(bytes(self._strtab), self.start_str_off)
        return self._str_index

    def _base_index(self) -> dict[bytes, int]:
        if self._base_str_index is None:
            self._base_str_index = {}
            b: Btf | None = self.base
            chain = []
            while b is not None:
                chain.append(b)
                b = b.base
            for level in reversed(chain):  # the lowest base first: its offsets win
                hdr = level.header
                s0 = hdr.hdr_len + hdr.str_off
                idx = _string_index(level.raw[s0 : s0 + hdr.str_len], level.start_str_off)
                for k, v in idx.items():
                    self._base_str_index.setdefault(k, v)
        return self._base_str_index

    def _intern(self, name: str) -> int:
        return self.add_string(name) if name else 0

    def _intern_type(self, t: T.BtfType) -> None:
        """Add every string `t` uses, in the order libbpf's btf__add_* would."""
        intern = self._intern
        intern(t.name)
        if isinstance(t, T.Struct | T.Union):
            for m in t.members:
                intern(m.name)
        elif isinstance(t, T.Enum | T.Enum64):
            for v in t.values:
                intern(v.name)
        elif isinstance(t, T.FuncProto):
            for p in t.params:
                intern(p.name)

    # ----------------------------------------------------------------------------------
    # Types: access
    # ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Types excluding void, the base's included (valid ids: 0..len), as `Btf`."""
        return self.start_id - 1 + len(self._types)

    @property
    def own_count(self) -> int:
        return len(self._types)

    def own_ids(self) -> range:
        return range(self.start_id, self.start_id + len(self._types))

    def __iter__(self) -> Iterator[int]:
        return iter(range(1, len(self) + 1))

    def _local(self, type_id: int) -> int:
        i = type_id - self.start_id
        if not 0 <= i < len(self._types):
            raise _err(
                f"type id {type_id} is not one of this builder's types "
                f"({self.start_id}..{len(self)})",
                hint="base types cannot be changed through a split builder",
            )
        return i

    def type(self, type_id: int) -> T.BtfType:
        """The type `type_id` (decoded from the source on first access if copied lazily)."""
        if type_id == 0:
            return T.Void()
        if type_id < self.start_id:
            if self.base is None or type_id < 0:
                raise _err(f"type id {type_id} is out of range")
            return self.base.type(type_id)
        i = self._local(type_id)
        t = self._types[i]
        if t is None:
            assert self._src is not None
            t = self._src.type(type_id)
        return t

    __getitem__ = type

    def kind(self, type_id: int) -> BtfKind:
        """The kind of `type_id` (UNKN for void and unknown kinds)."""
        if type_id == 0:
            return BtfKind.UNKN
        if type_id < self.start_id and self.base is not None:
            return self.base.kind(type_id)
        t = self._types[self._local(type_id)]
        if t is None:
            assert self._src is not None
            return self._src.kind(type_id)
        return t.kind

    def name(self, type_id: int) -> str:
        if type_id == 0:
            return ""
        if type_id < self.start_id and self.base is not None:
            return self.base.name(type_id)
        t = self._types[self._local(type_id)]
        if t is None:
            assert self._src is not None
            return self._src.name(type_id)
        return t.name

    def name_offset(self, type_id: int) -> int:
        """The string offset of own type `type_id`'s name as it will be encoded (the
        record's own offset for an untouched copied type, else the interned one)."""
        i = self._local(type_id)
        t = self._types[i]
        if t is None:
            assert self._src_words is not None and self._src_offs is not None
            return int(self._src_words[self._src_offs[i]])
        return self.add_string(t.name)

    def find(self, name: str, kind: BtfKind | int | None = None) -> list[int]:
        """Ids (ascending, the base's first) of the types called `name` (of `kind`)."""
        out = self.base.find(name, kind) if self.base is not None else []
        k = None if kind is None else BtfKind(int(kind))
        types, start = self._types, self.start_id
        if self._src is not None:
            # untouched copied types: the source's name index; the rest: a scan
            own = [t for t in self._src.find(name, kind) if t >= start and types[t - start] is None]
            for i, t in enumerate(types):
                if t is not None and t.name == name and (k is None or t.kind == k):
                    own.append(start + i)
            return out + sorted(own)
        for i, t in enumerate(types):
            assert t is not None
            if t.name == name and (k is None or t.kind == k):
                out.append(start + i)
        return out

    # ----------------------------------------------------------------------------------
    # Types: adding and replacing
    # ----------------------------------------------------------------------------------

    def add_type(self, t: T.BtfType) -> int:
        """Append any decoded type (its ``id`` is replaced by the new id)."""
        tid = len(self) + 1
        if tid > MAX_TYPE_ID:
            raise _err("too many types")
        if t.id != tid:
            t = records.evolve(t, id=tid)
        self._check(t)
        self._intern_type(t)
        self._types.append(t)
        return tid

    def set_type(self, type_id: int, t: T.BtfType) -> None:
        """Replace own type `type_id` by `t` (any kind; ``t.id`` is set to `type_id`)."""
        i = self._local(type_id)
        if t.id != type_id:
            t = records.evolve(t, id=type_id)
        self._check(t)
        self._intern_type(t)
        self._types[i] = t

    def _check(self, t: T.BtfType) -> None:
        if isinstance(t, T.Void):
            raise _err("void (id 0) cannot be added")
        for ref in _refs(t):
            if not 0 <= ref <= MAX_TYPE_ID:
                raise _err(f"type id {ref} referenced by {t.describe()} is out of range", t.id)
        vlen = _vlen(t)
        if vlen > MAX_VLEN:
            raise _err(f"{t.describe()} has {vlen} members/values/params (max {MAX_VLEN})", t.id)

    def add_int(
        self,
        name: str,
        size: int,
        *,
        signed: bool = False,
        char: bool = False,
        bool_: bool = False,
        encoding: int | None = None,
        bit_offset: int = 0,
        nr_bits: int | None = None,
    ) -> int:
        """BTF_KIND_INT (btf__add_int). `encoding` overrides the signed/char/bool flags."""
        if not name:
            raise _err("an INT needs a name")
        if size not in _INT_SIZES:
            raise _err(f"INT size {size} is not one of 1, 2, 4, 8, 16")
        if encoding is None:
            encoding = (
                (T.INT_SIGNED if signed else 0)
                | (T.INT_CHAR if char else 0)
                | (T.INT_BOOL if bool_ else 0)
            )
        bits = size * 8 if nr_bits is None else nr_bits
        if not 0 <= encoding <= 0xF or not 0 <= bit_offset <= 0xFF or not 0 < bits <= 128:
            raise _err(f"bad INT encoding {encoding}, bit offset {bit_offset} or bits {bits}")
        return self.add_type(T.Int(0, name, size, encoding, bit_offset, bits))

    def add_float(self, name: str, size: int) -> int:
        """BTF_KIND_FLOAT (btf__add_float)."""
        if not name:
            raise _err("a FLOAT needs a name")
        if size not in _FLOAT_SIZES:
            raise _err(f"FLOAT size {size} is not one of 2, 4, 8, 12, 16")
        return self.add_type(T.Float(0, name, size))

    def add_ptr(self, type_id: int) -> int:
        return self.add_type(T.Ptr(0, "", type_id))

    def add_array(self, elem_type: int, index_type: int, nelems: int) -> int:
        """BTF_KIND_ARRAY (btf__add_array: element type, index type, element count)."""
        if not 0 <= nelems <= _U32:
            raise _err(f"array element count {nelems} does not fit 32 bits")
        return self.add_type(T.Array(0, "", elem_type, index_type, nelems))

    def add_struct(
        self,
        name: str,
        size: int,
        members: Iterable[MemberLike] = (),
        *,
        kind_flag: bool | None = None,
    ) -> int:
        """BTF_KIND_STRUCT. Members are `Member`s or ``(name, type, bit_offset
        [, bitfield_size])``; kind_flag defaults to "some member is a bitfield"."""
        return self._add_composite(T.Struct, name, size, members, kind_flag)

    def add_union(
        self,
        name: str,
        size: int,
        members: Iterable[MemberLike] = (),
        *,
        kind_flag: bool | None = None,
    ) -> int:
        """BTF_KIND_UNION, as `add_struct`."""
        return self._add_composite(T.Union, name, size, members, kind_flag)

    def _add_composite(
        self,
        cls: Callable[..., T.Struct | T.Union],
        name: str,
        size: int,
        members: Iterable[MemberLike],
        kind_flag: bool | None,
    ) -> int:
        if not 0 <= size <= _U32:
            raise _err(f"size {size} does not fit 32 bits")
        ms = tuple(_member(m) for m in members)
        kflag = any(m.bitfield_size for m in ms) if kind_flag is None else kind_flag
        _check_members(ms, kflag)
        return self.add_type(cls(0, name, size, ms, kflag))

    def add_member(
        self, type_id: int, name: str, member_type: int, bit_offset: int, bitfield_size: int = 0
    ) -> None:
        """Append a member to struct/union `type_id` (btf__add_field); a bitfield sets the
        kind_flag."""
        t = self.type(type_id)
        if not isinstance(t, T.Struct | T.Union):
            raise _err(f"{t.describe()} is not a struct or union", type_id)
        m = T.Member(name, member_type, bit_offset, bitfield_size)
        kflag = t.kind_flag or bool(bitfield_size)
        ms = (*t.members, m)
        _check_members(ms, kflag)
        self.set_type(type_id, records.evolve(t, members=ms, kind_flag=kflag))

    def add_enum(
        self,
        name: str,
        size: int = 4,
        values: Iterable[EnumValueLike] = (),
        *,
        signed: bool | None = None,
    ) -> int:
        """BTF_KIND_ENUM; `signed` (the kind_flag) defaults to "some value is negative"
        (btf__add_enum_value). Values must fit the signedness (libbpf accepts
        [INT_MIN, UINT_MAX] and stores the low 32 bits, which may not read back)."""
        if size not in _ENUM_SIZES:
            raise _err(f"ENUM size {size} is not one of 1, 2, 4, 8")
        vs = tuple(T.EnumValue(str(n), int(v)) for n, v in values)
        sign = any(v.value < 0 for v in vs) if signed is None else signed
        _check_enum_values(vs, sign, 32)
        return self.add_type(T.Enum(0, name, size, vs, sign))

    def add_enum64(
        self,
        name: str,
        size: int = 8,
        values: Iterable[EnumValueLike] = (),
        *,
        signed: bool | None = None,
    ) -> int:
        """BTF_KIND_ENUM64 (btf__add_enum64)."""
        if size not in _ENUM_SIZES:
            raise _err(f"ENUM64 size {size} is not one of 1, 2, 4, 8")
        vs = tuple(T.EnumValue(str(n), int(v)) for n, v in values)
        sign = any(v.value < 0 for v in vs) if signed is None else signed
        _check_enum_values(vs, sign, 64)
        return self.add_type(T.Enum64(0, name, size, vs, sign))

    def add_enum_value(self, type_id: int, name: str, value: int) -> None:
        """Append an enumerator to ENUM/ENUM64 `type_id`; a negative one makes it signed."""
        t = self.type(type_id)
        if not isinstance(t, T.Enum | T.Enum64):
            raise _err(f"{t.describe()} is not an enum", type_id)
        if not name:
            raise _err("an enumerator needs a name")
        vs = (*t.values, T.EnumValue(name, value))
        sign = t.signed or value < 0  # btf__add_enum_value: a negative value sets kind_flag
        _check_enum_values(vs, sign, 32 if isinstance(t, T.Enum) else 64, type_id)
        self.set_type(type_id, records.evolve(t, values=vs, signed=sign))

    def add_fwd(self, name: str, *, union: bool = False) -> int:
        """BTF_KIND_FWD of a struct (or a union). libbpf's enum forward is
        ``add_enum(name, size, ())``."""
        if not name:
            raise _err("a FWD needs a name")
        return self.add_type(T.Fwd(0, name, union))

    def add_typedef(self, name: str, type_id: int) -> int:
        if not name:
            raise _err("a TYPEDEF needs a name")
        return self.add_type(T.Typedef(0, name, type_id))

    def add_volatile(self, type_id: int) -> int:
        return self.add_type(T.Volatile(0, "", type_id))

    def add_const(self, type_id: int) -> int:
        return self.add_type(T.Const(0, "", type_id))

    def add_restrict(self, type_id: int) -> int:
        return self.add_type(T.Restrict(0, "", type_id))

    def add_type_tag(self, value: str, type_id: int, *, kind_flag: bool = False) -> int:
        """BTF_KIND_TYPE_TAG (btf__add_type_tag; kind_flag: btf__add_type_attr)."""
        if not value:
            raise _err("a TYPE_TAG needs a value")
        return self.add_type(T.TypeTag(0, value, type_id, kind_flag))

    def add_func(
        self, name: str, proto: int, linkage: BtfFuncLinkage | int = BtfFuncLinkage.STATIC
    ) -> int:
        """BTF_KIND_FUNC (btf__add_func): `proto` is its FUNC_PROTO."""
        if not name:
            raise _err("a FUNC needs a name")
        return self.add_type(T.Func(0, name, proto, BtfFuncLinkage(linkage)))

    def add_func_proto(self, return_type: int, params: Iterable[ParamLike] = ()) -> int:
        """BTF_KIND_FUNC_PROTO: params are ``(name, type)``; ``("", 0)`` last means ``...``."""
        ps = tuple(T.Param(str(n), int(t)) for n, t in params)
        return self.add_type(T.FuncProto(0, "", return_type, ps))

    def add_param(self, proto_id: int, name: str, type_id: int) -> None:
        """Append a parameter to FUNC_PROTO `proto_id` (btf__add_func_param)."""
        t = self.type(proto_id)
        if not isinstance(t, T.FuncProto):
            raise _err(f"{t.describe()} is not a FUNC_PROTO", proto_id)
        self.set_type(proto_id, records.evolve(t, params=(*t.params, T.Param(name, type_id))))

    def add_var(
        self,
        name: str,
        type_id: int,
        linkage: BtfVarLinkage | int = BtfVarLinkage.STATIC,
    ) -> int:
        """BTF_KIND_VAR (btf__add_var)."""
        if not name:
            raise _err("a VAR needs a name")
        return self.add_type(T.Var(0, name, type_id, BtfVarLinkage(linkage)))

    def add_datasec(self, name: str, size: int, vars: Iterable[SecinfoLike] = ()) -> int:
        """BTF_KIND_DATASEC: vars are `VarSecinfo`s or ``(var type id, offset, size)``."""
        if not name:
            raise _err("a DATASEC needs a name")
        vs = tuple(v if isinstance(v, T.VarSecinfo) else T.VarSecinfo(*v) for v in vars)
        return self.add_type(T.Datasec(0, name, size, vs))

    def add_var_secinfo(self, datasec_id: int, var_id: int, offset: int, size: int) -> None:
        """Append a variable to DATASEC `datasec_id` (btf__add_datasec_var_info)."""
        t = self.type(datasec_id)
        if not isinstance(t, T.Datasec):
            raise _err(f"{t.describe()} is not a DATASEC", datasec_id)
        vs = (*t.vars, T.VarSecinfo(var_id, offset, size))
        self.set_type(datasec_id, records.evolve(t, vars=vs))

    def add_decl_tag(
        self, value: str, type_id: int, component_idx: int = -1, *, kind_flag: bool = False
    ) -> int:
        """BTF_KIND_DECL_TAG (btf__add_decl_tag): component -1 is the type itself."""
        if not value:
            raise _err("a DECL_TAG needs a value")
        if not -1 <= component_idx <= 0x7FFFFFFF:
            raise _err(f"component index {component_idx} is out of range")
        return self.add_type(T.DeclTag(0, value, type_id, component_idx, kind_flag))

    # ----------------------------------------------------------------------------------
    # Encoding
    # ----------------------------------------------------------------------------------

    def encode(self, *, byteorder: str | None = None, hdr_len: int | None = None) -> bytes:
        """Raw BTF: header, types, [layout], strings (libbpf btf__raw_data's layout).

        `hdr_len` defaults to the source's for a copied BTF, else 24 (32 when a layout
        section is written); bytes past the known header fields are zero."""
        order = byteorder or self.byteorder
        if order not in ("little", "big"):
            raise _err(f"byte order must be 'little' or 'big', not {order!r}")
        words = self._encode_types()
        if order != _HOST:
            words.byteswap()
        types = words.tobytes()
        fmt = "<" if order == "little" else ">"
        lay = b""
        if self.layout:
            lay = b"".join(struct.pack(f"{fmt}BBH", a, b, f) for a, b, f in self.layout)
        hl = self.hdr_len if hdr_len is None else hdr_len
        if lay and hl < HDR_LAYOUT_LEN:
            if hdr_len is not None:
                raise _err(f"a layout section needs hdr_len >= {HDR_LAYOUT_LEN}")
            hl = HDR_LAYOUT_LEN
        if hl < HDR_LEN or hl % 4:
            raise _err(f"header length {hl} must be a multiple of 4 and at least {HDR_LEN}")
        strs = bytes(self._strtab)
        type_len, layout_len = len(types), len(lay)
        head = struct.pack(
            f"{fmt}HBBI4I",
            BTF_MAGIC,
            BTF_VERSION,
            0,
            hl,
            0,
            type_len,
            type_len + layout_len,
            len(strs),
        )
        if hl >= HDR_LAYOUT_LEN:
            head += struct.pack(f"{fmt}2I", type_len if lay else 0, layout_len)
        head = head.ljust(hl, b"\0")
        return b"".join((head, types, lay, strs))

    def to_btf(self, name: str = "") -> Btf:
        """Parse `encode()` back (split on the same base)."""
        from bpfobj.btf.reader import Btf

        return Btf.parse(self.encode(), base=self.base, name=name, cache=False)

    def _encode_types(self) -> array[int]:
        out: array[int] = array("I")
        src_words, offs = self._src_words, self._src_offs
        types = self._types
        n = len(types)
        index = self._own_index() if types else {}
        enc = _Encoder(self, index, out)
        i = 0
        while i < n:
            t = types[i]
            if t is None:  # a run of untouched source records: copy it whole
                j = i + 1
                while j < n and types[j] is None:
                    j += 1
                assert src_words is not None and offs is not None
                out.extend(src_words[offs[i] : offs[j]])
                i = j
                continue
            try:
                enc.encode(t)
            except (OverflowError, ValueError, KeyError, TypeError) as exc:
                raise _err(f"cannot encode {t.describe()}: {exc}", t.id) from None
            i += 1
        return out


class _Encoder:
    """Turns decoded types into u32 words (btf.rst section 2.2 layouts)."""

    __slots__ = ("_add_string", "_dispatch", "_index", "_out", "_unknown_order")

    def __init__(self, builder: BtfBuilder, index: dict[bytes, int], out: array[int]) -> None:
        self._index = index
        self._add_string = builder.add_string  # base strings first, then own
        self._out = out
        self._unknown_order = builder._unknown_order
        self._dispatch: dict[type, Callable[[Any], None]] = {
            T.Int: self._int,
            T.Ptr: self._ref,
            T.Typedef: self._ref,
            T.Volatile: self._ref,
            T.Const: self._ref,
            T.Restrict: self._ref,
            T.TypeTag: self._type_tag,
            T.Array: self._array,
            T.Struct: self._composite,
            T.Union: self._composite,
            T.Enum: self._enum,
            T.Enum64: self._enum64,
            T.Fwd: self._fwd,
            T.Func: self._func,
            T.FuncProto: self._proto,
            T.Var: self._var,
            T.Datasec: self._datasec,
            T.Float: self._float,
            T.DeclTag: self._decl_tag,
            T.Unknown: self._unknown,
        }

    def encode(self, t: T.BtfType) -> None:
        fn = self._dispatch.get(type(t))
        if fn is None:
            raise TypeError(f"{type(t).__name__} is not a BTF type")
        fn(t)

    def _str(self, s: str) -> int:
        if not s:
            return 0
        b = s.encode("utf-8", "surrogateescape")
        off = self._index.get(b)
        if off is None:  # e.g. a name the source referenced inside a longer string
            off = self._add_string(b)
        return off

    def _int(self, t: T.Int) -> None:
        self._out.extend(
            (
                self._str(t.name),
                0x01000000,
                t.size,
                (t.encoding << 24) | (t.bit_offset << 16) | t.nr_bits,
            )
        )

    def _ref(self, t: Any) -> None:
        self._out.extend((self._str(t.name), int(t.kind) << 24, t.type))

    def _type_tag(self, t: T.TypeTag) -> None:
        self._out.extend((self._str(t.name), _info(18, 0, t.kind_flag), t.type))

    def _array(self, t: T.Array) -> None:
        self._out.extend((self._str(t.name), 0x03000000, 0, t.type, t.index_type, t.nelems))

    def _composite(self, t: T.Struct | T.Union) -> None:
        ms = t.members
        kflag = t.kind_flag
        w = [self._str(t.name), _info(int(t.kind), len(ms), kflag), t.size]
        s = self._str
        for m in ms:
            if kflag:
                off = (m.bitfield_size << 24) | m.bit_offset
                if m.bit_offset > 0xFFFFFF or m.bitfield_size > 0xFF:
                    raise ValueError(f"member {m.name!r} bit offset/size too big for kind_flag")
            else:
                if m.bitfield_size:
                    raise ValueError(f"member {m.name!r} is a bitfield but kind_flag is clear")
                off = m.bit_offset
            w += (s(m.name), m.type, off)
        self._out.extend(w)

    def _enum(self, t: T.Enum) -> None:
        vs = t.values
        w = [self._str(t.name), _info(6, len(vs), t.signed), t.size]
        s = self._str
        for v in vs:
            if not -(1 << 31) <= v.value <= _U32:
                raise ValueError(f"enumerator {v.name} = {v.value} does not fit 32 bits")
            w += (s(v.name), v.value & _U32)
        self._out.extend(w)

    def _enum64(self, t: T.Enum64) -> None:
        vs = t.values
        w = [self._str(t.name), _info(19, len(vs), t.signed), t.size]
        s = self._str
        for v in vs:
            val = v.value & 0xFFFFFFFFFFFFFFFF
            w += (s(v.name), val & _U32, val >> 32)
        self._out.extend(w)

    def _fwd(self, t: T.Fwd) -> None:
        self._out.extend((self._str(t.name), _info(7, 0, t.is_union), 0))

    def _func(self, t: T.Func) -> None:
        self._out.extend((self._str(t.name), _info(12, int(t.linkage)), t.type))

    def _proto(self, t: T.FuncProto) -> None:
        ps = t.params
        w = [self._str(t.name), _info(13, len(ps)), t.return_type]
        s = self._str
        for p in ps:
            w += (s(p.name), p.type)
        self._out.extend(w)

    def _var(self, t: T.Var) -> None:
        self._out.extend((self._str(t.name), 0x0E000000, t.type, int(t.linkage)))

    def _datasec(self, t: T.Datasec) -> None:
        vs = t.vars
        w = [self._str(t.name), _info(15, len(vs)), t.size]
        for v in vs:
            w += (v.type, v.offset, v.size)
        self._out.extend(w)

    def _float(self, t: T.Float) -> None:
        self._out.extend((self._str(t.name), 0x10000000, t.size))

    def _decl_tag(self, t: T.DeclTag) -> None:
        self._out.extend(
            (self._str(t.name), _info(17, 0, t.kind_flag), t.type, t.component_idx & _U32)
        )

    def _unknown(self, t: T.Unknown) -> None:
        # `Unknown.data` is in the byte order it was read in (the source's); a layout
        # section only allows tails of whole u32 words, so they are swapped as words.
        data = array("I")
        data.frombytes(t.data)
        if self._unknown_order != _HOST:
            data.byteswap()
        self._out.extend(
            (self._str(t.name), _info(t.raw_kind, t.vlen, t.kind_flag), t.size_or_type)
        )
        self._out.extend(data)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _str_end(btf: Btf) -> int:
    """First string offset past `btf`'s strings (where split BTF's strings start)."""
    return btf.start_str_off + btf.header.str_len


def _layout_of(btf: Btf) -> list[tuple[int, int]] | None:
    """The (info_sz, elem_sz) layout `btf` (or its base) declares, for walking records."""
    b: Btf | None = btf
    while b is not None:
        hdr = b.header
        if hdr.layout_len:
            fmt = "<" if b.byteorder == "little" else ">"
            p0 = hdr.hdr_len + hdr.layout_off
            return [
                struct.unpack_from(f"{fmt}BB", b.raw, p) for p in range(p0, p0 + hdr.layout_len, 4)
            ]
        b = b.base
    return None


def _string_index(tab: bytes, start: int) -> dict[bytes, int]:
    """string -> offset of its first occurrence (libbpf strset__new keeps the first)."""
    index: dict[bytes, int] = {}
    off = start
    for s in tab.split(b"\0")[:-1] if tab.endswith(b"\0") else tab.split(b"\0"):
        if s not in index:
            index[s] = off
        off += len(s) + 1
    return index


def _check_enum_values(
    values: Sequence[T.EnumValue], signed: bool, bits: int, type_id: int | None = None
) -> None:
    """Values must read back as given: in [-2**(bits-1), 2**(bits-1)) when signed (the
    kind_flag), [0, 2**bits) when not."""
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    for v in values:
        if not lo <= v.value < hi:
            what = "signed" if signed else "unsigned"
            raise _err(
                f"enumerator {v.name} = {v.value} does not fit a {what} {bits}-bit enum",
                type_id,
            )


def _member(m: MemberLike) -> T.Member:
    if isinstance(m, T.Member):
        return m
    return T.Member(*m)


def _check_members(ms: Sequence[T.Member], kflag: bool) -> None:
    for m in ms:
        if m.bitfield_size and not kflag:
            raise _err(f"member {m.name!r} is a bitfield: the kind_flag must be set")
        if kflag and (m.bit_offset > 0xFFFFFF or m.bitfield_size > 0xFF):
            raise _err(
                f"member {m.name!r}: bit offset {m.bit_offset} or bitfield size "
                f"{m.bitfield_size} too big for kind_flag encoding"
            )
        if not 0 <= m.bit_offset <= _U32:
            raise _err(f"member {m.name!r}: bit offset {m.bit_offset} does not fit 32 bits")


def _refs(t: T.BtfType) -> Iterator[int]:
    """Every type id `t` refers to."""
    if isinstance(t, T.Struct | T.Union):
        for m in t.members:
            yield m.type
    elif isinstance(t, T.FuncProto):
        yield t.return_type
        for p in t.params:
            yield p.type
    elif isinstance(t, T.Datasec):
        for v in t.vars:
            yield v.type
    elif isinstance(t, T.Array):
        yield t.type
        yield t.index_type
    elif isinstance(t, T.Unknown):
        return
    else:
        ref = getattr(t, "type", None)
        if isinstance(ref, int):
            yield ref


def _vlen(t: T.BtfType) -> int:
    for field in ("members", "values", "params", "vars"):
        v = getattr(t, field, None)
        if v is not None:
            return len(v)
    return 0


__all__ = ["HDR_LAYOUT_LEN", "HDR_LEN", "BtfBuilder"]
