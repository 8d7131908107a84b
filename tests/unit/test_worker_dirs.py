"""Download folders and runtime folders are removed once their process is gone, never before.

"Gone" is checked with real processes: a child that holds a folder and is killed, and
one that stays alive while the sweep runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from service.lifecycle.worker_dirs import LOCK_SUFFIX, WorkerDir, default_root, sweep
from service.ops import run_dirs
from service.ops.processes import ProcessIdentity, start_ticks

REPO_ROOT = Path(__file__).resolve().parents[2]

CLAIM = """
import sys
from service.lifecycle.worker_dirs import WorkerDir
held = WorkerDir.claim(sys.argv[1])
open(held.path + "/weights.bin", "wb").write(b"x" * 4096)
print(held.path, flush=True)
sys.stdin.read()  # hold the folder until told to go
"""


class Holder:
    """A child process that claims a worker folder in ``root`` and holds it."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLAIM, str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert self.proc.stdout is not None
        self.path = Path(self.proc.stdout.readline().decode().strip())
        assert self.path.is_dir(), "the child did not claim a folder"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def test_start_time_identifies_a_process() -> None:
    start = start_ticks(os.getpid())
    assert start is not None and start > 0
    assert ProcessIdentity(os.getpid(), start).alive()
    # Same pid, another start time: another process.
    assert not ProcessIdentity(os.getpid(), start + 1).alive()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    assert start_ticks(child.pid) is None
    assert not ProcessIdentity(child.pid, start).alive()


def test_a_released_folder_is_gone(tmp_path: Path) -> None:
    held = WorkerDir.claim(str(tmp_path))
    (Path(held.path) / "v1").mkdir()
    (Path(held.path) / "v1" / "model.pkl").write_bytes(b"x" * 100)
    held.release()
    assert os.listdir(tmp_path) == []
    held.release()  # twice is fine


def test_a_dead_workers_folder_is_swept_and_a_live_ones_is_not(tmp_path: Path) -> None:
    dead, live = Holder(tmp_path), Holder(tmp_path)
    try:
        dead.kill()  # SIGKILL: no cleanup of its own
        assert dead.path.is_dir()
        orphan = tmp_path / "worker-1-abcdef12"  # a folder whose lock file is gone
        orphan.mkdir()
        unrelated = tmp_path / "notes"  # not ours: never touched
        unrelated.mkdir()
        mine = WorkerDir.claim(str(tmp_path))  # sweeps first
        assert not dead.path.exists()
        assert not Path(str(dead.path) + LOCK_SUFFIX).exists()
        assert not orphan.exists()
        assert (live.path / "weights.bin").stat().st_size == 4096
        assert unrelated.is_dir()
        assert sweep(str(tmp_path)) == []  # a second sweep spares the live ones
        assert Path(mine.path).is_dir()
        mine.release()
    finally:
        dead.stop()
        live.stop()
    assert sweep(str(tmp_path)) == [live.path.name]  # its owner is gone now
    assert sorted(os.listdir(tmp_path)) == ["notes"]


def test_two_claims_in_one_process_get_two_folders(tmp_path: Path) -> None:
    first, second = WorkerDir.claim(str(tmp_path)), WorkerDir.claim(str(tmp_path))
    try:
        assert first.path != second.path
        assert sweep(str(tmp_path)) == []  # a lock held by this very process counts
    finally:
        first.release()
        second.release()


def test_the_default_root_is_per_user_and_stable() -> None:
    assert default_root() == default_root()
    assert default_root().endswith(f"stageserve-models-{os.getuid()}")


def test_runtime_folders_of_stopped_supervisors_are_swept(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    me, my_start = os.getpid(), start_ticks(os.getpid())
    dead_new = tmp_path / f"stageserve-run-{child.pid}-12345"
    dead_legacy = tmp_path / f"stageserve-run-{child.pid}"
    reused = tmp_path / f"stageserve-run-{me}-{my_start - 1}"  # my pid, an earlier process
    live = tmp_path / f"stageserve-run-{me}-{my_start}"
    other = tmp_path / "stageserve-run-x"
    for folder in (dead_new, dead_legacy, reused, live, other):
        folder.mkdir()
    path = run_dirs.plain_serve_runtime_dir(me, str(tmp_path))
    assert path == str(live)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


@pytest.mark.parametrize("pid", [0, -1, 2**22 + 7])
def test_no_such_process_has_no_start_time(pid: int) -> None:
    assert start_ticks(pid) is None
