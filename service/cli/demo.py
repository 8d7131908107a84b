"""The embedded demo: a local SQLite MLflow registry seeded with a diabetes model.

Version 1 (Ridge on four features) sits in Production, version 2 (Ridge on all ten
features) in Staging, both logged with an input example so that their swaps are
smoke-tested. scikit-learn ships the diabetes data set: nothing is downloaded.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("stageserve.demo")

DEMO_MODEL = "diabetes"
V1_FEATURES = ("age", "sex", "bmi", "bp")
ALL_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
EXPERIMENT = "stageserve-demo"


@dataclass(frozen=True)
class DemoRegistry:
    root: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.root / "artifacts"


def diabetes_frame():
    """Features and target of scikit-learn's bundled diabetes data set."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return data.data, data.target


def log_ridge(
    features: tuple[str, ...],
    registered_name: str,
    alpha: float = 1.0,
) -> str:
    """Train a Ridge on the given features, log it with an input example, register it.

    Returns the new version number. Uses the current tracking URI and experiment.
    """
    import mlflow
    from sklearn.linear_model import Ridge

    X, y = diabetes_frame()
    X = X[list(features)]
    model = Ridge(alpha=alpha).fit(X, y)
    with mlflow.start_run(run_name=f"{registered_name}-{len(features)}-features"):
        mlflow.log_params({"alpha": alpha, "features": ",".join(features)})
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=X.head(2),
            registered_model_name=registered_name,
            # Naming the requirements skips MLflow's slow requirement inference.
            pip_requirements=["scikit-learn", "pandas", "numpy"],
        )
    return str(info.registered_model_version)


def transition(name: str, version: str, stage: str) -> None:
    """Move a version to a stage (deprecated in MLflow, still fully supported)."""
    from mlflow import MlflowClient

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        MlflowClient().transition_model_version_stage(name, version, stage)


def seed(registry: DemoRegistry) -> bool:
    """Create and seed the demo registry unless it already holds the demo model.

    Returns True when it seeded, False when the registry was already there.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    registry.root.mkdir(parents=True, exist_ok=True)
    registry.artifact_root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    client = MlflowClient()
    try:
        client.get_registered_model(DEMO_MODEL)
        return False
    except MlflowException:
        pass
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        experiment_id = client.create_experiment(
            EXPERIMENT, artifact_location=registry.artifact_root.as_uri()
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    v1 = log_ridge(V1_FEATURES, DEMO_MODEL)
    transition(DEMO_MODEL, v1, "Production")
    v2 = log_ridge(ALL_FEATURES, DEMO_MODEL)
    transition(DEMO_MODEL, v2, "Staging")
    log.info("seeded %s: v%s in Production, v%s in Staging", DEMO_MODEL, v1, v2)
    return True
