"""Diabetes models in an MLflow registry: the one builder of the demo's, the tests' and
the bench's registries.

A *recipe* says which scikit-learn model to fit on scikit-learn's bundled diabetes data
(nothing is downloaded) and on which features; ``DiabetesRegistry.register`` fits it,
logs it the same way for every caller (input example, named requirements)
and registers it. Stages and aliases are set by the caller: which versions go where is
the caller's recipe (``service/cli/demo.py``, the bench, a test), not this module's.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

ALL_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
# Naming the requirements skips MLflow's slow requirement inference.
REQUIREMENTS = ("scikit-learn", "pandas", "numpy")
# MLflow 3.17 saves scikit-learn models with skops, which refuses to load types it does
# not trust; a forest's trees are such a type. The list is stored in the MLmodel file.
FOREST_TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)


def diabetes_data() -> tuple[Any, Any]:
    """Features (a DataFrame of 10 float columns) and target of the diabetes data set."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return data.data, data.target


class Recipe(Protocol):
    """What to fit: a scikit-learn regressor on some of the diabetes features."""

    @property
    def features(self) -> tuple[str, ...]: ...

    def estimator(self) -> Any:
        """A new, unfitted estimator."""
        ...

    def run_name(self, model_name: str) -> str: ...

    def params(self) -> dict[str, Any]:
        """What the run records about the recipe."""
        ...

    def log_options(self) -> dict[str, Any]:
        """Extra arguments to ``mlflow.sklearn.log_model``."""
        ...


@dataclass(frozen=True)
class RidgeRecipe:
    """A Ridge regression: the alpha tells versions apart by their answers."""

    alpha: float = 1.0
    features: tuple[str, ...] = ALL_FEATURES

    def estimator(self) -> Any:
        from sklearn.linear_model import Ridge

        return Ridge(alpha=self.alpha)

    def run_name(self, model_name: str) -> str:
        return f"{model_name}-{len(self.features)}-features"

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "features": ",".join(self.features)}

    def log_options(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class ForestRecipe:
    """A random forest, seeded (the same trees every time), one job (a fair CPU cost)."""

    trees: int = 100
    seed: int = 0
    features: tuple[str, ...] = ALL_FEATURES

    def estimator(self) -> Any:
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=self.trees, random_state=self.seed, n_jobs=1)

    def run_name(self, model_name: str) -> str:
        return f"{model_name}-forest-{self.trees}"

    def params(self) -> dict[str, Any]:
        return {"trees": self.trees, "seed": self.seed, "features": ",".join(self.features)}

    def log_options(self) -> dict[str, Any]:
        return {"skops_trusted_types": list(FOREST_TRUSTED_TYPES)}


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered version and the fitted estimator behind it (to compute answers)."""

    name: str
    version: str
    model: Any
    features: tuple[str, ...]


@dataclass(frozen=True)
class LocalRegistry:
    """An MLflow registry kept in one folder: a SQLite database and an artifact root."""

    root: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.root / "artifacts"

    def create(self) -> None:
        self.artifact_root.mkdir(parents=True, exist_ok=True)


@dataclass
class DiabetesRegistry:
    """Registers diabetes models in the registry at ``uri``, through MlflowClient, the way
    an MLOps engineer would. Runs go to ``experiment`` (created on first use, with
    ``artifact_location`` if given), or to the default experiment when it is None."""

    uri: str
    experiment: str | None = None
    artifact_location: str | None = None
    _experiment_id: str | None = field(default=None, init=False, repr=False)

    @cached_property
    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def use(self) -> None:
        """Point MLflow's global URIs here: logging and registration use them, and they
        may point at another registry (another test's, or a server that is gone)."""
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)

    def has_model(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            return False
        return True

    def _experiment(self) -> str | None:
        if self.experiment is None or self._experiment_id is not None:
            return self._experiment_id
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            self._experiment_id = str(found.experiment_id)
        else:
            self._experiment_id = str(
                self.client.create_experiment(
                    self.experiment, artifact_location=self.artifact_location
                )
            )
        return self._experiment_id

    def register(self, name: str, recipe: Recipe) -> RegisteredVersion:
        """Fit the recipe, log it with an input example (MLflow infers the signature
        from it, and the model folder gets serving_input_example.json, which the gateway
        smoke-tests) and register it."""
        import mlflow

        X, y = diabetes_data()
        X = X[list(recipe.features)]
        model = recipe.estimator().fit(X, y)
        self.use()
        experiment_id = self._experiment()
        with mlflow.start_run(run_name=recipe.run_name(name), experiment_id=experiment_id):
            mlflow.log_params(recipe.params())
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=X.head(2),
                registered_model_name=name,
                pip_requirements=list(REQUIREMENTS),
                **recipe.log_options(),
            )
        return RegisteredVersion(name, str(info.registered_model_version), model, recipe.features)

    def transition(self, name: str, version: str, stage: str, archive_others: bool = False) -> None:
        """Move a version to a stage (deprecated in MLflow, still fully supported);
        ``archive_others`` archives whatever was there, as a promotion does."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.client.transition_model_version_stage(
                name, version, stage, archive_existing_versions=archive_others
            )

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)
