"""What a process serving stageserve changes around itself before it serves, and why
then.

At import of the service module (BentoML's supervisor and every worker): this process's
secrets are registered for redaction, so that nothing logged later quotes a registry
credential; its logging is taken over (service/logs/log_setup.py: BentoML has configured
it just before, and would otherwise print its own format); BentoML's fixes
(service/compat/) and uvicorn's request-head limits (service/api/head_limits.py) are
installed, because each worker builds BentoML's app and uvicorn's protocol after the
import, from the classes these patch.

In each worker, before its gateway starts: a runtime folder is named when none was given
and the logging is taken over again (whatever the import of the service did to it);
then the settings are read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, MutableMapping

from service.api import head_limits
from service.compat import bentoml_fixes
from service.config import Settings
from service.logs import log_redaction, log_setup
from service.ops.run_dirs import plain_serve_runtime_dir


def prepare_process(route_templates: Iterable[str]) -> None:
    """At import; ``route_templates`` are the routes of stageserve's app (metric labels)."""
    log_redaction.protect(os.environ)
    # A bad value is refused by the worker's Settings (a ConfigError naming it).
    log_setup.configure(log_setup.LogOptions.lenient(os.environ))
    bentoml_fixes.install(route_templates)
    head_limits.install(head_limits.HeadLimits.from_env(os.environ))


def prepare_worker(env: MutableMapping[str, str] = os.environ) -> Settings:
    """In a worker, before its gateway: the settings it runs with."""
    # `stageserve serve` gives all workers one runtime folder. Under plain
    # `bentoml serve` (a Bento container) nothing does, and workers do not inherit
    # what the supervisor sets at import; but they share the supervisor as parent.
    if "STAGESERVE_RUNTIME_DIR" not in env:  # named to be swept once unused
        env["STAGESERVE_RUNTIME_DIR"] = plain_serve_runtime_dir(os.getppid())
    settings = Settings.from_env(env)
    log_setup.configure(
        log_setup.LogOptions(settings.log_format, settings.log_level, settings.access_log)
    )
    return settings
