"""Feedback flowing during a benchmark run: a background thread that follows the file of
X-Feedback-Id values wrk appends to (bench/report.lua with BENCH_IDS_FILE) and posts one
feedback item per answered prediction to ``POST /models/NAME/feedback``, in batches,
as a labelling pipeline would. It counts what the gateway answered, so the bench can
check that the feedback it measured was really accepted."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

BATCH = 100
IDLE_S = 0.05  # how long the thread waits when no full batch is ready


class IdTail:
    """The complete lines appended to a file since the last read (wrk writes in
    buffered chunks, so the last line may be cut: it waits for the next read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def read(self) -> list[str]:
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self._offset += end
        return [line for line in data[:end].decode().splitlines() if line]


def feedback_items(ids: list[str], first_index: int) -> list[dict[str, Any]]:
    """One item per id: a 0/1 reward (alternating, so both occur) and a truth to log."""
    return [
        {"request_id": rid, "reward": (first_index + i) % 2, "truth": float(first_index + i)}
        for i, rid in enumerate(ids)
    ]


@dataclass
class FeedbackCounts:
    """Items sent, and the gateway's batch answers summed; ``failed_posts``: posts that
    got no 200 (their items are in ``sent`` but in none of the answer counts)."""

    sent: int = 0
    posts: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    failed_posts: int = 0

    def add(self, other: FeedbackCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def add_answer(self, answer: dict[str, Any]) -> None:
        self.accepted += int(answer.get("accepted", 0))
        self.duplicates += int(answer.get("duplicates", 0))
        self.refused += int(answer.get("refused", 0))


class FeedbackSender:
    """Follows ``ids_file`` from a thread started by ``start``; ``stop`` sends what is
    left (the ids of the last answers) and returns the counts."""

    def __init__(self, url: str, ids_file: Path, token: str | None, batch: int = BATCH) -> None:
        self.url = url
        self.batch = batch
        self.counts = FeedbackCounts()
        self._tail = IdTail(ids_file)
        self._pending: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="feedback-sender", daemon=True)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(timeout=30, headers=headers)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> FeedbackCounts:
        self._stop.set()
        self._thread.join()
        self._pending += self._tail.read()
        while self._pending:
            self._post(self._take(self.batch))
        self._client.close()
        return self.counts

    def _take(self, count: int) -> list[str]:
        taken, self._pending = self._pending[:count], self._pending[count:]
        return taken

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._pending += self._tail.read()
            if len(self._pending) < self.batch:
                self._stop.wait(IDLE_S)
                continue
            while len(self._pending) >= self.batch:
                self._post(self._take(self.batch))

    def _post(self, ids: list[str]) -> None:
        items = feedback_items(ids, self.counts.sent)
        self.counts.sent += len(items)
        self.counts.posts += 1
        try:
            response = self._client.post(self.url, json=items)
        except httpx.HTTPError:
            self.counts.failed_posts += 1
            return
        if response.status_code != 200:
            self.counts.failed_posts += 1
            return
        self.counts.add_answer(response.json())
