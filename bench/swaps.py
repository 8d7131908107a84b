"""Swap cost, against stageserve only: while closed-loop clients keep calling
``bench-swap``, move versions through Production and time how long each transition
takes to reach the answers, then compare the workers' memory after the first and the
last swap (a leak of old versions would show there).

Each client holds one keep-alive connection and learns which worker it talks to from
``GET /admin/models`` (it answers the pid of the worker that served it); clients are
spread so that every worker is watched, hence "first answer" (any worker serves the new
version) and "all workers" (every worker does) can both be timed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench import procs
from bench.registry import SWAP, promote
from bench.stats import memory_ratio, summarize_swaps
from service.cli.diabetes_registry import DiabetesRegistry


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic() when the answer arrived
    pid: int
    version: str | None
    status: int  # 0: no HTTP answer at all


class AnswerLog:
    """Answers of every client, in arrival order (list appends are atomic in CPython)."""

    def __init__(self) -> None:
        self.items: list[Answer] = []
        self.failures: list[tuple[Answer, str]] = []  # the first few, with their bodies
        self.transitions: list[float] = []  # when each transition call returned

    def since(self, index: int) -> list[Answer]:
        return self.items[index:]


def _worker_pid(client: httpx.Client, base_url: str) -> int:
    return int(client.get(base_url + "/admin/models").json()["worker"]["pid"])


class SwapClient(threading.Thread):
    """One closed-loop client on one keep-alive connection to one chosen worker."""

    def __init__(
        self, base_url: str, body: bytes, worker: int, log: AnswerLog, stop: threading.Event
    ) -> None:
        super().__init__(daemon=True, name=f"swap-client-{worker}")
        self.base_url = base_url
        self.body = body
        self.worker = worker
        self.log = log
        self.stop_event = stop
        self.connected = threading.Event()
        self.pid = 0

    def _connect(self, attempts: int = 200) -> httpx.Client:
        """New connections until one lands on the wanted worker (the kernel spreads
        accepts over the workers), or the last one if none does."""
        client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=1))
        for _ in range(attempts):
            try:
                self.pid = _worker_pid(client, self.base_url)
            except httpx.HTTPError:
                self.pid = 0
            if self.pid == self.worker:
                break
            client.close()
            client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=1))
        return client

    def run(self) -> None:
        url = self.base_url + "/invocations"
        headers = {"Content-Type": "application/json"}
        client = self._connect()
        self.connected.set()
        try:
            while not self.stop_event.is_set():
                try:
                    response = client.post(url, content=self.body, headers=headers)
                    version = response.headers.get("x-model-version")
                    answer = Answer(time.monotonic(), self.pid, version, response.status_code)
                    self.log.items.append(answer)
                    if response.status_code != 200 and len(self.log.failures) < 20:
                        self.log.failures.append((answer, response.text[:300]))
                except httpx.HTTPError:
                    self.log.items.append(Answer(time.monotonic(), self.pid, None, 0))
                    client.close()  # a new connection may reach another worker
                    client = self._connect(attempts=1)
        finally:
            client.close()


def _load_duration(base_url: str, version: str) -> float | None:
    """The load time the answering worker reports for the version in Production."""
    try:
        state = httpx.get(base_url + "/admin/models", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return None
    for model in state.get("models", []):
        for target in model.get("targets", []) if model.get("name") == SWAP else []:
            if str(target.get("version")) == version:
                return target.get("load_duration_s")
    return None


def _wait_for(
    log: AnswerLog, start: int, version: str, workers: set[int], timeout: float
) -> dict[int, float] | None:
    """Arrival time of each worker's first answer carrying ``version``; None on timeout."""
    first: dict[int, float] = {}
    index = start
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for answer in log.since(index):
            index += 1
            if answer.version == version and answer.pid in workers:
                first.setdefault(answer.pid, answer.at)
        if workers <= first.keys():
            return first
        time.sleep(0.005)
    return None


def _describe_failure(answer: Answer, body: str, transitions: Sequence[float]) -> dict[str, Any]:
    """A failed answer, placed relative to the last transition before it."""
    before = [t for t in transitions if t <= answer.at]
    return {
        "status": answer.status,
        "worker": answer.pid,
        "after_transition": len(before),
        "seconds_after_it": round(answer.at - before[-1], 4) if before else None,
        "body": body,
    }


def _rss(pids: Sequence[int]) -> dict[str, int]:
    return {str(pid): procs.rss_kib(pid) or 0 for pid in pids}


def run_swaps(
    registry: DiabetesRegistry,
    versions: Sequence[str],
    base_url: str,
    body: bytes,
    worker_pids: Sequence[int],
    swaps: int,
    clients: int,
    poll_interval_s: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """``versions[0]`` is in Production and served when this starts."""
    workers = set(worker_pids)
    log = AnswerLog()
    stop = threading.Event()
    ordered = sorted(workers)
    threads = [
        SwapClient(base_url, body, ordered[i % len(ordered)], log, stop) for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.connected.wait(60)
    watched = {thread.pid for thread in threads} & workers
    if watched != workers:
        say(f"  swap clients reach workers {sorted(watched)} of {ordered}: timing those only")
    timeout = max(60.0, 20 * poll_interval_s)
    per_swap: list[dict[str, Any]] = []
    memory_first: dict[str, int] = {}
    memory_last: dict[str, int] = {}
    phase_start = len(log.items)
    current = 0
    try:
        for number in range(1, swaps + 1):
            new = (current + 1) % len(versions)
            start = len(log.items)
            promote(registry, SWAP, versions[new])
            returned = time.monotonic()
            log.transitions.append(returned)
            first = _wait_for(log, start, versions[new], watched, timeout)
            entry: dict[str, Any] = {
                "swap": number,
                "from": versions[current],
                "to": versions[new],
                "first_answer_s": None,
                "all_workers_s": None,
                "load_duration_s": None,
            }
            per_swap.append(entry)
            if first is None:
                say(f"  swap {number}: version {versions[new]} not served in {timeout:.0f} s")
                break
            current = new
            entry["first_answer_s"] = round(min(first.values()) - returned, 4)
            entry["all_workers_s"] = round(max(first.values()) - returned, 4)
            entry["load_duration_s"] = _load_duration(base_url, versions[new])
            if number == 1:
                memory_first = _rss(ordered)
            if number == swaps:
                memory_last = _rss(ordered)
            say(
                f"  swap {number:>2}: v{entry['from']} -> v{entry['to']}  first answer "
                f"{entry['first_answer_s']:.3f} s, all workers {entry['all_workers_s']:.3f} s"
            )
    finally:
        stop.set()
        for thread in threads:
            thread.join(40)
    answers = log.since(phase_start)
    statuses: dict[str, int] = {}
    for answer in answers:
        if answer.status != 200:
            statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
    return {
        "poll_interval_s": poll_interval_s,
        "clients": clients,
        "workers": ordered,
        "watched_workers": sorted(watched),
        "swaps_requested": swaps,
        "requests": len(answers),
        "errors": sum(statuses.values()),
        "error_statuses": statuses,
        "error_samples": [_describe_failure(a, body, log.transitions) for a, body in log.failures],
        **summarize_swaps(per_swap),
        "memory": {
            "after_first_kib": memory_first,
            "after_last_kib": memory_last,
            "swaps_at_last": len(per_swap) if memory_last else None,
            "ratio": memory_ratio(memory_first, memory_last) if memory_last else None,
        },
        "per_swap": per_swap,
    }
