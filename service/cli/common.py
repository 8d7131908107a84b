"""What the `stageserve` subcommands share: the registry option, paths resolved against
the caller's directory, and messages that never carry a secret."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from registry_watcher.redact import SECRET_FILE_ENV_VARS, configured_secrets, redact_text
from service import config

NO_REGISTRY = "no registry: set MLFLOW_TRACKING_URI or pass --registry-uri"

# Settings holding a registry URI (a database URI, a file: URI or a plain path)...
URI_SETTINGS = ("STAGESERVE_REGISTRY_URI", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
# ... and settings holding a folder or a file.
PATH_SETTINGS = (
    "STAGESERVE_MODEL_DIR",
    "STAGESERVE_RUNTIME_DIR",
    "BENTOML_HOME",
    *SECRET_FILE_ENV_VARS,
    "STAGESERVE_INFERENCE_LOG_DIR",
)
# Tracking URIs without a scheme that MLflow does not read as a local path.
_NOT_PATHS = ("databricks", "databricks-uc")
_SQLITE = re.compile(r"^(?P<scheme>sqlite(?:\+\w+)?):///(?P<path>[^?]*)(?P<query>\?.*)?$")


def registry_option() -> argparse.ArgumentParser:
    """A parent parser adding ``--registry-uri`` (usable after the action's name)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--registry-uri", default=None, help="registry URI (default: $MLFLOW_TRACKING_URI)"
    )
    return parent


def registry_actions(sub: Any, command: str, help: str) -> Callable[..., Any]:
    """Adds ``command`` whose actions all take ``--registry-uri``; returns the function
    adding one action: ``add("start", help="...")`` -> its parser."""
    common = registry_option()
    actions = sub.add_parser(command, help=help).add_subparsers(dest="action", required=True)

    def add(action: str, **kwargs: Any) -> Any:
        return actions.add_parser(action, parents=[common], **kwargs)

    return add


def absolute_path(path: str, cwd: str) -> str:
    """A folder as the caller means it: relative to the caller's directory, ``~`` expanded."""
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def absolute_uri(uri: str, cwd: str) -> str:
    """A registry URI whose local file, if any, is named absolutely.

    The gateway's workers run in another directory than the caller's, so
    ``sqlite:///mlflow.db``, ``file:mlruns`` or ``./mlruns`` must be made absolute
    before they leave the command line. Remote URIs come back unchanged.
    """
    sqlite = _SQLITE.match(uri)
    if sqlite:
        path = sqlite.group("path")
        if path in ("", ":memory:") or path.startswith("/"):
            return uri
        absolute = absolute_path(path, cwd)
        return f"{sqlite.group('scheme')}:///{absolute}{sqlite.group('query') or ''}"
    if uri.startswith("file:") and not uri.startswith("file://"):
        return Path(absolute_path(uri[len("file:") :], cwd)).as_uri()
    if uri in _NOT_PATHS or urlsplit(uri).scheme:
        return uri
    return absolute_path(uri, cwd)


def resolve_paths(env: Mapping[str, str], cwd: str) -> dict[str, str]:
    """The environment with every path-valued setting made absolute against ``cwd``.

    Done once, by the command the user typed, for every subcommand: what a relative
    path means cannot depend on where BentoML later runs the workers.
    """
    out = dict(env)
    for name in URI_SETTINGS:
        if out.get(name, "").strip():
            out[name] = absolute_uri(out[name].strip(), cwd)
    for name in PATH_SETTINGS:
        if out.get(name, "").strip():
            out[name] = absolute_path(out[name].strip(), cwd)
    return out


def registry_uri(flag: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The registry a subcommand reads (precedence: service/config.py), its local file
    named absolutely."""
    uri = config.registry_uri(os.environ if env is None else env, flag)
    return absolute_uri(uri, os.getcwd()) if uri else None


def say(message: str) -> None:
    """One line to stderr, with no credential in it (errors quote registry URLs)."""
    clean = redact_text(message, configured_secrets(os.environ))
    print(f"stageserve: {clean}", file=sys.stderr)
