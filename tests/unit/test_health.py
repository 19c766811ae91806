"""The operator endpoint: /metrics, /healthz, /readyz on a real socket."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from cdc import metrics
from cdc.health import Health, serve


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Health]]:
    health = Health(stall_after=0.5)
    server = serve(("127.0.0.1", 0), health)
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}", health
    server.shutdown()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_are_exposed(endpoint: tuple[str, Health]) -> None:
    base, _ = endpoint
    metrics.KAFKA_DELIVERED.inc()
    status, body = get(base + "/metrics")
    assert status == 200
    assert "cdc_kafka_messages_delivered_total" in body


def test_ready_only_once_streaming(endpoint: tuple[str, Health]) -> None:
    base, health = endpoint
    assert get(base + "/readyz")[0] == 503
    health.set_ready(True)
    assert get(base + "/readyz") == (200, "ready\n")


def test_healthz_fails_when_the_main_loop_stalls(endpoint: tuple[str, Health]) -> None:
    base, health = endpoint
    health.beat()
    assert get(base + "/healthz")[0] == 200
    health._last_beat -= 1.0  # as if the loop had not beaten for a second
    assert get(base + "/healthz") == (503, "stalled\n")


def test_unknown_path_is_404(endpoint: tuple[str, Health]) -> None:
    assert get(endpoint[0] + "/nope")[0] == 404


def test_a_process_of_two_roles_is_ready_only_while_both_are() -> None:
    health = Health()
    source, sink = health.part("source"), health.part("sink")
    sink.set_ready(True)
    assert not health.ready  # the source has not streamed yet
    source.set_ready(True)
    assert health.ready
    source.set_ready(False)  # reconnecting: the sink applying does not hide it
    sink.set_ready(True)
    assert not health.ready and not sink.ready
    source.set_ready(True)
    assert health.ready
