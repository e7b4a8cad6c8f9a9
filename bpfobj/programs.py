"""Loaded programs: `Program` (an fd plus its spec) and `test_run()` via BPF_PROG_TEST_RUN.

    prog = obj.programs["handle"]
    result = prog.test_run(ctx=struct.pack("<II", 1, 2))    # SEC("syscall")
    result = prog.test_run(b"\\0" * 64)                       # SEC("xdp"), SEC("tc")
    result.retval, result.data, result.ctx, result.duration_ns
"""

from __future__ import annotations

import errno as _errno

from bpfobj import records
from bpfobj.errors import PhaseError, SyscallError
from bpfobj.sys import attr
from bpfobj.sys.syscall import Cmd, Fd, bpf
from bpfobj.uapi import ProgType

_ENOTSUPP = 524  # the kernel's internal "not supported" (linux/errno.h), seen by user space

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.insn import Instruction
    from bpfobj.links import Link, OwnedLinks
    from bpfobj.prepare import PreparedProgram
    from bpfobj.spec import ProgramSpec
    from bpfobj.uapi import AttachType


@records.frozen
class TestRunResult:
    """What BPF_PROG_TEST_RUN returned."""

    retval: int  # the program's return value (r0, u32)
    duration_ns: int  # average run time per repetition
    data: bytes  # data_out (packet programs), as long as the kernel filled it
    ctx: bytes  # ctx_out (when a context was passed)


_ETH_HLEN = 14
# programs whose BPF_PROG_TEST_RUN takes an Ethernet frame as data (net/bpf/test_run.c)
_PACKET_TYPES = frozenset({ProgType.XDP, ProgType.SCHED_CLS, ProgType.SCHED_ACT,
                           ProgType.CGROUP_SKB, ProgType.LWT_IN, ProgType.LWT_OUT,
                           ProgType.LWT_XMIT, ProgType.LWT_SEG6LOCAL})


