"""Reconnecting after failures a new connection can cure, the same way in every role.

A failure in `TRANSIENT` is waited out, 1 s doubling up to `MAX_BACKOFF_S`; an
attempt that returns resets the wait. The operator sees each one: `/readyz`
fails, `cdc_<role>_reconnects_total` counts it, and one log line
(`source_reconnecting`, `sink_reconnecting`) and the systemd status say why and
for how long. A refused login or privilege looks transient to the driver but
does not heal by waiting (cdc.refusals): it stops the process instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pymysql
import structlog
from prometheus_client import Counter

from cdc import systemd
from cdc.errors import TransientError
from cdc.health import Health
from cdc.refusals import refusal

log = structlog.get_logger(__name__)

MAX_BACKOFF_S = 30.0
# Failures that a new connection can cure: a server restart, a network cut.
TRANSIENT = (psycopg.OperationalError, pymysql.OperationalError, TransientError)


def retrying(
    attempt: Callable[[], None],
    *,
    role: str,
    stop: threading.Event,
    health: Health,
    reconnects: Counter,
    recover: Callable[[], None] | None = None,
) -> None:
    """Call `attempt` again and again until `stop` is set, waiting out its transient failures.

    `recover` runs after a wait, unless a stop came meanwhile, before the next attempt.
    Any other error ends the loop, a refusal as the `TerminalError` it stands for.
    """
    backoff = 1.0
    while not stop.is_set():
        try:
            attempt()
        except TRANSIENT as exc:
            if (terminal := refusal(exc)) is not None:
                raise terminal from exc
            health.set_ready(False)
            reconnects.inc()
            log.warning(f"{role}_reconnecting", error=str(exc), in_s=backoff)
            systemd.notify(systemd.status(f"{role} reconnecting in {backoff:.0f} s: {exc}"))
            # Waiting out a backoff is the loop working, not stalling: neither the watchdog
            # nor a liveness probe should turn an outage into a restart loop.
            health.beat()
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            if recover is not None and not stop.is_set():
                recover()
        else:
            backoff = 1.0
