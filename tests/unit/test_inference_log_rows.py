"""The inference log's pure parts: rows and their schema, bounded inputs, sampling, the
bounded queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.config import ConfigError, Settings
from service.inference_log.bounded_queue import ACCEPTED, CLOSED, FULL, BoundedQueue
from service.inference_log.records import (
    FEEDBACK,
    PREDICTION,
    SCHEMA,
    Row,
    bounded_text,
    feedback_row,
    kept_bytes,
    table_of,
)
from service.inference_log.sampling import Sampler
from tests.unit.inference_log_fakes import prediction

AT = datetime(2026, 11, 29, 23, 59, 59, 123456, tzinfo=UTC)


def a_prediction(body: bytes = b'{"inputs": [[1.0]]}', max_input_bytes: int = 1024) -> Row:
    return prediction(at=AT, body=body, max_input_bytes=max_input_bytes)


def test_a_prediction_row_has_who_answered_how_and_what() -> None:
    row = a_prediction()
    table = table_of([row])
    assert table.schema == SCHEMA
    assert table.to_pylist() == [
        {
            "kind": PREDICTION,
            "request_id": "req-1",
            "time": AT,
            "target": "Staging",
            "version": 2,
            "how": "override",
            "latency_ms": 12.5,
            "status": 200,
            "content_type": "application/json",
            "input": '{"inputs": [[1.0]]}',
            "input_truncated": False,
            "output": '{"predictions": [151.2]}',
            "reward": None,
            "truth": None,
        }
    ]


def test_a_feedback_row_keeps_the_truth_as_json_text_and_nulls_what_it_lacks() -> None:
    row = feedback_row(
        request_id="req-1", at=AT, model="m", target="Production", version=1, truth={"label": "cat"}
    )
    (record,) = table_of([row]).to_pylist()
    assert record["kind"] == FEEDBACK and json.loads(record["truth"]) == {"label": "cat"}
    assert record["reward"] is None and record["input"] is None and record["latency_ms"] is None
    rewarded = feedback_row(request_id="r", at=AT, model="m", target=None, version=None, reward=0.5)
    assert table_of([rewarded]).to_pylist()[0]["truth"] is None


def test_both_kinds_make_one_table_partitioned_outside_the_file() -> None:
    rows = [
        a_prediction(),
        feedback_row(
            request_id="req-1", at=AT, model="diabetes", target="Staging", version=2, reward=1.0
        ),
    ]
    table = table_of(rows)
    assert table.column("kind").to_pylist() == [PREDICTION, FEEDBACK]
    # model and date are the path's hive partitions, never columns of a file
    assert "model" not in SCHEMA.names and "date" not in SCHEMA.names
    assert SCHEMA.field("time").type == pa.timestamp("us", tz="UTC")
    assert rows[0].day.isoformat() == "2026-11-29"


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=200))
def test_a_bounded_input_never_passes_its_limit_and_says_when_it_was_cut(
    body: bytes, limit: int
) -> None:
    text, cut = bounded_text(body, limit)
    kept = kept_bytes(body, limit)
    assert cut == (len(body) > limit) and limit - 3 <= kept <= limit if cut else kept == len(body)
    assert text == body[:kept].decode("utf-8", errors="replace")


@given(st.text(max_size=100), st.integers(min_value=0, max_value=120))
def test_a_text_body_is_cut_at_a_character_boundary(text: str, limit: int) -> None:
    kept, cut = bounded_text(text.encode(), limit)
    assert text.startswith(kept)
    assert len(kept.encode()) <= limit if cut else kept == text


def test_a_large_input_is_cut_and_flagged() -> None:
    row = a_prediction(body=b"x" * 5000, max_input_bytes=100)
    assert row.input == "x" * 100 and row.input_truncated is True


def test_sampling_off_never_draws_and_all_never_draws_either() -> None:
    def no_draw() -> float:
        raise AssertionError("drew a number")

    assert not any(Sampler(0.0, no_draw).take() for _ in range(100))
    assert all(Sampler(1.0, no_draw).take() for _ in range(100))


def test_sampling_keeps_the_share_drawn_below_it() -> None:
    draws = iter([0.1, 0.29, 0.3, 0.9])
    sampler = Sampler(0.3, lambda: next(draws))
    assert [sampler.take() for _ in range(4)] == [True, True, False, False]
    with pytest.raises(ValueError):
        Sampler(1.5)


def test_the_queue_refuses_past_its_items_or_its_bytes_and_after_close() -> None:
    queue: BoundedQueue[str] = BoundedQueue(max_items=3, max_bytes=100)
    assert [queue.offer(x, 10) for x in "abc"] == [ACCEPTED] * 3
    assert queue.offer("d", 10) == FULL  # items
    assert queue.take(2) == ["a", "b"] and queue.held_bytes == 10
    assert queue.offer("big", 91) == FULL  # bytes: 10 + 91 > 100
    assert queue.offer("fits", 90) == ACCEPTED and queue.held_bytes == 100
    queue.close()
    assert queue.offer("late", 1) == CLOSED
    assert queue.take() == ["c", "fits"] and queue.held_bytes == 0 and len(queue) == 0


def test_the_queue_says_when_it_is_worth_waking_the_taker() -> None:
    queue: BoundedQueue[int] = BoundedQueue(max_items=4, max_bytes=1000)
    queue.offer(1, 1)
    assert not queue.more_than_half_full()
    queue.offer(2, 1)
    assert queue.more_than_half_full()
    heavy: BoundedQueue[int] = BoundedQueue(max_items=100, max_bytes=1000)
    heavy.offer(1, 500)
    assert heavy.more_than_half_full()


BASE = {"STAGESERVE_MODELS": "m"}


def test_settings_are_off_by_default_and_read_when_set() -> None:
    off = Settings.from_env(BASE)
    assert off.inference_log_dir is None and off.inference_log_url is None
    assert off.inference_log_sample == 0.0
    on = Settings.from_env(
        {
            **BASE,
            "STAGESERVE_INFERENCE_LOG_DIR": "/var/log/inference",
            "STAGESERVE_INFERENCE_LOG_SAMPLE": "0.25",
            "STAGESERVE_INFERENCE_LOG_URL": "http://collector:8080/events",
        }
    )
    assert (on.inference_log_dir, on.inference_log_sample) == ("/var/log/inference", 0.25)
    assert on.inference_log_url == "http://collector:8080/events"
    assert "collector" not in repr(on)  # a sink URL may hold a credential


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STAGESERVE_INFERENCE_LOG_SAMPLE", "1.5", "must be at most 1"),
        ("STAGESERVE_INFERENCE_LOG_SAMPLE", "-0.1", "must be at least 0"),
        ("STAGESERVE_INFERENCE_LOG_SAMPLE", "half", "is not a number"),
        ("STAGESERVE_INFERENCE_LOG_URL", "ftp://x/", "http:// or https:// URL"),
        ("STAGESERVE_INFERENCE_LOG_URL", "collector:8080", "http:// or https:// URL"),
        ("STAGESERVE_INFERENCE_LOG_ROTATE_S", "0", "must be at least 0.1"),
    ],
)
def test_impossible_settings_are_refused_naming_the_variable(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**BASE, name: value})
    assert name in str(info.value) and message in str(info.value)
