"""Every alert of deploy/prometheus/alerts.yaml, run by `promtool test rules` on
series a failure leaves and on series a healthy pipeline leaves: it fires on
the first and stays quiet on the second. The alerts' own expressions are
tested (read from the file), so an edit there is tested here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"

# alert -> [(input series and their values, eval time, label sets that fire)]
Case = tuple[dict[str, str], str, list[str]]
CASES: dict[str, list[Case]] = {
    "CdcEndToEndLagHigh": [
        (
            {
                'cdc_sink_lag_seconds{job="p"}': "400x20",
                'cdc_sink_rows_applied_total{job="p",table="t",op="c"}': "0+10x20",
            },
            "15m",
            ['{job="p"}'],
        ),
        (  # a stopped sink keeps its last lag: CdcPipelineStalled's case
            {
                'cdc_sink_lag_seconds{job="p"}': "400x20",
                'cdc_sink_rows_applied_total{job="p",table="t",op="c"}': "100x20",
            },
            "15m",
            [],
        ),
    ],
    "CdcSlotWalRetainedGrowing": [
        (
            {'cdc_source_lag_bytes{job="p",instance="i"}': "2000000000+10000000x60"},
            "45m",
            ['{job="p",instance="i"}'],
        ),
        ({'cdc_source_lag_bytes{job="p",instance="i"}': "2000000000x60"}, "45m", []),
    ],
    "CdcDeadLetters": [
        (  # a table's first dead letter: its series begins at 1
            {'cdc_dlq_events_total{job="p",table="public.t",reason="apply"}': "_ _ _ 1x10"},
            "4m",
            ['{job="p",table="public.t",reason="apply"}'],
        ),
        (
            {'cdc_dlq_events_total{job="p",table="public.t",reason="apply"}': "0 0 1 2 3 4 5 6"},
            "6m",
            ['{job="p",table="public.t",reason="apply"}'],
        ),
        ({'cdc_dlq_events_total{job="p",table="public.t",reason="apply"}': "3x20"}, "15m", []),
    ],
    "CdcKafkaDeliveryErrors": [
        (
            {'cdc_kafka_delivery_errors_total{job="p",instance="i"}': "0+1x20"},
            "10m",
            ['{job="p",instance="i"}'],
        ),
        ({'cdc_kafka_delivery_errors_total{job="p",instance="i"}': "5x20"}, "10m", []),
    ],
    "CdcSourceReconnectStorm": [
        (
            {'cdc_source_reconnects_total{job="p",instance="i"}': "0+1x30"},
            "20m",
            ['{job="p",instance="i"}'],
        ),
        ({'cdc_source_reconnects_total{job="p",instance="i"}': "0+1x3 3x30"}, "25m", []),
    ],
    "CdcSinkReconnectStorm": [
        (
            {'cdc_sink_reconnects_total{job="p",instance="i"}': "0+1x30"},
            "20m",
            ['{job="p",instance="i"}'],
        ),
        ({'cdc_sink_reconnects_total{job="p",instance="i"}': "0+1x3 3x30"}, "25m", []),
    ],
    "CdcPipelineStalled": [
        (
            {
                'cdc_source_events_total{job="p",table="t",op="c"}': "0+10x30",
                'cdc_sink_rows_applied_total{job="p",table="t",op="c"}': "100x30",
            },
            "20m",
            ['{job="p"}'],
        ),
        (
            {
                'cdc_source_events_total{job="p",table="t",op="c"}': "0+10x30",
                'cdc_sink_rows_applied_total{job="p",table="t",op="c"}': "0+10x30",
            },
            "20m",
            [],
        ),
    ],
}


def _rules() -> dict[str, str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def test_every_alert_has_cases() -> None:
    assert set(CASES) == set(_rules())


def test_alerts_fire_on_failures_and_stay_quiet_otherwise(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make install` installs Debian's prometheus package"
    tests: list[dict[str, Any]] = []
    for alert, expr in _rules().items():
        for series, at, firing in CASES[alert]:
            tests.append(
                {
                    "interval": "1m",
                    "name": f"{alert} at {at}",
                    "input_series": [{"series": s, "values": v} for s, v in series.items()],
                    "promql_expr_test": [
                        {
                            # value 1 for each series the alert fires for, labels kept
                            "expr": f"({expr}) * 0 + 1",
                            "eval_time": at,
                            "exp_samples": [{"labels": labels, "value": 1} for labels in firing],
                        }
                    ],
                }
            )
    spec = tmp_path / "alerts_test.yaml"
    spec.write_text(yaml.safe_dump({"rule_files": [str(ALERTS)], "tests": tests}))
    done = subprocess.run(
        [promtool, "test", "rules", str(spec)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
