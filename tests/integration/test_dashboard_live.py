"""The Grafana dashboard and the Prometheus alerts against a live `cdc run`.

A real Prometheus scrapes a PostgreSQL to PostgreSQL pipeline (two sink workers,
one row the target refuses, one insert that meets a row already on the target,
one added column)
and evaluates deploy/prometheus/alerts.yaml. Every panel query of
deploy/grafana/cdc.json parses and shows what the run produced, with the labels
its legend names; the alerts load and evaluate without error, the dead-letter
alert fires and the others stay quiet.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.conftest import ROOT
from tests.integration.daemon_process import DaemonProcess, current_lsn, wait_confirmed
from tests.integration.pipeline import pg_pipeline, wait_until
from tests.integration.sink_support import end_positions, wait_applied

DASHBOARD = ROOT / "deploy" / "grafana" / "cdc.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
TABLE = "public.t"
SOURCE_T = "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)"
# The target refuses v >= 1000: such a row goes to the dead-letter topic.
TARGET_T = "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, CHECK (v < 1000))"
CONFLICTING_ID = 100  # on the target before the source inserts it: insert_exists

# Grafana's own variables, as it fills them in. $__rate_interval is
# max(4 x scrape interval, $__interval + scrape interval): with a data
# source's default 15 s scrape interval, 1m at least.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
METRIC = re.compile(r"\bcdc_[a-z_]+\b")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
BY_LABELS = re.compile(r"\bby\s*\(([^)]*)\)")

# Metrics a `cdc run` that meets none of their events exports no series of:
# panels on these alone may be empty. Each must be empty in this run (checked
# below), so that an entry the code or the run has outgrown fails here.
ALLOWED_EMPTY = {
    # set by `cdc cutover` / `cdc rollback`, not by the daemon
    "cdc_cutover_phase",
    # set by `cdc verify`, by pipeline: a daemon has none
    "cdc_verify_last_equal",
    "cdc_verify_last_finished_timestamp_seconds",
    "cdc_verify_rows_total",
    "cdc_verify_chunks_total",
    "cdc_verify_mismatches_total",
    # counted by a MariaDB source only
    "cdc_source_zero_dates_total",
}

# What a user reads on these panels after this run's one dead letter, one
# conflict and one schema change: each counted although its series began with it.
READS = {
    "Dead letters (1 h)": 1.0,
    "Dead letters by table and reason": 1.0,
    "Conflicts by table and kind": 1.0,
    "Schema changes": 1.0,
}

# What this run must have exported, with the labels the panels and alerts read.
PRODUCED = [
    f'cdc_source_events_total{{table="{TABLE}",op="r"}}',
    f'cdc_source_events_total{{table="{TABLE}",op="c"}}',
    f'cdc_source_events_total{{table="{TABLE}",op="u"}}',
    f'cdc_source_events_total{{table="{TABLE}",op="d"}}',
    "cdc_source_lag_bytes",
    "cdc_source_lag_seconds",
    f'cdc_snapshot_rows_total{{table="{TABLE}"}}',
    "cdc_kafka_messages_delivered_total",
    f'cdc_sink_rows_applied_total{{table="{TABLE}",op="c"}}',
    f'cdc_sink_rows_applied_total{{table="{TABLE}",op="u"}}',
    f'cdc_sink_rows_applied_total{{table="{TABLE}",op="d"}}',
    f'cdc_sink_conflicts_total{{table="{TABLE}",kind="insert_exists"}}',
    f'cdc_dlq_events_total{{table="{TABLE}",reason="apply"}}',
    f'cdc_schema_changes_total{{table="{TABLE}",kind="add_column",action="apply"}}',
    "cdc_sink_lag_seconds",
    "cdc_sink_consumer_lag_messages",
    "cdc_sink_batch_rows_bucket",
    "cdc_sink_batch_seconds_bucket",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    """Debian's prometheus server scraping one pipeline every second and
    evaluating alerts.yaml every second, its data in `tmp_path`."""

    def __init__(self, tmp_path: Path, job: str, target: str) -> None:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        # No skip: `make install` runs dev/services.sh, which installs Debian's
        # prometheus package (the server and promtool).
        assert Path(binary).is_file(), "prometheus is missing: run `make install`"
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log_path = tmp_path / "prometheus.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **params: str) -> Any:
        """The `data` of a /api/v1 answer; an error answer raises with its text."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        if answer["status"] != "success":
            raise AssertionError(f"{path} {params}: {answer.get('errorType')}: {answer['error']}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited:\n{self.log_tail()}"
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def prometheus_server(tmp_path: Path, job: str, target: str) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path, job, target)
    try:
        assert wait_until(server.ready, timeout=20), server.log_tail()
        yield server
    finally:
        server.stop()


