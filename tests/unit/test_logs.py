"""Log lines are JSON with snake_case events, and never carry a secret."""

from __future__ import annotations

import orjson
import pytest
import structlog

from cdc import logs
from cdc.secrets import forget_secrets, register_dsn


def test_json_lines_redact_registered_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    register_dsn("postgresql://app:s3cr3t-pw@db.example:5432/shop")
    try:
        logs.configure("json", "info")
        log = structlog.get_logger("test")
        log.info("connect_failed", dsn="postgresql://app:s3cr3t-pw@db.example:5432/shop", n=1)
        log.debug("not_shown")
        line = capsys.readouterr().err.strip()
    finally:
        forget_secrets()
        structlog.reset_defaults()
    assert "s3cr3t-pw" not in line
    record = orjson.loads(line)
    assert record["event"] == "connect_failed"
    assert record["level"] == "info"
    assert record["n"] == 1
    assert "not_shown" not in line
