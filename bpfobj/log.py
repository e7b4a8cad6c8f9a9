"""Structured logging. Quiet unless the application configures logging.

structlog costs ~100 ms to import, so it is imported on the first event, and events below
the configured level are dropped before that: `enabled()` is a cheap check callers use
before building an event's fields.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

DEBUG = 10  # logging.DEBUG, logging.WARNING: the stdlib's logging (~4 ms) is imported
WARNING = 30  # only once an application has imported it, or an event is emitted


def enabled(level: int = DEBUG) -> bool:
    """True when an event at `level` would be emitted by the stdlib logger named ``bpfobj``."""
    logging = sys.modules.get("logging")
    if logging is None:
        # Nothing configured logging (it was never imported): the root logger's default
        # level, WARNING, applies.
        return level >= WARNING
    return bool(logging.getLogger("bpfobj").isEnabledFor(level))


def get_logger(**initial: Any) -> Any:
    """A structlog logger bound to `initial` keys (imported on first use).

    An application that configured structlog gets its own pipeline; otherwise events go to
    the stdlib logger ``bpfobj`` as ``key=value`` text, so nothing prints unless the
    application enables that logger.
    """
    import logging

    import structlog

    if structlog.is_configured():
        return structlog.get_logger("bpfobj", **initial)
    return structlog.wrap_logger(
        logging.getLogger("bpfobj"),
        wrapper_class=structlog.stdlib.BoundLogger,
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.KeyValueRenderer(key_order=["event"]),
        ],
        **initial,
    )


def debug(event: str, **fields: Any) -> None:
    if enabled(DEBUG):
        get_logger().debug(event, **fields)


def warning(event: str, **fields: Any) -> None:
    if enabled(WARNING):
        get_logger().warning(event, **fields)
