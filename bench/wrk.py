"""The load generator of choice: wrk, one thread (the machine's cores belong to the
servers), HTTP/1.1 keep-alive, closed loop; bench/report.lua prints the summary as JSON.

wrk is installed with apt-get when missing and the bench runs as root; otherwise the
caller falls back to bench/loadgen.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from bench.stats import ERROR_KINDS, LoadResult

SCRIPT = Path(__file__).with_name("report.lua")
TIMEOUT = "10s"


def find_wrk(install: bool = True) -> str | None:
    """The wrk binary; installs the Debian package first when missing and root."""
    path = shutil.which("wrk")
    if path or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    _apt_get("install", "-y", "wrk")
    if not shutil.which("wrk"):  # a fresh image may have no package lists yet
        _apt_get("update")
        _apt_get("install", "-y", "wrk")
    return shutil.which("wrk")


def _apt_get(*args: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", *args], env=env, capture_output=True, check=False, timeout=600)


def version(binary: str) -> str:
    """wrk has no --version; -v prints the version first (and exits 1)."""
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "wrk"


def parse_summary(output: str) -> LoadResult:
    """The JSON line bench/report.lua prints in done(); wrk's times are microseconds."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{") and '"requests"' in line:
            data = json.loads(line)
            break
    else:
        raise ValueError(f"no summary line in wrk output:\n{output[-2000:]}")
    errors = {kind: int(data["errors"].get(kind, 0)) for kind in ERROR_KINDS}
    return LoadResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["latency_p50_us"] / 1000,
        p99_ms=data["latency_p99_us"] / 1000,
        max_ms=data["latency_max_us"] / 1000,
        errors=errors,
    )


class Wrk:
    name = "wrk"

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.version = version(binary)

    def run(
        self,
        url: str,
        body_path: Path,
        connections: int,
        duration_s: float,
        ids_file: Path | None = None,
    ) -> LoadResult:
        """One run; with ``ids_file``, each answer's X-Feedback-Id is appended to it
        (bench/report.lua then parses every response's headers, which costs wrk time)."""
        env = None if ids_file is None else {**os.environ, "BENCH_IDS_FILE": str(ids_file)}
        command = [
            self.binary, "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
            "--timeout", TIMEOUT, "-s", str(SCRIPT), url, "--", str(body_path),
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=duration_s + 60, env=env
        )
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
        return parse_summary(done.stdout)
