"""The error taxonomy the daemon acts on.

- `TransientError`: retry with bounded backoff (server restart, network).
- `TerminalError`: stop the process with one clear message and a non-zero
  exit; positions stay where they were, so nothing is lost.
"""

from __future__ import annotations


class TransientError(RuntimeError):
    pass


class TerminalError(RuntimeError):
    """`remedy` tells the operator what to do about it."""

    def __init__(self, message: str, remedy: str) -> None:
        super().__init__(f"{message} (fix: {remedy})")
        self.message = message
        self.remedy = remedy
