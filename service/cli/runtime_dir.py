"""Where a gateway started by ``stageserve serve`` keeps what its workers share: the
runtime folder (webhook fan-out, replay ids, readiness) and, inside it, BentoML's home.

One folder per user and port: two live gateways cannot share a port, so a restart
reuses its folder and two gateways on one host never share one. BentoML keeps its
Prometheus multiprocess files in ``$BENTOML_HOME`` and wipes them when a server starts:
a home inside the runtime folder keeps a second gateway from erasing this one's metrics.
"""

from __future__ import annotations

import os
import tempfile


def default_runtime_dir(port: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"stageserve-{os.getuid()}-{port}")


def share_runtime_dir(env: dict[str, str], port: int) -> str:
    """Name the runtime folder and BentoML's home in ``env`` unless the user named them;
    returns the runtime folder. Nothing is created here."""
    runtime_dir = env.setdefault("STAGESERVE_RUNTIME_DIR", default_runtime_dir(port))
    env.setdefault("BENTOML_HOME", os.path.join(runtime_dir, "bentoml"))
    return runtime_dir
