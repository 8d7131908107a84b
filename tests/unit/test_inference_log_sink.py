"""The inference log's CloudEvents (KServe's payload-logger format), the HTTP sink against
real local servers (working, down, refusing), and the prediction endpoint's hand-off."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from starlette.applications import Starlette
from starlette.testclient import TestClient

from registry_watcher.traffic_policy import default_policy
from service.api.connections import ConnectionRecycler
from service.api.invocations import Invocations, invocation_routes
from service.config import Settings
from service.inference_log.cloud_events import REQUEST_TYPE, RESPONSE_TYPE, events_of
from service.inference_log.http_sink import HttpSink
from service.inference_log.log_counts import FAILED, SENT, SINK, SINK_ERROR
from service.inference_log.recorder import InferenceLog, inference_log_from
from service.inference_log.records import Row, feedback_row
from service.request_path import RequestPath
from tests.integration.faulty_servers import Collector
from tests.support.processes import free_port
from tests.unit.inference_log_fakes import AT, Counts, prediction
from tests.unit.metric_fakes import fake_metrics
from tests.unit.test_request_path import PROD, STAGING, Pool, version


def logged(
    body: bytes = b'{"inputs": [[1.0]]}', max_input_bytes: int = 1024, model: str = "diabetes"
) -> Row:
    return prediction(
        request_id="req-7", model=model, how="sticky", body=body, max_input_bytes=max_input_bytes
    )


def test_a_prediction_is_a_request_event_and_a_response_event_with_kserves_attributes() -> None:
    request, response = events_of(logged(), "req-7")
    for event in (request, response):
        assert event.headers["Ce-Specversion"] == "1.0"
        assert event.headers["Ce-Id"] == "req-7"  # pairs the two, as KServe does
        assert event.headers["Ce-Source"] == "http://stageserve/diabetes"
        assert event.headers["Ce-Time"] == "2026-11-29T23:05:09.250000Z"
        assert event.headers["Ce-Inferenceservicename"] == "diabetes"
        assert event.headers["Ce-Component"] == "predictor"
        assert event.headers["Ce-Endpoint"] == "Staging"
        assert event.headers["Ce-Modelversion"] == "2"
        assert json.loads(event.headers["Ce-Metadata"]) == {
            "X-Model-Name": ["diabetes"],
            "X-Model-Target": ["Staging"],
            "X-Model-Version": ["2"],
        }
        assert "Ce-Truncated" not in event.headers
    assert request.headers["Ce-Type"] == REQUEST_TYPE == "org.kubeflow.serving.inference.request"
    assert response.headers["Ce-Type"] == RESPONSE_TYPE == "org.kubeflow.serving.inference.response"
    assert request.headers["Content-Type"] == response.headers["Content-Type"] == "application/json"
    assert (request.body, response.body) == (b'{"inputs": [[1.0]]}', b'{"predictions": [151.2]}')


def test_event_headers_stay_header_safe_for_any_model_name_and_say_when_input_was_cut() -> None:
    request, _ = events_of(logged(b"x" * 50, max_input_bytes=10, model="modèle/é"), "id")
    assert request.headers["Ce-Source"] == "http://stageserve/mod%C3%A8le%2F%C3%A9"
    assert all(value.isascii() for value in request.headers.values())
    assert request.headers["Ce-Truncated"] == "true" and request.body == b"x" * 10


def test_a_working_sink_gets_two_events_per_prediction_and_none_for_feedback() -> None:
    counts = Counts()
    with Collector() as collector:
        sink = HttpSink(collector.uri, counts)
        sink.handle(
            [
                logged(),
                feedback_row(
                    request_id="req-7", at=AT, model="m", target=None, version=None, reward=1.0
                ),
            ]
        )
        sink.finish()
    assert [h["Ce-Type"] for h, _ in collector.received] == [REQUEST_TYPE, RESPONSE_TYPE]
    assert [h["Ce-Id"] for h, _ in collector.received] == ["req-7", "req-7"]
    assert counts.counted["event", SENT] == 2 and counts.counted["dropped", SINK, SINK_ERROR] == 0


def test_a_down_sink_counts_failed_events_and_the_dropped_row() -> None:
    counts = Counts()
    sink = HttpSink(f"http://127.0.0.1:{free_port()}/", counts)  # nothing listens there
    sink.handle([logged(), logged()])
    sink.finish()
    assert counts.counted["event", FAILED] == 4 and counts.counted["event", SENT] == 0
    assert counts.counted["dropped", SINK, SINK_ERROR] == 2


def test_a_slow_sink_is_given_up_on_after_its_timeout() -> None:
    counts = Counts()
    with Collector() as collector:
        collector.delay_s = 2.0
        sink = HttpSink(collector.uri, counts, timeout_s=0.2)
        sink.handle([logged()])
        sink.finish()
    assert counts.counted["event", FAILED] == 2 and counts.counted["dropped", SINK, SINK_ERROR] == 1


def app_logging_to(
    folder: Path, url: str | None = None, sample: float = 1.0
) -> tuple[TestClient, InferenceLog]:
    pool = Pool({"m": {PROD: version(3), STAGING: version(4)}})
    requests = RequestPath(pool, lambda m: default_policy(PROD), lambda job: None, fake_metrics())
    settings = Settings.from_env(
        {
            "STAGESERVE_MODELS": "m",
            "STAGESERVE_INFERENCE_LOG_DIR": str(folder),
            "STAGESERVE_INFERENCE_LOG_SAMPLE": str(sample),
            **({"STAGESERVE_INFERENCE_LOG_URL": url} if url else {}),
        }
    )
    log = inference_log_from(settings, Counts(), pid=1, started_at=0)
    assert log is not None
    parts = Invocations(requests, ConnectionRecycler(0), 1 << 20, "x-routing-key", None, log)
    return TestClient(Starlette(routes=invocation_routes(lambda: parts))), log


def test_the_endpoint_logs_what_it_answered_and_who_answered_it(tmp_path: Path) -> None:
    client, log = app_logging_to(tmp_path)
    log.start()
    answers = [
        client.post("/invocations", content=b'{"inputs": [[1]]}', headers={"X-Request-Id": "a-1"}),
        client.post(
            "/models/m/invocations",
            content=b"x,y\n1,2\n",
            headers={
                "X-Request-Id": "a-2",
                "X-Model-Target": "Staging",
                "Content-Type": "text/csv",
            },
        ),
        client.post("/invocations", json={"inputs": [[2]]}),  # no id
        client.post("/models/unknown/invocations", json={}),  # refused: not logged
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 404]
    assert log.stop()
    rows = pd.read_parquet(tmp_path).sort_values("time")
    assert (
        rows["request_id"].tolist()[:2] == ["a-1", "a-2"] and rows["request_id"].isna().tolist()[2]
    )
    assert rows["output"].tolist() == [a.text for a in answers[:3]]
    assert rows["version"].tolist() == [int(a.headers["X-Model-Version"]) for a in answers[:3]]
    assert rows["target"].tolist() == [a.headers["X-Model-Target"] for a in answers[:3]]
    assert rows["how"].tolist() == ["random", "override", "random"]
    assert (
        rows["content_type"].tolist()[1] == "text/csv" and rows["input"].tolist()[1] == "x,y\n1,2\n"
    )
    assert set(rows["model"].astype(str)) == {"m"} and (rows["latency_ms"] > 0).all()


def test_an_unsampled_request_is_not_logged(tmp_path: Path) -> None:
    client, log = app_logging_to(tmp_path, sample=0.0)
    log.start()
    assert client.post("/invocations", json={"inputs": [[1]]}).status_code == 200
    log.record(
        feedback_row(request_id="a-1", at=AT, model="m", target="Production", version=3, truth=[1])
    )
    assert log.stop()
    rows = pd.read_parquet(tmp_path)
    assert rows["kind"].tolist() == ["feedback"] and rows["truth"].tolist() == ["[1]"]


def test_the_sink_gets_the_endpoints_answers_too(tmp_path: Path) -> None:
    with Collector() as collector:
        client, log = app_logging_to(tmp_path, url=collector.uri)
        log.start()
        answer = client.post(
            "/invocations", json={"inputs": [[1]]}, headers={"X-Request-Id": "s-1"}
        )
        assert log.stop()
    (_, request), (headers, response) = collector.received
    assert json.loads(request) == {"inputs": [[1]]} and response == answer.content
    assert headers["Ce-Id"] == "s-1" and headers["Ce-Endpoint"] == "Production"
