"""Feedback counted once: across a batch, across the processes sharing a runtime folder
(two processes inserting the same keys at once: each key is new to exactly one), and
after expiry only."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from service.experiments.seen_feedback import PRUNE_EVERY, SEEN_FILE, SeenFeedback, seen_feedback

REPO = Path(__file__).resolve().parents[2]


def test_a_key_is_new_once_even_twice_in_one_batch(tmp_path: Path) -> None:
    seen = seen_feedback(str(tmp_path))
    assert seen.path == str(tmp_path / SEEN_FILE)
    assert seen.add([("a", 10.0), ("b", 10.0), ("a", 10.0)], now=0.0) == [True, True, False]
    assert seen.add([("b", 10.0), ("c", 10.0)], now=0.0) == [False, True]
    seen.close()
    again = seen_feedback(str(tmp_path))  # a restarted worker
    assert again.add([("a", 10.0), ("d", 10.0)], now=0.0) == [False, True]


def test_in_memory_without_a_runtime_folder() -> None:
    seen = seen_feedback(None)
    assert seen.path is None
    assert seen.add([("a", 1.0)], 0.0) == [True] and seen.add([("a", 1.0)], 0.0) == [False]


def test_expired_keys_are_pruned(tmp_path: Path) -> None:
    seen = SeenFeedback(str(tmp_path / "s.sqlite"))
    assert seen.add([("old", 5.0), ("kept", 50.0)], now=0.0) == [True, True]
    for _ in range(PRUNE_EVERY - 1):
        seen.add([], now=10.0)
    # The next prune (at the batch after PRUNE_EVERY) forgets "old", never "kept".
    assert seen.add([("old", 60.0), ("kept", 60.0)], now=10.0) == [True, False]


WRITER = """
import json, sys
from service.experiments.seen_feedback import SeenFeedback
seen = SeenFeedback(sys.argv[1])
fresh = []
for start in range(0, 4000, 400):
    keys = [(f"k{i}", 1e12) for i in range(start, start + 400)]
    fresh += [key for (key, _), new in zip(keys, seen.add(keys, 0.0)) if new]
print(json.dumps(fresh))
"""


def test_two_processes_inserting_the_same_keys_count_each_once(tmp_path: Path) -> None:
    path = str(tmp_path / SEEN_FILE)
    SeenFeedback(path).close()  # created once, as the first worker does
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, path],
            stdout=subprocess.PIPE,
            env={"PYTHONPATH": str(REPO)},
            cwd=REPO,
        )
        for _ in range(2)
    ]
    outputs = [json.loads(writer.communicate(timeout=120)[0]) for writer in writers]
    assert all(writer.returncode == 0 for writer in writers)
    first, second = (set(output) for output in outputs)
    assert not first & second
    assert first | second == {f"k{i}" for i in range(4000)}


def test_a_batch_of_ten_thousand_takes_well_under_a_second(tmp_path: Path) -> None:
    seen = SeenFeedback(str(tmp_path / SEEN_FILE))
    keys = [
        (f"reward:ss1.bW9kZWw.UHJvZHVjdGlvbg.1.1764460000.{i:011d}.x", 1e12) for i in range(10_000)
    ]
    started = time.perf_counter()
    assert all(seen.add(keys, 0.0))
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed  # ~0.1 s measured; a loose bound on a shared machine
