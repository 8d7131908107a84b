"""The bench's registry: SQLite backend, local artifact root, built fresh in the work
folder on every run so that each run starts from the same stages.

Models: ``bench-ridge`` (Ridge) and ``bench-forest`` (100-tree random forest) in
Production, and ``bench-swap``: three Ridge versions whose alphas differ enough that
their predictions tell them apart, for the swap benchmark. The models are built by the
package's one builder (service/cli/diabetes_registry.py), as the demo's and the tests'.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

from service.cli.diabetes_registry import (
    DiabetesRegistry,
    ForestRecipe,
    LocalRegistry,
    RidgeRecipe,
)

RIDGE = "bench-ridge"
FOREST = "bench-forest"
SWAP = "bench-swap"
SWAP_ALPHAS = (0.01, 1.0, 100.0)
EXPERIMENT = "stageserve-bench"


def promote(registry: DiabetesRegistry, name: str, version: str) -> None:
    """Move a version to Production, archiving whatever was there (what a promotion does)."""
    registry.transition(name, version, "Production", archive_others=True)


def build(root: Path) -> tuple[DiabetesRegistry, list[str]]:
    """Create the registry from scratch; returns it and the bench-swap versions (the
    first one in Production)."""
    # MLflow logs every registration at INFO; the bench's own progress is enough.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    if root.exists():
        shutil.rmtree(root)
    folder = LocalRegistry(root.resolve())
    folder.create()
    registry = DiabetesRegistry(folder.tracking_uri, EXPERIMENT, folder.artifact_root.as_uri())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        promote(registry, RIDGE, registry.register(RIDGE, RidgeRecipe(alpha=1.0)).version)
        promote(registry, FOREST, registry.register(FOREST, ForestRecipe(trees=100)).version)
        swaps = [registry.register(SWAP, RidgeRecipe(alpha=a)).version for a in SWAP_ALPHAS]
        promote(registry, SWAP, swaps[0])
    return registry, swaps
