"""/proc/kallsyms: addresses of kernel symbols, for typeless ksyms.

libbpf bpf_object__read_kallsyms_file(): every ``extern const void sym __ksym`` gets the
address /proc/kallsyms gives for ``sym``; two different addresses for one name are an
error (ambiguous), a missing strong symbol too (checked by the caller).
"""

from __future__ import annotations

from collections.abc import Iterable

from bpfobj.errors import LinkError, NotSupportedError

KALLSYMS = "/proc/kallsyms"


def lookup(names: Iterable[str], path: str = KALLSYMS) -> dict[str, int]:
    """Addresses of `names` (one pass over the file); names not found are left out.

    Raises `LinkError` when a name has two different addresses, `NotSupportedError` when
    the file cannot be read or shows only zero addresses (kptr_restrict).
    """
    wanted = set(names)
    found: dict[str, int] = {}
    if not wanted:
        return found
    saw_nonzero = False
    try:
        with open(path, "rb") as f:
            for raw in f:
                parts = raw.split()
                if len(parts) < 3:
                    continue
                name = parts[2].decode(errors="replace")
                if name not in wanted:
                    continue
                addr = int(parts[0], 16)
                saw_nonzero |= addr != 0
                prev = found.get(name)
                if prev is not None and prev != addr:
                    raise LinkError(
                        f"ksym {name!r} is ambiguous: {KALLSYMS} has it at {prev:#x} and "
                        f"{addr:#x}",
                        hint="rename the extern or use a typed ksym (BTF resolves it)",
                    )
                found[name] = addr
    except OSError as exc:
        raise NotSupportedError(f"cannot read {path}: {exc.strerror}",
                                hint="typeless ksyms need /proc/kallsyms") from None
    if found and not saw_nonzero:
        raise NotSupportedError(
            f"{path} shows zero addresses", hint="run as root (kernel.kptr_restrict hides them)"
        )
    return found


def address(name: str, path: str = KALLSYMS) -> int | None:
    """The address of one symbol, or None."""
    return lookup([name], path).get(name)


def exists(name: str, path: str = KALLSYMS) -> bool:
    try:
        return name in lookup([name], path)
    except NotSupportedError:
        return False
