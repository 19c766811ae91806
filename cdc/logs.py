"""structlog set-up: JSON lines (default) or console, secrets redacted.

Event names are snake_case with key-value fields:
`log.info("batch_applied", table=t, rows=n)`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, WrappedLogger

from cdc.secrets import redact


def _redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Last line of defence: no registered secret leaves the process in a log line."""
    return {
        key: redact(value) if isinstance(value, str) else value for key, value in event_dict.items()
    }


class _CurrentStderr:
    """sys.stderr as it is when a line is written, not when logging was
    configured (a command run in-process may swap it meanwhile)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR: Any = _CurrentStderr()


def configure(fmt: Literal["json", "console"] = "json", level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_STDERR),
        # False: a logger first used inside `structlog.testing.capture_logs` would
        # keep that capture for good; a log line is never on a hot path here
        # not cached: a logger keeps the processors of the configuration it was
        # first used under, and a command run in-process configures again
        cache_logger_on_first_use=False,
    )
