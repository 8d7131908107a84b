"""The embedded demo's registry: the diabetes model, version 1 in Production and
version 2 in Staging.

Version 1 is a Ridge on four features, version 2 a Ridge on all ten, both logged with
an input example so that their swaps are smoke-tested. ``stageserve demo`` seeds a local
SQLite registry with it; the compose stack's seed job (deploy/compose/seed_demo.py)
seeds its MLflow server with the same versions.
"""

from __future__ import annotations

import logging

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
# The versions, in registration order, and the stage each one goes to.
DEMO_VERSIONS = (
    (RidgeRecipe(features=V1_FEATURES), "Production"),
    (RidgeRecipe(features=ALL_FEATURES), "Staging"),
)

# The demo's registry is a folder on the user's disk.
DemoRegistry = LocalRegistry


def seed_model(registry: DiabetesRegistry) -> list[str] | None:
    """Register the demo versions and set their stages, unless the registry already
    holds the demo model. Returns the new versions, or None when there was nothing to do."""
    if registry.has_model(DEMO_MODEL):
        return None
    versions = []
    for recipe, stage in DEMO_VERSIONS:
        version = registry.register(DEMO_MODEL, recipe).version
        registry.transition(DEMO_MODEL, version, stage)
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
    v1, v2 = versions
    log.info("seeded %s: v%s in Production, v%s in Staging", DEMO_MODEL, v1, v2)
    return True
