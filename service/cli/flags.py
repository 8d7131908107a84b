"""Types of the ``stageserve`` flags: an impossible value is refused at once, in one line
naming the flag (argparse adds the flag's name to the message raised here).

Floors shared with the environment variables the flags set come from service/config.py.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from registry_watcher.targets import InvalidTarget, parse_target, require_mlflow_stage
from service.config import MIN_POLL_INTERVAL_S, MIN_WORKERS, load_secret_file
from service.logs.log_levels import LOG_LEVELS

Number = TypeVar("Number", int, float)


def number_flag(
    parse: Callable[[str], Number],
    accept: Callable[[Number], bool],
    not_a_number: str,
    refused: str,
) -> Callable[[str], Number]:
    """A flag type reading a number with ``parse`` and keeping it if ``accept``s it.

    ``not_a_number`` and ``refused`` are the messages, with ``{text}`` standing for the
    value as typed (quoted).
    """

    def flag(text: str) -> Number:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(not_a_number.format(text=repr(text))) from None
        if not accept(value):
            raise argparse.ArgumentTypeError(refused.format(text=repr(text)))
        return value

    return flag


port_number = number_flag(
    int, lambda port: 1 <= port <= 65535, "{text} is not a port number",
    "{text} is not a port number (1-65535)",
)  # fmt: skip
worker_number = number_flag(
    int, lambda count: count >= MIN_WORKERS, "{text} is not a whole number",
    f"{{text}}: at least {MIN_WORKERS} worker is needed",
)  # fmt: skip
poll_seconds = number_flag(
    float, lambda seconds: math.isfinite(seconds) and seconds >= MIN_POLL_INTERVAL_S,
    "{text} is not a number of seconds",
    f"{{text}}: give a finite number of seconds, at least {MIN_POLL_INTERVAL_S}",
)  # fmt: skip


def target_text(text: str) -> str:
    """A target as typed: a known MLflow stage, an @alias or a version number."""
    try:
        return require_mlflow_stage(parse_target(text)).text
    except InvalidTarget as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def log_level(text: str) -> str:
    """A log level by name, in any case: DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a log level (one of {', '.join(LOG_LEVELS)})"
        )
    return level


def model_name(text: str) -> str:
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError("a model name cannot be empty")
    if "," in name:
        raise argparse.ArgumentTypeError(f"{text!r}: repeat --model for each model")
    return name


def add_model_flag(parser: argparse.ArgumentParser, help: str) -> None:
    """``--model NAME``, repeatable (serve, controller)."""
    parser.add_argument(
        "--model", action="append", type=model_name, default=[], metavar="NAME", help=help
    )


def non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("cannot be empty")
    return text.strip()


def secret_file(text: str) -> str:
    """A file holding a secret, named absolutely (the workers run in another folder);
    refused at once when missing, unreadable or empty. The secret itself stays in the
    file: the workers read it from there."""
    path = os.path.abspath(os.path.expanduser(text.strip()))
    try:
        load_secret_file(path)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return path


def gateway_url(text: str) -> str:
    """A gateway's base URL, ``http(s)://host[:port]``, without a trailing slash."""
    url = text.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give the gateway's URL, e.g. http://127.0.0.1:3000"
        )
    return url


timeout_seconds = number_flag(
    float, lambda seconds: math.isfinite(seconds) and seconds > 0,
    "{text} is not a number of seconds", "{text}: give a finite number of seconds above 0",
)  # fmt: skip
