"""What every role's process shares: the stop signal and the exit status of a role."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import structlog

from cdc import systemd
from cdc.errors import SetupError, TerminalError

log = structlog.get_logger(__name__)


class Stopper:
    """First SIGTERM/SIGINT: stop reading and drain. Second: leave at once;
    nothing that was not durable has been acknowledged, so nothing is lost."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.event.is_set():
            log.warning("second_signal_exit", signal=signum)
            raise SystemExit(130)
        log.info("shutdown_requested", signal=signum)
        systemd.notify("STOPPING=1", systemd.status("stopping: draining in-flight events"))
        self.event.set()


EXIT_SETUP = 2  # the systemd unit's RestartPreventExitStatus


def run_logged(role: str, body: Callable[[], None]) -> int:
    """Run `body`: 0 when it returns; a failure becomes one log line and 1
    (2 for a `SetupError`, which restarting cannot cure)."""
    log = structlog.get_logger("cdc")
    try:
        body()
    except TerminalError as error:
        log.error("stopped", error=error.message, fix=error.remedy, role=role)
        return EXIT_SETUP if isinstance(error, SetupError) else 1
    except Exception as error:
        # Unforeseen: still one log line, through the log's secret redaction, where
        # a bare traceback on stderr would print an exception's text unredacted.
        log.exception("crashed", error=str(error), role=role)
        return 1
    return 0
