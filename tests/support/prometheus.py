"""A real Prometheus server for the tests: Debian's `prometheus` binary, run with
deploy/prometheus/prometheus.yml and alerts.yml on a 127.0.0.1 port, scraping the given
gateways (and, when given, `stageserve controller` metrics ports) every second, its data
in a temporary folder; always stopped.

Without the binary a test fails (it is never skipped): .ci/run installs the package.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.processes import REPO_ROOT, free_port, wait_until

CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"


class PrometheusServer:
    """`prometheus` on 127.0.0.1 scraping ``targets`` (host:port) as job "stageserve", and
    ``controller_targets`` as job "stageserve-controller" (the job is dropped without
    them: the file's placeholder target would only fail to scrape)."""

    def __init__(
        self, root: Path, targets: Sequence[str], controller_targets: Sequence[str] = ()
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail(
                "the prometheus server is not installed: run `apt-get install prometheus` "
                "(Debian's package; .ci/run installs it)",
                pytrace=False,
            )
        self.root = root
        self.port = free_port()
        self.log = root / "prometheus.log"
        config = yaml.safe_load(CONFIG.read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [str(ALERTS)]
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        wanted = {"stageserve": targets, "stageserve-controller": controller_targets}
        for name, job_targets in wanted.items():
            job = jobs[name]
            job["scrape_interval"] = "1s"
            job["scrape_timeout"] = "1s"
            job["static_configs"] = [{"targets": list(job_targets)}]
        config["scrape_configs"] = [job for name, job in jobs.items() if wanted.get(name, True)]
        self.config = root / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.command = [
            binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_tail()}")
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200

        if not wait_until(ready, timeout, 0.1, reraise=RuntimeError):
            self.stop()
            raise RuntimeError(f"prometheus did not become ready:\n{self.log_tail()}")
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query: [{"metric": {labels}, "value": [time, "value"]}, ...]."""
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        return data["result"]

    def value(self, promql: str) -> float | None:
        """The single value of an instant query, or None while it has no result."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None
