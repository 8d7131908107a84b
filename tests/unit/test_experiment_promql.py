"""The fleet's queries and the reading of Prometheus's answers: the PromQL built for a
model, real answers of a real Prometheus (tests/unit/data/, captured as its "captured"
says) turned into the window and results, refusals of what is not an instant vector,
and the reader's one-line errors when no Prometheus answers."""

from __future__ import annotations

import http.server
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.experiments import metric_names as names
from service.experiments.prometheus_reader import FleetUnreadable, PrometheusReader
from service.experiments.promql import (
    BadAnswer,
    policy_change,
    policy_change_query,
    selector,
    vector_samples,
    window_queries,
)
from service.experiments.results import experiment_result
from service.experiments.reward_stats import RewardSummary
from service.experiments.window import build_window
from tests.integration.harness import free_port

CAPTURED = json.loads(
    (Path(__file__).parent / "data" / "prometheus_experiment_answers.json").read_text()
)


def test_the_queries_of_a_window() -> None:
    queries = {q.metric: q.promql for q in window_queries("m", 7200)}
    series = 'stageserve_requests_total{model="m"}'
    assert queries[names.REQUESTS] == (
        f"sum by (target, version, outcome) (({series} - ({series} offset 7200s or {series} * 0)) "
        f"unless resets({series}[7200s]) > 0 or increase({series}[7200s]))"
    )
    assert queries[names.LATENCY_BUCKETS].startswith(
        "sum by (target, version, le) ((stageserve_request_duration_seconds_bucket{"
    )
    assert set(names.REWARD_SUMS) | {names.SHADOW, names.LOADED_VERSION} <= set(queries)
    assert all("[1s]" in q.promql for q in window_queries("m", 0)[:-1])
    assert policy_change_query("m").promql == (
        'max by (control) (stageserve_traffic_policy_changed_timestamp_seconds{model="m"})'
    )
    assert selector('a"b\\c') == '{model="a\\"b\\\\c"}'


def test_the_captured_queries_are_the_ones_built_now() -> None:
    built = [
        q.promql for q in (policy_change_query("m"), *window_queries("m", CAPTURED["seconds"]))
    ]
    assert [a["query"] for a in CAPTURED["answers"]] == built


def test_real_answers_become_exactly_the_window_and_its_results() -> None:
    by_metric: dict[str, Any] = {a["metric"]: a["answer"] for a in CAPTURED["answers"]}
    change = policy_change(
        vector_samples(by_metric.pop(names.POLICY_CHANGED), names.POLICY_CHANGED, "m")
    )
    assert change is not None and change[1] == "Production"
    assert change[0] == pytest.approx(1795997130.29, abs=0.01)
    samples = [
        s for metric, answer in by_metric.items() for s in vector_samples(answer, metric, "m")
    ]
    window = build_window("m", "Production", samples, order=("Production",))
    production, staging = window.versions
    assert (production.target, production.version, staging.target, staging.version) == (
        "Production", 1, "Staging", 2,
    )  # fmt: skip
    # Exactly what was counted, although Prometheus's first scrape came after some.
    assert production.outcomes == {"success": 20}
    assert staging.outcomes == {"success": 20, "error": 5}
    assert staging.shadow == {"agree": 16, "disagree": 4} and production.shadow == {}
    assert production.latency[0.0025] == 0 and production.latency[0.005] == 20
    assert production.rewards == RewardSummary.from_values([1.0, 0.0, 1.0, 1.0, 0.0] * 4)
    assert staging.rewards == RewardSummary.from_values([0.5, -0.25, 2.0, 1.0, 1.0] * 4)

    result = experiment_result(window).to_json()
    prod_row, staging_row = result["targets"]
    assert 0.0025 < prod_row["latency_seconds"]["p50"] < 0.005
    assert 0.25 < staging_row["latency_seconds"]["p99"] <= 0.5
    assert staging_row["vs_control"]["test"] == "welch"  # non-binary rewards on one side
    assert staging_row["shadow"]["agreement"] == pytest.approx(16 / 20)
    assert result["control"] == {"target": "Production", "version": 1}


def test_increase_alone_would_have_missed_requests() -> None:
    # Why promql.counted is not a bare increase(): over the same window, increase()
    # missed what was counted before the first scrape, and its answer is not whole.
    answer = CAPTURED["increase_answer"]["data"]["result"]
    success = {
        r["metric"]["target"]: float(r["value"][1])
        for r in answer
        if r["metric"]["outcome"] == "success"
    }
    assert all(value < 20 and not value.is_integer() for value in success.values())


def test_what_is_not_an_instant_vector_is_refused_in_one_line() -> None:
    with pytest.raises(BadAnswer, match="bad duration syntax"):
        vector_samples(CAPTURED["bad_query"]["answer"], names.REQUESTS, "m")
    with pytest.raises(BadAnswer, match="expected an instant vector, got 'matrix'"):
        vector_samples(CAPTURED["matrix_answer"], names.REQUESTS, "m")
    for garbage in (
        [],
        {"status": "success"},
        {"status": "success", "data": {"resultType": "vector", "result": [{}]}},
    ):
        with pytest.raises(BadAnswer):
            vector_samples(garbage, names.REQUESTS, "m")
    assert vector_samples(CAPTURED["empty_answer"], names.REQUESTS, "m") == []
    assert policy_change([]) is None


def test_no_prometheus_there_is_one_line() -> None:
    reader = PrometheusReader(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(FleetUnreadable, match=r"no Prometheus answers at http://127\.0\.0\.1:"):
        reader.experiment("m", None, 1e9)


def any_window(promql: str) -> str:
    return re.sub(r"\[\d+s\]", "[window]", re.sub(r"offset \d+s", "offset window", promql))


class Replay(http.server.BaseHTTPRequestHandler):
    """Answers /api/v1/query with the captured answer to the same query over any window
    (else no series), and anything else as a web page that is not Prometheus."""

    answers: dict[str, Any] = {}

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query)
        if url.path == "/api/v1/query":
            query = any_window(params["query"][0])
            body = json.dumps(self.answers.get(query, CAPTURED["empty_answer"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        else:
            body = "<html>not here</html>"
            self.send_response(404)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def replay() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_reader_asks_every_query_at_the_window_end(replay: str) -> None:
    Replay.answers = {any_window(a["query"]): a["answer"] for a in CAPTURED["answers"]}
    changed = 1795997130.2902896
    answer = PrometheusReader(replay, 5).experiment("m", None, changed + CAPTURED["seconds"] - 0.5)
    assert answer["window"] == {
        "start": changed, "end": changed + CAPTURED["seconds"] - 0.5, "since": "policy_change"
    }  # fmt: skip
    assert [(row["target"], row["requests"]) for row in answer["targets"]] == [
        ("Production", 20), ("Staging", 25)
    ]  # fmt: skip
    with pytest.raises(FleetUnreadable, match="not in the past"):
        PrometheusReader(replay, 5).experiment("m", changed + 10, changed)
    Replay.answers = {any_window(policy_change_query("m").promql): CAPTURED["answers"][0]["answer"]}
    with pytest.raises(FleetUnreadable, match="no requests of model 'm' in the window"):
        PrometheusReader(replay, 5).experiment("m", None, changed + 60)
    Replay.answers = {}
    with pytest.raises(FleetUnreadable, match="has no stageserve_traffic_policy_changed"):
        PrometheusReader(replay, 5).experiment("m", None, changed)
    with pytest.raises(FleetUnreadable, match=r"answered HTTP 404, not JSON: is it Prometheus"):
        PrometheusReader(replay + "/elsewhere", 5).experiment("m", None, changed)
