"""No secret in any output of a full run: `cdc config check` (valid and broken
files), then `cdc run` with a wrong target password (a failure that prints
connection errors), then with the right one until the target is equal; every
line of stdout and stderr and every /metrics, /healthz and /readyz answer is
searched for the passwords, the DSNs, the dsn_file contents and the mask key."""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
import yaml

from tests.integration.convergence import pg_digest, wait_equal
from tests.integration.daemon_process import cdc_command
from tests.integration.roles import new_password, pg_source_role, pg_target_role, with_user
from tests.integration.sink_support import SinkProcess

COLUMNS = ["id", "counter"]  # `note` is masked on the way


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _scrape(port: int) -> str:
    """Every endpoint's status and body."""
    answers = []
    for path in ("/metrics", "/healthz", "/readyz"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
                answers.append(f"{path} {reply.status}\n{reply.read().decode()}")
        except urllib.error.HTTPError as error:
            answers.append(f"{path} {error.code}\n{error.read().decode()}")
    return "\n".join(answers)


def _config_check(config: Path, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [*cdc_command(), "config", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_no_secret_in_any_output_of_a_full_run(
    tmp_path: Path,
    pg_dsn: str,
    pg_target_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    monkeypatch: Any,
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, counter int NOT NULL, note text)")
        conn.execute("INSERT INTO items SELECT i, i, 'secret note' FROM generate_series(1, 300) i")
    with (
        pg_source_role(pg_dsn, ["public.items"], topic_prefix) as source_dsn,
        pg_target_role(pg_target_dsn) as target_dsn,
    ):
        wrong_password, mask_key = new_password(), new_password()
        wrong_target_dsn = with_user(target_dsn, str(urlsplit(target_dsn).username), wrong_password)
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        (credentials / "source.dsn").write_text(source_dsn + "\n")
        secrets = {
            "source password": str(urlsplit(source_dsn).password),
            "source dsn (dsn_file)": source_dsn,
            "target password": str(urlsplit(target_dsn).password),
            "target dsn": target_dsn,
            "wrong target password": wrong_password,
            "mask key": mask_key,
        }
        # the environment a systemd unit would give: credentials and secrets by env
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
        monkeypatch.setenv("CDC_TEST_TARGET_DSN", wrong_target_dsn)
        monkeypatch.setenv("CDC_TEST_MASK_KEY", mask_key)
        port = _free_port()
        pipeline = {
            "name": topic_prefix,
            "source": {"type": "postgres", "dsn_file": "source.dsn", "tables": ["public.items"]},
            "kafka": {"bootstrap_servers": kafka_bootstrap, "partitions": 2},
            "target": {"type": "postgres", "dsn": "${CDC_TEST_TARGET_DSN}", "create_tables": True},
            "transforms": [
                {
                    "type": "mask",
                    "table": "public.items",
                    "column": "note",
                    "with": "hash",
                    "key_env": "CDC_TEST_MASK_KEY",
                }
            ],
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "log": {"level": "debug"},
        }
        config = tmp_path / "pipeline.yaml"
        config.write_text(yaml.safe_dump(pipeline))
        outputs: dict[str, str] = {}

        code, outputs["config check"] = _config_check(config, dict(os.environ))
        assert code == 0, outputs["config check"]
        assert "***" in outputs["config check"]
        # a broken file: the errors quote what they refuse
        broken = tmp_path / "broken.yaml"
        bad_target = {"type": "mysql", "dsn": target_dsn}  # not a MySQL URL
        broken.write_text(yaml.safe_dump({**pipeline, "target": bad_target, "kafka": {}}))
        code, outputs["config check, broken"] = _config_check(broken, dict(os.environ))
        assert code == 2, outputs["config check, broken"]

        # A refused login is terminal: one line naming it, exit 1.
        failing = SinkProcess(config, tmp_path / "wrong-password.log", role="all")
        try:
            failing.proc.wait(60)
        finally:
            failing.stop()
        outputs["run, wrong password"] = failing.log_path.read_text()
        assert failing.proc.returncode == 1, outputs["run, wrong password"]
        assert "password authentication failed" in outputs["run, wrong password"]

        monkeypatch.setenv("CDC_TEST_TARGET_DSN", target_dsn)
        running = SinkProcess(config, tmp_path / "right-password.log", role="all")
        try:
            wait_equal(
                lambda: pg_digest(pg_dsn, "public.items", COLUMNS),
                lambda: pg_digest(pg_target_dsn, "public.items", COLUMNS),
                timeout=90,
            )
            outputs["endpoints, running"] = _scrape(port)
        finally:
            assert running.stop() == 0, running.log_tail()
        outputs["run"] = running.log_path.read_text()

    assert "cdc_" in outputs["endpoints, running"]  # the scrape did reach /metrics
    leaks = [
        f"{what} in {where}"
        for what, secret in secrets.items()
        for where, text in outputs.items()
        if secret in text or quote(secret, safe="") in text
    ]
    assert not leaks, leaks
