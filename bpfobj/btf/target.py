"""Target BTF: the kernel types that CO-RE relocations and ksyms resolve against.

A `TargetBtf` is vmlinux BTF plus, optionally, module BTFs searched after it (libbpf's order:
vmlinux first, then modules). Sources:

* the running kernel: /sys/kernel/btf/vmlinux, with the modules of /sys/kernel/btf/* loaded
  on first need (the first relocation or ksym that searches modules) and kept;
* a file: raw BTF, an ELF file with a .BTF section, or a btfhub ``.btf.tar.xz`` archive;
* a `Btf` object already parsed;
* module BTF given explicitly, as split BTF on the target vmlinux.

Reading a file is not a kernel call: a target for another kernel can be prepared anywhere.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping

from bpfobj.errors import BpfObjError, BtfError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from bpfobj.btf.reader import Btf

KERNEL_BTF_DIR = "/sys/kernel/btf"
BTF_MAGIC = (b"\x9f\xeb", b"\xeb\x9f")


def read_btf_blob(path: str) -> bytes:
    """The raw BTF inside `path`: raw BTF, ELF (.BTF section) or a .tar.xz holding one .btf."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BtfError(
            f"cannot read target BTF {path}: {exc.strerror or exc}",
            obj=path,
            hint="check the path (a raw .btf, an ELF with .BTF, or a btfhub .btf.tar.xz)",
        ) from None
    return btf_blob_from_bytes(data, path)


def btf_blob_from_bytes(data: bytes, name: str) -> bytes:
    if data[:2] in BTF_MAGIC:
        return data
    if data[:4] == b"\x7fELF":
        from bpfobj.elf.reader import read_elf_sections

        sections = read_elf_sections(data, name)
        blob = sections.get(".BTF")
        if blob is None:
            raise BtfError(
                "ELF file has no .BTF section", obj=name,
                hint="build the kernel/module with CONFIG_DEBUG_INFO_BTF=y, or pass raw BTF",
            )
        return blob
    if data[:6] == b"\xfd7zXZ\x00":
        import tarfile  # only for btfhub archives (~4 ms to import)

        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:xz") as tar:
                for member in tar:
                    if member.isfile() and member.name.endswith(".btf"):
                        f = tar.extractfile(member)
                        if f is not None:
                            return btf_blob_from_bytes(f.read(), f"{name}:{member.name}")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BtfError(f"bad btfhub archive: {exc}", obj=name) from None
        raise BtfError("archive holds no .btf file", obj=name,
                       hint="btfhub archives hold one <kernel-release>.btf")
    raise BtfError(
        "not BTF: neither raw BTF, ELF, nor .tar.xz", obj=name,
        hint="pass a raw .btf, an ELF with .BTF, or a btfhub .btf.tar.xz",
    )


class TargetBtf:
    """vmlinux BTF and the module BTFs searched after it."""

    def __init__(
        self,
        vmlinux: Btf,
        *,
        source: str,
        modules: Mapping[str, Btf] | None = None,
        module_loader: Callable[[], Iterator[tuple[str, Btf]]] | None = None,
    ) -> None:
        self.vmlinux = vmlinux
        self.source = source
        self._modules: dict[str, Btf] | None = dict(modules) if modules else None
        self._loader = module_loader
        # A target given by the user replaces the kernel's BTF (libbpf btf_custom_path): its
        # CO-RE candidates come from it alone unless modules are given with it explicitly.
        self.override = module_loader is None and not modules
        self.skipped: dict[str, str] = {}  # module name -> why its BTF was not usable

    @classmethod
    def running_kernel(cls) -> TargetBtf:
        """The running kernel's BTF. Shared by the whole process: it cannot change before
        the next boot, and a tool preparing many objects should index it once."""
        global _RUNNING
        if _RUNNING is None:
            from bpfobj.btf.reader import load_kernel_btf

            vmlinux = load_kernel_btf()
            _RUNNING = cls(vmlinux, source=f"{KERNEL_BTF_DIR}/vmlinux",
                           module_loader=lambda: _kernel_modules(vmlinux))
        return _RUNNING

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, modules: Mapping[str, str | Btf] | None = None
    ) -> TargetBtf:
        from bpfobj.btf.reader import Btf

        p = os.fspath(path)
        if os.path.realpath(p) == f"{KERNEL_BTF_DIR}/vmlinux":
            # The running kernel's, named explicitly: its per-boot snapshot and index serve.
            from bpfobj.btf.reader import load_kernel_btf

            vmlinux = load_kernel_btf()
        else:
            vmlinux = Btf.parse(read_btf_blob(p), name=p, cache=None)
        return cls._with_modules(vmlinux, p, modules or {})

    @classmethod
    def from_btf(cls, btf: Btf, *, modules: Mapping[str, str | Btf] | None = None) -> TargetBtf:
        return cls._with_modules(btf, btf.label or "<btf>", modules or {})

    @classmethod
    def _with_modules(cls, vmlinux: Btf, source: str, modules: Mapping[str, str | Btf]) -> TargetBtf:
        skipped: dict[str, str] = {}
        target = cls(vmlinux, source=source, modules=_load_modules(vmlinux, modules, skipped))
        target.skipped = skipped
        return target

    def modules(self) -> dict[str, Btf]:
        """Module BTFs (loaded on first use for the running kernel)."""
        if self._modules is None:
            self._modules = {}
            if self._loader is not None:
                for name, btf in self._loader():
                    self._modules[name] = btf
        return self._modules

    def all(self) -> Iterator[tuple[str, Btf]]:
        """("vmlinux", vmlinux), then (module name, module BTF) for each module."""
        yield "vmlinux", self.vmlinux
        yield from self.modules().items()

    def describe(self) -> str:
        return self.source


_RUNNING: TargetBtf | None = None


def _load_modules(
    vmlinux: Btf, modules: Mapping[str, str | Btf], skipped: dict[str, str]
) -> dict[str, Btf]:
    """Explicit module BTFs (a path: raw split/standalone BTF or a .ko with .BTF[.base]).
    One that does not fit the target vmlinux is skipped with a warning naming it."""
    from bpfobj import log
    from bpfobj.btf.module import ModuleBtfMismatch, load_module_btf
    from bpfobj.btf.reader import Btf

    out: dict[str, Btf] = {}
    for name, src in modules.items():
        if isinstance(src, Btf):
            out[name] = src
            continue
        path = os.fspath(src)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise BtfError(f"cannot read module BTF {path}: {exc.strerror or exc}",
                           obj=path, hint="check the --module-btf path") from None
        try:
            out[name] = load_module_btf(data, vmlinux, name)
        except ModuleBtfMismatch as exc:
            log.warning("module_btf_skipped", module=name, reason=str(exc))
            skipped[name] = str(exc)
    return out


def _kernel_modules(vmlinux: Btf) -> Iterator[tuple[str, Btf]]:
    """Module BTFs of the running kernel, split on its vmlinux. A module whose BTF cannot be
    parsed is skipped with a warning event naming it, never failing the whole prepare."""
    from bpfobj import log
    from bpfobj.btf.module import check_base
    from bpfobj.btf.reader import load_kernel_btf

    try:
        names = sorted(os.listdir(KERNEL_BTF_DIR))
    except OSError:
        return
    for name in names:
        if name == "vmlinux":
            continue
        try:
            btf = load_kernel_btf(os.path.join(KERNEL_BTF_DIR, name), base=vmlinux, cache=False)
            check_base(btf, vmlinux, name)
            yield name, btf
        except BpfObjError as exc:
            log.warning("module_btf_skipped", module=name, reason=str(exc))
