"""service.ops.metric_files: dead workers' per-process gauges go; their counters stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from service.ops.metric_files import OWNER_PREFIX, MetricFileSweeper
from service.ops.processes import ProcessIdentity
from tests.integration.harness import metric_samples

# A worker in miniature: claims its files, writes a counter, an in-flight gauge (livesum)
# and a per-process gauge (liveall), says so, then waits to be killed.
WORKER = """
import sys
from prometheus_client import Counter, Gauge
from service.ops.metric_files import MetricFileSweeper, multiprocess_dir
MetricFileSweeper(multiprocess_dir()).claim()
Counter("requests", "r").inc(5)
Gauge("in_flight", "f", multiprocess_mode="livesum").inc(3)
Gauge("memory", "m", multiprocess_mode="liveall").set(42)
Gauge("peak", "p", multiprocess_mode="max").set(7)
print("written", flush=True)
sys.stdin.read()
"""


def _worker(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "written\n"
    return proc


def _scrape(folder: Path) -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return generate_latest(registry).decode()


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_killed_workers_gauges_go_and_its_counters_stay(tmp_path: Path) -> None:
    killed, running = _worker(tmp_path), _worker(tmp_path)
    try:
        _kill(killed)
        before = _scrape(tmp_path)
        assert metric_samples(before, "in_flight") == {(): 6.0}  # the dead one's 3 stay
        assert MetricFileSweeper(str(tmp_path)).sweep() == [killed.pid]
        after = _scrape(tmp_path)
        assert metric_samples(after, "in_flight") == {(): 3.0}
        assert metric_samples(after, "memory") == {(("pid", str(running.pid)),): 42.0}
        assert metric_samples(after, "requests_total") == {(): 10.0}  # never backwards
        assert metric_samples(after, "peak") == {(): 7.0}  # aggregated over all time
        assert not (tmp_path / f"{OWNER_PREFIX}{killed.pid}").exists()
        assert (tmp_path / f"{OWNER_PREFIX}{running.pid}").exists()
        assert MetricFileSweeper(str(tmp_path)).sweep() == []
    finally:
        running.communicate("")
        _kill(killed)


def _files_of(folder: Path, pid: int) -> list[str]:
    names = ("counter", "histogram", "gauge_livesum", "gauge_liveall", "gauge_all", "gauge_max")
    for name in names:
        (folder / f"{name}_{pid}.db").write_bytes(b"")
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(f"_{pid}.db"))


KEPT = ("counter", "gauge_max", "histogram")


def test_a_reused_pid_does_not_keep_a_dead_workers_gauges(tmp_path: Path) -> None:
    """The recorded owner of the files died; its pid now names another live process."""
    other = ProcessIdentity.of(os.getppid())
    assert other.started is not None
    _files_of(tmp_path, other.pid)
    (tmp_path / f"{OWNER_PREFIX}{other.pid}").write_text(f"{other.pid} {other.started + 1}")
    assert MetricFileSweeper(str(tmp_path)).sweep() == [other.pid]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f"{kind}_{other.pid}.db" for kind in KEPT]


def test_files_without_an_owner_record_go_only_when_the_pid_is_gone(tmp_path: Path) -> None:
    """E.g. the supervisor's files, or a gateway from before owner records."""
    alive = os.getppid()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    kept = _files_of(tmp_path, alive)
    _files_of(tmp_path, dead_pid)
    assert MetricFileSweeper(str(tmp_path)).sweep() == [dead_pid]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(kept + [f"{kind}_{dead_pid}.db" for kind in KEPT])


def test_a_worker_drops_the_gauges_a_previous_owner_of_its_pid_left(tmp_path: Path) -> None:
    me = ProcessIdentity.current()
    assert me.started is not None
    _files_of(tmp_path, me.pid)
    (tmp_path / f"{OWNER_PREFIX}{me.pid}").write_text(f"{me.pid} {me.started - 1}")
    sweeper = MetricFileSweeper(str(tmp_path))
    sweeper.claim()
    assert (tmp_path / f"{OWNER_PREFIX}{me.pid}").read_text() == me.to_text()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".db"))
    assert left == [f"{kind}_{me.pid}.db" for kind in KEPT]
    # Its own files, once claimed, are its own: claiming again or sweeping keeps them.
    (tmp_path / f"gauge_livesum_{me.pid}.db").write_bytes(b"")
    sweeper.claim()
    assert sweeper.sweep() == []
    assert (tmp_path / f"gauge_livesum_{me.pid}.db").exists()


def test_no_folder_no_sweep() -> None:
    sweeper = MetricFileSweeper(None)
    sweeper.claim()
    assert sweeper.sweep() == []