def panel_targets(panels: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every panel, rows' nested panels included."""
    for panel in panels:
        for target in panel.get("targets", []):
            yield panel["title"], target
        yield from panel_targets(panel.get("panels", []))


def grafana_expand(expr: str, values: dict[str, str]) -> str:
    """`expr` with its template variables filled in, as Grafana sends it."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        assert name in values, f"variable ${name} of {expr!r}: give it a value here"
        return values[name]

    return VARIABLE.sub(value, expr)


def pipeline_config(
    tmp_path: Path, name: str, pg_dsn: str, target_dsn: str, bootstrap: str, port: int
) -> Path:
    pg_pipeline(tmp_path, name, pg_dsn, bootstrap, [TABLE], heartbeat_interval_s=1)
    config = tmp_path / f"{name}.yaml"
    raw = yaml.safe_load(config.read_text())
    raw |= {
        "target": {"type": "postgres", "dsn": target_dsn},
        "sink": {"workers": 2},
        "metrics": {"listen": f"127.0.0.1:{port}"},
    }
    config.write_text(yaml.safe_dump(raw))
    return config


def target_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM t").fetchone()
    assert row is not None
    return int(row[0])


def run_changes(
    pg_dsn: str, target_dsn: str, name: str, bootstrap: str, cdc: DaemonProcess
) -> None:
    """Inserts, updates and deletes, one refused row, one conflict and one added
    column, all applied."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO t SELECT i, i FROM generate_series(51, 60) i")
        conn.execute("UPDATE t SET v = v + 1 WHERE id % 5 = 0")
        conn.execute("DELETE FROM t WHERE id % 7 = 0")
        conn.execute("INSERT INTO t VALUES (%s, 1)", (CONFLICTING_ID,))
        conn.execute("UPDATE t SET v = 5000 WHERE id = 3")
        conn.execute("ALTER TABLE t ADD COLUMN note text")
        conn.execute("INSERT INTO t VALUES (61, 61, 'after the new column')")
        wait_confirmed(pg_dsn, name, current_lsn(conn), 30, cdc)
    wait_applied(target_dsn, name, end_positions(bootstrap, [f"{name}.{TABLE}"], 2), timeout=30)
    cdc.assert_alive()


def with_job(selector: str, job: str) -> str:
    """`selector` restricted to the pipeline's job."""
    if selector.endswith("}"):
        return f'{selector[:-1]},job="{job}"}}'
    return f'{selector}{{job="{job}"}}'


def check_variables(prometheus: Prometheus, dashboard: dict[str, Any], job: str) -> None:
    """The dashboard's variables are the ones given a value here, and its
    pipeline picker offers this run's job."""
    variables = {v["name"] for v in dashboard["templating"]["list"] if v["type"] != "datasource"}
    assert variables == {"job"}, f"give the dashboard's variables {variables} a value here"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
            assert found, variable["definition"]
            metric, label = found.groups()
            offered = prometheus.api(f"label/{label}/values", **{"match[]": metric})
            assert job in offered, (variable["definition"], offered)


def check_targets(prometheus: Prometheus, dashboard: dict[str, Any], job: str) -> None:
    """Every panel query parses; unless ALLOWED_EMPTY lets it be empty, it has
    series, each with the labels its legend and its `by (...)` name; the
    panels of READS show their value."""
    values = {**GRAFANA_BUILTINS, "job": job}
    empty = set()
    read = set()
    for title, target in panel_targets(dashboard["panels"]):
        expr = grafana_expand(target["expr"], values)
        series = prometheus.query(expr)  # raises on a query Prometheus refuses
        where = f"panel {title!r} {target['refId']}: {expr}"
        metrics = set(METRIC.findall(expr))
        if metrics <= ALLOWED_EMPTY:
            assert series == [], f"{where} has series now: drop it from ALLOWED_EMPTY"
            empty |= metrics
            continue
        assert series, f"{where}: no series after this run"
        wanted = set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
        if not expr.startswith("histogram_quantile("):  # it consumes `le`
            wanted |= {label.strip() for by in BY_LABELS.findall(expr) for label in by.split(",")}
        for one in series:
            missing = {label for label in wanted if not one["metric"].get(label)}
            assert not missing, f"{where}: a series without {missing}: {one['metric']}"
        if title in READS:
            assert [float(one["value"][1]) for one in series] == [READS[title]], (where, series)
            read.add(title)
    assert empty == ALLOWED_EMPTY, f"no panel reads {ALLOWED_EMPTY - empty}"
    assert read == set(READS), f"no panel titled {set(READS) - read}"