class Program:
    """A loaded program. Closed with its object; `close()` closes it alone."""

    _owned_links: OwnedLinks | None = None  # the links made from it (bpfobj.links.owner_links)

    def __init__(
        self, prepared: PreparedProgram, fd: Fd, *, insns: list[Instruction],
        attach_btf_id: int = 0, attach_btf_obj_fd: Fd | None = None, log: str = "",
        obj: str | None = None,
    ) -> None:
        self.prepared = prepared
        self.spec: ProgramSpec = prepared.spec
        self.name = prepared.name
        self.section = prepared.section
        self.type: ProgType = self.spec.type
        self.expected_attach_type: AttachType | None = self.spec.expected_attach_type
        self.attach_btf_id = attach_btf_id
        self._attach_btf_obj_fd = attach_btf_obj_fd
        self.insns = insns  # what was given to the kernel (map fds and addresses filled in)
        self.log = log  # the verifier log, when one was requested
        self.obj = obj
        self.pin_path: str | None = None
        self._fd = fd

    def attach(self, **opts: Any) -> Link:
        """Attach as the section name says (``tp/sched/sched_process_exec`` ...); `opts`
        override the target or pass what the section cannot say (``dev=``, ``cgroup=``,
        ``pid=``, ``binary=``, ``cookie=`` ...). Returns a `Link`, a context manager."""
        from bpfobj.attach import attach

        return attach(self, **opts)

    @property
    def fd(self) -> int:
        if self._fd.closed:
            raise PhaseError(f"program {self.name!r} is closed", obj=self.obj)
        return self._fd.fileno()

    @property
    def attach_btf_obj_fd(self) -> int:
        """The module BTF fd the attach target lives in (0: vmlinux)."""
        return self._attach_btf_obj_fd.fileno() if self._attach_btf_obj_fd is not None else 0

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def close(self) -> None:
        self._fd.close()
        if self._attach_btf_obj_fd is not None:
            self._attach_btf_obj_fd.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd {self._fd.fileno()}"
        return f"<Program {self.name!r} {self.type.label} {state}>"

    def test_run(
        self, data: bytes | None = None, *, ctx: bytes | None = None, repeat: int = 1,
        data_out_size: int | None = None, ctx_out_size: int | None = None, flags: int = 0,
        cpu: int = 0,
    ) -> TestRunResult:
        """Run the program once (or `repeat` times) in the kernel with BPF_PROG_TEST_RUN.

        `data` is the packet for xdp/tc/socket programs; `ctx` the context (syscall
        programs take their argument struct here, and get it back changed in
        ``result.ctx``). Output buffers default to the input sizes plus headroom and grow
        when the kernel answers ENOSPC.
        """
        if self.type == ProgType.SYSCALL:
            return self._test_run_syscall(ctx, cpu=cpu, flags=flags)
        out_size = data_out_size if data_out_size is not None else (
            len(data) + 256 if data else 0)
        ctx_size = ctx_out_size if ctx_out_size is not None else (len(ctx) if ctx else 0)
        for _ in range(8):
            data_out = bytearray(out_size) if out_size else None
            ctx_out = bytearray(ctx_size) if ctx_size else None
            a = attr.prog_test_run(self.fd, data_in=data, data_out=data_out, ctx_in=ctx,
                                   ctx_out=ctx_out, repeat=repeat, flags=flags, cpu=cpu)
            try:
                bpf(Cmd.PROG_TEST_RUN, a)
            except SyscallError as exc:
                if exc.errno == _errno.ENOSPC and data_out_size is None and out_size:
                    out_size *= 4
                    continue
                exc.message = f"test run of program {self.name!r} failed"
                if exc.errno in (_ENOTSUPP, _errno.EOPNOTSUPP):
                    exc.hint = f"{self.type.label} programs cannot be test-run"
                elif exc.errno == _errno.EINVAL and self.type in _PACKET_TYPES and (
                        len(data or b"") < _ETH_HLEN):
                    # bpf_test_init() / bpf_prog_test_run_xdp(): at least an Ethernet header
                    exc.hint = (f"a {self.type.label} test run takes a packet of at least "
                                f"{_ETH_HLEN} bytes (an Ethernet header) as data; got "
                                f"{len(data or b'')}")
                raise exc.with_context(obj=self.obj, program=self.name) from None
            got_data = bytes(data_out[: a.data_size_out]) if data_out is not None else b""
            got_ctx = bytes(ctx_out[: a.ctx_size_out]) if ctx_out is not None else b""
            return TestRunResult(retval=int(a.retval), duration_ns=int(a.duration),
                                 data=got_data, ctx=got_ctx)
        raise PhaseError(f"test run of program {self.name!r}: output keeps growing")

    def _test_run_syscall(self, ctx: bytes | None, *, cpu: int, flags: int) -> TestRunResult:
        """bpf_prog_test_run_syscall(): the kernel writes the context back into ctx_in and
        takes no data, ctx_out or repeat."""
        buf = bytearray(ctx or b"")
        a = attr.prog_test_run(self.fd, ctx_in=buf if buf else None, flags=flags, cpu=cpu)
        try:
            bpf(Cmd.PROG_TEST_RUN, a)
        except SyscallError as exc:
            exc.message = f"test run of program {self.name!r} failed"
            if exc.errno == _errno.EINVAL:
                exc.hint = "a syscall program's ctx must cover every offset it reads"
            raise exc.with_context(obj=self.obj, program=self.name) from None
        return TestRunResult(retval=int(a.retval), duration_ns=int(a.duration), data=b"",
                             ctx=bytes(buf))

    def info(self) -> dict[str, Any]:
        """BPF_OBJ_GET_INFO_BY_FD: the kernel's bpf_prog_info."""
        info = attr.ProgInfo()
        bpf(Cmd.OBJ_GET_INFO_BY_FD, attr.obj_get_info_by_fd(self.fd, info))
        return {
            "type": int(info.type), "id": int(info.id), "tag": bytes(info.tag).hex(),
            "name": bytes(info.name).split(b"\0", 1)[0].decode(),
            "xlated_prog_len": int(info.xlated_prog_len),
            "jited_prog_len": int(info.jited_prog_len), "btf_id": int(info.btf_id),
            "nr_func_info": int(info.nr_func_info), "nr_line_info": int(info.nr_line_info),
            "verified_insns": int(info.verified_insns),
            "attach_btf_id": int(info.attach_btf_id), "run_cnt": int(info.run_cnt),
            "run_time_ns": int(info.run_time_ns),
        }

    @property
    def id(self) -> int:
        return int(self.info()["id"])

    def pin(self, path: str) -> None:
        from bpfobj.sys import bpffs

        bpffs.pin(self.fd, path)
        self.pin_path = path

    def unpin(self) -> None:
        from bpfobj.sys import bpffs

        if self.pin_path:
            bpffs.unpin(self.pin_path)
            self.pin_path = None
