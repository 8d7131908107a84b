"""``stageserve --version``: stageserve's version and those of what it runs on (MLflow,
BentoML, Python), which a bug report needs together. Read from the installed packages'
metadata, so it says what is installed, not what a file in the checkout claims."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

# The packages the line names, after stageserve itself.
RUNS_ON = ("mlflow", "bentoml")


def installed_version(package: str, lookup: Callable[[str], str] = metadata.version) -> str:
    """A package's installed version, or "not installed"."""
    try:
        return lookup(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def version_line(lookup: Callable[[str], str] = metadata.version) -> str:
    """E.g. ``stageserve 0.1.0 (mlflow 3.17.2, bentoml 1.4.39, python 3.11.7)``."""
    parts = [f"{name} {installed_version(name, lookup)}" for name in RUNS_ON]
    parts.append(f"python {platform.python_version()}")
    return f"stageserve {installed_version('stageserve', lookup)} ({', '.join(parts)})"


class VersionAction(argparse.Action):
    """``--version``: print the line and exit 0; the metadata is read only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(version_line(), file=sys.stdout, flush=True)
        parser.exit(0)
