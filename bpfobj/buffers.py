"""The consumer side shared by `bpfobj.ringbuf.RingBuffer` and `bpfobj.perfbuf.PerfBuffer`.

Both own an epoll set over their rings and implement `poll(timeout)` and `consume()`, which
hand records to callbacks or queue them in ``_pending``. `BufferConsumer` builds the rest on
those two: the batch API (`read()`, `read_async()`), the iterators (`for r in buf`,
`records(timeout)`, `async for r in buf`), `fileno()`, and `close()` (the context manager
and `__del__` come from `bpfobj.closing.ClosingOnDel`). Records an iterator's consumer did
not take when it stopped early go back to the front of the queue, so none is lost.
"""

from __future__ import annotations

import select
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator

from bpfobj.closing import ClosingOnDel
from bpfobj.errors import PhaseError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import asyncio
    from typing import Any, TypeAlias

__all__ = ["BufferConsumer", "wait_readable"]

Record: TypeAlias = "Any"


class BufferConsumer(ClosingOnDel, ABC):
    """Base of the ring and perf buffer consumers: everything above `poll()`/`consume()`.

    A subclass creates ``_epoll`` (readable when a ring has data), fills ``_pending`` from
    `poll()` and `consume()`, and releases its rings in `_close_rings()`.
    """

    #: what `PhaseError` calls the consumer once it is closed
    _what = "buffer"
    _epoll: select.epoll | None = None
    _pending: list[Record]

    @abstractmethod
    def poll(self, timeout: float | None = None) -> int:
        """Wait up to `timeout` seconds (None: forever, 0: not at all) for data, then
        consume the rings that have some. Returns the records consumed."""

    @abstractmethod
    def consume(self) -> int:
        """Consume every ring without waiting. Returns the records consumed."""

    def _live(self) -> select.epoll:
        if self._epoll is None:
            raise PhaseError(f"the {self._what} is closed")
        return self._epoll

    def fileno(self) -> int:
        """The epoll fd: readable when a ring has data."""
        return self._live().fileno()

    # -- consuming -----------------------------------------------------------------------

    def read(self, timeout: float | None = None) -> list[Record]:
        """The queued records (those no callback takes), polling once when there are none:
        a batch API, cheaper than iterating record by record."""
        if not self._pending:
            self.consume()
            if not self._pending and timeout != 0:
                self.poll(timeout)
        out, self._pending = self._pending, []
        return out

    def __iter__(self) -> Iterator[Record]:
        """Queued records, blocking for more; forever."""
        while True:
            batch = self._pending
            self._pending = []
            if not batch:
                self.poll(None)
                continue
            rest = iter(batch)
            try:
                yield from rest
            finally:  # the consumer stopped early: keep what it did not get
                self._pending[:0] = rest

    def records(self, timeout: float | None = None) -> Iterator[Record]:
        """Like iterating, but stops after `timeout` seconds without a record."""
        while True:
            batch = self.read(timeout)
            if not batch:
                return
            rest = iter(batch)
            try:
                yield from rest
            finally:
                self._pending[:0] = rest

    def __aiter__(self) -> AsyncIterator[Record]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[Record]:
        import asyncio  # here: importing asyncio costs ~20 ms of a tool's start-up

        loop = asyncio.get_running_loop()
        while True:
            batch = self._pending
            self._pending = []
            if not batch:
                # an outer epoll (the event loop's) checking ours polls the perf fds, which
                # clears their wake-up flag: look at the rings themselves, not only epoll
                if not self.poll(0) and not self.consume():
                    await wait_readable(loop, self.fileno())
                continue
            rest = iter(batch)
            try:
                for rec in rest:
                    yield rec
            finally:
                self._pending[:0] = rest

    async def read_async(self) -> list[Record]:
        """The next batch of records, awaiting data without blocking the event loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            batch = self.read(0)
            if batch:
                return batch
            await wait_readable(loop, self.fileno())

    # -- closing -------------------------------------------------------------------------

    @abstractmethod
    def _close_rings(self) -> None:
        """Release every ring (the epoll set is closed after)."""

    def close(self) -> None:
        """Release every ring and close the epoll fd; a second call does nothing."""
        if self._epoll is None:
            return
        self._close_rings()
        self._epoll.close()
        self._epoll = None

    @property
    def closed(self) -> bool:
        return self._epoll is None


async def wait_readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Wait until `fd` (an epoll fd) is readable: add_reader for one wake-up."""
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        loop.remove_reader(fd)
