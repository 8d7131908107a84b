"""The Kubernetes base in deploy/kubernetes: it parses, the core kinds validate against the
Kubernetes JSON schemas (offline, bundled with kubernetes-validate), the pieces agree with
each other and with the service, and the PrometheusRule is deploy/prometheus/alerts.yml."""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.config import SETTINGS

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "deploy" / "kubernetes"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
# A version whose schemas kubernetes-validate bundles (its package holds 1.25 onwards).
K8S_VERSION = "1.30"

RESOURCES = [
    "deployment.yaml",
    "service.yaml",
    "hpa.yaml",
    "pdb.yaml",
    "servicemonitor.yaml",
    "prometheusrule.yaml",
    "controller-deployment.yaml",
    "controller-service.yaml",
    "controller-servicemonitor.yaml",
]
CORE = {
    "deployment.yaml": ("apps/v1", "Deployment"),
    "service.yaml": ("v1", "Service"),
    "controller-deployment.yaml": ("apps/v1", "Deployment"),
    "controller-service.yaml": ("v1", "Service"),
    "hpa.yaml": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "pdb.yaml": ("policy/v1", "PodDisruptionBudget"),
    "secret.example.yaml": ("v1", "Secret"),
}


def load_one(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]
    assert len(docs) == 1, f"{name}: expected one document, got {len(docs)}"
    return docs[0]


def kustomization() -> dict[str, Any]:
    return load_one("kustomization.yaml")


def deployment(name: str = "deployment.yaml") -> dict[str, Any]:
    return load_one(name)


def container(name: str = "deployment.yaml") -> dict[str, Any]:
    containers = deployment(name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def container_port(port: int | str, name: str = "deployment.yaml") -> int:
    """A probe's or Service's port, a number or the name of a container port."""
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in container(name)["ports"]}
    assert port in ports, f"port name {port!r} is not a container port ({sorted(ports)})"
    return ports[port]


def load_renderer():
    spec = importlib.util.spec_from_file_location(
        "render_prometheusrule", K8S / "render_prometheusrule.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_manifest_parses() -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert {f.name for f in files} >= {*RESOURCES, "kustomization.yaml", "secret.example.yaml"}
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert isinstance(doc, dict), path.name
            assert doc.get("apiVersion") and doc.get("kind"), path.name
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], path.name


def test_kustomization_lists_the_resources_and_they_exist() -> None:
    kust = kustomization()
    assert kust["kind"] == "Kustomization"
    assert kust["resources"] == RESOURCES
    for name in kust["resources"]:
        assert (K8S / name).is_file(), name
    # The example Secret must never be applied with the base.
    assert "secret.example.yaml" not in kust["resources"]


@pytest.mark.parametrize("name", sorted(CORE))
def test_core_kinds_validate_against_the_kubernetes_schema(name: str) -> None:
    doc = load_one(name)
    assert (doc["apiVersion"], doc["kind"]) == CORE[name]
    # strict: unknown fields (typos) are errors, not ignored.
    assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION


