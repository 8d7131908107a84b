"""The inference log end to end, on one gateway with sampling at 100%, a Parquet folder
and an HTTP sink that works, then is slow, then is down: answers are never affected,
the sink gets KServe's two CloudEvents per prediction while it works, drops and
failures are counted in /metrics, and after a SIGTERM the folder reads back (pandas and
DuckDB) as exactly the predictions answered, outputs equal to the answers' bodies."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pytest

from tests.integration.faulty_servers import Collector
from tests.integration.harness import (
    ALL_FEATURES,
    ROW,
    Gateway,
    metric_samples,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

MODEL = "inference-logged"
SINK_QUEUE = 2
SINK_TIMEOUT_S = 2.0  # an answer that waited for the slow sink would take this long


@dataclass
class Answered:
    request_id: str
    status: int
    body: str
    target: str
    version: str
    seconds: float


def send(gateway: Gateway, numbers: range) -> list[Answered]:
    """One request per number, in order, on one connection: every third pinned to
    Staging, each with its own row and request id."""
    answered = []
    with httpx.Client(timeout=30) as client:
        for n in numbers:
            headers = {"X-Request-Id": f"inflog-{n}"}
            if n % 3 == 0:
                headers["X-Model-Target"] = "Staging"
            row = [value + n / 100 for value in ROW]
            started = time.perf_counter()
            r = client.post(
                f"{gateway.url}/models/{MODEL}/invocations",
                json=split_payload([row]),
                headers=headers,
            )
            assert r.headers["X-Request-Id"] == headers["X-Request-Id"]  # the client's
            answered.append(
                Answered(
                    r.headers["X-Feedback-Id"],  # the signed id rows are filed under
                    r.status_code,
                    r.text,
                    r.headers.get("X-Model-Target", ""),
                    r.headers.get("X-Model-Version", ""),
                    time.perf_counter() - started,
                )
            )
    return answered


def counted(gateway: Gateway, name: str, **labels: str) -> float:
    samples = metric_samples(gateway.get("/metrics").text, name)
    return samples.get(tuple(sorted(labels.items())), 0.0)


def dropped(gateway: Gateway, destination: str, reason: str) -> float:
    return counted(
        gateway, "stageserve_inference_log_dropped_total", destination=destination, reason=reason
    )


def test_every_answer_is_logged_and_a_bad_sink_changes_no_answer(
    mlflow_server, registry, tmp_path: Path
) -> None:
    v1 = registry.register_ridge(MODEL, ALL_FEATURES[:4], alpha=1.0)
    registry.transition(MODEL, v1.version, "Production")
    v2 = registry.register_ridge(MODEL, ALL_FEATURES, alpha=0.3)
    registry.transition(MODEL, v2.version, "Staging")
    folder = tmp_path / "log"
    with Collector() as collector:
        gateway = Gateway(
            tmp_path, mlflow_server.uri, [MODEL], "--poll-interval", "0.5",
            env={
                "STAGESERVE_INFERENCE_LOG_DIR": str(folder),
                "STAGESERVE_INFERENCE_LOG_SAMPLE": "1",
                "STAGESERVE_INFERENCE_LOG_ROTATE_S": "2",
                "STAGESERVE_INFERENCE_LOG_URL": f"{collector.uri}/events",
                "STAGESERVE_INFERENCE_LOG_SINK_QUEUE": str(SINK_QUEUE),
                "STAGESERVE_INFERENCE_LOG_SINK_TIMEOUT": str(SINK_TIMEOUT_S),
            },
        )  # fmt: skip
        gateway.start()
        try:
            checked = sink_and_answers(gateway, collector)
        except BaseException:
            gateway.stop()
            raise
    try:
        answered = checked + down_sink_and_rotation(gateway, folder)
        # --- feedback on the first answers: a row each, under its prediction's id
        posted = httpx.post(
            f"{gateway.url}/models/{MODEL}/feedback",
            json=[
                {"request_id": a.request_id, "reward": 1, "truth": n} for n, a in enumerate(checked)
            ],
            timeout=30,
        )
        assert posted.status_code == 200 and posted.json()["accepted"] == len(checked)
        # --- a last burst, then SIGTERM at once: nothing accepted is lost
        answered += send(gateway, range(19, 40))
    finally:
        gateway.stop()
    assert_logged_exactly(folder, answered)
    assert_feedback_joins(folder, checked)


def assert_feedback_joins(folder: Path, rated: list[Answered]) -> None:
    """Each feedback item is a row that joins its prediction on request_id, with the
    target and version that answered and the truth as given."""
    rows = pd.read_parquet(folder)
    feedback = rows[rows["kind"] == "feedback"]
    predictions = rows[rows["kind"] == "prediction"]
    joined = feedback.merge(predictions, on="request_id", suffixes=("", "_prediction"))
    assert len(feedback) == len(joined) == len(rated)
    assert (joined["target"] == joined["target_prediction"]).all()
    assert (joined["version"] == joined["version_prediction"]).all()
    assert sorted(json.loads(t) for t in joined["truth"]) == list(range(len(rated)))
    assert (joined["reward"] == 1).all()


def sink_and_answers(gateway: Gateway, collector: Collector) -> list[Answered]:
    """A working sink, then a slow one; the answers sent."""
    # --- a working sink: two CloudEvents per prediction (one request at a time: its
    # queue holds SINK_QUEUE rows, which a busy machine's sink could fall behind by)
    working: list[Answered] = []
    for n in range(9):
        working += send(gateway, range(n, n + 1))
        expected = 2 * len(working)
        assert wait_until(lambda expected=expected: len(collector.received) == expected, 10)
    events = collector.received
    pairs = list(zip(events[::2], events[1::2], strict=True))
    for answer, ((rq_headers, rq_body), (rs_headers, rs_body)) in zip(working, pairs, strict=True):
        assert rq_headers["Ce-Type"] == "org.kubeflow.serving.inference.request"
        assert rs_headers["Ce-Type"] == "org.kubeflow.serving.inference.response"
        for headers in (rq_headers, rs_headers):
            assert headers["Ce-Id"] == answer.request_id
            assert headers["Ce-Specversion"] == "1.0"
            assert headers["Ce-Source"] == f"http://stageserve/{MODEL}"
            assert headers["Ce-Inferenceservicename"] == MODEL
            assert headers["Ce-Component"] == "predictor"
            assert headers["Ce-Endpoint"] == answer.target
            assert headers["Ce-Modelversion"] == answer.version
            assert headers["Ce-Time"].endswith("Z")
        assert rq_headers["Content-Type"] == rs_headers["Content-Type"] == "application/json"
        assert json.loads(rq_body)["dataframe_split"]["columns"] == ALL_FEATURES
        assert rs_body.decode() == answer.body
    assert {a.target for a in working} == {"Production", "Staging"}
    sent = "stageserve_inference_log_sink_events_total"  # counted once the answer is read
    assert wait_until(lambda: counted(gateway, sent, outcome="sent") == 2 * len(working), 10)
    assert dropped(gateway, "sink", "queue_full") == 0

    # --- a slow sink: answers as fast as ever; what its queue cannot hold is dropped
    collector.delay_s = 10 * SINK_TIMEOUT_S
    slow = send(gateway, range(9, 15))
    assert [a.status for a in slow] == [200] * len(slow)
    assert max(a.seconds for a in slow) < SINK_TIMEOUT_S, [a.seconds for a in slow]
    # one row in flight, SINK_QUEUE queued: the rest dropped as they came (one more if
    # the sink's thread had not yet taken the first when the third came)
    assert dropped(gateway, "sink", "queue_full") in (
        len(slow) - 1 - SINK_QUEUE,
        len(slow) - SINK_QUEUE,
    )
    return working + slow


def down_sink_and_rotation(gateway: Gateway, folder: Path) -> list[Answered]:
    """The sink's port is closed: the slow rows and new ones fail, answers do not; rows
    become readable while the gateway runs. The answers sent."""
    slow_kept = 6 - dropped(gateway, "sink", "queue_full")  # taken by the slow sink
    assert wait_until(lambda: dropped(gateway, "sink", "sink_error") == slow_kept, 30)
    down = send(gateway, range(15, 19))
    assert [a.status for a in down] == [200] * len(down)
    assert wait_until(lambda: dropped(gateway, "sink", "sink_error") == slow_kept + len(down), 30)
    failed = counted(gateway, "stageserve_inference_log_sink_events_total", outcome="failed")
    assert failed == 2 * (slow_kept + len(down))
    # rotation by age (2 s): the first rows are readable before any stop
    assert wait_until(lambda: readable(folder) >= 9, 30)
    assert counted(gateway, "stageserve_inference_log_files_total") >= 1
    assert dropped(gateway, "file", "queue_full") == 0
    return down


def readable(folder: Path) -> int:
    """Prediction rows a reader sees now."""
    if not any(folder.rglob("*.parquet")):
        return 0
    return int((pd.read_parquet(folder)["kind"] == "prediction").sum())


def assert_logged_exactly(folder: Path, answered: list[Answered]) -> None:
    """After the SIGTERM: one row per answer, with its body and who answered, read by
    pandas and by DuckDB; no temporary file left."""
    assert [a.status for a in answered] == [200] * len(answered)
    rows = pd.read_parquet(folder)
    predictions = rows[rows["kind"] == "prediction"].set_index("request_id")
    assert len(predictions) == len(answered) == 40
    assert sorted(predictions.index) == sorted(a.request_id for a in answered)
    for answer in answered:
        row = predictions.loc[answer.request_id]
        assert row["output"] == answer.body
        assert (str(row["model"]), row["target"], str(row["version"])) == (
            MODEL,
            answer.target,
            answer.version,
        )
        assert row["how"] == ("override" if answer.target == "Staging" else "random")
        assert row["status"] == 200 and not row["input_truncated"]
    assert not [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".parquet"]
    by_duckdb = duckdb.sql(
        f"select model, kind, count(*) from read_parquet('{folder}/**/*.parquet', "
        "hive_partitioning=true) where kind = 'prediction' group by all"
    ).fetchall()
    assert by_duckdb == [(MODEL, "prediction", 40)]
