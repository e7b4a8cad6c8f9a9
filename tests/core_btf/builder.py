"""Hand-built BTF for the CO-RE and dump tests: the usual integer types, added to a
`bpfobj.btf.writer.BtfBuilder` (the tests build their local and target BTF with it).

    b = BtfBuilder()
    t = std_ints(b)
    s = b.add_struct("foo", 8, [("a", t["int"], 0), ("b", t["int"], 32)])  # bit offsets
    btf = b.to_btf()
"""

from __future__ import annotations

from bpfobj.btf.writer import BtfBuilder


def std_ints(b: BtfBuilder) -> dict[str, int]:
    """The usual integer types (and `long`, which fixes the pointer size at 8)."""
    return {
        "int": b.add_int("int", 4, signed=True),
        "uint": b.add_int("unsigned int", 4),
        "long": b.add_int("long", 8, signed=True),
        "ulong": b.add_int("unsigned long", 8),
        "char": b.add_int("char", 1, signed=True, char=True),
        "short": b.add_int("short", 2, signed=True),
        "u8": b.add_int("unsigned char", 1),
        "u16": b.add_int("unsigned short", 2),
    }
