"""The error taxonomy the daemon acts on.

- `TransientError`: retry with bounded backoff (server restart, network).
- `TerminalError`: stop the process with one clear message and a non-zero
  exit; positions stay where they were, so nothing is lost. `SetupError`,
  one a restart meets again until a person changes the servers or the
  configuration, exits 2, which the systemd unit does not restart on.
- `EventError`: terminal for one event only; the sink sends it to the
  dead-letter topic, counts it, and goes on with the batch.

Engines, sinks and transforms raise subclasses where they fail (a lost
replication stream, a message Kafka refused, a message that does not decode,
a row a transform cannot handle), so the daemon acts on the kind of failure
without knowing where it came from.
"""

from __future__ import annotations

from typing import ClassVar


class TransientError(RuntimeError):
    pass


class TerminalError(RuntimeError):
    """`remedy` tells the operator what to do about it."""

    def __init__(self, message: str, remedy: str) -> None:
        super().__init__(f"{message} (fix: {remedy})")
        self.message = message
        self.remedy = remedy


class SetupError(TerminalError):
    """Terminal until a person changes the setup: `cdc run` exits 2, so a
    supervisor does not restart it into the same error again and again."""


class EventError(ValueError):
    """This one event cannot be applied. Each subclass names its `reason`, the
    event's category on the dead-letter topic (the `cdc.reason` header, and a
    label of the dead-letter metric: keep the set of reasons small)."""

    reason: ClassVar[str]
