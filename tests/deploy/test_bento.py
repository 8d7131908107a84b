"""`bentoml build` of the repository's bentofile.yaml works and the Bento holds the
gateway: what `bentoml containerize` (and so the Kubernetes image) is made of."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "registry_watcher")


def test_bentoml_build_packs_the_gateway(tmp_path: Path) -> None:
    home = tmp_path / "bentoml"
    env = dict(
        os.environ,
        BENTOML_HOME=str(home),
        BENTOML_DO_NOT_TRACK="true",
        # Building imports the service module, which makes a runtime folder: keep it here.
        STAGESERVE_RUNTIME_DIR=str(tmp_path / "run"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", str(REPO_ROOT)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    built = [p.parent for p in (home / "bentos" / "stageserve").glob("*/bento.yaml")]
    assert len(built) == 1, built
    bento = built[0]
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["service"] == "service.bento_service:StageServe"
    assert info["name"] == "stageserve"
    assert info["version"] == bento.name

    src = bento / "src"
    assert (src / "service" / "bento_service.py").is_file()
    assert (src / "registry_watcher").is_dir()
    # Every module of the gateway is in the Bento, and nothing else of the repository.
    for package in PACKAGES:
        in_repo = {p.relative_to(REPO_ROOT) for p in (REPO_ROOT / package).rglob("*.py")}
        in_bento = {p.relative_to(src) for p in (src / package).rglob("*.py")}
        assert in_bento == in_repo, package
    assert {p.name for p in src.iterdir()} <= {*PACKAGES, "bentofile.yaml"}

    # The pinned runtime versions reach the image's requirements, and with them every
    # runtime dependency of the pip install: the same fast HTTP stack (httptools, uvloop).
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
    assert "mlflow==3.17.2" in requirements
    assert "bentoml==1.4.39" in requirements
    assert {"httptools>=0.6", "uvloop>=0.19"} <= set(requirements)
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert set(pyproject["project"]["dependencies"]) <= set(requirements)
    envs = {e["name"]: e["value"] for e in info.get("envs", [])}
    assert envs.get("STAGESERVE_TARGETS") == "Production,Staging"

    # The image `bentoml containerize` makes runs as the user the Kubernetes Deployment
    # declares (runAsUser), through the entrypoint that turns `serve ...` into
    # `bentoml serve ... $BENTO_PATH`.
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    uid = re.search(r"^ARG BENTO_USER_UID=(\d+)$", dockerfile, re.MULTILINE)
    assert uid, "no BENTO_USER_UID in the generated Dockerfile"
    deployment = yaml.safe_load(
        (REPO_ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text()
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid.group(1))
    assert pod["containers"][0]["args"][0] == "serve"
    entrypoint = (bento / "env" / "docker" / "entrypoint.sh").read_text()
    assert 'exec bentoml "$@" "$BENTO_PATH"' in entrypoint
