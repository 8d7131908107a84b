"""Worker fan-out over real Unix datagram sockets, and the cross-worker replay cache."""

from __future__ import annotations

import os
import socket
import threading

from service.ops.nudge import WorkerNudge
from service.ops.replay_store import DirectoryReplayCache


def test_broadcast_reaches_every_other_worker(tmp_path) -> None:
    received = {name: threading.Event() for name in ("a", "b", "c")}
    nudges = []
    for name, event in received.items():
        nudge = WorkerNudge(str(tmp_path), event.set)
        nudge.path = str(tmp_path / f"worker-{name}.sock")  # one process plays three workers
        nudge.start()
        nudges.append(nudge)
    try:
        assert nudges[0].broadcast() == 2
        assert received["b"].wait(5) and received["c"].wait(5)
        assert not received["a"].is_set()  # the sender refreshes itself directly
    finally:
        for nudge in nudges:
            nudge.stop()
    assert not list(tmp_path.glob("worker-*.sock"))


def _leave_socket_file(path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:
        dead.bind(str(path))  # bound, then closed: nobody receives on it any more


def test_a_dead_workers_socket_file_is_removed(tmp_path) -> None:
    live = WorkerNudge(str(tmp_path), lambda: None)
    live.start()
    try:
        stale = tmp_path / "worker-999999.sock"
        _leave_socket_file(stale)
        assert live.broadcast() == 0
        assert not stale.exists()
    finally:
        live.stop()


def test_a_starting_worker_sweeps_the_files_of_dead_ones(tmp_path) -> None:
    """A killed worker's file goes when the next worker starts (or polls), not only when
    a webhook arrives; the file of a worker that runs, whatever its pid, stays."""
    stale = tmp_path / f"worker-{os.getpid()}0.sock"  # a pid that may be anyone's now
    _leave_socket_file(stale)
    running = WorkerNudge(str(tmp_path), lambda: None)
    running.path = str(tmp_path / "worker-1.sock")
    running.start()
    newcomer = WorkerNudge(str(tmp_path), lambda: None)
    try:
        assert not stale.exists()  # the running worker swept it at its start
        _leave_socket_file(stale)
        newcomer.start()
        assert not stale.exists()
        assert (tmp_path / "worker-1.sock").exists()
        _leave_socket_file(stale)
        assert newcomer.sweep() == [str(stale)]
        assert newcomer.sweep() == []
    finally:
        newcomer.stop()
        running.stop()


def test_replay_cache_shared_through_the_folder(tmp_path) -> None:
    worker_1 = DirectoryReplayCache(str(tmp_path / "deliveries"))
    worker_2 = DirectoryReplayCache(str(tmp_path / "deliveries"))
    assert worker_1.add("d-1", 1000.0, 300)
    assert not worker_2.add("d-1", 1000.0, 300)  # the other worker saw it
    assert worker_2.add("../../etc/passwd", 1000.0, 300)  # ids are hashed, never paths
    assert len(os.listdir(tmp_path / "deliveries")) == 2


def test_replay_cache_prunes_old_ids(tmp_path) -> None:
    cache = DirectoryReplayCache(str(tmp_path))
    assert cache.add("old", 1000.0, 300)
    for entry in os.scandir(tmp_path):
        os.utime(entry.path, (1000.0, 1000.0))
    for i in range(DirectoryReplayCache.PRUNE_EVERY):
        cache.add(f"new-{i}", 5000.0, 300)
    assert cache.add("old", 5000.0, 300)  # pruned, so accepted (it would be stale anyway)
