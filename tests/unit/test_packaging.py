"""What installs stageserve: pyproject.toml in the SPDX form setuptools asks for, and the
Bento (bentofile.yaml) with the very same runtime dependencies as the pip install."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def requirements(lines: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(line) for line in lines]
    return {re.sub(r"[-_.]+", "-", r.name).lower(): r for r in parsed}


def test_the_license_is_an_spdx_expression_setuptools_understands() -> None:
    # A table ({text = ...}) makes setuptools >= 77 print a deprecation warning per build.
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    (setuptools,) = [
        Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")
    ]
    assert "76.9" not in setuptools.specifier  # older ones refuse the string form
    assert setuptools.specifier.contains("77.0")


def test_the_bento_has_exactly_the_runtime_dependencies_of_the_pip_install() -> None:
    bentofile = yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text())
    in_bento = requirements(bentofile["python"]["packages"])
    in_pyproject = requirements(PYPROJECT["project"]["dependencies"])
    assert {n: str(r) for n, r in in_bento.items()} == {n: str(r) for n, r in in_pyproject.items()}
    # The fast HTTP stack uvicorn picks when it is installed (issue: the container ran h11).
    assert {"httptools", "uvloop"} <= in_bento.keys()
