"""A real MLflow registry for the bench: SQLite backend, local artifact root, built fresh
in the work folder on every run so that each run starts from the same stages.

Models: ``bench-ridge`` (Ridge) and ``bench-forest`` (100-tree random forest) in
Production, and ``bench-swap``: three Ridge versions whose alphas differ enough that
their predictions tell them apart, for the swap benchmark.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RIDGE = "bench-ridge"
FOREST = "bench-forest"
SWAP = "bench-swap"
SWAP_ALPHAS = (0.01, 1.0, 100.0)
EXPERIMENT = "stageserve-bench"
# MLflow 3.17 saves scikit-learn models with skops, which refuses to load types it does
# not trust; a forest's trees are such a type. The list is stored in the MLmodel file.
FOREST_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


@dataclass(frozen=True)
class BenchRegistry:
    root: Path

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.root / "artifacts"


def diabetes() -> tuple[Any, Any]:
    """scikit-learn's bundled diabetes data (10 float columns): nothing is downloaded."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return data.data, data.target


def _log(model: Any, name: str, **extra: Any) -> str:
    """Log and register a fitted model with a signature and an input example (so the
    model folder has serving_input_example.json); returns the new version."""
    import mlflow
    from mlflow.models import infer_signature

    X, _ = diabetes()
    with mlflow.start_run(run_name=name):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X, model.predict(X)),
            input_example=X.head(2),
            registered_model_name=name,
            # Naming the requirements skips MLflow's slow requirement inference.
            pip_requirements=["scikit-learn", "pandas", "numpy"],
            **extra,
        )
    return str(info.registered_model_version)


def transition(registry: BenchRegistry, name: str, version: str, stage: str) -> None:
    """Move a version to a stage, archiving whatever was there (what a promotion does)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, version, stage, archive_existing_versions=True)


def build(root: Path) -> tuple[BenchRegistry, list[str]]:
    """Create the registry from scratch; returns it and the bench-swap versions (the
    first one in Production)."""
    import mlflow
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge

    # MLflow logs every registration at INFO; the bench's own progress is enough.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    if root.exists():
        shutil.rmtree(root)
    registry = BenchRegistry(root.resolve())
    registry.artifact_root.mkdir(parents=True)
    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    experiment_id = mlflow.MlflowClient().create_experiment(
        EXPERIMENT, artifact_location=registry.artifact_root.as_uri()
    )
    mlflow.set_experiment(experiment_id=experiment_id)
    X, y = diabetes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ridge = _log(Ridge(alpha=1.0).fit(X, y), RIDGE)
        transition(registry, RIDGE, ridge, "Production")
        forest_model = RandomForestRegressor(n_estimators=100, random_state=0, n_jobs=1)
        forest = _log(forest_model.fit(X, y), FOREST, skops_trusted_types=FOREST_TRUSTED_TYPES)
        transition(registry, FOREST, forest, "Production")
        swaps = [_log(Ridge(alpha=alpha).fit(X, y), SWAP) for alpha in SWAP_ALPHAS]
        transition(registry, SWAP, swaps[0], "Production")
    return registry, swaps
