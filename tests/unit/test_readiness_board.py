"""service.readiness_board: the gateway is ready when all its workers are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.readiness_board import ReadinessBoard


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_ready_only_when_every_worker_posted(tmp_path: Path) -> None:
    me = ReadinessBoard(str(tmp_path), workers=2)
    other = ReadinessBoard(str(tmp_path), workers=2, pid=os.getppid())
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
    ReadinessBoard(str(tmp_path), workers=2, pid=dead).publish(True)
    assert board.ready_workers() == 1
    assert not (tmp_path / f"ready-{dead}").exists()


def test_other_files_in_the_folder_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "ready-x").write_text("")
    (tmp_path / "nudge.sock").write_text("")
    board = ReadinessBoard(str(tmp_path), workers=2)
    assert board.ready_workers() == 0


def test_one_worker_or_no_folder_needs_no_board(tmp_path: Path) -> None:
    single = ReadinessBoard(str(tmp_path), workers=1)
    single.publish(True)
    assert list(tmp_path.iterdir()) == []
    assert single.unready_reason() is None
    assert ReadinessBoard(None, workers=3).unready_reason() is None


def test_a_missing_folder_means_nobody_is_ready(tmp_path: Path) -> None:
    board = ReadinessBoard(str(tmp_path / "gone"), workers=2)
    assert board.ready_workers() == 0
    board.publish(True)  # creates it
    assert board.ready_workers() == 1
