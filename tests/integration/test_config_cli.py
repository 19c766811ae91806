"""`cdc config check` and `cdc config schema`, run as a user runs them (no servers needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

CDC = Path(sys.executable).parent / "cdc"
PASSWORD = "Zq9-very-secret-pw"


def cdc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    return subprocess.run(
        [str(CDC), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env | (env or {}),
        check=False,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return path


VALID = f"""\
name: orders
source:
  type: postgres
  dsn: postgresql://cdc:{PASSWORD}@db.internal:5432/shop
  tables: [public.orders]
kafka:
  bootstrap_servers: kafka:9092
  producer:
    sasl.password: ${{KAFKA_PASSWORD}}
target:
  type: mysql
  dsn_file: target.dsn
"""


def test_check_prints_the_resolved_config_with_secrets_masked(tmp_path: Path) -> None:
    (tmp_path / "target.dsn").write_text(f"mysql://cdc:{PASSWORD}@mysql.internal/shop\n")
    result = cdc(
        "config", "check", "-c", str(write(tmp_path, VALID)), env={"KAFKA_PASSWORD": "k-pw-123"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    resolved = yaml.safe_load(result.stdout)
    assert resolved["source"]["dsn"] == "postgresql://cdc:***@db.internal:5432/shop"
    assert resolved["source"]["slot_name"] == "orders"
    assert resolved["target"]["dsn"] == "mysql://cdc:***@mysql.internal/shop"
    assert resolved["target"]["dsn_file"] == str(tmp_path / "target.dsn")
    assert resolved["kafka"]["producer"] == {"sasl.password": "***"}
    output = result.stdout + result.stderr
    assert PASSWORD not in output
    assert "k-pw-123" not in output


def test_check_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    text = f"""\
name: Orders
source:
  type: postgres
  dsn: postgresql://cdc:{PASSWORD}@db.internal:5432/shop
  tables: [public.orders]
  heartbeat_interval_s: [{PASSWORD}]
  slot_nme: x
kafka:
  bootstrap_servers: ${{CDC_TEST_NO_SUCH_VAR}}
target:
  type: postgres
  dsn: mysql://cdc:{PASSWORD}@h/db
"""
    result = cdc("config", "check", "-c", str(write(tmp_path, text)))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "kafka.bootstrap_servers: environment variable CDC_TEST_NO_SUCH_VAR is not set"
        " (hint: export CDC_TEST_NO_SUCH_VAR before running cdc,"
        " or write $${CDC_TEST_NO_SUCH_VAR} for a literal ${)"
    )
    paths = [line.split(":", 1)[0] for line in lines]
    assert paths == [
        "kafka.bootstrap_servers",
        "name",
        "source.heartbeat_interval_s",
        "source.slot_nme",
        "target.dsn",
    ]
    assert "(hint: did you mean slot_name?)" in lines[3]
    assert "set type: mysql" in lines[4]
    assert PASSWORD not in result.stdout + result.stderr


def test_check_reports_a_yaml_error_with_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, f'name: orders\nsource:\n  dsn: "postgresql://u:{PASSWORD}@h\n')
    result = cdc("config", "check", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: YAML syntax error at line 4, column 1:")
    assert PASSWORD not in result.stdout + result.stderr


def test_check_missing_file(tmp_path: Path) -> None:
    result = cdc("config", "check", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr == f"{tmp_path / 'nope.yaml'}: file not found (hint: check the path)\n"


def test_schema_command_prints_the_committed_schema() -> None:
    result = cdc("config", "schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == json.loads((ROOT / "config" / "schema.json").read_text())
