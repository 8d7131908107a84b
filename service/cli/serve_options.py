"""The options of ``stageserve serve`` (most shared by ``demo``) and the environment
they become: the workers read their settings from the environment only
(service/config.py), so a flag is an environment variable set for them."""

from __future__ import annotations

import argparse

from service.cli.flags import (
    add_model_flag,
    log_level,
    non_empty,
    poll_seconds,
    port_number,
    secret_file,
    target_text,
    worker_number,
)
from service.config import CONTROLLER_CHOICES, ON_EMPTY_CHOICES
from service.logs.log_format import LOG_FORMATS


def add_serve_options(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    """Add the options; ``demo`` keeps only those the demo lets the user choose."""
    parser.add_argument(
        "--host", type=non_empty, default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=port_number, default=3000, help="port (default 3000)")
    parser.add_argument(
        "--workers", type=worker_number, default=None, help="worker processes (default 1)"
    )
    parser.add_argument(
        "--poll-interval", type=poll_seconds, default=None, help="seconds between polls (2)"
    )
    add_secret_file_options(parser)
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="log lines as text (default) or json, one object per line, for every process "
        "and library",
    )
    parser.add_argument(
        "--log-level",
        type=log_level,
        default=None,
        metavar="LEVEL",
        help="level of stageserve's own logs (default INFO); DEBUG shows the libraries' "
        "debug records too, higher levels never quiet the libraries' warnings",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per prediction request (stageserve.access)",
    )
    if demo:
        return
    parser.add_argument(
        "--registry-uri",
        type=non_empty,
        default=None,
        help="MLflow registry/tracking URI (default: $MLFLOW_TRACKING_URI)",
    )
    add_model_flag(parser, "model to serve (repeatable)")
    parser.add_argument(
        "--target",
        action="append",
        type=target_text,
        default=[],
        metavar="TARGET",
        help="stage, @alias or version to serve (repeatable; default Production then Staging; "
        "the first is required for readiness)",
    )
    parser.add_argument(
        "--model-dir", type=non_empty, default=None, help="where downloaded versions are kept"
    )
    parser.add_argument(
        "--no-smoke-test", action="store_true", help="do not smoke-test versions before swapping"
    )
    parser.add_argument(
        "--write-validation",
        action="store_true",
        help="write each smoke test's verdict on the model version as stageserve.validation "
        "tags (the registry credentials must allow writes)",
    )
    parser.add_argument(
        "--on-empty",
        choices=ON_EMPTY_CHOICES,
        default=None,
        help="when the registry names no version for a required target any more (model "
        "deleted or renamed, stage or alias emptied): keep serving the version it has, "
        "flagged stale (default), or unload it",
    )
    parser.add_argument(
        "--controller",
        choices=CONTROLLER_CHOICES,
        default=None,
        help="embedded (default): one worker runs the rollout controller; off: a fleet "
        "runs `stageserve controller` instead",
    )


# Secrets as files (never on the command line, where ``ps`` shows them): each flag sets
# the variable its value's file is read from (service/config.py's ``secret``).
SECRET_FILE_FLAGS = (
    (
        "--admin-token-file",
        "STAGESERVE_ADMIN_TOKEN_FILE",
        "file holding the bearer token for admin writes",
    ),
    (
        "--webhook-secret-file",
        "STAGESERVE_WEBHOOK_SECRET_FILE",
        "file holding the MLflow webhook's secret",
    ),
    (
        "--request-id-key-file",
        "STAGESERVE_REQUEST_ID_KEY_FILE",
        "file holding the key that signs request ids, the same for every replica",
    ),
    (
        "--feedback-token-file",
        "STAGESERVE_FEEDBACK_TOKEN_FILE",
        "file holding the bearer token feedback posts need",
    ),
)


def _dest(flag: str) -> str:
    """Where argparse keeps a flag's value: ``--admin-token-file`` -> ``admin_token_file``."""
    return flag.removeprefix("--").replace("-", "_")


def add_secret_file_options(parser: argparse.ArgumentParser) -> None:
    """The ``SECRET_FILE_FLAGS``."""
    for flag, env_var, what in SECRET_FILE_FLAGS:
        parser.add_argument(
            flag, type=secret_file, default=None, metavar="PATH", help=f"{what} (sets {env_var})"
        )


def serve_env(args: argparse.Namespace, base: dict[str, str]) -> dict[str, str]:
    """The environment the gateway's workers read their settings from."""
    env = dict(base)
    if getattr(args, "registry_uri", None):
        env["STAGESERVE_REGISTRY_URI"] = args.registry_uri
    if getattr(args, "model", None):
        env["STAGESERVE_MODELS"] = ",".join(args.model)
    if getattr(args, "target", None):
        env["STAGESERVE_TARGETS"] = ",".join(args.target)
    if args.workers is not None:
        env["STAGESERVE_WORKERS"] = str(args.workers)
    if args.poll_interval is not None:
        env["STAGESERVE_POLL_INTERVAL"] = str(args.poll_interval)
    if getattr(args, "model_dir", None):
        env["STAGESERVE_MODEL_DIR"] = args.model_dir
    if getattr(args, "no_smoke_test", False):
        env["STAGESERVE_SMOKE_TEST"] = "false"
    if getattr(args, "write_validation", False):
        env["STAGESERVE_WRITE_VALIDATION"] = "true"
    if getattr(args, "log_format", None):
        env["STAGESERVE_LOG_FORMAT"] = args.log_format
    if getattr(args, "log_level", None):
        env["STAGESERVE_LOG_LEVEL"] = args.log_level
    if getattr(args, "access_log", False):
        env["STAGESERVE_ACCESS_LOG"] = "true"
    if getattr(args, "on_empty", None):
        env["STAGESERVE_ON_EMPTY"] = args.on_empty
    if getattr(args, "controller", None):
        env["STAGESERVE_CONTROLLER"] = args.controller
    for flag, env_var, _ in SECRET_FILE_FLAGS:
        if getattr(args, _dest(flag), None):
            env[env_var] = getattr(args, _dest(flag))
    return env
