"""`.BTF.ext`: per-ELF-section func_info, line_info and CO-RE relocation records.

Layout (tools/lib/bpf/libbpf_internal.h, btf.rst "BTF.ext")::

    struct btf_ext_header { u16 magic; u8 version; u8 flags; u32 hdr_len;
                            u32 func_info_off, func_info_len;
                            u32 line_info_off, line_info_len;
                            u32 core_relo_off, core_relo_len; }   /* optional part */

Each subsection is ``u32 rec_size`` followed by blocks of
``{u32 sec_name_off; u32 num_info; u8 data[num_info * rec_size]}``. Records may be bigger
than the fields known here (newer compilers): the extra bytes are skipped; records smaller
than the minimum are rejected, as libbpf does. Offsets in the records are in bytes
(``insn_off``), and the string offsets point into the .BTF string table.
"""

from __future__ import annotations

import struct

from bpfobj import records
from bpfobj.errors import BtfError, BtfExtError
from bpfobj.uapi import CoreReloKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from bpfobj.btf.reader import Btf

BTF_EXT_MAGIC = 0xEB9F
INSN_SIZE = 8

# Minimal record sizes (bpf_func_info_min, bpf_line_info_min, bpf_core_relo).
FUNC_INFO_MIN = 8
LINE_INFO_MIN = 16
CORE_RELO_MIN = 16
# Header sizes: up to line_info_len (required) and up to core_relo_len (optional part).
HDR_MIN_LEN = 24
HDR_CORE_LEN = 32

_HINT = "the .BTF.ext section is corrupt or truncated; rebuild the object"


@records.frozen
class FuncInfo:
    """A BPF function starting at byte `insn_off` of its section; `type_id` is its FUNC."""

    insn_off: int
    type_id: int

    @property
    def insn_idx(self) -> int:
        return self.insn_off // INSN_SIZE


@records.frozen
class LineInfo:
    """Source position of the instruction at byte `insn_off`.

    `line_num` and `line_col` (column) are unpacked from the record's ``line_col`` word
    (``line_num << 10 | col``); `file_name_off` / `line_off` are the string offsets the
    kernel wants back in BPF_PROG_LOAD.
    """

    insn_off: int
    file_name: str
    line: str
    line_num: int
    line_col: int
    file_name_off: int = 0
    line_off: int = 0

    @property
    def insn_idx(self) -> int:
        return self.insn_off // INSN_SIZE

    @property
    def raw_line_col(self) -> int:
        """The packed ``line_col`` word as found in the record."""
        return (self.line_num << 10) | self.line_col


@records.frozen
class CoreRelo:
    """A CO-RE relocation of the instruction at byte `insn_off`.

    `type_id` is the local (object BTF) root type, `access_str` the accessor spec such as
    ``"0:1:2"``.
    """

    insn_off: int
    type_id: int
    access_str: str
    kind: CoreReloKind
    access_str_off: int = 0

    @property
    def insn_idx(self) -> int:
        return self.insn_off // INSN_SIZE


@records.frozen
class BtfExtHeader:
    magic: int
    version: int
    flags: int
    hdr_len: int
    func_info_off: int
    func_info_len: int
    line_info_off: int
    line_info_len: int
    core_relo_off: int = 0
    core_relo_len: int = 0


@records.frozen
class BtfExt:
    """Parsed .BTF.ext: records per ELF section name, in file order.

    The ``*_rec_size`` fields are the record sizes found (0 when a subsection is absent);
    the kernel needs them for BPF_PROG_LOAD.
    """

    header: BtfExtHeader
    byteorder: str
    func_info: dict[str, list[FuncInfo]]
    line_info: dict[str, list[LineInfo]]
    core_relos: dict[str, list[CoreRelo]]
    func_info_rec_size: int = 0
    line_info_rec_size: int = 0
    core_relo_rec_size: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, btf: Btf, *, name: str = "") -> BtfExt:
        """Parse a .BTF.ext section whose strings and type ids refer to `btf`.

        `name` labels errors. Raises BtfExtError (and nothing else) for malformed input.
        """
        try:
            return _Parser(bytes(data), btf, name).parse()
        except BtfExtError:
            raise
        except Exception as exc:  # a bug must still surface as the documented error type
            raise BtfExtError(
                f"cannot parse .BTF.ext ({type(exc).__name__}: {exc})",
                obj=name or None,
                section=".BTF.ext",
                hint="this is likely a bpfobj bug; please report it",
            ) from exc


