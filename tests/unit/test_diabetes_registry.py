"""The one builder of diabetes registries (demo, tests, bench): what each recipe fits and
records, and a registration into a real local SQLite registry."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from service.cli import demo
from service.cli.diabetes_registry import (
    ALL_FEATURES,
    FOREST_TRUSTED_TYPES,
    DiabetesRegistry,
    ForestRecipe,
    LocalRegistry,
    RidgeRecipe,
    diabetes_data,
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """One local registry for the module (creating one takes seconds): the demo's,
    seeded twice. The builder points MLflow's global URIs at it: put back after."""
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    folder = demo.DemoRegistry(tmp_path_factory.mktemp("registry") / "demo-registry")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert demo.seed(folder) is True
        assert demo.seed(folder) is False
    yield folder
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


def test_the_data_is_the_bundled_diabetes_set() -> None:
    X, y = diabetes_data()
    assert tuple(X.columns) == ALL_FEATURES
    assert len(X) == len(y) == 442


def test_a_ridge_recipe_fits_its_alpha_on_its_features() -> None:
    recipe = RidgeRecipe(alpha=0.5, features=("age", "bmi"))
    estimator = recipe.estimator()
    assert type(estimator).__name__ == "Ridge" and estimator.alpha == 0.5
    assert recipe.run_name("m") == "m-2-features"
    assert recipe.params() == {"alpha": 0.5, "features": "age,bmi"}
    assert recipe.log_options() == {}


def test_a_forest_recipe_is_seeded_and_trusts_its_trees() -> None:
    estimator = ForestRecipe(trees=7, seed=3).estimator()
    assert type(estimator).__name__ == "RandomForestRegressor"
    assert (estimator.n_estimators, estimator.random_state, estimator.n_jobs) == (7, 3, 1)
    options = ForestRecipe().log_options()
    assert options == {"skops_trusted_types": list(FOREST_TRUSTED_TYPES)}


def test_a_local_registry_is_a_folder(tmp_path: Path) -> None:
    folder = LocalRegistry(tmp_path / "reg")
    assert folder.tracking_uri == f"sqlite:///{tmp_path / 'reg' / 'mlflow.db'}"
    folder.create()
    assert folder.artifact_root.is_dir()


def test_registered_versions_answer_as_their_fitted_models(seeded: LocalRegistry) -> None:
    folder = seeded
    registry = DiabetesRegistry(folder.tracking_uri, "exp", folder.artifact_root.as_uri())
    assert not registry.has_model("m")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = registry.register("m", RidgeRecipe(alpha=1.0, features=("age", "bmi")))
        second = registry.register("m", RidgeRecipe(alpha=100.0))
        registry.transition("m", first.version, "Production")
        registry.transition("m", second.version, "Production", archive_others=True)
    registry.set_alias("m", "champion", first.version)
    assert (first.version, second.version) == ("1", "2")
    assert registry.has_model("m")
    stages = {
        str(v.version): v.current_stage for v in registry.client.search_model_versions("name='m'")
    }
    assert stages == {"1": "Archived", "2": "Production"}
    assert str(registry.client.get_model_version_by_alias("m", "champion").version) == "1"
    X, _ = diabetes_data()
    loaded = mlflow.pyfunc.load_model(f"models:/m/{first.version}")
    expected = first.model.predict(X[["age", "bmi"]].head(3))
    assert list(loaded.predict(X[["age", "bmi"]].head(3))) == pytest.approx(list(expected))
    experiment = registry.client.get_experiment_by_name("exp")
    assert experiment.artifact_location == folder.artifact_root.as_uri()


def test_the_demo_seeds_once(seeded: LocalRegistry) -> None:
    client = DiabetesRegistry(seeded.tracking_uri).client
    versions = {
        str(v.version): v for v in client.search_model_versions(f"name='{demo.DEMO_MODEL}'")
    }
    assert {k: v.current_stage for k, v in versions.items()} == {
        "1": "Production",
        "2": "Staging",
        "3": "None",
    }
    assert client.get_registered_model(demo.DEMO_MODEL).aliases == {"challenger": 3}
    assert client.get_run(versions["1"].run_id).data.params["features"] == "age,sex,bmi,bp"
    assert client.get_run(versions["2"].run_id).data.params["features"] == ",".join(ALL_FEATURES)
