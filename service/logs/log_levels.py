"""Which logger logs at which level, from ``--log-level`` (STAGESERVE_LOG_LEVEL).

The level is stageserve's own: WARNING or ERROR quiet stageserve's loggers and leave
the libraries at their defaults (BentoML's lifecycle lines at INFO, everything else at
WARNING), so a library's warnings and errors are never silenced by it. DEBUG is the one
level that reaches the libraries too: an operator asking for DEBUG gets BentoML's,
uvicorn's, MLflow's and every other library's debug records. uvicorn's own access log
stays off at every level (stageserve's access log, ``--access-log``, replaces it), and
stageserve's access log logs whenever it is turned on, whatever the level. Pure.
"""

from __future__ import annotations

import logging

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

STAGESERVE = "stageserve"
ACCESS = "stageserve.access"
UVICORN_ACCESS = "uvicorn.access"
# The library loggers BentoML and MLflow configure with levels of their own ("" is root).
LIBRARIES = ("", "bentoml", "uvicorn.error", "circus", "mlflow")


def logger_levels(level: str, access_log: bool = False) -> dict[str, int]:
    """Logger name -> level for a process of the gateway ("" is the root logger)."""
    number = logging.getLevelName(level)
    if level not in LOG_LEVELS or not isinstance(number, int):
        raise ValueError(f"{level!r} is not a log level ({', '.join(LOG_LEVELS)})")
    # MLflow's own default (its handler is replaced by the process's one, see log_setup).
    levels = {STAGESERVE: number, UVICORN_ACCESS: logging.WARNING, "mlflow": logging.INFO}
    if number == logging.DEBUG:
        levels.update(dict.fromkeys(LIBRARIES, logging.DEBUG))
    if access_log:
        levels[ACCESS] = min(number, logging.INFO)
    return levels