class _Parser:
    def __init__(self, data: bytes, btf: Btf, name: str) -> None:
        self.data = data
        self.btf = btf
        self.name = name
        self.fmt = "<"

    def err(self, message: str, *, subsection: str | None = None, hint: str = _HINT) -> BtfExtError:
        return BtfExtError(
            message,
            obj=self.name or None,
            section=".BTF.ext",
            hint=hint,
            subsection=subsection,
        )

    def parse(self) -> BtfExt:
        data = self.data
        size = len(data)
        if size < 8:
            raise self.err(f"truncated header: {size} bytes, a .BTF.ext header needs {HDR_MIN_LEN}")
        if data[0] == 0x9F and data[1] == 0xEB:
            order = "little"
        elif data[0] == 0xEB and data[1] == 0x9F:
            order = "big"
        else:
            raise self.err(
                f"bad magic 0x{data[0]:02x}{data[1]:02x}: not .BTF.ext (expected 0xeb9f)"
            )
        if order != self.btf.byteorder:
            raise self.err(
                f".BTF.ext is {order}-endian but its .BTF is {self.btf.byteorder}-endian",
                hint="pass the .BTF of the same object",
            )
        self.fmt = "<" if order == "little" else ">"
        version, flags, hdr_len = struct.unpack_from(self.fmt + "BBI", data, 2)
        if version != 1:
            raise self.err(
                f"unsupported .BTF.ext version {version}",
                hint="this object uses a newer format; update bpfobj",
            )
        if flags:
            raise self.err(
                f"unsupported .BTF.ext flags 0x{flags:x}",
                hint="this object uses a newer format; update bpfobj",
            )
        if hdr_len < HDR_MIN_LEN:
            raise self.err(f"header length {hdr_len} is shorter than {HDR_MIN_LEN}")
        if hdr_len > size:
            raise self.err(f"truncated header: hdr_len {hdr_len} but only {size} bytes")
        fi_off, fi_len, li_off, li_len = struct.unpack_from(self.fmt + "4I", data, 8)
        cr_off = cr_len = 0
        if hdr_len >= HDR_CORE_LEN:
            cr_off, cr_len = struct.unpack_from(self.fmt + "2I", data, 24)
        header = BtfExtHeader(
            BTF_EXT_MAGIC, version, flags, hdr_len, fi_off, fi_len, li_off, li_len, cr_off, cr_len
        )

        fi_size, fi_blocks = self.subsection("func_info", hdr_len, fi_off, fi_len, FUNC_INFO_MIN)
        li_size, li_blocks = self.subsection("line_info", hdr_len, li_off, li_len, LINE_INFO_MIN)
        cr_size, cr_blocks = self.subsection("core_relo", hdr_len, cr_off, cr_len, CORE_RELO_MIN)

        func_info: dict[str, list[FuncInfo]] = {}
        for sec, pos, count in fi_blocks:
            out = func_info.setdefault(sec, [])
            for insn_off, type_id in self.records("II", pos, count, fi_size):
                self.check_insn(insn_off, "func_info", sec)
                self.check_type(type_id, "func_info", sec)
                out.append(FuncInfo(insn_off, type_id))

        line_info: dict[str, list[LineInfo]] = {}
        for sec, pos, count in li_blocks:
            out_l = line_info.setdefault(sec, [])
            for insn_off, file_off, line_off, line_col in self.records("IIII", pos, count, li_size):
                self.check_insn(insn_off, "line_info", sec)
                out_l.append(
                    LineInfo(
                        insn_off,
                        self.string(file_off, "line_info", "file name"),
                        self.string(line_off, "line_info", "line"),
                        line_col >> 10,
                        line_col & 0x3FF,
                        file_off,
                        line_off,
                    )
                )

        core_relos: dict[str, list[CoreRelo]] = {}
        for sec, pos, count in cr_blocks:
            out_c = core_relos.setdefault(sec, [])
            for insn_off, type_id, access_off, kind in self.records("IIII", pos, count, cr_size):
                self.check_insn(insn_off, "core_relo", sec)
                self.check_type(type_id, "core_relo", sec)
                try:
                    relo_kind = CoreReloKind(kind)
                except ValueError:
                    raise self.err(
                        f"CO-RE relocation at insn {insn_off // INSN_SIZE} of {sec} has "
                        f"unknown kind {kind}",
                        subsection="core_relo",
                        hint="the object uses a newer CO-RE relocation kind; update bpfobj",
                    ) from None
                out_c.append(
                    CoreRelo(
                        insn_off,
                        type_id,
                        self.string(access_off, "core_relo", "access string"),
                        relo_kind,
                        access_off,
                    )
                )

        return BtfExt(header, order, func_info, line_info, core_relos, fi_size, li_size, cr_size)

    def subsection(
        self, what: str, hdr_len: int, off: int, length: int, min_rec: int
    ) -> tuple[int, list[tuple[str, int, int]]]:
        """(rec_size, [(section name, first record position, count)]) of one subsection,
        with the checks of libbpf's btf_ext_setup_info()."""
        if length == 0:
            return 0, []
        data = self.data
        if off % 4:
            raise self.err(f"{what} subsection offset {off} is not 4-byte aligned", subsection=what)
        start = hdr_len + off
        end = start + length
        if end > len(data):
            raise self.err(
                f"{what} subsection (offset {off}, {length} bytes) runs past the end of "
                f".BTF.ext ({len(data)} bytes)",
                subsection=what,
            )
        if length < 4:
            raise self.err(f"{what} subsection has no record size", subsection=what)
        (rec_size,) = struct.unpack_from(self.fmt + "I", data, start)
        if rec_size < min_rec or rec_size % 4:
            raise self.err(
                f"{what} record size {rec_size} is invalid (minimum {min_rec}, a multiple of 4)",
                subsection=what,
            )
        pos = start + 4
        if pos == end:
            raise self.err(f"{what} subsection has no records", subsection=what)
        blocks: list[tuple[str, int, int]] = []
        while pos < end:
            if end - pos < 8:
                raise self.err(f"{what} subsection ends inside a section header", subsection=what)
            name_off, count = struct.unpack_from(self.fmt + "II", data, pos)
            if count == 0:
                raise self.err(f"{what} block at offset {pos} has no records", subsection=what)
            need = count * rec_size
            if need > end - pos - 8:
                raise self.err(
                    f"{what} block at offset {pos} claims {count} records of {rec_size} "
                    f"bytes, more than the {end - pos - 8} bytes left",
                    subsection=what,
                )
            blocks.append((self.string(name_off, what, "section name"), pos + 8, count))
            pos += 8 + need
        return rec_size, blocks

    def records(self, fields: str, pos: int, count: int, rec_size: int) -> list[tuple[int, ...]]:
        """The known leading fields of `count` records of `rec_size` bytes at `pos`."""
        known = struct.Struct(self.fmt + fields)
        if rec_size == known.size:
            return list(known.iter_unpack(self.data[pos : pos + count * rec_size]))
        unpack = known.unpack_from
        data = self.data
        return [unpack(data, p) for p in range(pos, pos + count * rec_size, rec_size)]

    def string(self, off: int, what: str, field: str) -> str:
        try:
            return self.btf.string(off)
        except BtfError:
            raise self.err(
                f"{what} {field} offset 0x{off:x} is not in the .BTF string section",
                subsection=what,
            ) from None

    def check_insn(self, insn_off: int, what: str, sec: str) -> None:
        if insn_off % INSN_SIZE:
            raise self.err(
                f"{what} record of {sec} points at byte {insn_off}, not at an instruction "
                f"(a multiple of {INSN_SIZE})",
                subsection=what,
            )

    def check_type(self, type_id: int, what: str, sec: str) -> None:
        if type_id > len(self.btf):
            raise self.err(
                f"{what} record of {sec} refers to type id {type_id}, past the last type "
                f"[{len(self.btf)}] of .BTF",
                subsection=what,
            )


__all__ = ["BtfExt", "BtfExtHeader", "CoreRelo", "FuncInfo", "LineInfo"]
