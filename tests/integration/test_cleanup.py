"""Downloaded versions do not outlive the gateway: a clean stop removes them, a start
sweeps what dead workers left, and a live process's folder is never touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.harness import ALL_FEATURES, Gateway, wait_until
from tests.unit.test_worker_dirs import Holder

pytestmark = pytest.mark.integration

POLL = "0.5"


def disk_usage(folder: Path) -> int:
    """Bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def serving(gateway: Gateway, model: str, version: str) -> bool:
    return str(gateway.target_state(model, "Production")["version"]) == version


def test_a_clean_stop_removes_every_downloaded_version(
    mlflow_server, registry, model_name, workdir
) -> None:
    model_dir = workdir / "models"
    first = registry.register_ridge(model_name, ALL_FEATURES[:4], alpha=1.0)
    registry.transition(model_name, first.version, "Production")
    gateway = Gateway(
        workdir,
        mlflow_server.uri,
        [model_name],
        "--model-dir", str(model_dir), "--workers", "2", "--poll-interval", POLL,
    ).start()  # fmt: skip
    try:
        for k in range(2):  # two swaps
            new = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.5 / (k + 1))
            registry.transition(model_name, new.version, "Production")
            assert wait_until(lambda v=new.version: serving(gateway, model_name, v), 60, 0.1), (
                gateway.log_tail()
            )
        running = disk_usage(model_dir)
        assert running > 0
    finally:
        gateway.stop()  # SIGTERM to the gateway's process group, as a pod's stop does
    left = files_under(model_dir)
    print(f"\nmodel dir: {running} bytes while serving, {disk_usage(model_dir)} after SIGTERM")
    assert left == [], f"left behind after a clean stop: {left}\n{gateway.log_tail()}"


def test_a_start_sweeps_dead_workers_folders_and_spares_live_ones(
    mlflow_server, registry, model_name, workdir
) -> None:
    model_dir = workdir / "models"
    model_dir.mkdir()
    version = registry.register_ridge(model_name, ALL_FEATURES[:4], alpha=1.0).version
    registry.transition(model_name, version, "Production")
    dead, live = Holder(model_dir), Holder(model_dir)  # two other "workers"
    gateway = Gateway(
        workdir, mlflow_server.uri, [model_name], "--model-dir", str(model_dir),
        "--poll-interval", POLL,
    )  # fmt: skip
    try:
        dead.kill()  # a worker that crashed: its folder stays behind
        orphan = model_dir / "worker-1-0badc0de"  # a folder that lost its lock file
        orphan.mkdir()
        (orphan / "model.pkl").write_bytes(b"x" * 1000)
        leftover = disk_usage(dead.path) + disk_usage(orphan)
        gateway.start()
        assert not dead.path.exists() and not orphan.exists()
        assert (live.path / "weights.bin").stat().st_size == 4096  # untouched
        print(f"\nleft by dead workers: {leftover} bytes before the start, 0 after")
        ours = [
            p
            for p in model_dir.iterdir()
            if p.is_dir() and p != live.path and p.name.startswith("worker-")
        ]
        assert len(ours) == 1 and disk_usage(ours[0]) > 0  # the gateway's worker folder
        assert os.path.exists(str(ours[0]) + ".lock")
    finally:
        gateway.stop()
        live.stop()
    # The live holder was killed last, after the gateway: its folder waits for the next start.
    assert sorted(p.name for p in model_dir.iterdir()) == [live.path.name, live.path.name + ".lock"]
