"""librdkafka's own log lines, through cdc's logs.

By default librdkafka prints its lines (`%6|1765...|GETSUBSCRIPTIONS|...`) as
raw text on stderr, in the middle of a command's output and between the
daemon's JSON lines. Every client cdc makes gets this logger instead: its
informational lines (syslog levels 5-7) go to debug, the rest are warnings,
each one JSON line like cdc's own.
"""

from __future__ import annotations

import logging

import structlog

_log = structlog.get_logger("librdkafka")


class _ToStructlog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            _log.warning("kafka_client_log", message=record.getMessage())
        else:
            _log.debug("kafka_client_log", message=record.getMessage())


KAFKA_LOGGER = logging.getLogger("cdc.librdkafka")
KAFKA_LOGGER.addHandler(_ToStructlog())
KAFKA_LOGGER.setLevel(logging.DEBUG)
KAFKA_LOGGER.propagate = False
