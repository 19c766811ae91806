"""`metrics.listen` on a port another process holds: `cdc run` stops at once
with one line that names the setting and the fix, not a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson

from tests.integration.pipeline import cdc, pg_pipeline


def test_a_metrics_port_in_use_stops_with_the_setting_named(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pg_pipeline(tmp_path, topic_prefix, pg_dsn, kafka_bootstrap, ["public.t"])
        config = tmp_path / f"{topic_prefix}.yaml"
        text = config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}")
        config.write_text(text)
        done = cdc("run", "-c", str(config))
    assert done.returncode == 2, done.stderr  # the systemd unit does not restart on 2
    lines = [orjson.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line.get("level") == "error"]
    assert [e["event"] for e in errors] == ["stopped"], done.stderr
    assert f"metrics.listen 127.0.0.1:{port}" in errors[0]["error"]
    assert "free host:port" in errors[0]["fix"]
    assert "Traceback" not in done.stderr
