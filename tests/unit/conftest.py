"""What several unit test modules share."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator

import pytest


class Receiver:
    """The service manager's end: a bound datagram socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def messages(self) -> list[list[str]]:
        """Every datagram waiting, each split into its lines."""
        received: list[list[str]] = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return received
            received.append(data.decode().split("\n"))


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    # A short directory of its own: a unix socket path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="cdc-sd-") as directory:
        path = os.path.join(directory, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.setblocking(False)
            monkeypatch.setenv("NOTIFY_SOCKET", path)
            monkeypatch.delenv("WATCHDOG_USEC", raising=False)
            monkeypatch.delenv("WATCHDOG_PID", raising=False)
            yield Receiver(sock)
