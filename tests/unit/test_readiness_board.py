"""service.ops.readiness_board: the gateway is ready when all its workers are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.ops.processes import ProcessIdentity
from service.ops.readiness_board import ReadinessBoard


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _parent() -> ProcessIdentity:
    return ProcessIdentity.of(os.getppid())


def test_ready_only_when_every_worker_posted(tmp_path: Path) -> None:
    me = ReadinessBoard(str(tmp_path), workers=2)
    other = ReadinessBoard(str(tmp_path), workers=2, identity=_parent())
    assert me.unready_reason() == "0 of 2 workers have loaded their required targets"
    me.publish(True)
    assert me.unready_reason() == "1 of 2 workers have loaded their required targets"
    other.publish(True)
    assert me.unready_reason() is None and other.unready_reason() is None
    other.publish(False)
    assert me.ready_workers() == 1
    other.publish(False)  # withdrawing twice is harmless
    assert me.ready_workers() == 1


def test_a_dead_workers_marker_does_not_count_and_is_removed(tmp_path: Path) -> None:
    board = ReadinessBoard(str(tmp_path), workers=2)
    board.publish(True)
    dead = _dead_pid()
    ReadinessBoard(str(tmp_path), workers=2, identity=ProcessIdentity(dead, 1)).publish(True)
    assert board.ready_workers() == 1
    assert not (tmp_path / f"ready-{dead}").exists()


def test_a_reused_pid_does_not_make_a_dead_workers_marker_count(tmp_path: Path) -> None:
    """The marker names a live pid (this test's), but the process that posted it started
    at another time: it died, and its pid went to someone else."""
    me = ProcessIdentity.current()
    assert me.started is not None
    (tmp_path / f"ready-{me.pid}").write_text(f"{me.pid} {me.started + 1}")
    board = ReadinessBoard(str(tmp_path), workers=2)
    assert board.ready_workers() == 0
    assert not (tmp_path / f"ready-{me.pid}").exists()


def test_markers_without_an_identity_do_not_count(tmp_path: Path) -> None:
    """Empty (an older gateway's format) or naming another pid than the file name."""
    (tmp_path / f"ready-{os.getpid()}").write_text("")
    (tmp_path / f"ready-{os.getppid()}").write_text(ProcessIdentity.current().to_text())
    assert ReadinessBoard(str(tmp_path), workers=2).ready_workers() == 0


def test_publishing_again_restores_a_lost_marker(tmp_path: Path) -> None:
    board = ReadinessBoard(str(tmp_path), workers=2)
    board.publish(True)
    board.publish(True)  # unchanged: nothing rewritten
    assert board.ready_workers() == 1
    (tmp_path / f"ready-{os.getpid()}").unlink()  # e.g. the runtime folder was wiped
    assert board.ready_workers() == 0
    board.publish(True)
    assert board.ready_workers() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"ready-{os.getpid()}"]


def test_a_worker_on_standby_does_not_make_the_gateway_unready(tmp_path: Path) -> None:
    """A replacement loading off the socket refuses nothing; the ready one serves all."""
    serving = ReadinessBoard(str(tmp_path), workers=2, identity=_parent())
    waiting = ReadinessBoard(str(tmp_path), workers=2)
    waiting.standby(True)
    assert serving.unready_reason() is not None  # nobody ready: standby is not enough
    serving.publish(True)
    assert serving.unready_reason() is None
    assert waiting.other_ready_workers() == 1 and serving.other_ready_workers() == 0
    waiting.standby(False)
    assert serving.unready_reason() == "1 of 2 workers have loaded their required targets"


def test_other_files_in_the_folder_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "ready-x").write_text("")
    (tmp_path / "nudge.sock").write_text("")
    board = ReadinessBoard(str(tmp_path), workers=2)
    assert board.ready_workers() == 0


def test_one_worker_or_no_folder_needs_no_board(tmp_path: Path) -> None:
    single = ReadinessBoard(str(tmp_path), workers=1)
    single.publish(True)
    single.standby(True)
    assert list(tmp_path.iterdir()) == []
    assert single.unready_reason() is None
    assert single.other_ready_workers() == 0
    assert ReadinessBoard(None, workers=3).unready_reason() is None


def test_a_missing_folder_means_nobody_is_ready(tmp_path: Path) -> None:
    board = ReadinessBoard(str(tmp_path / "gone"), workers=2)
    assert board.ready_workers() == 0
    board.publish(True)  # creates it
    assert board.ready_workers() == 1
