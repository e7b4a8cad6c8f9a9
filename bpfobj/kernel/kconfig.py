"""Kernel config values for ``__kconfig`` externs, filled as libbpf fills its .kconfig map.

libbpf bpf_object__resolve_externs() + bpf_object__read_kconfig_file():

* ``CONFIG_*`` come from /boot/config-$(uname -r), else /proc/config.gz (or from an
  `extra` config text given first, like libbpf's ``kconfig`` open option);
* ``LINUX_KERNEL_VERSION`` is get_kernel_version() (Ubuntu's /proc/version_signature,
  Debian's ``uname -v``, else ``uname -r``), ``LINUX_HAS_BPF_COOKIE`` and
  ``LINUX_HAS_SYSCALL_WRAPPER`` come from the feature probes; other ``LINUX_*`` are an error
  unless weak (then 0);
* values are stored by the extern's kcfg type (set_kcfg_value_tri/str/num); a strong
  extern that is not found fails, a weak one stays zero.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence

from bpfobj.errors import LinkError, NotSupportedError
from bpfobj.spec import Extern, ExternKind, KconfigType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from bpfobj.kernel.features import Features

PROC_CONFIG = "/proc/config.gz"
TRI_NO, TRI_YES, TRI_MODULE = 0, 1, 2  # enum libbpf_tristate


def kernel_version_code(major: int, minor: int, patch: int) -> int:
    """KERNEL_VERSION(a, b, c) of bpf_helpers.h (patch capped at 255)."""
    return (major << 16) + (minor << 8) + min(patch, 255)


def kernel_version() -> int:
    """libbpf get_kernel_version(): the running kernel's LINUX_VERSION_CODE."""
    try:
        with open("/proc/version_signature") as f:
            m = re.match(r"\S+\s+\S+\s+(\d+)\.(\d+)\.(\d+)", f.read())
        if m:
            return kernel_version_code(*map(int, m.groups()))
    except OSError:
        pass
    uts = os.uname()
    m = re.search(r"Debian (\d+)\.(\d+)\.(\d+)", uts.version)
    if m:
        return kernel_version_code(*map(int, m.groups()))
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", uts.release)
    if m:
        return kernel_version_code(*map(int, m.groups()))
    return 0  # sscanf("%u.%u.%u") failed: libbpf gives 0 too


def config_path() -> str | None:
    """The kernel config file libbpf would read, or None."""
    boot = f"/boot/config-{os.uname().release}"
    for path in (boot, PROC_CONFIG):
        if os.access(path, os.R_OK):
            return path
    return None


@functools.lru_cache(maxsize=4)
def _read_config(path: str, mtime: float) -> dict[str, str]:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        import gzip  # only for /proc/config.gz

        raw = gzip.decompress(raw)
    return parse_config(raw.decode(errors="replace"))


def parse_config(text: str) -> dict[str, str]:
    """``CONFIG_X=value`` lines -> {name: raw value} (comments and other lines ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("CONFIG_"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not value:
            raise LinkError(f"failed to parse kernel config line {line!r}: no value")
        out.setdefault(name, value)
    return out


def read_config() -> dict[str, str]:
    """The running kernel's config as {CONFIG_NAME: raw value}."""
    path = config_path()
    if path is None:
        raise NotSupportedError(
            "cannot find the kernel config (/boot/config-$(uname -r) or /proc/config.gz)",
            hint="load the configs module (modprobe configs) or install the config file",
        )
    return _read_config(path, os.stat(path).st_mtime)


def _err(ext: Extern, message: str) -> LinkError:
    return LinkError(f"extern (kcfg) {ext.name!r}: {message}", section=".kconfig")


def _set_num(ext: Extern, buf: bytearray, value: int) -> None:
    """libbpf set_kcfg_value_num()."""
    if ext.kcfg_type not in (KconfigType.INT, KconfigType.CHAR, KconfigType.BOOL):
        raise _err(ext, f"value {value} implies integer, char, or boolean type")
    if ext.kcfg_type is KconfigType.BOOL and value > 1:
        raise _err(ext, f"value {value} isn't boolean compatible")
    size = ext.kcfg_size
    value &= (1 << 64) - 1
    if size != 8:
        bits = size * 8
        fits = (
            (value + (1 << (bits - 1))) % (1 << 64) < (1 << bits)
            if ext.kcfg_signed else value >> bits == 0
        )
        if not fits:
            raise _err(ext, f"value {value} doesn't fit in {size} bytes")
    if size not in (1, 2, 4, 8):
        raise _err(ext, f"unsupported size {size}")
    buf[ext.kcfg_offset : ext.kcfg_offset + size] = (value & ((1 << (size * 8)) - 1)).to_bytes(
        size, "little"
    )