def test_the_schema_validation_catches_mistakes() -> None:
    """The offline validation is not a no-op: a misspelt field and a wrong type fail."""
    typo = copy.deepcopy(deployment())
    typo["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGets"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)
    wrong_type = copy.deepcopy(load_one("hpa.yaml"))
    wrong_type["spec"]["minReplicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSION, strict=True)


def test_deployment_runs_two_replicas_and_probes_the_gateway() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] >= 2
    ctr = container()
    assert container_port("http") == 3000
    assert "--port" in ctr["args"] and ctr["args"][ctr["args"].index("--port") + 1] == "3000"
    probes = {kind: ctr[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/livez"
    startup = ctr["startupProbe"]["httpGet"]
    assert startup["path"] in ("/livez", "/readyz")
    for get in [*probes.values(), startup]:
        assert container_port(get["port"]) == 3000
    # The start-up window covers a slow first start (a minute at least).
    startup_window = ctr["startupProbe"]["periodSeconds"] * ctr["startupProbe"]["failureThreshold"]
    assert startup_window >= 60
    # A rollout never takes a ready pod away before its replacement is ready.
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_graceful_shutdown_outlasts_the_prestop_delay_and_the_request_timeout() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2
    pre_stop = int(command[1])
    assert 5 <= pre_stop <= 30
    # The service's own request timeout (service/bento_service.py): requests in flight
    # at SIGTERM get that long to finish, after the preStop delay.
    source = (REPO_ROOT / "service" / "bento_service.py").read_text()
    match = re.search(r'traffic=\{"timeout":\s*(\d+)', source)
    assert match, "the request timeout is no longer set in bento_service.py"
    request_timeout = int(match.group(1))
    assert pod["terminationGracePeriodSeconds"] > pre_stop + request_timeout


def test_security_context_and_writable_tmp() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    ctr = container()
    sc = ctr["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    # Every path the gateway writes to is on an emptyDir mount.
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = [m["mountPath"] for m in ctr["volumeMounts"] if m["name"] in empty_dirs]
    assert "/tmp" in writable
    env = {e["name"]: e["value"] for e in ctr["env"]}
    for name in ("STAGESERVE_MODEL_DIR", "TMPDIR", "BENTOML_HOME", "HOME"):
        path = env[name]
        assert any(path == w or path.startswith(w.rstrip("/") + "/") for w in writable), name
    limits = ctr["resources"]["limits"]
    requests = ctr["resources"]["requests"]
    assert {"cpu", "memory"} <= set(limits) and {"cpu", "memory"} <= set(requests)


def test_configuration_comes_from_the_configmap_and_the_secret() -> None:
    ctr = container()
    refs = {
        ("configMap" if "configMapRef" in ref else "secret"): (
            ref.get("configMapRef") or ref.get("secretRef")
        )["name"]
        for ref in ctr["envFrom"]
    }
    assert refs == {"configMap": "stageserve-config", "secret": "stageserve"}
    generators = {g["name"]: g for g in kustomization()["configMapGenerator"]}
    literals = dict(item.split("=", 1) for item in generators["stageserve-config"]["literals"])
    assert literals["MLFLOW_TRACKING_URI"].startswith(("http://", "https://"))
    assert literals["STAGESERVE_MODELS"]
    secret = load_one("secret.example.yaml")
    assert secret["metadata"]["name"] == "stageserve"
    keys = set(secret["stringData"])
    assert {"STAGESERVE_ADMIN_TOKEN", "STAGESERVE_WEBHOOK_SECRET"} <= keys
    basic_auth = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    assert "MLFLOW_TRACKING_TOKEN" in keys or basic_auth <= keys
    # Every stageserve variable used is one the service reads (no silently ignored typo).
    known = {s.env for s in SETTINGS}
    used = set(literals) | keys | {e["name"] for e in ctr["env"]}
    unknown = {n for n in used if n.startswith("STAGESERVE_") and n not in known}
    assert not unknown, f"not stageserve settings: {sorted(unknown)}"


def test_service_pdb_and_hpa_target_the_deployment() -> None:
    dep = deployment()
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    svc = load_one("service.yaml")
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    (port,) = svc["spec"]["ports"]
    assert port["name"] == "http" and port["port"] == 3000
    assert container_port(port["targetPort"]) == 3000

    pdb = load_one("pdb.yaml")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    hpa = load_one("hpa.yaml")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
        "apps/v1",
        "Deployment",
        dep["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    assert dep["spec"]["replicas"] >= hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    # CPU utilization is relative to the request: there must be one.
    assert container()["resources"]["requests"]["cpu"]


def test_servicemonitor_scrapes_the_service_http_port() -> None:
    monitor = load_one("servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    svc = load_one("service.yaml")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    port_names = {p["name"] for p in svc["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in port_names
    assert endpoint["path"] == "/metrics"
    # The job label is the Service name; the alert rules match on job="stageserve".
    assert svc["metadata"]["name"] == "stageserve"
    assert "jobLabel" not in monitor["spec"]


def test_prometheusrule_is_generated_from_the_alert_rules() -> None:
    assert ALERTS.is_file(), f"{ALERTS} is missing: the PrometheusRule has no source"
    text = (K8S / "prometheusrule.yaml").read_text()
    assert text.startswith("# generated by render_prometheusrule.py")
    rule = load_one("prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["name"] == "stageserve"
    alerts = yaml.safe_load(ALERTS.read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    assert any(group["rules"] for group in rule["spec"]["groups"])
    # Byte for byte what the generator writes today: re-run it after changing alerts.yml.
    assert load_renderer().render(ALERTS.read_text()) == text


def test_renderer_checks_its_input_and_keeps_multiline_expressions() -> None:
    renderer = load_renderer()
    with pytest.raises(ValueError):
        renderer.render("scrape_configs: []\n")
    with pytest.raises(ValueError):
        renderer.render("groups:\n  - rules: []\n")
    lines = ["groups:", "  - name: g", "    rules:", "      - alert: A", "        expr: |"]
    source = "\n".join([*lines, "          up", "          == 0", ""])
    rendered = yaml.safe_load(renderer.render(source))
    assert rendered["spec"]["groups"] == [
        {"name": "g", "rules": [{"alert": "A", "expr": "up\n== 0\n"}]}
    ]


# --- the fleet's controller (controller-*.yaml) ----------------------------------------

CONTROLLER = "controller-deployment.yaml"


def controller_args() -> list[str]:
    """The controller's command line after `python -m service.cli.main`."""
    args = container(CONTROLLER)["args"]
    assert args[:3] == ["python", "-m", "service.cli.main"], args
    return args[3:]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def pod_labels(name: str) -> dict[str, str]:
    return deployment(name)["spec"]["template"]["metadata"]["labels"]


def test_controller_is_one_replica_never_two_at_once() -> None:
    spec = deployment(CONTROLLER)["spec"]
    assert spec["replicas"] == 1
    # Recreate: an update stops the old pod before starting the new one (a rolling
    # update would run both for a while).
    assert spec["strategy"] == {"type": "Recreate"}
    assert selects(spec["selector"]["matchLabels"], pod_labels(CONTROLLER))
    # The HPA scales the gateway only.
    hpa = load_one("hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment()["metadata"]["name"]
    assert deployment(CONTROLLER)["metadata"]["name"] != deployment()["metadata"]["name"]


def test_controller_runs_the_gateways_image_with_its_configuration_and_secret() -> None:
    ctr = container(CONTROLLER)
    assert ctr["image"] == container()["image"]
    assert ctr["envFrom"] == container()["envFrom"]  # same ConfigMap, same Secret
    pod = deployment(CONTROLLER)["spec"]["template"]["spec"]
    assert pod.get("imagePullSecrets") == deployment()["spec"]["template"]["spec"].get(
        "imagePullSecrets"
    )
    env = {e["name"]: e["value"] for e in ctr["env"]}
    # The Bento image holds the package's sources, not its console script.
    from bentoml._internal.bento.bento import BENTO_PROJECT_DIR_NAME
    from bentoml._internal.container.generate import BENTO_PATH

    assert env["PYTHONPATH"] == f"{BENTO_PATH}/{BENTO_PROJECT_DIR_NAME}"
    assert (REPO_ROOT / "service" / "cli" / "main.py").is_file()
    known = {s.env for s in SETTINGS}
    unknown = {n for n in env if n.startswith("STAGESERVE_") and n not in known}
    assert not unknown, f"not stageserve settings: {sorted(unknown)}"


def test_controller_command_line_is_one_the_cli_accepts() -> None:
    """`stageserve controller --prometheus URL --metrics-port P`, as the CLI parses it."""
    from service.cli.parser import build_parser

    args = controller_args()
    assert args[0] == "controller"
    assert option_value(args, "--prometheus").startswith(("http://", "https://"))
    assert_cli_accepts(build_parser(), args)


def assert_cli_accepts(parser: Any, args: list[str]) -> None:
    try:
        parsed = parser.parse_args(args)
    except SystemExit:  # argparse printed why on stderr
        pytest.fail(f"`stageserve {' '.join(args)}` is refused by the CLI", pytrace=False)
    assert parsed.command == args[0]


def option_value(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def test_controller_serves_probes_and_scrapes_on_its_metrics_port() -> None:
    ctr = container(CONTROLLER)
    port = int(option_value(controller_args(), "--metrics-port"))
    assert container_port("metrics", CONTROLLER) == port
    for probe in ("livenessProbe", "startupProbe"):
        get = ctr[probe]["httpGet"]
        assert get["path"] == "/metrics", probe
        assert container_port(get["port"], CONTROLLER) == port, probe
    annotations = deployment(CONTROLLER)["spec"]["template"]["metadata"]["annotations"]
    gateway_annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert set(annotations) == set(gateway_annotations)  # scraped the way the gateway is
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"

    svc = load_one("controller-service.yaml")
    assert selects(svc["spec"]["selector"], pod_labels(CONTROLLER))
    (svc_port,) = svc["spec"]["ports"]
    assert container_port(svc_port["targetPort"], CONTROLLER) == port
    monitor = load_one("controller-servicemonitor.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    )
    assert selects(monitor["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == svc_port["name"]
    assert endpoint["path"] == "/metrics"
    gateway_endpoint = load_one("servicemonitor.yaml")["spec"]["endpoints"][0]
    assert endpoint["interval"] == gateway_endpoint["interval"]


def test_gateway_and_controller_selectors_never_pick_each_others_pods() -> None:
    gateway, controller = pod_labels("deployment.yaml"), pod_labels(CONTROLLER)
    gateway_selectors = [
        deployment()["spec"]["selector"]["matchLabels"],
        load_one("service.yaml")["spec"]["selector"],
        load_one("pdb.yaml")["spec"]["selector"]["matchLabels"],
    ]
    for selector in gateway_selectors:
        assert selects(selector, gateway) and not selects(selector, controller), selector
    controller_selectors = [
        deployment(CONTROLLER)["spec"]["selector"]["matchLabels"],
        load_one("controller-service.yaml")["spec"]["selector"],
    ]
    for selector in controller_selectors:
        assert selects(selector, controller) and not selects(selector, gateway), selector
    # Each ServiceMonitor picks its own Service only (the other's would be a second job).
    gateway_svc = load_one("service.yaml")["metadata"]["labels"]
    controller_svc = load_one("controller-service.yaml")["metadata"]["labels"]
    gateway_monitor = load_one("servicemonitor.yaml")["spec"]["selector"]["matchLabels"]
    controller_monitor = load_one("controller-servicemonitor.yaml")["spec"]["selector"][
        "matchLabels"
    ]
    assert not selects(gateway_monitor, controller_svc)
    assert not selects(controller_monitor, gateway_svc)


def test_gateways_leave_the_decisions_to_the_one_controller() -> None:
    env = {e["name"]: e["value"] for e in container()["env"]}
    assert env["STAGESERVE_CONTROLLER"] == "off"
    # Not in the shared ConfigMap: the controller reads the same one.
    generators = {g["name"]: g for g in kustomization()["configMapGenerator"]}
    literals = dict(item.split("=", 1) for item in generators["stageserve-config"]["literals"])
    assert "STAGESERVE_CONTROLLER" not in literals


def test_controller_is_small_hardened_and_writes_only_to_tmp() -> None:
    ctr = container(CONTROLLER)
    gateway = container()
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}

    def quantity(value: str | int) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(m|Ki|Mi|Gi|)", str(value)).groups()
        return float(number) * units[unit]

    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            mine = quantity(ctr["resources"][kind][resource])
            assert 0 < mine < quantity(gateway["resources"][kind][resource]), (kind, resource)
    pod = deployment(CONTROLLER)["spec"]["template"]["spec"]
    gateway_pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"] == gateway_pod["securityContext"]
    assert ctr["securityContext"] == gateway["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = [m["mountPath"] for m in ctr["volumeMounts"] if m["name"] in empty_dirs]
    env = {e["name"]: e["value"] for e in ctr["env"]}
    for name in ("TMPDIR", "HOME"):
        assert env[name] in writable, name
