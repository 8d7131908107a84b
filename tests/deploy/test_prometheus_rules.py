"""deploy/prometheus: promtool accepts the scrape config and the alert rules, the rules'
unit tests pass, and every metric and label the rules (and their tests) use is one
service/ops/metrics.py defines.

promtool comes from Debian's `prometheus` package (.ci/run installs it); without it these
tests fail, they are never skipped.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
METRICS_PY = ROOT / "service" / "ops" / "metrics.py"

NAME = re.compile(r"stageserve_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus at scrape time
MATCHERS = re.compile(r"(stageserve_[a-z_]+)\s*\{([^}]*)\}")
LABEL_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: run `apt-get install prometheus` (Debian's package "
            "provides promtool and the prometheus server; .ci/run installs it)",
            pytrace=False,
        )
    return path


def run_promtool(*args: str) -> str:
    result = subprocess.run(
        [promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    output = f"$ promtool {' '.join(args)}\n{result.stdout}{result.stderr}"
    print(output)
    assert result.returncode == 0, f"promtool exited {result.returncode}:\n{output}"
    return output


def defined_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """Every metric service/ops/metrics.py creates: name -> (type, label names), read from
    the Counter/Gauge/Histogram calls themselves (nothing imported or registered)."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for node in ast.walk(ast.parse(METRICS_PY.read_text())):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"Counter", "Gauge", "Histogram"}
        ):
            continue
        name = ast.literal_eval(node.args[0])
        labels: list[str] = []
        if len(node.args) > 2:
            labels = ast.literal_eval(node.args[2])
        for keyword in node.keywords:
            if keyword.arg == "labelnames":
                labels = ast.literal_eval(keyword.value)
        out[name] = (node.func.id, frozenset(labels))
    return out


def base_name(name: str, metrics: dict[str, tuple[str, frozenset[str]]]) -> str:
    """The metric a sample name belongs to: histogram series drop their suffix."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in metrics:
            return name.removesuffix(suffix)
    return name


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


# --- promtool ------------------------------------------------------------------------


def test_promtool_check_config() -> None:
    output = run_promtool("check", "config", str(CONFIG.relative_to(ROOT)))
    assert "alerts.yml" in output  # the config's rule_files was found and checked too


def test_promtool_check_rules() -> None:
    run_promtool("check", "rules", str(ALERTS.relative_to(ROOT)))


def test_promtool_test_rules() -> None:
    run_promtool("test", "rules", str(ALERTS_TEST.relative_to(ROOT)))


# --- the rules and the service agree ---------------------------------------------------


def test_metrics_py_parses_to_every_metric() -> None:
    metrics = defined_metrics()
    assert set(NAME.findall(METRICS_PY.read_text())) >= set(metrics)
    assert {"stageserve_requests_total", "stageserve_registry_up"} <= set(metrics)
    assert metrics["stageserve_requests_total"] == (
        "Counter",
        frozenset({"model", "target", "version", "outcome"}),
    )


def test_every_metric_in_alerts_is_exported_by_the_service() -> None:
    metrics = defined_metrics()
    used = {base_name(name, metrics) for name in NAME.findall(ALERTS.read_text())}
    assert used, "no stageserve_ metric found in alerts.yml"
    unknown = sorted(used - set(metrics))
    assert not unknown, f"alerts.yml uses metrics service/ops/metrics.py does not define: {unknown}"
    # Only histograms have _bucket/_count/_sum series.
    for name in NAME.findall(ALERTS.read_text()):
        if base_name(name, metrics) != name:
            assert metrics[base_name(name, metrics)][0] == "Histogram", name


def test_every_label_in_alert_expressions_exists() -> None:
    metrics = defined_metrics()
    all_labels = set().union(*(labels for _, labels in metrics.values())) | SCRAPE_LABELS
    for rule in rules():
        expr = rule["expr"]
        for name, matchers in MATCHERS.findall(expr):
            metric = base_name(name, metrics)
            allowed = metrics[metric][1] | SCRAPE_LABELS
            if name.endswith("_bucket"):
                allowed |= {"le"}
            used = set(LABEL_MATCHER.findall(matchers))
            assert used <= allowed, f"{rule['alert']}: {name} has no label {used - allowed}"
        for grouping in GROUPING.findall(expr):
            used = {label.strip() for label in grouping.split(",") if label.strip()}
            assert used <= all_labels | {"le"}, f"{rule['alert']}: unknown {used - all_labels}"


def test_unit_test_series_look_like_what_the_service_exports() -> None:
    """alerts_test.yml's made-up samples must have the service's names and labels, or
    the unit tests would prove rules about metrics that do not exist."""
    metrics = defined_metrics()
    document = yaml.safe_load(ALERTS_TEST.read_text())
    series_seen = 0
    for group in document["tests"]:
        for item in group["input_series"]:
            match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}", item["series"])
            assert match, item["series"]
            name, labels = match.groups()
            if not name.startswith("stageserve_"):
                continue
            series_seen += 1
            metric = base_name(name, metrics)
            assert metric in metrics, f"{name} is not a stageserve metric"
            used = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*=", labels))
            expected = metrics[metric][1] | SCRAPE_LABELS
            if name.endswith("_bucket"):
                expected |= {"le"}
            assert used == expected, f"{item['series']}: labels {used} != {expected}"
    assert series_seen > 20


def test_every_alert_is_tested_firing_and_silent() -> None:
    document = yaml.safe_load(ALERTS_TEST.read_text())
    assert document["rule_files"] == ["alerts.yml"]
    firing: set[str] = set()
    silent: set[str] = set()
    for group in document["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else silent).add(case["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names >= {
        "StageserveRegistryUnreachable",
        "StageserveRequiredTargetEmpty",
        "StageserveSwapFailures",
        "StageserveTargetErrorRateAbovePeer",
        "StageserveCanaryLatencyAboveProduction",
        "StageserveShadowDisagreementRising",
        "StageserveRolloutRolledBack",
        "StageserveRolloutStuck",
        "StageserveRolloutAwaitingApproval",
        "StageserveControllerDown",
    }
    assert names == firing, f"no firing case for {names - firing}"
    assert names == silent, f"no silent case for {names - silent}"


def test_every_alert_has_severity_and_annotations() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_scrape_config_scrapes_stageserve() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "stageserve"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["stageserve:3000"]
    # StageserveDown selects the scrape job by the name this config gives it.
    assert any('up{job="stageserve"}' in rule["expr"] for rule in rules())
    # The fleet's controller has its own job, on its own metrics port.
    (controller,) = [
        j for j in config["scrape_configs"] if j["job_name"] == "stageserve-controller"
    ]
    assert controller["metrics_path"] == "/metrics"
    assert controller["static_configs"][0]["targets"] == ["stageserve-controller:9310"]
