"""The files under deploy/: the systemd unit passes systemd-analyze, the Kubernetes base
parses and carries what a safe rollout needs, and every metric an alert or a dashboard panel
uses is one cdc exports.

`python tests/unit/test_deploy.py` regenerates deploy/kubernetes/prometheusrule.yaml from
deploy/prometheus/alerts.yaml, the one to edit.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import cdc.metrics  # noqa: F401 (registers every metric)
from cdc.app import daemon, retrying
from cdc.settings_load import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "cdc@.service"
K8S = DEPLOY / "kubernetes"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
RULE = K8S / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "cdc.json"
GRACE_S: float = inspect.signature(daemon.run).parameters["grace_s"].default

# \b: a name inside a longer identifier (`my_cdc_x`) is not one of ours.
METRIC = re.compile(r"\bcdc_[a-z_]+\b")


# --- systemd ----------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[tuple[str, str]]]:
    """Sections of the unit file, each a list of (key, value): keys like LoadCredential repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def service_value(key: str) -> str:
    values = [value for name, value in unit_settings()["Service"] if name == key]
    assert len(values) == 1, f"[Service] {key}= appears {len(values)} times"
    return values[0]


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    # No skip: `make test` runs dev/services.sh, which installs the systemd package.
    assert found, "systemd-analyze is missing: run `make services` (it installs systemd)"
    return found


@pytest.fixture
def testable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's `cdc`: verify checks that it exists."""
    cdc = Path(sys.executable).with_name("cdc")
    assert cdc.is_file(), f"{cdc} is missing: run `make install`"
    text = UNIT.read_text()
    assert "ExecStart=/opt/cdc/bin/cdc " in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("ExecStart=/opt/cdc/bin/cdc ", f"ExecStart={cdc} "))
    return unit


def test_unit_passes_systemd_analyze_verify(testable_unit: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", str(testable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 after an unknown key or a bad value too: only its words tell.
    about_unit = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if testable_unit.name in line or str(testable_unit) in line
    ]
    assert result.returncode == 0, result.stdout + result.stderr
    assert about_unit == []


def test_unit_hardening_keeps_exposure_low(testable_unit: Path) -> None:
    # --threshold is on systemd's 0-100 scale: 20 = exposure 2.0, still "OK" (1.3 today).
    unit = str(testable_unit)
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--man=no", "--threshold=20", unit],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_unit_is_a_notify_service_with_a_watchdog_and_room_to_drain() -> None:
    assert service_value("Type") == "notify"
    assert service_value("NotifyAccess") == "main"
    assert service_value("Restart") == "on-failure"
    assert service_value("RestartSec") == "5"
    # A backoff is waited out with a beat before it (cdc.app.retrying): it must fit the watchdog.
    assert retrying.MAX_BACKOFF_S < int(service_value("WatchdogSec")) == 60
    assert int(service_value("TimeoutStopSec")) == 45 > GRACE_S
    assert service_value("ExecStart").endswith(" run --config /etc/cdc/%i.yaml")


