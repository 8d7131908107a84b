"""The pool knows a loaded version only as a Servable: importing it pulls in nothing of
the request path (no micro-batcher, no codec, no MLflow scoring server)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from registry_watcher.state import VersionRef
from service.inference.loaded_version import LoadedVersion
from service.lifecycle.servable import Servable

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_pool_pulls_in_no_request_path_module() -> None:
    code = (
        "import json, sys, service.lifecycle.pool; print(json.dumps([m for m in sys.modules "
        "if 'batch' in m or 'protocol' in m or 'scoring_server' in m "
        "or m.startswith('service.inference')]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


def test_a_loaded_version_is_a_servable() -> None:
    ref = VersionRef("m", 1, "s3://b/m/1", None)
    servable: Servable = LoadedVersion(
        ref=ref, model=None, metadata=None, input_schema=None, with_params=False, local_dir="."
    )
    assert servable.ref is ref
