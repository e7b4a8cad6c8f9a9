"""bpfobj.closing: the context manager and close-on-collection every resource owner shares."""

from __future__ import annotations

import gc

import pytest

from bpfobj.closing import Closing, ClosingOnDel


class _Owner(Closing):
    def __init__(self, fail: bool = False) -> None:
        self.closes = 0
        self.fail = fail

    def close(self) -> None:
        self.closes += 1
        if self.fail:
            raise RuntimeError("close failed")


class _Collected(ClosingOnDel):
    log: list[str] = []

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail

    def close(self) -> None:
        _Collected.log.append(self.name)
        if self.fail:
            raise RuntimeError("close failed")


def test_with_closes_and_lets_the_exception_through() -> None:
    with _Owner() as owner:
        assert isinstance(owner, _Owner)  # __enter__ returns the owner itself
    assert owner.closes == 1
    other = _Owner()
    with pytest.raises(KeyError), other:
        raise KeyError("x")
    assert other.closes == 1
    assert other.__exit__(None, None, None) is None


def test_close_errors_propagate_from_with() -> None:
    with pytest.raises(RuntimeError), _Owner(fail=True):
        pass


def test_closing_alone_has_no_del() -> None:
    assert not hasattr(Closing, "__del__")
    assert hasattr(ClosingOnDel, "__del__")


def test_collection_closes_quietly() -> None:
    _Collected.log.clear()
    _Collected("a")
    _Collected("b", fail=True)  # the error is swallowed
    gc.collect()
    assert _Collected.log == ["a", "b"]


def test_the_owners_use_it() -> None:
    from bpfobj.attach.elfsyms import NativeElf
    from bpfobj.buffers import BufferConsumer
    from bpfobj.links import Link
    from bpfobj.object import BpfObject
    from bpfobj.sys.syscall import Fd
    from bpfobj.user_ringbuf import UserRingBuffer

    for cls in (NativeElf, Link, BpfObject, Fd):
        assert issubclass(cls, Closing) and not issubclass(cls, ClosingOnDel), cls
    assert issubclass(BufferConsumer, ClosingOnDel)
    assert issubclass(UserRingBuffer, ClosingOnDel)
    assert "__weakref__" in Fd.__slots__  # slots kept: the mixin adds none
    with pytest.raises(AttributeError):
        Fd(-1).extra = 1  # type: ignore[attr-defined]
