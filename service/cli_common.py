"""What the `stageserve` subcommands that talk to the registry share."""

from __future__ import annotations

import argparse
import os
import sys

NO_REGISTRY = "no registry: set MLFLOW_TRACKING_URI or pass --registry-uri"


def registry_option() -> argparse.ArgumentParser:
    """A parent parser adding ``--registry-uri`` (usable after the action's name)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--registry-uri", default=None, help="registry URI (default: $MLFLOW_TRACKING_URI)"
    )
    return parent


def registry_uri(flag: str | None) -> str | None:
    return (
        flag or os.environ.get("STAGESERVE_REGISTRY_URI") or os.environ.get("MLFLOW_TRACKING_URI")
    )


def say(message: str) -> None:
    print(f"stageserve: {message}", file=sys.stderr)
