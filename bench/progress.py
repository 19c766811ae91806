"""Progress lines on stderr, so stdout stays free for whatever calls the bench."""

from __future__ import annotations

import sys
import time

_START = time.monotonic()


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.monotonic() - _START:7.1f}s] {message}\n")
    sys.stderr.flush()
