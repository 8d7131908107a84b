"""The embedded demo's registry: the diabetes model, version 1 in Production, version 2
in Staging and version 3 behind the alias ``@challenger``; and what that registry holds
now (``read_state``), for the hint the demo prints.

Version 1 is a Ridge on four features, versions 2 and 3 Ridges on all ten with different
alphas (so every version answers differently), all logged with an input example so that
their swaps are smoke-tested. ``stageserve demo`` seeds a local SQLite registry with it
and serves the targets ``DEMO_TARGETS``; the compose stack's seed job
(deploy/compose/seed_demo.py) seeds its MLflow server with the same versions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from service.cli.demo_hint import DemoState
from service.cli.diabetes_registry import (
    ALL_FEATURES,
    DiabetesRegistry,
    LocalRegistry,
    RidgeRecipe,
)

log = logging.getLogger("stageserve.demo")

DEMO_MODEL = "diabetes"
V1_FEATURES = ("age", "sex", "bmi", "bp")
EXPERIMENT = "stageserve-demo"
# What the demo serves: the first target is required, the others optional (an alias
# nobody set is simply an empty target).
DEMO_TARGETS = ("Production", "Staging", "@challenger")


@dataclass(frozen=True)
class DemoVersion:
    """One version of the demo: what to fit, and where it goes (a stage, an alias)."""

    recipe: RidgeRecipe
    stage: str | None = None
    alias: str | None = None


# The versions, in registration order.
DEMO_VERSIONS = (
    DemoVersion(RidgeRecipe(features=V1_FEATURES), stage="Production"),
    DemoVersion(RidgeRecipe(features=ALL_FEATURES), stage="Staging"),
    DemoVersion(RidgeRecipe(alpha=0.1, features=ALL_FEATURES), alias="challenger"),
)


def placement(versions: list[str]) -> str:
    """Where ``seed_model`` put the versions it registered, in words."""
    parts = []
    for version, planned in zip(versions, DEMO_VERSIONS, strict=True):
        where = [f"in {planned.stage}"] if planned.stage else []
        where += [f"as @{planned.alias}"] if planned.alias else []
        parts.append(f"v{version} {' and '.join(where)}")
    return ", ".join(parts)


# The demo's registry is a folder on the user's disk.
DemoRegistry = LocalRegistry


def seed_model(registry: DiabetesRegistry) -> list[str] | None:
    """Register the demo versions and set their stages and aliases, unless the registry
    already holds the demo model. Returns the new versions, or None when there was
    nothing to do."""
    if registry.has_model(DEMO_MODEL):
        return None
    versions = []
    for planned in DEMO_VERSIONS:
        version = registry.register(DEMO_MODEL, planned.recipe).version
        if planned.stage:
            registry.transition(DEMO_MODEL, version, planned.stage)
        if planned.alias:
            registry.set_alias(DEMO_MODEL, planned.alias, version)
        versions.append(version)
    return versions


def seed(registry: LocalRegistry) -> bool:
    """Create and seed the local demo registry unless it already holds the demo model.

    Returns True when it seeded, False when the registry was already there. Leaves
    MLflow's global URIs pointing at it.
    """
    registry.create()
    models = DiabetesRegistry(registry.tracking_uri, EXPERIMENT, registry.artifact_root.as_uri())
    models.use()
    versions = seed_model(models)
    if versions is None:
        return False
    log.info("seeded %s: %s", DEMO_MODEL, placement(versions))
    return True


def read_state(client: Any, model: str = DEMO_MODEL) -> DemoState:
    """What the registry holds for the demo model now: each version's stage, the
    aliases, the traffic policy tag (an ``MlflowClient`` on any registry)."""
    from mlflow.exceptions import MlflowException

    from registry_watcher.traffic_policy import POLICY_TAG

    try:
        registered = client.get_registered_model(model)
    except MlflowException:
        return DemoState(model=model, exists=False)
    versions = client.search_model_versions(f"name='{model}'")
    return DemoState(
        model=model,
        stages={int(v.version): v.current_stage or "None" for v in versions},
        aliases={str(k): int(v) for k, v in (registered.aliases or {}).items()},
        policy=(registered.tags or {}).get(POLICY_TAG),
    )
