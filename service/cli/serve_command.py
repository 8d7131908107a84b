"""``stageserve serve``: check everything a user can get wrong, then become
``bentoml serve`` (``exec``: signals go straight to BentoML, no wrapper process).

The checks run before anything touches the runtime folder: settings that cannot be
used, no registry, a busy port, another gateway on the same runtime folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from registry_watcher.redact import configured_secrets, redact_text
from service.cli.common import NO_REGISTRY, resolve_paths, say
from service.cli.gateway_guard import GuardError, check_port_free, hold_runtime_dir
from service.cli.runtime_dir import share_runtime_dir
from service.config import ConfigError, Settings

SERVICE_IMPORT = "service.bento_service:StageServe"
REPO_ROOT = str(Path(__file__).resolve().parents[2])


def bentoml_serve_command(host: str, port: int) -> list[str]:
    """Workers run in the checkout (``--working-dir``), where the service imports from."""
    return [
        sys.executable, "-m", "bentoml", "serve", SERVICE_IMPORT,
        "--host", host, "--port", str(port), "--working-dir", REPO_ROOT,
    ]  # fmt: skip


def run_gateway(env: dict[str, str], host: str, port: int) -> int:
    """Validate the settings, then become ``bentoml serve``; returns an exit code only
    when it refuses (2: unusable settings, 1: port or runtime folder taken)."""
    # Workers run in the checkout (--working-dir): relative paths mean the caller's.
    env = resolve_paths(env, os.getcwd())
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        say(str(exc))
        return 2
    if not settings.registry_uri:
        say(NO_REGISTRY)
        return 2
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    runtime_dir = share_runtime_dir(env, port)
    try:  # before BentoML wipes anything in the runtime folder of a running gateway
        check_port_free(host, port)
        hold_runtime_dir(runtime_dir)
    except GuardError as exc:
        say(str(exc))
        return 1
    banner = (
        f"stageserve: serving {', '.join(settings.models)} "
        f"({', '.join(t.text for t in settings.targets)}) from {settings.registry_uri} "
        f"on http://{host}:{port}"
    )
    print(redact_text(banner, configured_secrets(env)), file=sys.stderr, flush=True)
    os.execve(sys.executable, bentoml_serve_command(host, port), env)
    return 0  # not reached
