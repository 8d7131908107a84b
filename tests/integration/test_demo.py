"""The README, walked as a new user walks it: `stageserve demo` seeds a SQLite registry
and serves Production, Staging and @challenger; then every ```bash block of README.md
runs in order against that demo, in a shell of its own, and must exit 0 and print what
the README shows (tests/integration/readme_snippets.py has the conventions).

One demo for the module, started as `make demo` starts it (`stageserve demo` in the
folder the user stands in, `--dir demo-registry`), with the admin token of the README's
"Setting a policy" from the start. The user's folder is a temporary one that looks like
the checkout (`docs/` and `.venv` linked), so the snippets run unchanged but for the port
(`localhost:3000` -> the demo's free port). Between two blocks the test waits, polling
/admin/models, until the gateway serves what the registry holds, as a user waits a poll
interval; it never sleeps.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from service.cli.demo import read_state
from tests.integration.harness import REPO_ROOT, TEST_ONLY_ENV, free_port, split_payload
from tests.integration.readme_snippets import caught_up, missing_output, readme_snippets
from tests.support.processes import ServerProcess, python_command, wait_until, with_venv_path

pytestmark = pytest.mark.integration

README = REPO_ROOT / "README.md"
TOKEN_FILE = "demo-admin-token"  # the README's name for it


@dataclass
class Demo:
    process: ServerProcess
    home: Path  # the user's folder: demo-registry/ is in it, snippets run in it
    tracking_uri: str

    @property
    def url(self) -> str:
        return self.process.url

    def caught_up(self) -> bool:
        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        admin = httpx.get(self.url + "/admin/models", timeout=10).json()
        return caught_up(read_state(client), admin)


def admin_token_file(home: Path) -> list[str]:
    """The README's way to start the demo with an admin token: a file, named relative
    to the user's folder, `--admin-token-file demo-admin-token`."""
    (home / TOKEN_FILE).write_text(secrets.token_urlsafe(32) + "\n")
    return ["--admin-token-file", TOKEN_FILE]


def user_folder(root: Path) -> Path:
    """A folder that looks like the checkout after `make demo`: docs/ and .venv (this
    interpreter's environment, which has stageserve) are links."""
    assert shutil.which("curl"), "the README's snippets need curl (.ci/run installs it)"
    home = root / "checkout"
    home.mkdir()
    (home / "docs").symlink_to(REPO_ROOT / "docs")
    venv = Path(sys.prefix)
    assert (venv / "bin" / "activate").exists(), (
        f"run the tests from a virtualenv ({sys.prefix} has no bin/activate; `make test` "
        "uses .venv): the README's snippets `source .venv/bin/activate`"
    )
    (home / ".venv").symlink_to(venv)
    return home


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("demo")
    home = user_folder(root)
    port = free_port()
    command = python_command(
        "service.cli.main", "demo",
        "--dir", "demo-registry", "--port", str(port), "--poll-interval", "0.5",
        *admin_token_file(home),
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_ENV}
    env.update(PYTHONPATH=str(REPO_ROOT), STAGESERVE_MODEL_DIR=str(root / "models"))
    process = ServerProcess(
        "stageserve demo", command, root / "demo.log", port, env=env, cwd=home, probe_timeout=10
    )
    demo = Demo(process, home, f"sqlite:///{home / 'demo-registry' / 'mlflow.db'}")
    try:
        process.launch().wait_ready(240)
        assert wait_until(demo.caught_up, 60, 0.1), process.log_tail()
        yield demo
    finally:
        process.stop()


def test_the_demo_serves_its_three_versions_and_says_so(demo: Demo) -> None:
    answers = {
        target: httpx.post(
            demo.url + "/invocations", json=split_payload(), headers={"X-Model-Target": target}
        )
        for target in ("Production", "Staging", "@challenger")
    }
    assert {t: a.status_code for t, a in answers.items()} == dict.fromkeys(answers, 200)
    versions = {t: a.headers["X-Model-Version"] for t, a in answers.items()}
    assert versions == {"Production": "1", "Staging": "2", "@challenger": "3"}
    assert len({a.content for a in answers.values()}) == 3  # three different models
    hint = demo.process.log.read_text()
    assert "Production v1, Staging v2, @challenger v3" in hint
    assert "-H 'X-Model-Target: Staging' for version 2" in hint


def snippet_env(port: int) -> dict[str, str]:
    """A user's shell: no MLflow or stageserve settings of this test process (MLflow's
    set_*_uri() exports MLFLOW_*), this environment's bin/ first on PATH, and the
    checkout under test importable first (as the other integration tests run it).

    The README's demo listens on port 3000, this one on ``port``: ``localhost:3000`` is
    rewritten in the snippets, and ``stageserve status`` (whose default is port 3000) is
    pointed at it the documented way, with STAGESERVE_URL."""
    drop = ("MLFLOW_", "STAGESERVE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["STAGESERVE_URL"] = f"http://127.0.0.1:{port}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    return with_venv_path(env)


def test_every_readme_snippet_runs_in_order(demo: Demo, capsys: pytest.CaptureFixture) -> None:
    snippets = readme_snippets(README.read_text())
    shell_state = demo.home.parent / "shell-exports"  # what the user's terminal keeps
    shell_state.write_text("")
    started, ran, not_run = time.monotonic(), [], []
    for snippet in snippets:
        if snippet.not_run is not None:
            not_run.append(f"README.md:{snippet.line}: {snippet.not_run}")
            continue
        code = snippet.code.replace("localhost:3000", f"localhost:{demo.process.port}")
        script = f"source {shell_state}\nset -eo pipefail\n{code}\nexport -p > {shell_state}\n"
        block_started = time.monotonic()
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=demo.home,
            env=snippet_env(demo.process.port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        where = f"README.md:{snippet.line} exited {done.returncode}:\n{code}\n--- output:\n"
        assert done.returncode == 0, where + done.stdout
        missing = missing_output(snippet.expected, done.stdout)
        assert missing is None, f"{where}{done.stdout}\n--- the README shows: {missing!r}"
        ran_for = time.monotonic() - block_started
        assert wait_until(demo.caught_up, 30, 0.1), f"after README.md:{snippet.line}: " + (
            demo.process.log_tail()
        )
        ran.append(
            f"README.md:{snippet.line}: {ran_for:.1f} s, then "
            f"{time.monotonic() - block_started - ran_for:.1f} s until served"
        )
    took = time.monotonic() - started
    with capsys.disabled():
        print(f"\nREADME snippets: {len(ran)} run in {took:.1f} s:")
        print("\n".join(f"  {line}" for line in ran))
        print(f"{len(not_run)} not run:")
        print("\n".join(f"  {line}" for line in not_run))
    assert len(ran) >= 8
    assert sum(len(s.expected) for s in snippets if s.not_run is None) >= 10
