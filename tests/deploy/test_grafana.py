"""The Grafana dashboard, its provisioning and docs/metrics.md agree with the metrics
service/ops/metrics.py defines and, against a live gateway, with what /metrics exports."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from registry_watcher.deliveries import sign
from tests.integration.harness import (
    ALL_FEATURES,
    Gateway,
    metric_samples,
    split_payload,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "stageserve.json"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "stageserve.yml"
METRICS_PY = ROOT / "service" / "ops" / "metrics.py"
METRICS_DOC = ROOT / "docs" / "metrics.md"

NAME = r"stageserve_[a-z0-9_]+"
SUFFIXES = ("_bucket", "_sum", "_count")
DATASOURCE_VAR = {"${datasource}", "$datasource"}
PROMETHEUS_LABELS = {"instance", "job"}  # added by Prometheus at scrape time
# The rollout and bandit controller's metrics: exported by the gateway worker that runs
# the controller embedded, or by `stageserve controller` on its own port, and only once
# a rollout or a bandit runs. A live gateway without one does not have them: the live
# test checks them against service/ops/metrics.py's definitions instead.
CONTROLLER_PREFIXES = ("stageserve_rollout_", "stageserve_bandit_", "stageserve_controller_")


# --- what the service defines --------------------------------------------------------


def defined_metrics() -> dict[str, dict[str, Any]]:
    """name -> {type, labels, mode}, parsed out of service/ops/metrics.py."""
    text = METRICS_PY.read_text()
    quoted = set(re.findall(rf'"({NAME})"', text))
    calls = list(re.finditer(rf'\b(Counter|Gauge|Histogram)\(\s*"({NAME})"', text))
    out: dict[str, dict[str, Any]] = {}
    for i, call in enumerate(calls):
        end = calls[i + 1].start() if i + 1 < len(calls) else text.index("\n    )\n", call.end())
        block = text[call.end() : end]
        labels = re.search(r'\[((?:\s*"\w+",?)+)\s*\]', block)
        mode = re.search(r'multiprocess_mode="(\w+)"', block)
        out[call.group(2)] = {
            "type": call.group(1).lower(),
            "labels": tuple(re.findall(r'"(\w+)"', labels.group(1))) if labels else (),
            "mode": mode.group(1) if mode else None,
        }
    assert quoted == set(out), "every quoted stageserve_ name should be a metric definition"
    assert len(out) >= 20
    return out


def family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# --- the dashboard -------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))  # collapsed rows nest theirs
    return out


def queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL the dashboard runs: panel targets, annotations, variable queries."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(board)
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


def referenced_names(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in re.findall(rf"\b{NAME}\b", expr)}


def provisioned_datasource() -> dict[str, Any]:
    config = yaml.safe_load(DATASOURCES.read_text())
    assert config["apiVersion"] == 1
    prometheus = [d for d in config["datasources"] if d["type"] == "prometheus"]
    assert len(prometheus) == 1
    return prometheus[0]


def test_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] == "stageserve"
    assert 36 <= board["schemaVersion"] <= 41
    panels = all_panels(board["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    visible = [p for p in panels if p["type"] != "row"]
    assert len(visible) >= 10
    for panel in visible:
        title = panel["title"]
        assert panel.get("datasource", {}).get("uid") in DATASOURCE_VAR, title
        assert panel.get("targets"), title
        for target in panel["targets"]:
            assert isinstance(target.get("expr"), str) and target["expr"].strip(), title
            assert target.get("datasource", panel["datasource"])["uid"] in DATASOURCE_VAR
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, title
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("model", "target"):
        assert variables[name]["type"] == "query"
        assert "label_values(" in json.dumps(variables[name]["query"])
    expressions = " ".join(queries(board))
    assert 'model=~"$model"' in expressions and 'target=~"$target"' in expressions


def test_dashboard_shows_what_on_call_needs() -> None:
    """The panels the brief of the dashboard names, by the metric each one needs."""
    exprs = queries(dashboard())
    text = "\n".join(exprs)
    for needed in (
        "stageserve_requests_total",
        'outcome!="success"',
        "histogram_quantile(0.5, sum by (model, target, le) "
        "(rate(stageserve_request_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (model, target, le) "
        "(rate(stageserve_request_duration_seconds_bucket",
        "stageserve_traffic_weight",
        "stageserve_traffic_configured_weight",
        "stageserve_loaded_version",
        "increase(stageserve_swaps_total",
        "stageserve_registry_up",
        "time() - max",
        "stageserve_registry_polls_total",
        "stageserve_shadow_requests_total",
        "stageserve_webhooks_total",
        "stageserve_in_flight_requests",
        "increase(stageserve_reward_count_total",  # the mean reward per version
        "stageserve_feedback_total",
        "stageserve_feedback_refused_total",
        "stageserve_inference_log_dropped_total",
        # Rollouts and bandits: step and phase per model, the gates, decisions, weights.
        "stageserve_rollout_step",
        "stageserve_rollout_phase",
        'gate="error_rate_increase"',
        'gate="p99_ratio"',
        'gate="reward_difference"',
        "sum by (model, move) (increase(stageserve_rollout_decisions_total",
        "max by (model, target) (stageserve_bandit_weight",
        "stageserve_controller_ticks_total",
    ):
        assert needed in text, needed
    rows = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    assert "Rollouts and bandits" in rows
    assert any(re.search(r"by \(model, target, version\)", e) for e in exprs)


def test_dashboard_uses_only_defined_metrics() -> None:
    defined = defined_metrics()
    unknown = {n for n in referenced_names(queries(dashboard())) if family(n) not in defined}
    assert not unknown


def test_provisioning_matches_the_dashboard() -> None:
    source = provisioned_datasource()
    assert source["url"] == "http://prometheus:9090"
    assert source["access"] == "proxy"
    variable = next(v for v in dashboard()["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == source["uid"]

    providers = yaml.safe_load(PROVIDERS.read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# --- docs/metrics.md -----------------------------------------------------------------


def doc_sections() -> dict[str, str]:
    text = METRICS_DOC.read_text()
    parts = re.split(r"^### `([^`]+)`\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].split("\n## ", 1)[0] for i in range(1, len(parts), 2)}


def doc_row(section: str, key: str) -> str:
    match = re.search(rf"^\| {key} \| (.+?) \|$", section, flags=re.MULTILINE)
    assert match, key
    return match.group(1)


def test_docs_document_every_metric_and_nothing_else() -> None:
    defined = defined_metrics()
    sections = doc_sections()
    assert set(sections) == set(defined)
    mentioned = set(re.findall(rf"\b{NAME}\b", METRICS_DOC.read_text()))
    assert {family(n) for n in mentioned} <= set(defined), "docs name a metric that is not defined"


def test_docs_give_each_metric_its_type_labels_mode_and_a_query() -> None:
    for name, spec in defined_metrics().items():
        section = doc_sections()[name]
        assert doc_row(section, "type") == spec["type"], name
        labels = doc_row(section, "labels")
        documented = tuple(re.findall(r"`(\w+)`", labels))
        assert documented == spec["labels"], name
        if not spec["labels"]:
            assert labels == "none", name
        workers = doc_row(section, "across workers")
        if spec["type"] == "gauge":
            assert f"`{spec['mode']}`" in workers, name
        else:
            assert workers.startswith("summed"), name
        promql = re.findall(r"```promql\n(.*?)```", section, flags=re.DOTALL)
        assert promql and any(name in q for q in promql), name
    text = METRICS_DOC.read_text()
    assert "bentoml_" in text and "## Label cardinality" in text


# --- against a live gateway ----------------------------------------------------------


def live_series(text: str) -> dict[str, set[str]]:
    """Sample name -> the label names its samples carry."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def catalogued_controller_series(referenced: set[str]) -> dict[str, set[str]]:
    """The controller's metrics the dashboard queries, with the labels service/ops/
    metrics.py gives them: what the live check uses in place of a gateway's /metrics."""
    defined = defined_metrics()
    names = {n for n in referenced if n.startswith(CONTROLLER_PREFIXES)}
    unknown = sorted(n for n in names if family(n) not in defined)
    assert not unknown, f"controller metrics the dashboard queries, not defined: {unknown}"
    return {n: set(defined[family(n)]["labels"]) for n in names}


