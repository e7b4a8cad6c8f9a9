"""Resource owners: what every class that holds fds, mappings or attachments shares.

    class Thing(Closing):          # close() (idempotent), `with thing:` closes
        def close(self) -> None: ...

    class Buffer(ClosingOnDel):    # and closed when garbage collected, quietly
        def close(self) -> None: ...

A subclass writes `close()` (releasing what it owns, once: a second call does nothing) and,
where it has one, its `closed` property; the mixins add the context manager and, for
`ClosingOnDel`, the ``__del__`` that closes. Leaving a ``with`` block closes and lets the
exception through (``__exit__`` returns None).

`Closing` has no ``__del__``: the owners that use it alone leave collection to what they
hold (an `Fd` closes itself through its finalizer, an mmap when collected) and run no undo
step then.

Imports nothing: every layer may use it, and it costs a tool's start-up one tiny module.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

__all__ = ["Closing", "ClosingOnDel"]


class Closing:
    """`close()` plus the context manager: ``with owner:`` closes it on the way out."""

    __slots__ = ()

    def close(self) -> None:
        """Release what the object owns; a second call does nothing."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class ClosingOnDel(Closing):
    """`Closing`, and closed when collected: errors then are swallowed (interpreter
    shutdown, an object whose ``__init__`` failed half way)."""

    __slots__ = ()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
