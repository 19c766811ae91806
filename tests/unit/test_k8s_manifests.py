"""deploy/kubernetes as the cluster gets it: dev/k8scheck renders the kustomization as
`kubectl kustomize` does, decodes every object strictly into its Kubernetes API type and
checks the probes, mounts and selectors (`make check-kubernetes` runs the same on the base).
No cluster, kubectl or schema download: the first build fetches the Go modules pinned in
dev/k8scheck/go.sum from the module proxy.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

CHECKER = ROOT / "dev" / "k8scheck"
K8S = ROOT / "deploy" / "kubernetes"
# Created per namespace by the operator, never in the kustomization (deploy/kubernetes/README.md).
SECRET = "cdc-credentials"

# A cold build compiles k8s.io/api and kustomize: about 90 s on two cores.
pytestmark = pytest.mark.timeout(600)


def go() -> str:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    # No skip: the manifests are part of what CI checks.
    assert Path(found).is_file(), "dev/k8scheck needs Go: install it in /usr/local/go"
    return found


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("k8scheck") / "k8scheck"
    result = subprocess.run(
        [go(), "build", "-mod=readonly", "-buildvcs=false", "-o", str(binary), "."],
        cwd=CHECKER,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return binary


def run(checker: Path, directory: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(checker), *flags, str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A copy of deploy/kubernetes to break."""
    copy = tmp_path / "kubernetes"
    shutil.copytree(K8S, copy)
    return copy


def plant(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) >= 1, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new))


def test_the_base_renders_and_passes(checker: Path) -> None:
    result = run(checker, K8S, "-external-secret", SECRET, "-print")
    assert result.returncode == 0, result.stderr
    assert "5 objects decode strictly and pass the checks" in result.stderr
    objects: list[dict[str, Any]] = list(yaml.safe_load_all(result.stdout))
    kinds = Counter(o["kind"] for o in objects)
    assert kinds == {"ConfigMap": 1, "Deployment": 2, "PodMonitor": 1, "PrometheusRule": 1}
    # kustomize suffixed the generated ConfigMap's name with its hash and followed it into
    # the Deployments, and applied the image tag.
    [config_map] = [o for o in objects if o["kind"] == "ConfigMap"]
    name = config_map["metadata"]["name"]
    assert name.startswith("cdc-pipeline-") and len(name) > len("cdc-pipeline-")
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v} == {name}
        assert {c["image"] for c in pod["containers"]} == {"cdc:0.1.0"}


def test_make_target_checks_the_base() -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "check-kubernetes", f"GO={go()}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "decode strictly and pass the checks" in result.stderr


def test_the_mounted_secret_must_be_declared_external(checker: Path) -> None:
    result = run(checker, K8S)
    assert result.returncode == 1
    for deployment in ("cdc-source", "cdc-sink"):
        assert (
            f"Deployment {deployment}: spec.template.spec.volumes[1] (credentials): "
            f"Secret {SECRET} is neither in the kustomization nor named by -external-secret"
        ) in result.stderr


def test_a_misspelled_field_and_a_wrong_type_fail_naming_them(checker: Path, base: Path) -> None:
    image = "          image: cdc\n"
    plant(base / "source-deployment.yaml", image, image + "          imagePullPolicyy: Always\n")
    plant(base / "sink-deployment.yaml", "containerPort: 9187", 'containerPort: "9187"')
    result = run(checker, base, "-external-secret", SECRET)
    assert result.returncode == 1, result.stderr
    assert (
        "Deployment cdc-source: strict decoding error: "
        'unknown field "spec.template.spec.containers[0].imagePullPolicyy"'
    ) in result.stderr
    assert (
        "Deployment cdc-sink: json: cannot unmarshal string into Go struct field "
        "ContainerPort.spec.template.spec.containers.ports.containerPort of type int32"
    ) in result.stderr
    assert "2 problem(s)" in result.stderr


