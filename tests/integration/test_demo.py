"""The README quickstart: `stageserve demo` seeds a SQLite registry and serves it; the
README's promotion snippet swaps Production to version 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from tests.integration.harness import REPO_ROOT, free_port, split_payload, wait_until
from tests.support.processes import ServerProcess, python_command, tail

pytestmark = pytest.mark.integration


def readme_promotion_snippet() -> str:
    """The README's command that promotes demo version 2 to Production."""
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL)
    (snippet,) = [b for b in blocks if "transition_model_version_stage" in b]
    return snippet


def test_demo_serves_and_swaps(tmp_path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    registry_dir = tmp_path / "demo-registry"
    command = python_command(
        "service.cli.main", "demo",
        "--dir", str(registry_dir), "--port", str(port), "--poll-interval", "0.5",
    )  # fmt: skip
    env = dict(os.environ, STAGESERVE_MODEL_DIR=str(tmp_path / "models"))
    demo = ServerProcess("stageserve demo", command, log, port, env=env)
    proc = demo.launch().proc
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(tail(log))
            return httpx.get(url + "/ping").status_code == 200

        assert wait_until(ready, 180, 0.2, reraise=RuntimeError), tail(log)

        def staging_loaded() -> bool:  # readiness does not wait for the optional target
            models = httpx.get(url + "/admin/models").json()["models"]
            return any(t["target"] == "Staging" and t["status"] == "ready"
                       for t in models[0]["targets"])  # fmt: skip

        assert wait_until(staging_loaded, 60, 0.2), tail(log)
        production = httpx.post(url + "/invocations", json=split_payload())
        staging = httpx.post(
            url + "/invocations", json=split_payload(), headers={"X-Model-Target": "Staging"}
        )
        assert production.status_code == 200 and staging.status_code == 200
        assert production.headers["X-Model-Name"] == "diabetes"
        assert production.headers["X-Model-Version"] == "1"
        assert staging.headers["X-Model-Version"] == "2"
        assert production.json() != staging.json()

        # The README's promotion snippet, run as written from the folder that holds
        # demo-registry/ (as `make demo` leaves it), in a process of its own.
        snippet = readme_promotion_snippet().replace(".venv/bin/python", sys.executable)
        # A user's shell, not this test process: mlflow.set_*_uri() exports MLFLOW_* here.
        shell_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        done = subprocess.run(
            ["bash", "-c", snippet], cwd=tmp_path, env=shell_env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert wait_until(
            lambda: (
                httpx.post(url + "/invocations", json=split_payload()).headers["X-Model-Version"]
                == "2"
            ),
            30,
        ), tail(log)
        promoted = httpx.post(url + "/invocations", json=split_payload())
        assert promoted.json() == staging.json()
    finally:
        demo.stop()
    assert (registry_dir / "mlflow.db").exists()