def check_every_metric_has_a_panel(
    prometheus: Prometheus, dashboard: dict[str, Any], job: str
) -> None:
    """No cdc metric the run exports goes unseen."""

    def family(name: str) -> str:
        return re.sub(r"_(total|bucket|sum|count)$", "", name)

    exported = {
        family(name)
        for name in prometheus.api("label/__name__/values", **{"match[]": f'{{job="{job}"}}'})
        if name.startswith("cdc_") and not name.endswith("_created")
    }
    shown = {
        family(name)
        for _, target in panel_targets(dashboard["panels"])
        for name in METRIC.findall(target["expr"])
    }
    assert exported - shown == set(), f"exported with no panel: {sorted(exported - shown)}"


def check_alerts(prometheus: Prometheus, job: str) -> None:
    """Every alert of the file loaded and evaluated without error; the
    dead-letter one (found by its metric) fires, with its labels filled in."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    in_file = {r["alert"]: r for group in groups for r in group["rules"] if "alert" in r}
    dead_letter_alerts = [n for n, r in in_file.items() if "cdc_dlq_events_total" in r["expr"]]
    assert len(dead_letter_alerts) == 1, dead_letter_alerts
    (dead_letters,) = dead_letter_alerts

    def loaded() -> dict[str, dict[str, Any]]:
        return {
            rule["name"]: rule
            for group in prometheus.api("rules", type="alert")["groups"]
            for rule in group["rules"]
        }

    def settled() -> bool:
        rules = loaded()
        evaluated = all(rule["health"] != "unknown" for rule in rules.values())
        return evaluated and rules.get(dead_letters, {}).get("state") in {"pending", "firing"}

    wait_until(settled, timeout=10, every=0.5)  # if it never does, the asserts say why
    rules = loaded()
    assert set(rules) == set(in_file)
    # the pipeline is healthy but for its dead letter: every other alert stays quiet
    for name, rule in rules.items():
        assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), (name, rule)
        quiet = name != dead_letters
        assert (rule["state"] == "inactive") == quiet, (name, rule["state"], rule["alerts"])

    (alert,) = rules[dead_letters]["alerts"]
    assert alert["labels"] | {"table": TABLE, "reason": "apply", "job": job} == alert["labels"]
    for text in alert["annotations"].values():
        assert "<no value>" not in text, alert["annotations"]
    assert TABLE in alert["annotations"]["summary"], alert["annotations"]


def test_every_panel_and_alert_reads_a_live_pipeline(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(SOURCE_T)
        conn.execute("INSERT INTO t SELECT i, i FROM generate_series(1, 50) i")
    with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
        conn.execute(TARGET_T)
        conn.execute("INSERT INTO t VALUES (%s, 0)", (CONFLICTING_ID,))
    port = _free_port()
    config = pipeline_config(tmp_path, topic_prefix, pg_dsn, pg_target_dsn, kafka_bootstrap, port)
    with prometheus_server(tmp_path, topic_prefix, f"127.0.0.1:{port}") as prometheus:
        cdc = DaemonProcess(config, tmp_path / "cdc.log", "all")
        try:

            def scraped() -> bool:
                targets = prometheus.api("targets")["activeTargets"]
                return [target["health"] for target in targets] == ["up"]

            assert wait_until(scraped, timeout=20), prometheus.api("targets")
            assert wait_until(lambda: target_rows(pg_target_dsn) == 51, timeout=30), cdc.log_tail()
            run_changes(pg_dsn, pg_target_dsn, topic_prefix, kafka_bootstrap, cdc)

            def unscraped() -> list[str]:
                return [s for s in PRODUCED if not prometheus.query(with_job(s, topic_prefix))]

            assert wait_until(lambda: not unscraped(), timeout=10), unscraped()
            # a few more scrapes and evaluations: two samples of each new series for rate()
            time.sleep(3)
            dashboard = json.loads(DASHBOARD.read_text())
            check_variables(prometheus, dashboard, topic_prefix)
            check_targets(prometheus, dashboard, topic_prefix)
            check_every_metric_has_a_panel(prometheus, dashboard, topic_prefix)
            check_alerts(prometheus, topic_prefix)
            cdc.assert_alive()
        finally:
            code = cdc.stop()
    assert code == 0, cdc.log_tail()