def test_an_unknown_kind_fails(checker: Path, base: Path) -> None:
    plant(base / "podmonitor.yaml", "kind: PodMonitor", "kind: PodMonitr")
    result = run(checker, base, "-external-secret", SECRET)
    assert result.returncode == 1
    assert "PodMonitr cdc: unknown kind monitoring.coreos.com/v1 PodMonitr" in result.stderr


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "sink-deployment.yaml",
            "path: /readyz",
            "path: /ready",
            "Deployment cdc-sink: spec.template.spec.containers[0].readinessProbe.httpGet.path"
            ' is "/ready": cdc answers it on /readyz',
        ),
        (
            "source-deployment.yaml",
            "port: metrics\n            periodSeconds",
            "port: 9188\n            periodSeconds",
            "Deployment cdc-source: spec.template.spec.containers[0].livenessProbe.httpGet.port"
            " 9188 is not a port of the container",
        ),
        (
            # cdc's default listens on loopback, where the kubelet's probes never arrive.
            "pipeline.yaml",
            "listen: 0.0.0.0:9187",
            "listen: 127.0.0.1:9187",
            "metrics.listen is 127.0.0.1:9187: the kubelet's probes and Prometheus connect to"
            " the pod's IP",
        ),
        (
            "pipeline.yaml",
            "listen: 0.0.0.0:9187",
            "listen: 0.0.0.0:9188",
            "livenessProbe: port 9187 is not cdc's metrics port 9188",
        ),
        (
            # Not the generated name: kustomize leaves the reference alone, no such ConfigMap.
            "sink-deployment.yaml",
            "name: cdc-pipeline\n",
            "name: cdc-pipelines\n",
            "Deployment cdc-sink: spec.template.spec.volumes[0] (pipeline): ConfigMap"
            " cdc-pipelines is not in the kustomization",
        ),
        (
            "sink-deployment.yaml",
            "              memory: 512Mi",
            "              memory: 2Gi",
            "Deployment cdc-sink: spec.template.spec.containers[0]: resources.requests.memory"
            " 2Gi is above its limit 1Gi",
        ),
        (
            "source-deployment.yaml",
            "              cpu: 500m\n",
            "",
            "Deployment cdc-source: spec.template.spec.containers[0]: resources.requests.cpu"
            " is missing",
        ),
        (
            "sink-deployment.yaml",
            "      app.kubernetes.io/component: sink\n  template",
            "      app.kubernetes.io/component: sinks\n  template",
            "Deployment cdc-sink: spec.selector (app.kubernetes.io/component=sinks,"
            "app.kubernetes.io/name=cdc) does not match spec.template.metadata.labels",
        ),
        (
            # Each Deployment would adopt the other's pods.
            "sink-deployment.yaml",
            "      app.kubernetes.io/component: sink\n  template",
            "  template",
            "spec.selector overlaps that of",
        ),
        (
            "podmonitor.yaml",
            "port: metrics",
            "port: metric",
            "PodMonitor cdc: spec.podMetricsEndpoints[0]: the pods of Deployment cdc-sink"
            " declare no such port",
        ),
        (
            "prometheusrule.yaml",
            "for: 30m",
            "for: 30 min",
            "PrometheusRule cdc: spec.groups[0] (cdc).rules[1] (CdcSlotWalRetainedGrowing):"
            ' for "30 min" is not a Prometheus duration',
        ),
    ],
)
def test_what_the_pods_would_trip_on_fails(
    checker: Path, base: Path, file: str, old: str, new: str, expected: str
) -> None:
    plant(base / file, old, new)
    result = run(checker, base, "-external-secret", SECRET)
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr


def test_a_kustomization_that_does_not_render_exits_2(checker: Path, base: Path) -> None:
    plant(base / "kustomization.yaml", "  - podmonitor.yaml\n", "  - podmonitors.yaml\n")
    result = run(checker, base, "-external-secret", SECRET)
    assert result.returncode == 2
    assert "kustomize:" in result.stderr and "podmonitors.yaml" in result.stderr
