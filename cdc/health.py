"""The HTTP endpoint for operators: `/metrics`, `/healthz`, `/readyz`.

`/readyz` answers 200 once the pipeline is connected and streaming;
`/healthz` answers 503 when the main loop has not beaten for `stall_after`
seconds, so a supervisor restarts a stuck process.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from cdc.errors import SetupError


class Health:
    def __init__(self, stall_after: float = 60.0) -> None:
        self.stall_after = stall_after
        self._ready = False
        self._last_beat = time.monotonic()
        self._parts: dict[str, bool] = {}  # the roles' readiness (`part`)

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def set_ready(self, ready: bool) -> None:
        self._ready = ready

    @property
    def ready(self) -> bool:
        return self._ready

    def part(self, name: str) -> Health:
        """The health of one role of a process that runs several (source and
        sink): ready only while every part is, alive while any part beats."""
        return _Part(self, name)

    def _set_part(self, name: str, ready: bool) -> None:
        self._parts[name] = ready
        self.set_ready(all(self._parts.values()))

    @property
    def alive(self) -> bool:
        return time.monotonic() - self._last_beat < self.stall_after


class _Part(Health):
    def __init__(self, whole: Health, name: str) -> None:
        super().__init__(whole.stall_after)
        self._whole, self._name = whole, name
        whole._set_part(name, False)

    def beat(self) -> None:
        self._whole.beat()

    def set_ready(self, ready: bool) -> None:
        self._whole._set_part(self._name, ready)

    @property
    def ready(self) -> bool:
        return self._whole.ready


def serve(address: tuple[str, int], health: Health) -> ThreadingHTTPServer:
    """Start the endpoint in a daemon thread; returns the server (its
    `server_address` tells the port when `address` asked for port 0)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok = health.alive
                self._send(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
            elif self.path == "/readyz":
                ok = health.ready
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes are not news: keep them out of the log."""

    try:
        server = ThreadingHTTPServer(address, Handler)
    except OSError as exc:  # in use, or not an address of this host
        host, port = address
        raise SetupError(
            f"metrics.listen {host}:{port}: {exc.strerror or exc}",
            "set metrics.listen to a free host:port (each cdc process on a host needs its"
            " own; 127.0.0.1:0 picks one)",
        ) from None
    threading.Thread(target=server.serve_forever, name="cdc-http", daemon=True).start()
    return server
