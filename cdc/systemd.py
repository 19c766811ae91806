"""sd_notify(3), written by hand: READY, STATUS, WATCHDOG and STOPPING for a `Type=notify` unit.

The protocol is one datagram of newline-separated `NAME=value` lines sent to the unix socket
named by `$NOTIFY_SOCKET` (a leading `@` means Linux's abstract namespace). Outside systemd
the variable is unset and every call is a no-op, so the daemon calls these unconditionally.
Notifying never raises: losing a status line must not stop replication.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import structlog

from cdc.health import Health
from cdc.secrets import redact

log = structlog.get_logger(__name__)

STATUS_MAX = 200  # `systemctl status` shows one line; a long error only pushes the rest away

_warned = threading.Event()  # warn once: a dead socket would otherwise log every watchdog ping


def notify(*lines: str) -> bool:
    """Send `lines` (like `READY=1`, `STATUS=streaming`) in one datagram; False when
    `$NOTIFY_SOCKET` is unset or the message could not be sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not lines:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        # systemd 253 added vsock: addresses (for VMs); a host's service manager uses a path.
        _warn_once("unsupported NOTIFY_SOCKET address", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode(), address)
    except OSError as exc:
        _warn_once(exc.strerror or type(exc).__name__, address)
        return False
    return True


def status(text: str) -> str:
    """A `STATUS=` line: one line, secrets masked (it shows in `systemctl status` for anyone)."""
    flat = " ".join(redact(text).split())
    return "STATUS=" + (flat if len(flat) <= STATUS_MAX else flat[: STATUS_MAX - 3] + "...")


def watchdog_interval() -> float | None:
    """Seconds between `WATCHDOG=1` pings: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3)
    advises, so one late ping is not yet a kill. None when systemd expects no pings: unset, or
    meant for another process (`$WATCHDOG_PID`, which systemd sets to the main PID)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


class NotifyingHealth(Health):
    """`Health` that also tells systemd, so the daemon's existing calls drive both.

    - `set_ready(True)` the first time: `READY=1` (the unit becomes active); later changes
      of readiness only update `STATUS=`, since systemd has no way to go back to "starting".
    - `beat()` from the main loops: `WATCHDOG=1`, at most once per `watchdog_interval()`.
      A stuck loop stops beating and systemd kills and restarts the process.
    - `beat()` before the first ready: `EXTEND_TIMEOUT_USEC=` as well, so an initial
      snapshot that reads for hours before streaming starts does not trip `TimeoutStartSec=`,
      while a start that stops making progress still fails after `stall_after` seconds.
    """

    def __init__(self, stall_after: float = 60.0) -> None:
        super().__init__(stall_after)
        self._enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._watchdog = watchdog_interval()
        # Role "all" beats and sets readiness from two threads.
        self._lock = threading.Lock()
        self._announced = False
        self._last_ping = float("-inf")

    def beat(self) -> None:
        super().beat()
        if not self._enabled:
            return
        every = self._watchdog if self._watchdog is not None else self.stall_after / 2
        with self._lock:
            now = time.monotonic()
            if now - self._last_ping < every:
                return
            self._last_ping = now
            starting = not self._announced
        lines = ["WATCHDOG=1"] if self._watchdog is not None else []
        if starting:
            lines.append(f"EXTEND_TIMEOUT_USEC={int(self.stall_after * 1_000_000)}")
        if lines:
            notify(*lines)

    def set_ready(self, ready: bool) -> None:
        with self._lock:
            changed = ready != self.ready
            first = ready and not self._announced
            self._announced = self._announced or ready
            super().set_ready(ready)
        if not self._enabled or not changed:
            return
        if first:
            notify("READY=1", status("streaming"))
        elif ready:
            notify(status("streaming"))


def _warn_once(error: str, address: str) -> None:
    if not _warned.is_set():
        _warned.set()
        log.warning("systemd_notify_failed", error=error, socket=address.replace("\0", "@"))