def test_unit_is_hardened_and_reads_secrets_from_credentials() -> None:
    for key, value in {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service_value(key) == value, key
    credentials = dict(
        value.split(":", 1) for key, value in unit_settings()["Service"] if key == "LoadCredential"
    )
    assert set(credentials) == {"source-dsn", "target-dsn"}
    assert all(path.startswith("/etc/cdc/credentials/%i/") for path in credentials.values())


# --- Kubernetes -------------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return data


def manifests() -> list[dict[str, Any]]:
    """Every document of every resource the kustomization lists."""
    documents = []
    for name in kustomization()["resources"]:
        documents += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return documents


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def deployment(component: str) -> dict[str, Any]:
    [found] = [
        doc
        for doc in of_kind("Deployment")
        if doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return found


def containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in of_kind("Deployment"):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            yield doc, container


def test_kustomization_lists_every_file() -> None:
    data = kustomization()
    listed = set(data["resources"])
    for generator in data.get("configMapGenerator", []):
        listed |= set(generator["files"])
    on_disk = {path.name for path in K8S.iterdir()} - {"kustomization.yaml", "README.md"}
    assert listed == on_disk


def test_every_document_parses_and_is_named() -> None:
    for doc in manifests():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert doc["metadata"]["name"]
    kinds = Counter(doc["kind"] for doc in manifests())
    assert kinds == {"Deployment": 2, "PodMonitor": 1, "PrometheusRule": 1}
    [generator] = kustomization()["configMapGenerator"]  # the ConfigMap, hash-suffixed
    assert generator["name"] == "cdc-pipeline"


def test_source_is_single_and_never_overlaps() -> None:
    source = deployment("source")
    assert source["spec"]["replicas"] == 1
    assert source["spec"]["strategy"] == {"type": "Recreate"}
    [container] = source["spec"]["template"]["spec"]["containers"]
    assert container["command"][-2:] == ["--role", "source"]


def test_sink_scales() -> None:
    sink = deployment("sink")
    assert sink["spec"]["replicas"] == 2
    assert sink["spec"]["strategy"]["type"] == "RollingUpdate"
    [container] = sink["spec"]["template"]["spec"]["containers"]
    assert container["command"][-2:] == ["--role", "sink"]


def test_pods_probe_the_metrics_port_and_drain_in_time() -> None:
    for doc, container in containers():
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports == {"metrics": 9187}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > GRACE_S
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"])
        assert "memory" in resources["limits"]


def test_pods_run_unprivileged_on_a_read_only_root() -> None:
    for doc, container in containers():
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]  # spill files of large transactions


def test_pods_mount_the_pipeline_and_its_credentials() -> None:
    [generator] = kustomization()["configMapGenerator"]
    for doc, container in containers():
        volumes = {volume["name"]: volume for volume in doc["spec"]["template"]["spec"]["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        config = Path(container["command"][container["command"].index("--config") + 1])
        assert volumes[mounts[str(config.parent)]]["configMap"]["name"] == generator["name"]
        assert config.name in generator["files"]
        # Relative dsn_file paths resolve against $CREDENTIALS_DIRECTORY: the mounted Secret.
        env = {item["name"]: item["value"] for item in container["env"]}
        secret = volumes[mounts[env["CREDENTIALS_DIRECTORY"]]]["secret"]
        assert secret["secretName"] == "cdc-credentials"


def test_pipeline_config_is_valid_and_listens_beyond_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "source-dsn").write_text("postgresql://cdc:pw@source.db:5432/shop\n")
    (tmp_path / "target-dsn").write_text("postgresql://cdc:pw@target.db:5432/shop\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = load_settings(K8S / "pipeline.yaml")
    # The kubelet and Prometheus connect to the pod IP; the default 127.0.0.1 would fail them.
    assert settings.metrics.listen == "0.0.0.0:9187"
    assert settings.source.dsn_file == tmp_path / "source-dsn"


def test_pod_monitor_scrapes_the_named_metrics_port() -> None:
    [monitor] = of_kind("PodMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    selected = 0
    for doc, container in containers():
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if selector.items() <= labels.items():
            selected += 1
            assert endpoint["port"] in {port["name"] for port in container["ports"]}
    assert selected == 2  # the source and the sinks


RULE_HEADER = """\
# Generated from deploy/prometheus/alerts.yaml, which is the one to edit; then run
#   .venv/bin/python tests/unit/test_deploy.py
# (tests/unit/test_deploy.py fails while the two differ). The Prometheus Operator loads it
# when its ruleSelector matches these labels: add yours (like release: ...) in an overlay.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: cdc
  labels:
    app.kubernetes.io/name: cdc
spec:
"""


def prometheus_rule_text() -> str:
    """The PrometheusRule: alerts.yaml's groups, comments included, as its spec."""
    text = ALERTS.read_text()
    body = text[text.index("groups:") :]
    lines = body.splitlines(keepends=True)
    return RULE_HEADER + "".join("  " + line if line.strip() else line for line in lines)


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        rules += group["rules"]
    return rules


def test_prometheus_rule_is_alerts_yaml() -> None:
    assert RULE.read_text() == prometheus_rule_text(), "run: .venv/bin/python " + __file__
    [rule] = of_kind("PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())


def test_alerts_cover_the_failure_modes() -> None:
    by_metric: dict[str, set[str]] = {}
    for rule in alert_rules():
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        for name in METRIC.findall(rule["expr"]):
            by_metric.setdefault(name, set()).add(rule["alert"])
    assert {
        "cdc_sink_lag_seconds",  # end-to-end lag
        "cdc_source_lag_bytes",  # slot WAL retained
        "cdc_dlq_events_total",
        "cdc_kafka_delivery_errors_total",
        "cdc_source_reconnects_total",
        "cdc_sink_reconnects_total",
        "cdc_sink_rows_applied_total",  # stalled pipeline
    } <= set(by_metric)
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))


# --- dashboard --------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        panels += [panel, *panel.get("panels", [])]  # a collapsed row holds its panels
    return [panel for panel in panels if panel["type"] != "row"]


def dashboard_expressions() -> list[str]:
    exprs = [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
            exprs.append(variable["query"]["query"])
    return exprs


def test_dashboard_panels_have_queries() -> None:
    panels = dashboard_panels()
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["title"] and panel["gridPos"]
        assert panel["targets"] and all(target["expr"].strip() for target in panel["targets"])
        assert panel["datasource"]["uid"] == "${datasource}"
    quantiles = [e for e in dashboard_expressions() if e.startswith("histogram_quantile(")]
    assert {name for e in quantiles for name in METRIC.findall(e)} == {
        "cdc_sink_batch_rows_bucket",
        "cdc_sink_batch_seconds_bucket",
    }


def test_dashboard_shows_every_metric() -> None:
    used = {name for expr in dashboard_expressions() for name in METRIC.findall(expr)}
    families = {family for family, _ in exported_metrics().values()}
    shown = {exported_metrics()[name][0] for name in used if name in exported_metrics()}
    missing = families - shown
    assert not missing, f"add a panel to {DASHBOARD.relative_to(ROOT)} for {sorted(missing)}"


# --- metric names -----------------------------------------------------------------------------


@cache
def exported_metrics() -> dict[str, tuple[str, str]]:
    """Sample name -> (family, type) of every cdc metric, including those whose labelled
    children do not exist yet (a family without children has no samples to read names from)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names: dict[str, tuple[str, str]] = {}
    for family in REGISTRY.collect():
        if family.name.startswith("cdc_"):
            for suffix in suffixes[family.type]:
                names[family.name + suffix] = (family.name, family.type)
            for sample in family.samples:
                names[sample.name] = (family.name, family.type)
    return names


def promql_expressions() -> list[tuple[str, str]]:
    alerts = [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    return alerts + [("dashboard", expr) for expr in dashboard_expressions()]


def test_every_metric_an_alert_or_panel_uses_exists() -> None:
    unknown = {
        (where, name)
        for where, expr in promql_expressions()
        for name in METRIC.findall(expr)
        if name not in exported_metrics()
    }
    assert not unknown, f"not in cdc/metrics.py: {sorted(unknown)}"


def test_functions_get_the_right_metric_types() -> None:
    for where, expr in promql_expressions():
        assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), where
        # rate() of a gauge is meaningless, and a counter's deriv() resets wrongly.
        for function, name in re.findall(r"\b(rate|increase|deriv|delta)\(\s*(cdc_[a-z_]+)", expr):
            kind = exported_metrics()[name][1]
            if function in {"deriv", "delta"}:
                assert kind == "gauge", (where, expr)
            else:
                assert kind in {"counter", "histogram"}, (where, expr)
                assert kind != "counter" or name.endswith("_total"), (where, expr)


if __name__ == "__main__":
    RULE.write_text(prometheus_rule_text())
    print(f"wrote {RULE.relative_to(ROOT)}")
