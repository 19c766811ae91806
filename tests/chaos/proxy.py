"""Real TCP faults between cdc and its servers, through a toxiproxy server.

`Toxiproxy` runs `toxiproxy-server` (built by dev/toxiproxy.sh) as a child process and
drives its HTTP API with the standard library. Each fault is a proxy state or toxic:

- `latency`: every chunk of data waits `ms` (± `jitter_ms`) before it is passed on;
- `reset_peer`: a connection is reset (TCP RST) as soon as data crosses it, new ones too;
- `black_hole`: data is dropped and connections stay open, as in a network partition;
- `disable`: the proxy stops listening and closes every connection (connection refused);
- `heal`: no toxic, enabled. Removing `black_hole` closes the connections it held, as a
  partition that lasted longer than TCP's patience would.

`ChaosProxies` (or `dev_proxies` on a `Toxiproxy`) puts one proxy in front of each local
server of dev/services.sh and gives the DSNs and Kafka bootstrap that go through them.
Kafka needs the broker's PROXIED listener: a client connects to the address the broker
advertises, so the proxy listens on that advertised port (fixed, from .dev/env) and
forwards to the listener.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from tests.conftest import ROOT

Stream = Literal["upstream", "downstream"]
"""upstream: client -> server; downstream: server -> client (toxiproxy's terms)."""

BOTH: tuple[Stream, ...] = ("upstream", "downstream")

PG, MYSQL, KAFKA = "pg", "mysql", "kafka"
"""The names of the proxies `dev_proxies` creates."""


class ToxiproxyError(RuntimeError):
    """The toxiproxy API refused a request (status is its HTTP status, 0 if unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def build_toxiproxy() -> Path:
    """The toxiproxy server binary, built by dev/toxiproxy.sh if it is missing."""
    out = subprocess.run(
        ["bash", str(ROOT / "dev" / "toxiproxy.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise ToxiproxyError(0, f"dev/toxiproxy.sh failed ({out.returncode}):\n{out.stderr}")
    return Path(out.stdout.strip().splitlines()[-1])


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports free on `host` right now (all are held until all are
    picked, so they differ; another process may still take one before it is used)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


class Toxiproxy:
    """A toxiproxy server, child of this process, and its API.

    Proxy names are the `name` given to `add_proxy`. Faults of the same kind replace each
    other (a second `latency` call changes the delay); different kinds stack.
    """

    def __init__(
        self,
        binary: Path,
        log_path: Path,
        *,
        host: str = "127.0.0.1",
        start_timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        # The API port is picked before the server binds it; another process may win the
        # race, so a server that exits at start is retried on another port.
        for _ in range(3):
            self.port = free_port(host)
            self.url = f"http://{host}:{self.port}"
            with log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [str(binary), "-host", host, "-port", str(self.port)],
                    stdin=subprocess.DEVNULL,
                    # its default logs every byte it forwards: megabytes a minute under load
                    env={**os.environ, "LOG_LEVEL": "warn"},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(start_timeout):
                return
        self.close()
        raise ToxiproxyError(0, f"toxiproxy-server did not start; see {log_path}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                self._call("GET", "/version")
                return True
            except ToxiproxyError:
                time.sleep(0.05)
        self.close()
        raise ToxiproxyError(0, f"toxiproxy-server API not up in {timeout}s; see {self.log_path}")

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace").strip()
            raise ToxiproxyError(e.code, f"{method} {path}: {e.code} {detail}") from e
        except OSError as e:
            raise ToxiproxyError(0, f"{method} {path}: {e}") from e
        return json.loads(raw) if raw.strip() else None

    # ------------------------------------------------------------------ proxies

    def add_proxy(self, name: str, listen: str, upstream: str) -> str:
        """Listen on `listen` (host:port; port 0 lets the server pick) and forward to
        `upstream`. Returns the address it listens on."""
        proxy = self._call(
            "POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream}
        )
        return str(proxy["listen"])

    def remove_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{name}")

    def disable(self, name: str) -> None:
        """Stop listening and close every connection: new connections are refused."""
        self._call("PATCH", f"/proxies/{name}", {"enabled": False})

    def enable(self, name: str) -> None:
        """Listen again, on the same address."""
        self._call("PATCH", f"/proxies/{name}", {"enabled": True})

    def enabled(self, name: str) -> bool:
        return bool(self._call("GET", f"/proxies/{name}")["enabled"])

    # ------------------------------------------------------------------- toxics

    def toxics(self, name: str) -> list[str]:
        """The names of the toxics on proxy `name` (`<type>_<stream>`)."""
        return [str(t["name"]) for t in self._call("GET", f"/proxies/{name}/toxics")]

    def _toxic(
        self, name: str, kind: str, attributes: Mapping[str, int], streams: tuple[Stream, ...]
    ) -> None:
        for stream in streams:
            toxic = f"{kind}_{stream}"
            body = {"name": toxic, "type": kind, "stream": stream, "attributes": attributes}
            try:
                self._call("POST", f"/proxies/{name}/toxics", {**body, "toxicity": 1.0})
            except ToxiproxyError as e:
                if e.status != 409:  # 409: this toxic is there: change its attributes
                    raise
                self._call(
                    "PATCH",
                    f"/proxies/{name}/toxics/{toxic}",
                    {"attributes": attributes, "toxicity": 1.0},
                )

    def latency(
        self,
        name: str,
        ms: int,
        jitter_ms: int = 0,
        *,
        streams: tuple[Stream, ...] = ("downstream",),
    ) -> None:
        """Delay the data by `ms` ± `jitter_ms`. On the replies only by default, so a round
        trip takes `ms` more; on both streams it takes twice that."""
        self._toxic(name, "latency", {"latency": ms, "jitter": jitter_ms}, streams)

    def reset_peer(self, name: str) -> None:
        """Reset (TCP RST) every connection, open or new, as soon as data crosses it."""
        self._toxic(name, "reset_peer", {"timeout": 0}, BOTH)

    def black_hole(self, name: str) -> None:
        """Drop all data both ways and keep connections open: clients wait until their
        own timeouts, as in a network partition. New connections are accepted, then hang."""
        self._toxic(name, "timeout", {"timeout": 0}, BOTH)

    def heal(self, name: str) -> None:
        """Remove every toxic and enable the proxy."""
        for toxic in self.toxics(name):
            self._call("DELETE", f"/proxies/{name}/toxics/{toxic}")
        if not self.enabled(name):
            self.enable(name)

    def heal_all(self) -> None:
        """Every proxy enabled, no toxic anywhere (toxiproxy's POST /reset)."""
        self._call("POST", "/reset")

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stop the server (every proxy and connection goes with it). Idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------- dev servers


def read_dev_env() -> dict[str, str]:
    """The settings dev/services.sh writes to .dev/env (CDC_DEV_ENV names another file)."""
    env_file = Path(os.environ.get("CDC_DEV_ENV", ROOT / ".dev" / "env"))
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def _address(dsn: str) -> str:
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port}"


def via(dsn: str, address: str) -> str:
    """`dsn` with its host:port replaced by `address` (credentials, path, query kept)."""
    parts = urlsplit(dsn)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{address}" if credentials else address
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class DevProxies:
    """Addresses of the local servers through their proxies (named PG, MYSQL, KAFKA)."""

    pg_dsn: str
    mysql_dsn: str
    kafka_bootstrap: str
    addresses: Mapping[str, str]  # proxy name -> the host:port it listens on


def dev_proxies(toxiproxy: Toxiproxy, env: Mapping[str, str]) -> DevProxies:
    """One proxy per local server: `pg` and `mysql` on ports the server picks, `kafka` on
    the port the broker's PROXIED listener advertises (CDC_KAFKA_PROXIED_BOOTSTRAP),
    forwarding to that listener (CDC_KAFKA_PROXIED_LISTENER). Only one toxiproxy per
    machine can hold the Kafka port at a time."""
    addresses = {
        PG: toxiproxy.add_proxy(PG, "127.0.0.1:0", _address(env["CDC_PG_DSN"])),
        MYSQL: toxiproxy.add_proxy(MYSQL, "127.0.0.1:0", _address(env["CDC_MYSQL_DSN"])),
    }
    kafka = env["CDC_KAFKA_PROXIED_BOOTSTRAP"]
    try:
        addresses[KAFKA] = toxiproxy.add_proxy(KAFKA, kafka, env["CDC_KAFKA_PROXIED_LISTENER"])
    except ToxiproxyError as e:
        raise ToxiproxyError(
            e.status, f"{e} (is another chaos run, with its toxiproxy, holding {kafka}?)"
        ) from e
    return DevProxies(
        pg_dsn=via(env["CDC_PG_DSN"], addresses[PG]),
        mysql_dsn=via(env["CDC_MYSQL_DSN"], addresses[MYSQL]),
        kafka_bootstrap=addresses[KAFKA],
        addresses=addresses,
    )


class ChaosProxies(Toxiproxy):
    """A toxiproxy server with the three dev proxies of `dev_proxies`: the faults take
    the server's name (PG, MYSQL, KAFKA) as proxy name."""

    def __init__(self, binary: Path, log_path: Path, env: Mapping[str, str]) -> None:
        super().__init__(binary, log_path)
        try:
            self.dev = dev_proxies(self, env)
        except BaseException:
            self.close()
            raise

    @classmethod
    def start(cls, env: Mapping[str, str], workdir: Path) -> ChaosProxies:
        """Build toxiproxy if missing and start it, logging to workdir/toxiproxy.log."""
        return cls(build_toxiproxy(), workdir / "toxiproxy.log", env)

    @property
    def pg_dsn(self) -> str:
        return self.dev.pg_dsn

    @property
    def mysql_dsn(self) -> str:
        return self.dev.mysql_dsn

    @property
    def kafka_bootstrap(self) -> str:
        return self.dev.kafka_bootstrap

    def address(self, server: str) -> str:
        """The host:port the proxy of `server` (PG, MYSQL, KAFKA) listens on."""
        return self.dev.addresses[server]
