"""`cdc status` only reads: on a pipeline that never ran it reports that there is
no position yet and leaves Kafka and the target as they were."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from cdc.settings import Settings
from cdc.topics import offsets_topic
from tests.integration.conftest import my_execute
from tests.integration.pipeline import cdc, running_source, topic_exists, wait_until


def test_status_of_a_pipeline_that_never_ran_changes_nothing(
    tmp_path: Path,
    mysql_items_to_pg: Settings,
    pg_target_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    config = str(tmp_path / f"{topic_prefix}.yaml")
    as_json = cdc("status", "-c", config, "--json")
    assert as_json.returncode == 0, as_json.stderr
    (pipeline,) = json.loads(as_json.stdout)
    assert pipeline["phase"] == "snapshot"
    assert (pipeline["source_streaming"], pipeline["source_position"]) == (False, None)
    shown = cdc("status", "-c", config)
    assert shown.returncode == 0, shown.stderr
    assert "source NOT streaming (no position yet)" in shown.stdout

    assert not topic_exists(kafka_bootstrap, offsets_topic(topic_prefix))
    with psycopg.connect(pg_target_dsn) as conn:
        made = conn.execute("SELECT to_regclass('public.cdc_cutover')").fetchone()
    assert made == (None,)  # no cdc_cutover table either


def test_a_mariadb_source_that_stopped_is_not_streaming_and_its_backlog_shows(
    tmp_path: Path, mysql_items_to_pg: Settings, mysql_dsn: str, kafka_bootstrap: str
) -> None:
    config = str(tmp_path / f"{mysql_items_to_pg.name}.yaml")
    with running_source(mysql_items_to_pg):
        assert wait_until(lambda: _status(config)["source_streaming"], timeout=60)
    # stopped (as after kill -9: the server drops its lock with the session), then
    # changes pile up in the binlog
    my_execute(mysql_dsn, "INSERT INTO items SELECT seq, seq FROM seq_10_to_1000")
    stopped = _status(config)
    assert stopped["source_streaming"] is False
    assert stopped["source_position"] is not None
    assert stopped["source_lag_bytes"] > 1000
    assert "source NOT streaming" in cdc("status", "-c", config).stdout


def _status(config: str) -> dict[str, Any]:
    done = cdc("status", "-c", config, "--json")
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)[0]
    return found
