"""BTF to a compilable C header (vmlinux.h), as ``bpftool btf dump file PATH format c``.

A port of libbpf's btf_dump.c (the ``btf_dump__dump_type`` half; the typed-data dumper is
not needed here) and of bpftool's ``dump_btf_c`` / ``sort_btf_c`` / ``dump_btf_kfuncs``.
Types come in id order, each preceded by whatever it needs (topological order with forward
declarations), anonymous types inlined, duplicate names suffixed ``___N``, bitfields and
padding members spelled out, packed structs detected, 1- and 8-byte enums forced with
``mode(byte)``/``mode(word)``, everything under the ``preserve_access_index`` pragma so that
CO-RE relocations are recorded for every struct/union access.

bpftool builds differ in small ways; `CDumpOptions` has a knob for each and `FLAVOURS` names
the combinations. The default is libbpf 1.5's declarations in id order with bpftool 7.1's
preamble: Debian 12's bpftool (7.1.0 built from Linux 6.1.y) prints the same text except
that it lacks the mode() attributes (``--flavour bpftool-7.1-debian`` reproduces it byte for
byte, wrong enum sizes included); ``bpftool-7.5`` reproduces the sorted header with kfunc
prototypes of bpftool 7.5.

Usage::

    from bpfobj.btf.cdump import dump_c, iter_c
    header: str = dump_c(btf)                # whole header
    for chunk in iter_c(btf): out.write(chunk)

Each method names the btf_dump.c function it ports; comments inside keep libbpf's reasoning.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator

from bpfobj import records
from bpfobj.btf import types as T
from bpfobj.btf.reader import Btf
from bpfobj.errors import BtfError
from bpfobj.uapi import BtfKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Final

# enum btf_dump_type_order_state / btf_dump_type_emit_state
_NOT_ORDERED, _ORDERING, _ORDERED = 0, 1, 2
_NOT_EMITTED, _EMITTING, _EMITTED = 0, 1, 2

_EINVAL: Final = -22  # what libbpf's btf__align_of / btf__resolve_size return on failure
_E2BIG: Final = -7
_MAX_RESOLVE_DEPTH: Final = 32
_U32_MAX: Final = 0xFFFFFFFF

# pfx(): at most 13 tabs of indentation.
_PREFIXES = "\t" * 13

_K = BtfKind
_MOD_KINDS = frozenset({_K.VOLATILE, _K.CONST, _K.RESTRICT, _K.TYPE_TAG})  # btf_is_mod()
_CHAIN_NEXT = frozenset({_K.PTR, _K.VOLATILE, _K.CONST, _K.RESTRICT, _K.FUNC_PROTO, _K.TYPE_TAG})
_CHAIN_END = frozenset(
    {_K.INT, _K.ENUM, _K.ENUM64, _K.FWD, _K.STRUCT, _K.UNION, _K.TYPEDEF, _K.FLOAT}
)

# missing_base_types[]: GCC's internal __PolyX_t types (Arm SIMD) aliased to C types.
_MISSING_BASE_TYPES = {
    "__Poly8_t": "unsigned char",
    "__Poly16_t": "unsigned short",
    "__Poly64_t": "unsigned long long",
    "__Poly128_t": "unsigned __int128",
}

# bpftool dump_btf_c(): the header around the types (bpftool 7.1; 7.5 adds __ksym/__weak).
PREAMBLE = (
    "#ifndef __VMLINUX_H__\n"
    "#define __VMLINUX_H__\n"
    "\n"
    "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
    "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n"
    "#endif\n\n"
)
KSYM_PREAMBLE = (
    "#ifndef __ksym\n"
    '#define __ksym __attribute__((section(".ksyms")))\n'
    "#endif\n\n"
    "#ifndef __weak\n"
    "#define __weak __attribute__((weak))\n"
    "#endif\n\n"
)
EPILOGUE = (
    "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
    "#pragma clang attribute pop\n"
    "#endif\n"
    "\n"
    "#endif /* __VMLINUX_H__ */\n"
)
FASTCALL_PREAMBLE = (
    "#ifndef __bpf_fastcall\n"
    "#if __has_attribute(bpf_fastcall)\n"
    "#define __bpf_fastcall __attribute__((bpf_fastcall))\n"
    "#else\n"
    "#define __bpf_fastcall\n"
    "#endif\n"
    "#endif\n\n"
)
KFUNC_DECL_TAG = "bpf_kfunc"
FASTCALL_DECL_TAG = "bpf_fastcall"


@records.frozen
class CDumpOptions:
    """How the header is spelled (see `FLAVOURS` for the bpftool builds).

    * ``sort``: bpftool 7.5's ``sort_btf_c`` order instead of id order (stable across
      kernels: types sorted by kind rank and name).
    * ``sort_drop_first``: reproduce bpftool 7.5's off-by-one: it sorts every id, void
      included, then dumps entries 1.. of the sorted list, so the first entry (an anonymous
      enum, which ranks lowest) is never dumped and void is; when that enum is a top-level
      constant block its constants go missing from bpftool's header.
    * ``kfuncs``: bpftool 7.5's ``__ksym``/``__weak`` macros and an ``extern ... __weak
      __ksym;`` prototype for each function tagged ``bpf_kfunc`` (in id order, as Linux
      6.12's bpftool prints them).
    * ``fastcall``: the bpftool 7.5.0 release's additions: a ``__bpf_fastcall`` macro,
      kfunc prototypes sorted by name, and ``__bpf_fastcall`` on those tagged so.
    * ``enum_size_attrs``: ``mode(byte)``/``mode(word)`` on 1- and 8-byte enums (libbpf
      1.1+), without which such enums come out 4 bytes wide.
    * ``void_params``: libbpf 1.5's ``(void)`` for prototypes without parameters.
    * ``pointer_size``: overrides the size guessed from ``long`` (libbpf takes it from the
      ELF class for ELF files).
    """

    sort: bool = False
    sort_drop_first: bool = False
    kfuncs: bool = False
    fastcall: bool = False
    void_params: bool = True
    enum_size_attrs: bool = True
    pointer_size: int | None = None

    @classmethod
    def flavour(cls, name: str) -> CDumpOptions:
        """The options that reproduce a bpftool build (see `FLAVOURS`)."""
        try:
            return FLAVOURS[name]
        except KeyError:
            raise ValueError(
                f"unknown C dump flavour {name!r} (known: {', '.join(FLAVOURS)})"
            ) from None


FLAVOURS: dict[str, CDumpOptions] = {
    # libbpf 1.5's declarations (the default): correct enum sizes, `(void)`, id order.
    "default": CDumpOptions(),
    # Debian 12's bpftool 7.1.0+6.1.x (libbpf of the 6.1 stable tree): its output has the
    # later `(void)` and padding fixes but not the mode(byte)/mode(word) enum sizing, so
    # 1- and 8-byte enums come out 4 bytes wide in its header (struct inode's layout
    # breaks on 6.x kernels: enum rw_hint is 1 byte).
    "bpftool-7.1-debian": CDumpOptions(enum_size_attrs=False),
    # upstream libbpf 1.1 (bpftool 7.1 built against it): `()` for no parameters.
    "libbpf-1.1": CDumpOptions(void_params=False),
    # bpftool of the Linux 6.12 tree: sorted, with __ksym/__weak and kfunc prototypes.
    "linux-6.12": CDumpOptions(sort=True, sort_drop_first=True, kfuncs=True),
    # the bpftool 7.5.0 release: as linux-6.12, plus __bpf_fastcall, kfuncs by name.
    "bpftool-7.5": CDumpOptions(sort=True, sort_drop_first=True, kfuncs=True, fastcall=True),
}


class _Stack:
    """struct id_stack: a view of one declaration chain, popped from the top."""

    __slots__ = ("cnt", "ids")

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.cnt = len(ids)


class CDumper:
    """struct btf_dump: the state of one header dump (names already used, types already
    emitted). `dump_type` may be called for several roots; each type is emitted once."""

    def __init__(self, btf: Btf, options: CDumpOptions | None = None) -> None:
        self.btf = btf
        self.options = options or CDumpOptions()
        # btf_dump__new(): d->ptr_sz = btf__pointer_size(btf) ?: sizeof(void *)
        self.ptr_sz = self.options.pointer_size or btf.pointer_size
        self.out: list[str] = []
        self.warnings: list[str] = []  # libbpf's pr_warn() lines
        n = len(btf) + 1  # btf__type_cnt()
        self._n = n
        # every type decoded once, indexed by id (C's btf__type_by_id)
        self.types: list[T.BtfType] = [btf.type(i) for i in range(n)]
        self.order_state = bytearray(n)
        self.emit_state = bytearray(n)
        self.fwd_emitted = bytearray(n)
        self.name_resolved = bytearray(n)
        self.referenced = bytearray(n)
        self.cached_names: dict[int, str] = {}
        self.type_names: dict[str, int] = {}  # struct/union/enum names -> occurrences
        self.ident_names: dict[str, int] = {}  # typedef and enumerator names -> occurrences
        self._align: dict[int, int] = {}
        self._size: dict[int, int] = {}
        self._emit_queue: list[int] = []
        # btf_dump_resize(): VOID is special
        self.order_state[0] = _ORDERED
        self.emit_state[0] = _EMITTED
        self._mark_referenced()

    # ----------------------------------------------------------------------------------
    # btf_dump_mark_referenced
    # ----------------------------------------------------------------------------------

    def _mark_referenced(self) -> None:
        """Mark every type referenced from another one: an anonymous enum nobody refers to
        is a top-level constant block, one that is referenced is inlined where used."""
        ref = self.referenced
        for t in itertools.islice(self.types, 1, None):
            if isinstance(t, T.Struct | T.Union):
                for m in t.members:
                    ref[m.type] = 1
            elif isinstance(t, T.Array):
                ref[t.index_type] = 1
                ref[t.type] = 1
            elif isinstance(t, T.FuncProto):
                for p in t.params:
                    ref[p.type] = 1
            elif isinstance(t, T.Datasec):
                for v in t.vars:
                    ref[v.type] = 1
            elif isinstance(t, T.Int | T.Enum | T.Enum64 | T.Fwd | T.Float):
                pass
            elif isinstance(t, T.Unknown):
                raise BtfError(
                    f"cannot dump kind {t.raw_kind} as C",
                    type=t.describe(),
                    obj=self.btf.label or None,
                    hint="this BTF uses a kind newer than bpfobj knows",
                )
            else:  # volatile, const, restrict, ptr, typedef, func, var, decl_tag, type_tag
                ref[t.type] = 1  # type: ignore[attr-defined]

    # ----------------------------------------------------------------------------------
    # btf_dump__dump_type / btf_dump_order_type
    # ----------------------------------------------------------------------------------

    def dump_type(self, type_id: int) -> None:
        """btf_dump__dump_type(): emit `type_id` and, first, everything it needs."""
        if not 0 <= type_id < self._n:
            raise BtfError(f"type id {type_id} is out of range", obj=self.btf.label or None)
        self._emit_queue = []
        with _deep_recursion():
            self._order_type(type_id, False)
            for tid in self._emit_queue:
                self._emit_type(tid, 0)

    def _order_type(self, tid: int, through_ptr: bool) -> int:
        """btf_dump_order_type(): topological sort. Returns 1 for a strong link (the type
        must be fully defined first), 0 for a weak one (a forward declaration will do)."""
        state = self.order_state
        if state[tid] == _ORDERED:
            return 1
        t = self.types[tid]
        if state[tid] == _ORDERING:
            # type loop, but resolvable through fwd declaration
            if isinstance(t, T.Struct | T.Union) and through_ptr and t.name:
                return 0
            raise BtfError(
                "unsatisfiable type cycle",
                type=t.describe(),
                obj=self.btf.label or None,
                hint="the BTF has a loop of types embedding each other",
            )
        k = t.kind
        if k == _K.INT or k == _K.FLOAT:
            state[tid] = _ORDERED
            return 0
        if k == _K.PTR:
            res = self._order_type(t.type, True)  # type: ignore[attr-defined]
            state[tid] = _ORDERED
            return res
        if k == _K.ARRAY:
            return self._order_type(t.type, False)  # type: ignore[attr-defined]
        if isinstance(t, T.Struct | T.Union):
            # struct/union is part of strong link, only if it's embedded (so no ptr in a
            # path) or it's anonymous (so has to be defined inline, even if declared
            # through ptr)
            if through_ptr and t.name:
                return 0
            state[tid] = _ORDERING
            for m in t.members:
                self._order_type(m.type, False)
            if t.name:
                self._emit_queue.append(tid)
            state[tid] = _ORDERED
            return 1
        if k == _K.ENUM or k == _K.ENUM64 or k == _K.FWD:
            # non-anonymous or non-referenced enums are top-level declarations
            if t.name or not self.referenced[tid]:
                self._emit_queue.append(tid)
            state[tid] = _ORDERED
            return 1
        if k == _K.TYPEDEF:
            is_strong = self._order_type(t.type, through_ptr)  # type: ignore[attr-defined]
            # typedef is similar to struct/union w.r.t. fwd-decls
            if through_ptr and not is_strong:
                return 0
            self._emit_queue.append(tid)  # typedef is always a named definition
            state[tid] = _ORDERED
            return 1
        if k in _MOD_KINDS:
            return self._order_type(t.type, through_ptr)  # type: ignore[attr-defined]
        if isinstance(t, T.FuncProto):
            strong = self._order_type(t.return_type, through_ptr) > 0
            for p in t.params:
                if self._order_type(p.type, through_ptr) > 0:
                    strong = True
            return int(strong)
        if k in (_K.FUNC, _K.VAR, _K.DATASEC, _K.DECL_TAG):
            state[tid] = _ORDERED
            return 0
        raise BtfError(
            f"cannot order kind {t.kind.name} for a C dump",
            type=t.describe(),
            obj=self.btf.label or None,
        )

    # ----------------------------------------------------------------------------------
    # btf_dump_emit_type
    # ----------------------------------------------------------------------------------

    def _is_blacklisted(self, t: T.BtfType) -> bool:
        """btf_dump_is_blacklisted(): __builtin_va_list is the compiler's own."""
        return t.name == "__builtin_va_list"

    def _emit_type(self, tid: int, cont_id: int) -> None:
        """btf_dump_emit_type(): emit the definition of `tid` (forward declarations of what
        it refers to first). `cont_id` is the struct/union being defined, 0 at top level."""
        estate = self.emit_state
        if estate[tid] == _EMITTED:
            return
        t = self.types[tid]
        w = self.out.append
        top_level_def = cont_id == 0

        if estate[tid] == _EMITTING:
            if self.fwd_emitted[tid]:
                return
            if isinstance(t, T.Struct | T.Union):
                # referencing a struct/union that we are part of: no fwd declaration
                if tid == cont_id:
                    return
                if not t.name:
                    self.warnings.append(f"anonymous struct/union loop, id:[{tid}]")
                    return
                self._emit_struct_fwd(tid, t)
                w(";\n\n")
                self.fwd_emitted[tid] = 1
            elif isinstance(t, T.Typedef):
                # for typedef fwd_emitted means typedef definition was emitted, but it can
                # be used only for "weak" references through pointer only
                if not self._is_blacklisted(t):
                    self._emit_typedef_def(tid, t, 0)
                    w(";\n\n")
                self.fwd_emitted[tid] = 1
            return

        if isinstance(t, T.Int):
            self._emit_missing_aliases(tid)
            estate[tid] = _EMITTED
        elif isinstance(t, T.Enum | T.Enum64):
            if top_level_def:
                self._emit_enum_def(tid, t, 0)
                w(";\n\n")
            estate[tid] = _EMITTED
        elif isinstance(t, T.Ptr | T.Volatile | T.Const | T.Restrict | T.TypeTag | T.Array):
            self._emit_type(t.type, cont_id)
        elif isinstance(t, T.Fwd):
            self._emit_fwd_def(tid, t)
            w(";\n\n")
            estate[tid] = _EMITTED
        elif isinstance(t, T.Typedef):
            estate[tid] = _EMITTING
            self._emit_type(t.type, tid)
            # typedef can serve as both definition and forward declaration
            if not self.fwd_emitted[tid] and not self._is_blacklisted(t):
                self._emit_typedef_def(tid, t, 0)
                w(";\n\n")
            estate[tid] = _EMITTED
        elif isinstance(t, T.Struct | T.Union):
            estate[tid] = _EMITTING
            # a top-level or anonymous struct/union is emitted with all its fields: make
            # sure their types have the forward declarations they need
            if top_level_def or not t.name:
                new_cont_id = cont_id if not t.name else tid
                for m in t.members:
                    self._emit_type(m.type, new_cont_id)
            elif not self.fwd_emitted[tid] and tid != cont_id:
                self._emit_struct_fwd(tid, t)
                w(";\n\n")
                self.fwd_emitted[tid] = 1
            if top_level_def:
                self._emit_struct_def(tid, t, 0)
                w(";\n\n")
                estate[tid] = _EMITTED
            else:
                estate[tid] = _NOT_EMITTED
        elif isinstance(t, T.FuncProto):
            self._emit_type(t.return_type, cont_id)
            for p in t.params:
                self._emit_type(p.type, cont_id)

    # ----------------------------------------------------------------------------------
    # Layout: btf__align_of, btf__resolve_size, btf_is_struct_packed (libbpf btf.c)
    # ----------------------------------------------------------------------------------

    def align_of(self, tid: int) -> int:
        """btf__align_of(): natural alignment, 1 for a struct whose layout shows packing,
        a negative errno for kinds without one (void, fwd, func_proto)."""
        got = self._align.get(tid)
        if got is not None:
            return got
        seen = tid
        t = self.types[tid]
        while isinstance(t, T.Typedef | T.Volatile | T.Const | T.Restrict | T.TypeTag | T.Array):
            t = self.types[t.type]
        if isinstance(t, T.Int | T.Enum | T.Enum64 | T.Float):
            res = min(self.ptr_sz, t.size)
        elif isinstance(t, T.Ptr):
            res = self.ptr_sz
        elif isinstance(t, T.Struct | T.Union):
            res = self._composite_align(t)
        else:
            self.warnings.append(f"unsupported BTF_KIND:{int(t.kind)}")
            res = _EINVAL
        self._align[seen] = res
        return res

    def _composite_align(self, t: T.Struct | T.Union) -> int:
        max_align = 1
        for m in t.members:
            align = self.align_of(m.type)
            if align <= 0:
                return align
            max_align = max(max_align, align)
            # a field not aligned for its type means the struct is packed
            if m.bitfield_size == 0 and m.bit_offset % (8 * align):
                return 1
        # a size that is not a multiple of the alignment means packed
        if t.size % max_align:
            return 1
        return max_align

    def resolve_size(self, tid: int) -> int:
        """btf__resolve_size(): bytes of `tid`, or a negative errno."""
        got = self._size.get(tid)
        if got is not None:
            return got
        nelems = 1
        size = -1
        cur = tid
        t = self.types[cur]
        for _ in range(_MAX_RESOLVE_DEPTH):
            if cur == 0:
                break
            if isinstance(t, T.Int | T.Struct | T.Union | T.Enum | T.Enum64 | T.Datasec | T.Float):
                size = t.size
                break
            if isinstance(t, T.Ptr):
                size = self.ptr_sz
                break
            if isinstance(
                t, T.Typedef | T.Volatile | T.Const | T.Restrict | T.Var | T.DeclTag | T.TypeTag
            ):
                cur = t.type
            elif isinstance(t, T.Array):
                if nelems and t.nelems > _U32_MAX // nelems:
                    return self._size.setdefault(tid, _E2BIG)
                nelems *= t.nelems
                cur = t.type
            else:
                return self._size.setdefault(tid, _EINVAL)
            t = self.types[cur]
        if size < 0:
            res = _EINVAL
        elif nelems and size > _U32_MAX // nelems:
            res = _E2BIG
        else:
            res = nelems * size
        self._size[tid] = res
        return res

    def _is_struct_packed(self, t: T.Struct | T.Union) -> bool:
        """btf_is_struct_packed(): a non-bitfield member off its natural alignment, or a
        size that is not a multiple of the largest alignment."""
        max_align = 1
        for m in t.members:
            align = self.align_of(m.type)
            # C compares the u32 offset with the int (8 * align) converted to unsigned
            if align and m.bitfield_size == 0 and m.bit_offset % ((8 * align) & _U32_MAX):
                return True
            max_align = max(align, max_align)
        return bool(t.size % max_align)

    # ----------------------------------------------------------------------------------
    # Struct/union, enum, fwd, typedef definitions
    # ----------------------------------------------------------------------------------

    def _emit_bit_padding(
        self, cur_off: int, next_off: int, next_align: int, in_bitfield: bool, lvl: int
    ) -> None:
        """btf_dump_emit_bit_padding(): fill the gap [cur_off, next_off) (bits) with
        anonymous ``<type>: N;`` bitfields, relying on natural alignment where it can."""
        if cur_off >= next_off:
            return  # no gap
        pads = (("long", self.ptr_sz * 8), ("int", 32), ("short", 16), ("char", 8))
        w = self.out.append
        prefix = _pfx(lvl)
        # the largest type whose natural alignment does not overshoot next_off
        new_off = pad_bits = 0
        pad_type = ""
        for pad_type, pad_bits in pads:  # noqa: B007 (the last one stays if none fits)
            new_off = _roundup(cur_off, pad_bits)
            if new_off <= next_off:
                break
        if cur_off < new_off <= next_off:
            # an explicit `<type>: 0` is needed if the next field sits right on the
            # boundary but its own alignment would not get it there, or if `<type>: X`
            # would fit in the remaining hole and be ignored; bitfields get a bit count
            if (
                in_bitfield
                or (new_off == next_off and _roundup(cur_off, next_align * 8) != new_off)
                or (new_off != next_off and next_off - new_off <= new_off - cur_off)
            ):
                w(f"\n{prefix}{pad_type}: {new_off - cur_off if in_bitfield else 0};")
            cur_off = new_off
        # now aligned for pad_type: fill with full-size markers, the last one smaller
        while cur_off != next_off:
            bits = min(next_off - cur_off, pad_bits)
            if bits == pad_bits:
                w(f"\n{prefix}{pad_type}: {pad_bits};")
                cur_off += bits
                continue
            # the smallest type that covers the remainder (pure aesthetics)
            for pad_type, pad_bits in reversed(pads):
                if pad_bits < bits:
                    continue
                w(f"\n{prefix}{pad_type}: {bits};")
                cur_off += bits
                break
            else:  # cannot happen (bits <= the long's bits); avoid looping forever
                break

    def _emit_struct_fwd(self, tid: int, t: T.Struct | T.Union) -> None:
        """btf_dump_emit_struct_fwd()"""
        kw = "struct" if isinstance(t, T.Struct) else "union"
        name = self.type_name(tid)
        self.out.append(f"{kw} {name}" if t.name else f"{kw}{name}")

    def _emit_struct_def(self, tid: int, t: T.Struct | T.Union, lvl: int) -> None:
        """btf_dump_emit_struct_def(): the body, with padding members and bitfields."""
        w = self.out.append
        is_struct = isinstance(t, T.Struct)
        align = self.align_of(tid)
        packed = self._is_struct_packed(t) if is_struct else False
        kw = "struct" if is_struct else "union"
        name = self.type_name(tid)
        w(f"{kw} {name} {{" if t.name else f"{kw}{name} {{")
        prefix = _pfx(lvl + 1)
        off = 0
        prev_bitfield = False
        for m in t.members:
            m_sz = m.bitfield_size
            m_off = m.bit_offset
            m_align = 1 if packed else self.align_of(m.type)
            in_bitfield = prev_bitfield and m_sz != 0
            self._emit_bit_padding(off, m_off, m_align, in_bitfield, lvl + 1)
            w(f"\n{prefix}")
            self._emit_type_decl(m.type, m.name, lvl + 1)
            if m_sz:
                w(f": {m_sz}")
                off = m_off + m_sz
                prev_bitfield = True
            else:
                m_sz = max(0, self.resolve_size(m.type))
                off = m_off + m_sz * 8
                prev_bitfield = False
            w(";")
        # pad at the end, if necessary
        if is_struct:
            self._emit_bit_padding(off, t.size * 8, align, False, lvl + 1)
        # keep `struct empty {}` on a single line
        if t.members or t.size:
            w(f"\n{_pfx(lvl)}}}")
        else:
            w("}")
        if packed:
            w(" __attribute__((packed))")

    def _emit_missing_aliases(self, tid: int) -> None:
        """btf_dump_emit_missing_aliases()"""
        name = self.type_name(tid)
        alias = _MISSING_BASE_TYPES.get(name)
        if alias is not None:
            self.out.append(f"typedef {alias} {name};\n\n")

    def _emit_enum_def(self, tid: int, t: T.Enum | T.Enum64, lvl: int) -> None:
        """btf_dump_emit_enum_def() with btf_dump_emit_enum{32,64}_val()."""
        w = self.out.append
        name = self.type_name(tid)
        w(f"enum {name}" if t.name else f"enum{name}")
        if not t.values:
            return
        w(" {")
        prefix = _pfx(lvl + 1)
        suffix = ("LL" if t.signed else "ULL") if isinstance(t, T.Enum64) else ""
        for vname, val in t.values:
            # enumerators share namespace with typedef idents
            dup_cnt = self._name_dups(self.ident_names, vname)
            if dup_cnt > 1:
                w(f"\n{prefix}{vname}___{dup_cnt} = {val}{suffix},")
            else:
                w(f"\n{prefix}{vname} = {val}{suffix},")
        w(f"\n{_pfx(lvl)}}}")
        # special case enums with special sizes
        if not self.options.enum_size_attrs:
            return
        if t.size == 1:
            w(" __attribute__((mode(byte)))")
        elif (
            t.size == 8
            and self.ptr_sz == 8
            # an enum64 with a value past 32 bits is 8 bytes by itself; otherwise ask
            and (
                isinstance(t, T.Enum)
                or all((v & 0xFFFFFFFFFFFFFFFF) >> 32 == 0 for _, v in t.values)
            )
        ):
            w(" __attribute__((mode(word)))")

    def _emit_fwd_def(self, tid: int, t: T.Fwd) -> None:
        """btf_dump_emit_fwd_def()"""
        name = self.type_name(tid)
        self.out.append(f"union {name}" if t.is_union else f"struct {name}")

    def _emit_typedef_def(self, tid: int, t: T.Typedef, lvl: int) -> None:
        """btf_dump_emit_typedef_def()"""
        name = self.ident_name(tid)
        # old GCC emits __gnuc_va_list as a typedef of void: fix it up
        if t.type == 0 and name == "__gnuc_va_list":
            self.out.append("typedef __builtin_va_list __gnuc_va_list")
            return
        self.out.append("typedef ")
        self._emit_type_decl(t.type, name, lvl)

    # ----------------------------------------------------------------------------------
    # Declarations: btf_dump_emit_type_decl / btf_dump_emit_type_chain
    # ----------------------------------------------------------------------------------

    def emit_type_decl(self, tid: int, field_name: str = "", indent_level: int = 0) -> str:
        """btf_dump__emit_type_decl(): the C declaration of `field_name` as `tid`."""
        start = len(self.out)
        with _deep_recursion():
            self._emit_type_decl(tid, field_name, indent_level)
        text = "".join(self.out[start:])
        del self.out[start:]
        return text

    def _emit_type_decl(self, tid: int, fname: str, lvl: int) -> None:
        """btf_dump_emit_type_decl(): push the chain of types down to a terminal type
        (int, enum, struct, union, fwd, typedef, float), then emit it inside out."""
        ids: list[int] = []
        get = self.types.__getitem__
        while True:
            ids.append(tid)
            if tid == 0:
                break
            t = get(tid)
            k = t.kind
            if k in _CHAIN_NEXT or k == _K.ARRAY:
                tid = t.type  # type: ignore[attr-defined]
            else:
                if k not in _CHAIN_END:
                    self.warnings.append(
                        f"unexpected type in decl chain, kind:{int(k)}, id:[{tid}]"
                    )
                break
        self._emit_type_chain(_Stack(ids), fname, lvl)

    def _emit_mods(self, decls: _Stack) -> None:
        """btf_dump_emit_mods(): qualifiers written before a non-pointer type."""
        w = self.out.append
        while decls.cnt:
            k = self.btf.kind(decls.ids[decls.cnt - 1])
            if k == _K.VOLATILE:
                w("volatile ")
            elif k == _K.CONST:
                w("const ")
            elif k == _K.RESTRICT:
                w("restrict ")
            else:
                return
            decls.cnt -= 1

    def _drop_mods(self, decls: _Stack) -> None:
        """btf_dump_drop_mods()"""
        while decls.cnt:
            if self.btf.kind(decls.ids[decls.cnt - 1]) not in _MOD_KINDS:
                return
            decls.cnt -= 1

    def _emit_name(self, name: str, last_was_ptr: bool) -> None:
        """btf_dump_emit_name()"""
        self.out.append(f" {name}" if name and not last_was_ptr else name)

    def _emit_type_chain(self, decls: _Stack, fname: str, lvl: int) -> None:
        """btf_dump_emit_type_chain(). `last_was_ptr` keeps ``int ***`` unspaced; it
        starts true so that a lone pointer before a func_proto prints ``(*name)``."""
        w = self.out.append
        last_was_ptr = True
        while decls.cnt:
            decls.cnt -= 1
            tid = decls.ids[decls.cnt]
            if tid == 0:
                # VOID is a special snowflake
                self._emit_mods(decls)
                w("void")
                last_was_ptr = False
                continue
            t = self.types[tid]
            k = t.kind
            if isinstance(t, T.Int | T.Float):
                self._emit_mods(decls)
                w(t.name)
            elif isinstance(t, T.Struct | T.Union):
                self._emit_mods(decls)
                if not t.name:  # inline anonymous struct/union
                    self._emit_struct_def(tid, t, lvl)
                else:
                    self._emit_struct_fwd(tid, t)
            elif isinstance(t, T.Enum | T.Enum64):
                self._emit_mods(decls)
                if not t.name:  # inline anonymous enum
                    self._emit_enum_def(tid, t, lvl)
                else:
                    w(f"enum {self.type_name(tid)}")  # btf_dump_emit_enum_fwd()
            elif isinstance(t, T.Fwd):
                self._emit_mods(decls)
                self._emit_fwd_def(tid, t)
            elif isinstance(t, T.Typedef):
                self._emit_mods(decls)
                w(self.ident_name(tid))
            elif k == _K.PTR:
                w("*" if last_was_ptr else " *")
            elif k == _K.VOLATILE:
                w(" volatile")
            elif k == _K.CONST:
                w(" const")
            elif k == _K.RESTRICT:
                w(" restrict")
            elif k == _K.TYPE_TAG:
                self._emit_mods(decls)
                w(f' __attribute__((btf_type_tag("{t.name}")))')
            elif isinstance(t, T.Array):
                # GCC adds the element's const/volatile to the array itself (GCC bug
                # 8354); Clang does not: drop them
                self._drop_mods(decls)
                if decls.cnt == 0:
                    self._emit_name(fname, last_was_ptr)
                    w(f"[{t.nelems}]")
                    return
                multidim = self.btf.kind(decls.ids[decls.cnt - 1]) == _K.ARRAY
                # we need space if we have named non-pointer
                if fname and not last_was_ptr:
                    w(" ")
                # no parentheses for multi-dimensional array
                if not multidim:
                    w("(")
                self._emit_type_chain(decls, fname, lvl)
                if not multidim:
                    w(")")
                w(f"[{t.nelems}]")
                return
            elif isinstance(t, T.FuncProto):
                # GCC adds volatile to noreturn function pointers: drop qualifiers
                self._drop_mods(decls)
                if decls.cnt:
                    w(" (")
                    self._emit_type_chain(decls, fname, lvl)
                    w(")")
                else:
                    self._emit_name(fname, last_was_ptr)
                w("(")
                params = t.params
                # clang encodes `f(void)` as a single void parameter
                # (libbpf 1.1 prints `()` for it and for no parameters; 1.5 `(void)`)
                if not params or (len(params) == 1 and params[0].type == 0):
                    w("void)" if self.options.void_params else ")")
                    return
                last = len(params) - 1
                for i, (pname, ptype) in enumerate(params):
                    if i > 0:
                        w(", ")
                    # last arg of type void is vararg
                    if i == last and ptype == 0:
                        w("...")
                        break
                    self._emit_type_decl(ptype, pname, lvl)
                w(")")
                return
            else:
                self.warnings.append(f"unexpected type in decl chain, kind:{int(k)}, id:[{tid}]")
                return
            last_was_ptr = k == _K.PTR
        self._emit_name(fname, last_was_ptr)

    # ----------------------------------------------------------------------------------
    # Names: btf_dump_name_dups / btf_dump_resolve_name
    # ----------------------------------------------------------------------------------

    @staticmethod
    def _name_dups(name_map: dict[str, int], orig_name: str) -> int:
        """btf_dump_name_dups(): count one more occurrence of `orig_name`."""
        cnt = name_map.get(orig_name, 0) + 1
        name_map[orig_name] = cnt
        return cnt

    def _resolve_name(self, tid: int, name_map: dict[str, int]) -> str:
        """btf_dump_resolve_name(): the name, made unique with ``___N`` the N-th time a
        name is used (forward declarations and empty enums keep theirs)."""
        t = self.types[tid]
        orig = t.name
        if not orig:
            return ""
        if self.name_resolved[tid]:
            return self.cached_names.get(tid, orig)
        self.name_resolved[tid] = 1
        if isinstance(t, T.Fwd) or (isinstance(t, T.Enum) and not t.values):
            return orig
        dup_cnt = self._name_dups(name_map, orig)
        if dup_cnt > 1:
            new = f"{orig}___{dup_cnt}"
            raw = new.encode("utf-8", "surrogateescape")
            if len(raw) > 255:  # snprintf into char[256]
                new = raw[:255].decode("utf-8", "surrogateescape")
            self.cached_names[tid] = new
            return new
        return orig

    def type_name(self, tid: int) -> str:
        """btf_dump_type_name(): struct/union/enum namespace."""
        return self._resolve_name(tid, self.type_names)

    def ident_name(self, tid: int) -> str:
        """btf_dump_ident_name(): typedef (and enumerator) namespace."""
        return self._resolve_name(tid, self.ident_names)

    def header(self, type_ids: Iterable[int] | None = None) -> Iterator[str]:
        """bpftool's ``dump_btf_c``: the whole header as text chunks (see `iter_c`).
        Afterwards `type_name` / `ident_name` give the names types were emitted under."""
        opts = self.options
        yield (
            PREAMBLE
            + (KSYM_PREAMBLE if opts.kfuncs else "")
            + (FASTCALL_PREAMBLE if opts.fastcall else "")
        )
        if type_ids is not None:
            roots: Iterable[int] = type_ids
        elif opts.sort:
            roots = sorted_type_ids(self.btf, drop_first=opts.sort_drop_first)
        else:
            roots = range(1, self._n)
        pending = 0
        for tid in roots:
            self.dump_type(tid)
            pending += 1
            if pending >= 2048:
                yield self.take()
                pending = 0
        if type_ids is None and opts.kfuncs:
            _dump_kfuncs(self, self.btf)
        yield self.take() + EPILOGUE

    def take(self) -> str:
        """The text emitted so far, clearing the buffer."""
        text = "".join(self.out)
        self.out.clear()
        return text


def _pfx(lvl: int) -> str:
    return _PREFIXES if lvl >= len(_PREFIXES) else _PREFIXES[:lvl]


def _roundup(x: int, y: int) -> int:
    # the kernel's roundup(); y is 0 only for broken BTF, where C would trap
    return ((x + y - 1) // y) * y if y else x


class _deep_recursion:
    """Raise the recursion limit while walking type graphs: C recurses freely, and deep
    chains of embedded anonymous types need more than Python's default 1000 frames."""

    LIMIT = 20000

    def __enter__(self) -> None:
        self._old = sys.getrecursionlimit()
        if self._old < self.LIMIT:
            sys.setrecursionlimit(self.LIMIT)

    def __exit__(self, *exc: object) -> None:
        sys.setrecursionlimit(self._old)


# --------------------------------------------------------------------------------------
# bpftool: dump_btf_c, sort_btf_c, dump_btf_kfuncs
# --------------------------------------------------------------------------------------


def iter_c(
    btf: Btf,
    options: CDumpOptions | None = None,
    *,
    type_ids: Iterable[int] | None = None,
    warnings: list[str] | None = None,
) -> Iterator[str]:
    """The header as text chunks: bpftool's ``dump_btf_c``. All types (split BTF: its
    base's too, as bpftool does), or only `type_ids` and what they need (then without kfunc
    prototypes). libbpf's warnings are appended to `warnings` if given."""
    d = CDumper(btf, options)
    try:
        yield from d.header(type_ids)
    finally:
        if warnings is not None:
            warnings.extend(d.warnings)


def dump_c(
    btf: Btf,
    options: CDumpOptions | None = None,
    *,
    type_ids: Iterable[int] | None = None,
    warnings: list[str] | None = None,
) -> str:
    """`iter_c` joined into one string."""
    return "".join(iter_c(btf, options, type_ids=type_ids, warnings=warnings))


def _dump_kfuncs(d: CDumper, btf: Btf) -> None:
    """dump_btf_kfuncs() (bpftool 7.5): an extern prototype for each function tagged
    bpf_kfunc; with ``fastcall``, sorted by name and marked __bpf_fastcall if tagged so."""
    w = d.out.append
    w("\n/* BPF kfuncs */\n")
    w("#ifndef BPF_NO_KFUNC_PROTOTYPES\n")
    kfuncs: list[T.Func] = []
    fastcalls: set[int] = set()
    for tid in range(1, len(btf) + 1):
        if btf.kind(tid) != _K.DECL_TAG:
            continue
        tag = btf.type(tid)
        assert isinstance(tag, T.DeclTag)
        if tag.component_idx != -1:
            continue
        func = btf.type(tag.type)
        if not isinstance(func, T.Func):
            continue
        if tag.name == KFUNC_DECL_TAG:
            kfuncs.append(func)
        elif tag.name == FASTCALL_DECL_TAG:
            fastcalls.add(func.id)
    if d.options.fastcall:
        kfuncs.sort(key=lambda f: f.name.encode("utf-8", "surrogateescape"))
    for func in kfuncs:
        w("extern ")
        if d.options.fastcall and func.id in fastcalls:
            w("__bpf_fastcall ")
        with _deep_recursion():
            d._emit_type_decl(func.type, func.name, 0)
        w(" __weak __ksym;\n")
    w("#endif\n\n")


def _str_hash(name: str) -> int:
    """libbpf's str_hash(): h = h * 31 + c over the (signed) chars, as a size_t."""
    h = 0
    for c in name.encode("utf-8", "surrogateescape"):
        h = (h * 31 + (c - 256 if c >= 128 else c)) & 0xFFFFFFFFFFFFFFFF
    return h


def sorted_type_ids(btf: Btf, *, drop_first: bool = False) -> list[int]:
    """bpftool 7.5's ``sort_btf_c`` order of the ids to dump: by kind rank (anonymous enums,
    named enums, ints and floats, named structs/unions, func protos, the rest), then by the
    name of what a type refers to, its own name, a hash of its shape, and its id.

    Every id but void, unless `drop_first`: then, like bpftool, all ids including void are
    sorted and the first entry of the sorted list is skipped (see
    `CDumpOptions.sort_drop_first`)."""
    get = btf.type
    mask = 0xFFFFFFFFFFFFFFFF
    max_rank = 10

    def rank(tid: int, has_name: bool) -> int:
        while True:
            t = get(tid)
            if t.name:
                has_name = True
            if isinstance(t, T.Enum | T.Enum64):
                return 1 if has_name else 0
            if isinstance(t, T.Int | T.Float):
                return 2
            if isinstance(t, T.Struct | T.Union):
                return 3 if has_name else max_rank
            if isinstance(t, T.FuncProto):
                return 4 if has_name else max_rank
            if isinstance(
                t,
                T.Array | T.TypeTag | T.Const | T.Ptr | T.Volatile | T.Restrict | T.Typedef
                | T.DeclTag,
            ):
                if not has_name:
                    return max_rank
                tid = t.type
                continue
            return max_rank

    def sort_name(tid: int, from_ref: bool) -> str:
        while True:
            t = get(tid)
            if isinstance(t, T.Enum | T.Enum64):
                if not from_ref and not t.name and t.values:
                    return t.values[0].name
                return t.name
            if isinstance(
                t,
                T.Array | T.TypeTag | T.Const | T.Ptr | T.Volatile | T.Restrict | T.Typedef
                | T.DeclTag,
            ):
                tid, from_ref = t.type, True
                continue
            return t.name

    hashes: dict[str, int] = {}
    memo: dict[tuple[int, bool], int] = {}

    def name_hash(h: int, name: str) -> int:
        if not name:
            return h
        sh = hashes.get(name)
        if sh is None:
            sh = hashes[name] = _str_hash(name)
        return (h * 31 + sh) & mask

    def disambig(tid: int, include_members: bool) -> int:
        got = memo.get((tid, include_members))
        if got is None:
            got = memo[tid, include_members] = _disambig(tid, include_members)
        return got

    def _disambig(tid: int, include_members: bool) -> int:
        t = get(tid)
        h = name_hash(0, t.name)
        if isinstance(t, T.Enum | T.Enum64):
            for vname, _ in t.values:
                h = name_hash(h, vname)
        elif isinstance(t, T.Struct | T.Union):
            if include_members:
                for m in t.members:
                    h = name_hash(h, m.name)
                    h = (h * 31 + disambig(m.type, False)) & mask
        elif isinstance(
            t, T.TypeTag | T.Const | T.Ptr | T.Volatile | T.Restrict | T.Typedef | T.DeclTag
        ):
            h = (h * 31 + disambig(t.type, include_members)) & mask
        elif isinstance(t, T.Array):
            h = (h * 31 + t.nelems) & mask
            h = (h * 31 + disambig(t.type, include_members)) & mask
        return h

    def key(tid: int) -> tuple[int, bytes, bytes, int, int]:
        return (
            rank(tid, False),
            sort_name(tid, False).encode("utf-8", "surrogateescape"),
            get(tid).name.encode("utf-8", "surrogateescape"),
            disambig(tid, True),
            tid,
        )

    with _deep_recursion():
        if drop_first:
            return sorted(range(len(btf) + 1), key=key)[1:]
        return sorted(range(1, len(btf) + 1), key=key)


__all__ = [
    "EPILOGUE",
    "FLAVOURS",
    "PREAMBLE",
    "CDumpOptions",
    "CDumper",
    "dump_c",
    "iter_c",
    "sorted_type_ids",
]
