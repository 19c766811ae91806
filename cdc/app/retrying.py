"""Reconnecting after failures a new connection can cure, the same way in every role.

A failure in `TRANSIENT` is waited out, 0.5 s doubling up to `MAX_BACKOFF_S` (4 s):
reconnecting every few seconds to a server that is down costs little, and a
server that is back is in use again within seconds. The waits start over at
0.5 s for a new outage: after an attempt that returns, and after one that
failed once it had become ready (a stream never returns; `/readyz` tells that it
caught up) or had run `HEALTHY_AFTER_S` (a long snapshot before it streams). The
operator sees each one: `/readyz`
fails, `cdc_<role>_reconnects_total` counts it, and one log line
(`source_reconnecting`, `sink_reconnecting`) and the systemd status say why and
for how long. A refused login or privilege looks transient to the driver but
does not heal by waiting (cdc.refusals): it stops the process instead.
"""

from __future__ import annotations

import threading
import time
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

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 4.0
# An attempt that ran this long before it failed was working: its failure is a new outage.
HEALTHY_AFTER_S = 30.0
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
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Call `attempt` again and again until `stop` is set, waiting out its transient failures.

    `recover` runs after a wait, unless a stop came meanwhile, before the next attempt.
    Any other error ends the loop, a refusal as the `TerminalError` it stands for.
    """
    backoff = FIRST_BACKOFF_S
    while not stop.is_set():
        started = clock()
        try:
            attempt()
        except TRANSIENT as exc:
            if (terminal := refusal(exc)) is not None:
                raise terminal from exc
            # Ready again since the last failure (it is set not ready below), or long at
            # work: this outage is not the last one going on, and may be as short.
            if health.ready or clock() - started >= HEALTHY_AFTER_S:
                backoff = FIRST_BACKOFF_S
            health.set_ready(False)
            reconnects.inc()
            log.warning(f"{role}_reconnecting", error=str(exc), in_s=backoff)
            systemd.notify(systemd.status(f"{role} reconnecting in {backoff:g} s: {exc}"))
            # Waiting out a backoff is the loop working, not stalling: neither the watchdog
            # nor a liveness probe should turn an outage into a restart loop.
            health.beat()
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            if recover is not None and not stop.is_set():
                recover()
        else:
            backoff = FIRST_BACKOFF_S
