"""Shadow comparisons and the mirror's queue: what agrees, what is dropped, what is counted."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.traffic.shadow import (
    AGREE,
    DISAGREE,
    DROPPED,
    ERROR,
    ShadowJob,
    ShadowMirror,
    Tolerance,
    compare_payloads,
    predictions_agree,
)


@pytest.mark.parametrize(
    ("primary", "shadow", "agree"),
    [
        (1.0, 1.0, True),
        (100.0, 100.05, True),  # within rtol 1e-3
        (100.0, 100.2, False),
        (0.0, 1e-7, True),  # within atol
        (0.0, 1e-3, False),
        ("cat", "cat", True),
        ("cat", "dog", False),
        (True, True, True),
        (True, 1, False),  # a label is not a number
        (1, 1.0, True),
        (None, None, True),
        (float("nan"), float("nan"), True),
        (float("nan"), 1.0, False),
        ([1.0, 2.0], [1.0, 2.0], True),
        ([1.0, 2.0], [1.0], False),
        ([[1, "a"]], [[1, "a"]], True),
        ({"a": 1.0, "b": "x"}, {"a": 1.0, "b": "x"}, True),
        ({"a": 1.0}, {"b": 1.0}, False),
        ({"a": [1.0]}, {"a": [2.0]}, False),
        ([1.0], {"0": 1.0}, False),
    ],
)
def test_predictions_agree(primary, shadow, agree) -> None:
    assert predictions_agree(primary, shadow) is agree


def test_tolerance_is_configurable() -> None:
    assert predictions_agree(100.0, 101.0, Tolerance(rtol=0.02, atol=0.0))
    assert not predictions_agree(100.0, 101.0, Tolerance(rtol=0.001, atol=0.0))


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=20))
def test_a_payload_agrees_with_itself(values) -> None:
    body = json.dumps({"predictions": values}).encode()
    assert compare_payloads(body, body) == AGREE


def test_compare_payloads() -> None:
    assert compare_payloads(b'{"predictions": [1.0]}', b'{"predictions": [2.0]}') == DISAGREE


def job() -> ShadowJob:
    primary_answer = b'{"predictions": [1.0]}'
    return ShadowJob("m", "Production", "Staging", b"{}", "application/json", primary_answer)


def test_mirror_counts_every_job_and_drops_when_full() -> None:
    recorded: list[str] = []
    answers = iter([b'{"predictions": [1.0]}', b'{"predictions": [5.0]}'])

    def run(_: ShadowJob) -> bytes:
        answer = next(answers, None)
        if answer is None:
            raise RuntimeError("shadow broke")
        return answer

    mirror = ShadowMirror(run, lambda _job, outcome: recorded.append(outcome), max_queue=3)
    assert [mirror.submit(job()) for _ in range(5)] == [True, True, True, False, False]
    assert recorded == [DROPPED, DROPPED]
    mirror.drain()
    assert recorded == [DROPPED, DROPPED, AGREE, DISAGREE, ERROR]


def test_submit_never_blocks_while_a_job_runs() -> None:
    started, release = threading.Event(), threading.Event()
    recorded: list[str] = []

    def slow(_: ShadowJob) -> bytes:
        started.set()
        release.wait(10)
        return b'{"predictions": [1.0]}'

    mirror = ShadowMirror(slow, lambda _job, outcome: recorded.append(outcome), max_queue=1)
    mirror.start()
    try:
        assert mirror.submit(job())
        assert started.wait(10)  # the thread holds the first job; the queue is empty
        assert mirror.submit(job())
        assert not mirror.submit(job())  # full: dropped at once, not waited for
        assert recorded == [DROPPED]
    finally:
        release.set()
        mirror.stop()
    assert recorded[0] == DROPPED and AGREE in recorded


def sized_job(body_bytes: int, answer: bytes = b'{"predictions": [1.0]}') -> ShadowJob:
    return ShadowJob("m", "Production", "Staging", b" " * body_bytes, None, answer)


def test_the_queue_is_bounded_by_bytes_too() -> None:
    recorded: list[str] = []
    answer = b'{"predictions": [1.0]}'
    size = sized_job(100, answer).size
    mirror = ShadowMirror(
        lambda _: answer, lambda _job, outcome: recorded.append(outcome), max_bytes=2 * size
    )
    assert [mirror.submit(sized_job(100, answer)) for _ in range(3)] == [True, True, False]
    assert recorded == [DROPPED]
    assert mirror.held_bytes == 2 * size
    assert not mirror.submit(sized_job(3 * size))  # larger than the whole budget: never fits
    assert mirror.submit(sized_job(0, b""))  # an empty job still fits
    mirror.drain()
    assert mirror.held_bytes == 0
    assert recorded == [DROPPED, DROPPED, AGREE, AGREE, ERROR]  # b"" is not JSON: error
    assert mirror.submit(sized_job(100, answer))  # room again once the jobs ran


def test_the_job_in_hand_still_counts_against_the_byte_budget() -> None:
    started, release = threading.Event(), threading.Event()
    recorded: list[str] = []
    answer = b'{"predictions": [1.0]}'

    def slow(_: ShadowJob) -> bytes:
        started.set()
        release.wait(10)
        return answer

    size = sized_job(1000, answer).size
    mirror = ShadowMirror(slow, lambda _job, outcome: recorded.append(outcome), max_bytes=size)
    mirror.start()
    try:
        assert mirror.submit(sized_job(1000, answer))
        assert started.wait(10)  # taken off the queue, but its body is still held
        assert not mirror.submit(sized_job(1000, answer))
        assert recorded == [DROPPED]
    finally:
        release.set()
        mirror.stop()
    assert mirror.held_bytes == 0
    assert recorded == [DROPPED, AGREE]


@pytest.mark.timeout(30)
def test_the_mirror_runs_jobs_again_after_a_stop_and_a_start() -> None:
    recorded: list[str] = []
    done = threading.Event()

    def record(_job: ShadowJob, outcome: str) -> None:
        recorded.append(outcome)
        done.set()

    mirror = ShadowMirror(lambda _: b'{"predictions": [1.0]}', record)
    mirror.start()
    mirror.stop(timeout=10)
    mirror.start()
    try:
        assert mirror.submit(job())
        assert done.wait(10), "a restarted mirror ran no job"
        assert recorded == [AGREE]
    finally:
        mirror.stop(timeout=10)