def test_rollout_panels_query_the_controllers_metrics_with_their_labels() -> None:
    """Without a live controller: every rollout and bandit metric the dashboard queries
    is defined, and is filtered, grouped and named only by labels it has."""
    exprs = queries(dashboard())
    series = catalogued_controller_series(referenced_names(exprs))
    assert {
        "stageserve_rollout_step",
        "stageserve_rollout_phase",
        "stageserve_rollout_gate_value",
        "stageserve_rollout_decisions_total",
        "stageserve_bandit_weight",
        "stageserve_controller_ticks_total",
    } <= set(series)
    for expr in exprs:
        names = set(re.findall(rf"\b{NAME}\b", expr))
        if not names or not names <= set(series):
            continue  # gateway metrics: the live test checks those
        labels = set().union(*(series[n] for n in names)) | PROMETHEUS_LABELS
        for name, matchers in re.findall(rf"\b({NAME})\{{([^}}]*)\}}", expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in series[name], (name, label)
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                assert label in labels, (expr, label)
    for panel in all_panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            names = set(re.findall(rf"\b{NAME}\b", target["expr"]))
            if names and names <= set(series):
                labels = set().union(*(series[n] for n in names)) | PROMETHEUS_LABELS
                for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"]):
                    assert label in labels, (panel["title"], label)


@pytest.mark.integration
def test_dashboard_queries_only_metrics_a_live_gateway_exports(
    mlflow_server, registry, model_name, tmp_path
) -> None:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    v2 = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.5)
    registry.transition(model_name, v1.version, "Production")
    registry.transition(model_name, v2.version, "Staging")
    gateway = Gateway(
        tmp_path,
        mlflow_server.uri,
        [model_name],
        "--poll-interval",
        "0.5",
        env={"STAGESERVE_ADMIN_TOKEN": "t", "STAGESERVE_WEBHOOK_SECRET": "s"},
    )

    def metrics_text() -> str:
        return gateway.get("/metrics").text

    def total(name: str) -> float:
        """Sum of a sample's values over its series (0 when there is none yet)."""
        return sum(metric_samples(metrics_text(), name).values())

    def serves(target: str, version: str) -> bool:
        return str(gateway.target_state(model_name, target)["version"]) == version

    def predict() -> httpx.Response:
        answer = gateway.post("/invocations", json=split_payload())
        assert answer.status_code == 200, answer.text
        return answer

    try:
        gateway.start()
        assert wait_until(lambda: serves("Staging", v2.version), 60, 0.2), gateway.log_tail()
        for _ in range(5):
            predict()
        assert (
            gateway.post(
                "/invocations", content=b"{", headers={"Content-Type": "application/json"}
            ).status_code
            == 400
        )

        policy = {
            "weights": {"Production": 90, "Staging": 10},
            "shadow": {"target": "Staging", "percent": 100},
        }
        put = httpx.put(
            f"{gateway.url}/admin/models/{model_name}/traffic",
            json=policy,
            headers={"Authorization": "Bearer t"},
            timeout=30,
        )
        assert put.status_code == 200, put.text
        for _ in range(20):
            predict()
        # Shadows run after the answer, on a background thread.
        assert wait_until(lambda: predict() and total("stageserve_shadow_requests_total") > 0, 20)

        # A forged delivery, then a genuine one (it triggers an immediate registry read).
        url = f"{gateway.url}/webhooks/mlflow"
        body = json.dumps(
            {
                "entity": "model_version",
                "action": "created",
                "data": {"name": model_name, "version": v2.version},
            }
        ).encode()
        now = str(int(time.time()))
        forged = {
            "X-MLflow-Delivery-Id": "forged",
            "X-MLflow-Timestamp": now,
            "X-MLflow-Signature": "v1,AAAA",
        }
        assert httpx.post(url, content=body, headers=forged, timeout=10).status_code == 401
        delivery = uuid.uuid4().hex
        signed = {
            "X-MLflow-Delivery-Id": delivery,
            "X-MLflow-Timestamp": now,
            "X-MLflow-Signature": sign("s", delivery, now, body),
        }
        assert httpx.post(url, content=body, headers=signed, timeout=10).status_code == 202

        # Promote v2: a swap right after the webhook (webhook-to-serving is observed) and
        # Staging left empty (an "unloaded" swap).
        registry.transition(model_name, v2.version, "Production")
        assert wait_until(lambda: serves("Production", v2.version), 30, 0.2)
        assert wait_until(lambda: total("stageserve_webhook_to_serving_seconds_count") >= 1, 10)

        # A policy tag someone broke by hand: counted, the last good policy stays.
        registry.client.set_registered_model_tag(model_name, "stageserve.traffic", "{oops")
        assert wait_until(lambda: total("stageserve_traffic_policy_errors_total") >= 1, 10)
        predict()

        live = live_series(metrics_text())
    finally:
        gateway.stop()

    exprs = queries(dashboard())
    referenced = referenced_names(exprs)
    assert referenced, "the dashboard queries no stageserve metric"
    live.update(catalogued_controller_series(referenced))
    missing = sorted(name for name in referenced if name not in live)
    assert not missing, f"queried by the dashboard, not exported: {missing}"

    # The labels the dashboard filters, groups and names series by exist on the metrics.
    live_labels = set().union(*(live[n] for n in live if n.startswith("stageserve_")))
    for expr in exprs:
        for name, matchers in re.findall(rf"\b({NAME})\{{([^}}]*)\}}", expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in live[name], (name, label)
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                assert label in live_labels | PROMETHEUS_LABELS | {"le"}, (expr, label)
    for panel in all_panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                assert label in live_labels | PROMETHEUS_LABELS, (panel["title"], label)