def _set_tri(ext: Extern, buf: bytearray, value: str) -> None:
    """libbpf set_kcfg_value_tri()."""
    off = ext.kcfg_offset
    if ext.kcfg_type is KconfigType.BOOL:
        if value == "m":
            raise _err(ext, f"value '{value}' implies tristate or char type")
        buf[off] = 1 if value == "y" else 0
    elif ext.kcfg_type is KconfigType.TRISTATE:
        tri = {"y": TRI_YES, "m": TRI_MODULE}.get(value, TRI_NO)
        buf[off : off + ext.kcfg_size] = tri.to_bytes(ext.kcfg_size, "little")
    elif ext.kcfg_type is KconfigType.CHAR:
        buf[off] = ord(value)
    else:
        raise _err(ext, f"value '{value}' implies bool, tristate, or char type")


def _set_str(ext: Extern, buf: bytearray, value: str) -> None:
    """libbpf set_kcfg_value_str(): strip the quotes, truncate to size - 1."""
    if ext.kcfg_type is not KconfigType.CHAR_ARRAY:
        raise _err(ext, f"value '{value}' implies char array type")
    if len(value) < 2 or not value.endswith('"'):
        raise _err(ext, f"invalid string config '{value}'")
    raw = value[1:-1].encode()[: ext.kcfg_size - 1]
    off = ext.kcfg_offset
    buf[off : off + len(raw) + 1] = raw + b"\0"


def _set_from_config(ext: Extern, buf: bytearray, value: str) -> None:
    """libbpf bpf_object__process_kconfig_line() for one known extern."""
    if value[0] in "ynm":
        _set_tri(ext, buf, value[0])
    elif value[0] == '"':
        _set_str(ext, buf, value)
    else:
        try:
            num = int(value, 0)  # strtoull(value, &end, 0)
        except ValueError:
            # strtoull also takes a leading-zero octal like 010; int(x, 0) rejects it
            try:
                num = int(value, 8) if value.startswith("0") else int(value, 10)
            except ValueError:
                raise _err(ext, f"value '{value}' isn't a valid integer") from None
        if ext.kcfg_type not in (KconfigType.INT, KconfigType.CHAR):
            raise _err(ext, f"value '{value}' implies integer type")
        _set_num(ext, buf, num)


def kconfig_data(
    externs: Sequence[Extern],
    size: int,
    *,
    features: Features | None = None,
    extra: str | None = None,
    config: Mapping[str, str] | None = None,
) -> bytes:
    """The contents of the .kconfig map for `externs` (those of kind KCONFIG are used).

    `config` replaces the running kernel's config (tests, cross-kernel use); `extra` is
    config text whose values win over the kernel's, like libbpf's ``kconfig`` option.
    """
    buf = bytearray(size)
    kcfg = [e for e in externs if e.kind is ExternKind.KCONFIG]
    is_set: set[str] = set()
    need_config = False
    for ext in kcfg:
        if ext.name.startswith("CONFIG_"):
            need_config = True
            continue
        if ext.name == "LINUX_KERNEL_VERSION":
            value = kernel_version()
            if not value:
                raise _err(ext, "failed to get kernel version")
        elif ext.name == "LINUX_HAS_BPF_COOKIE":
            value = int(bool(features and features.bpf_cookie))
        elif ext.name == "LINUX_HAS_SYSCALL_WRAPPER":
            value = int(bool(features and features.syscall_wrapper))
        elif not ext.name.startswith("LINUX_") or not ext.weak:
            raise _err(ext, "unrecognized virtual extern")
        else:
            continue  # an unknown weak LINUX_ extern stays zero
        _set_num(ext, buf, value)
        is_set.add(ext.name)
    if need_config:
        sources: list[Mapping[str, str]] = []
        if extra:
            sources.append(parse_config(extra))
        if config is not None:
            sources.append(config)
        elif not extra or any(
            e.name not in sources[0] for e in kcfg if e.name.startswith("CONFIG_")
        ):
            sources.append(read_config())
        for ext in kcfg:
            if not ext.name.startswith("CONFIG_"):
                continue
            for source in sources:
                value_s = source.get(ext.name)
                if value_s is not None:
                    _set_from_config(ext, buf, value_s)
                    is_set.add(ext.name)
                    break
    for ext in kcfg:
        if ext.name not in is_set and not ext.weak:
            raise LinkError(
                f"extern (kcfg) {ext.name!r} (strong) is not set by the kernel config",
                section=".kconfig",
                hint="declare it __weak to make it optional",
            )
    return bytes(buf)
