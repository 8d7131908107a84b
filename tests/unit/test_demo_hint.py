"""The demo's hint follows the registry's state: every command it suggests works against
that state, and an empty target gets the command that fills it, not a request that
would answer 503."""

from __future__ import annotations

import json
from pathlib import Path

from service.cli.demo import DEMO_TARGETS
from service.cli.demo_hint import REQUEST_BODY, DemoState, Reach, hint_lines

URI = "sqlite:////home/u/demo-registry/mlflow.db"
REACH = Reach("http://127.0.0.1:3000", URI, "/home/u/.venv/bin/python", "stageserve")
SEEDED = DemoState(
    "diabetes",
    stages={1: "Production", 2: "Staging", 3: "None"},
    aliases={"challenger": 3},
)
# After the README's promotion: version 2 in Production, version 1 archived.
PROMOTED = DemoState(
    "diabetes",
    stages={1: "Archived", 2: "Production", 3: "None"},
    aliases={"challenger": 3},
)


def text(state: DemoState) -> str:
    return "\n".join(hint_lines(state, DEMO_TARGETS, REACH))


def test_a_fresh_demo_offers_every_target_it_serves() -> None:
    lines = hint_lines(SEEDED, DEMO_TARGETS, REACH)
    assert lines[0] == (
        f"stageserve demo: diabetes in {URI}: Production v1, Staging v2, @challenger v3"
    )
    shown = "\n".join(lines)
    assert (
        "curl -si http://127.0.0.1:3000/invocations -H 'Content-Type: application/json' "
        f"-d '{REQUEST_BODY}'" in shown
    )
    assert (
        "-H 'X-Model-Target: Staging' for version 2, -H 'X-Model-Target: @challenger' for version 3"
        in shown
    )
    assert "curl -s http://127.0.0.1:3000/admin/models" in shown
    assert (
        f"MLFLOW_TRACKING_URI={URI} stageserve traffic set diabetes Production=90 Staging=10"
        in shown
    )
    assert "is empty" not in shown


def test_after_a_promotion_staging_is_not_offered_but_filled() -> None:
    shown = text(PROMOTED)
    assert "Production v2, Staging empty, @challenger v3" in shown
    assert "X-Model-Target: Staging" not in shown
    assert "-H 'X-Model-Target: @challenger' for version 3" in shown
    assert "Staging is empty; to serve a candidate there:" in shown
    assert (
        '    /home/u/.venv/bin/python -c "import mlflow; '
        f"mlflow.MlflowClient('{URI}').transition_model_version_stage('diabetes', '3', 'Staging')\""
    ) in shown
    # the canary goes to a target that has a version
    assert "traffic set diabetes Production=90 @challenger=10" in shown


def test_an_unset_alias_gets_the_command_that_sets_it() -> None:
    state = DemoState("diabetes", stages={1: "Production", 2: "Staging"})
    shown = text(state)
    assert "Production v1, Staging v2, @challenger not set" in shown
    assert "X-Model-Target: @challenger" not in shown
    assert "set_registered_model_alias('diabetes', 'challenger', '2')" in shown


def test_an_empty_production_says_the_gateway_waits_for_it() -> None:
    state = DemoState("diabetes", stages={1: "Archived", 2: "Archived"})
    shown = text(state)
    assert "Production is empty, so the gateway stays unready" in shown
    assert "transition_model_version_stage('diabetes', '2', 'Production')" in shown
    assert "curl -si" not in shown


def test_nothing_left_to_promote_says_how_to_start_over() -> None:
    state = DemoState("diabetes", stages={1: "Production"})
    shown = text(state)
    assert "Staging is empty" in shown
    assert "`stageserve demo --reset` starts over" in shown


def test_a_policy_in_force_is_shown_with_how_to_clear_it() -> None:
    tag = '{"weights": {"Production": 90, "Staging": 10}}'
    state = DemoState("diabetes", stages=SEEDED.stages, aliases=SEEDED.aliases, policy=tag)
    shown = text(state)
    assert f"traffic policy (registry tag): {tag}" in shown
    assert f"MLFLOW_TRACKING_URI={URI} stageserve traffic clear diabetes" in shown
    assert "traffic set" not in shown


def test_a_deleted_model_points_to_reset() -> None:
    lines = hint_lines(DemoState("diabetes", exists=False), DEMO_TARGETS, REACH)
    assert lines[0].endswith(": not registered")
    assert "stageserve demo --reset" in lines[1]
    assert len(lines) == 2


def test_a_stage_resolves_to_its_highest_version() -> None:
    state = DemoState("diabetes", stages={1: "Production", 4: "production", 2: "Staging"})
    assert "Production v4" in text(state)


def test_the_shipped_request_file_is_the_hints_request() -> None:
    shipped = Path(__file__).resolve().parents[2] / "docs" / "examples" / "diabetes-request.json"
    assert json.loads(shipped.read_text()) == json.loads(REQUEST_BODY)
