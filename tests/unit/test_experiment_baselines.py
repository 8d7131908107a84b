"""Experiment baselines: the file form, the first writer winning among processes, a
restart keeping the baseline of the policy still in force, a new policy replacing it;
and the gateway's window starting at it."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from registry_watcher.traffic_policy import TrafficPolicy, policy_from_dict
from service.experiments import metric_names as names
from service.experiments.baseline_store import BaselineStore
from service.experiments.baselines import Baseline, baseline_from_text, current_baseline
from service.experiments.gateway_experiments import (
    GATEWAY_START,
    POLICY_CHANGE,
    GatewayExperiments,
)
from service.experiments.gateway_samples import collected_samples
from service.experiments.window import Sample

LABELS = {"model": "m", "target": "Production", "version": "1", "outcome": "success"}
SPLIT = '{"weights":{"Production":90,"Staging":10},"sticky":false}'


def sample(value: float) -> Sample:
    return Sample(names.REQUESTS, LABELS, value)


def test_a_baseline_reads_back_as_written_and_garbage_reads_as_none() -> None:
    baseline = Baseline("m", SPLIT, 12.5, (sample(3.0),))
    assert baseline_from_text(baseline.to_text()) == baseline
    for garbage in ("", "{", "[]", '{"format": 1}', '{"format": 2, "model": "m"}'):
        assert baseline_from_text(garbage) is None
    assert current_baseline(baseline, "m", SPLIT) is baseline
    assert current_baseline(baseline, "m", "{}") is None
    assert current_baseline(baseline, "n", SPLIT) is None
    assert current_baseline(None, "m", SPLIT) is None


def _record(directory: str, value: float, ready: object, go: object, got: object) -> None:
    ready.set()  # type: ignore[attr-defined]  # multiprocessing.Event, typed as object here
    go.wait()  # type: ignore[attr-defined]
    baseline = BaselineStore(directory).record("m", SPLIT, lambda: [sample(value)])
    got.put(baseline.samples[0].value)  # type: ignore[attr-defined]  # multiprocessing.Queue


def test_among_processes_taking_a_baseline_at_once_the_first_writer_wins(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    go, got = context.Event(), context.Queue()
    workers = []
    for value in range(4):
        ready = context.Event()
        worker = context.Process(target=_record, args=(str(tmp_path), float(value), ready, go, got))
        worker.start()
        ready.wait(30)
        workers.append(worker)
    go.set()
    answered = [got.get(timeout=30) for _ in workers]  # before join: a queue's feeder
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    stored = BaselineStore(str(tmp_path)).get("m", SPLIT)
    assert stored is not None and len(stored.samples) == 1
    # Whichever wrote first, every later one kept it: its value is one of theirs, and
    # recording again (a fifth worker, a restart) changes nothing.
    assert stored.samples[0].value in (0.0, 1.0, 2.0, 3.0)
    # ... and every worker was answered that one baseline, not the one it read itself.
    assert answered == [stored.samples[0].value] * len(workers)
    again = BaselineStore(str(tmp_path)).record("m", SPLIT, lambda: [sample(99.0)])
    assert again == stored
    # no scratch file left behind
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_a_new_policy_replaces_the_baseline(tmp_path: Path) -> None:
    store = BaselineStore(str(tmp_path), clock=iter([1.0, 2.0, 3.0]).__next__)
    first = store.record("m", SPLIT, lambda: [sample(1.0)])
    second = store.record("m", "{}", lambda: [sample(5.0)])
    assert (first.taken_at, second.taken_at) == (1.0, 2.0)
    assert store.get("m", SPLIT) is None and store.get("m", "{}") == second
    back = store.record("m", SPLIT, lambda: [sample(9.0)])  # A -> B -> A: a new experiment
    assert back.taken_at == 3.0 and back.samples == (sample(9.0),)
    assert store.get("other", SPLIT) is None


class Worker:
    """A gateway's experiment part over a real counter, with a policy that can change."""

    def __init__(self, directory: str | None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "stageserve_requests", "", ["model", "target", "version", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.policy: TrafficPolicy = policy_from_dict({"weights": {"Production": 100}})
        self.published: list[tuple[str, str, float]] = []
        self.experiments = GatewayExperiments(
            BaselineStore(directory) if directory else None,
            lambda model: collected_samples(self.registry, model),
            lambda model: self.policy,
            started_at=100.0,
            published=lambda model, control, at: self.published.append((model, control, at)),
        )

    def answer(self, target: str, n: int) -> None:
        self.requests.labels("m", target, "1" if target == "Production" else "2", "success").inc(n)


def requests_by_target(answer: dict) -> dict[str, int]:
    return {row["target"]: row["requests"] for row in answer["targets"]}


def test_the_gateway_window_starts_when_the_policy_in_force_was_applied(tmp_path: Path) -> None:
    worker = Worker(str(tmp_path))
    worker.answer("Production", 7)
    worker.experiments.policies_applied(["m"])
    worker.answer("Production", 2)
    answer = worker.experiments.result("m")
    assert answer["window"]["since"] == POLICY_CHANGE
    assert requests_by_target(answer) == {"Production": 2}
    assert answer["policy"] == {"weights": {"Production": 100}, "sticky": False}
    assert answer["control"] == {"target": "Production", "version": 1}
    (published,) = worker.published
    assert published[:2] == ("m", "Production") and answer["window"]["start"] == published[2]

    worker.policy = policy_from_dict({"weights": {"Production": 50, "Staging": 50}})
    # Until a worker applies the new policy there is no baseline of it.
    assert worker.experiments.result("m")["window"]["since"] == GATEWAY_START
    worker.experiments.policies_applied(["m"])
    worker.experiments.policies_applied(["m"])  # nothing new: nothing recorded
    assert len(worker.published) == 2
    worker.answer("Production", 3)
    worker.answer("Staging", 4)
    answer = worker.experiments.result("m")
    assert answer["window"]["since"] == POLICY_CHANGE
    assert requests_by_target(answer) == {"Production": 3, "Staging": 4}
    staging = answer["targets"][1]
    assert staging["vs_control"]["undefined"]  # no rewards yet: said, not raised
    assert answer["window"]["end"] >= answer["window"]["start"] >= time.time() - 60


def test_without_a_runtime_folder_the_window_is_since_the_gateway_started() -> None:
    worker = Worker(None)
    worker.answer("Production", 5)
    worker.experiments.policies_applied(["m"])
    answer = worker.experiments.result("m")
    assert answer["window"]["since"] == GATEWAY_START and answer["window"]["start"] == 100.0
    assert requests_by_target(answer) == {"Production": 5} and worker.published == []


def test_an_unwritable_runtime_folder_does_not_stop_the_worker(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    worker = Worker(str(blocker / "runtime"))  # a folder under a file: every write fails
    worker.experiments.policies_applied(["m"])
    assert worker.published == []
    assert worker.experiments.result("m")["window"]["since"] == GATEWAY_START
