"""`cdc status` only reads: on a pipeline that never ran it reports that there is
no position yet and leaves Kafka and the target as they were."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from cdc.settings import Settings
from cdc.topics import offsets_topic
from tests.integration.pipeline import cdc, topic_exists


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
