"""The offline guard: while an offline phase (open, prepare) runs, bpf(2) is refused.

The offline layers may not import `bpfobj.sys` (the import contract), so the flag is set by
whoever runs them on the kernel side: `BpfObject` wraps open and prepare in `offline()`.
The flag is a context variable: it follows the code that set it (threads and asyncio tasks
started inside inherit a copy) and never leaks into unrelated threads.

No ctypes here, so that importing the guard costs nothing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_OFFLINE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bpfobj_offline", default=None
)


@contextmanager
def offline(phase: str = "offline phase") -> Iterator[None]:
    """Refuse every bpf(2) / perf_event_open(2) call made inside the block.

    `phase` names the phase in the error a refused call raises (``"prepare"``).
    """
    token = _OFFLINE.set(phase)
    try:
        yield
    finally:
        _OFFLINE.reset(token)


def offline_phase() -> str | None:
    """The offline phase running in this context, or None."""
    return _OFFLINE.get()


def check_online(command: str) -> None:
    """Raise `PhaseError` when called inside `offline()`."""
    phase = _OFFLINE.get()
    if phase is not None:
        from bpfobj.errors import PhaseError

        raise PhaseError(
            f"{command} refused: the {phase} runs offline and must not call the kernel",
            hint="this is a bug in the offline layers: they must take kernel facts as data",
            command=command,
        )
