"""``stageserve rollout``: its flags, the start body they build, where the token comes
from, and the status text (service/cli/rollout_command.py, rollout_table.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli.parser import build_parser
from service.cli.rollout_command import admin_token, done_line, registry_source, start_body
from service.cli.rollout_table import render
from service.config import ConfigError
from service.rollouts.gates import GateVerdict, Outcome
from service.rollouts.progression import abort, next_move, start_rollout
from service.rollouts.rollout_plan import Rollout, RolloutPlan
from service.rollouts.rollout_requests import parse_start
from service.rollouts.rollout_view import rollout_json

T0 = 1_764_500_000.0


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["rollout", *argv])


def test_start_sends_only_the_flags_given() -> None:
    args = parse("start", "churn", "--candidate", "staging")
    assert start_body(args, "ana") == {"candidate": "Staging", "by": "ana"}


def test_every_start_flag_lands_in_the_body_the_gateway_reads() -> None:
    args = parse(
        "start", "churn", "--candidate", "@challenger", "--control", "@champion",
        "--steps", "10,50,100", "--min-step-seconds", "300", "--min-step-requests", "200",
        "--max-error-rate-increase", "0.02", "--max-p99-ratio", "2", "--no-reward-gate",
        "--shadow", "10", "--min-agreement", "0.9", "--require-approval", "--sticky",
    )  # fmt: skip
    body = start_body(args, "ana")
    assert body == {
        "candidate": "@challenger",
        "by": "ana",
        "control": "@champion",
        "steps": [10, 50, 100],
        "min_step_seconds": 300.0,
        "min_step_requests": 200,
        "gates": {"max_error_rate_increase": 0.02, "max_p99_ratio": 2.0, "reward_not_worse": False},
        "shadow": {"percent": 10.0, "min_agreement": 0.9},
        "require_approval": True,
        "sticky": True,
    }
    plan = parse_start("churn", body).plan("churn", 4, "p1", T0)  # the gateway accepts it
    assert (plan.steps, plan.promotion.text, plan.shadow and plan.shadow.percent) == (
        (10.0, 50.0, 100.0),
        "alias:champion",
        10.0,
    )


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--steps", "5,x"], "--steps"),
        (["--steps", "0,50"], "--steps"),
        (["--max-p99-ratio", "0.5"], "--max-p99-ratio"),
        (["--max-error-rate-increase", "2"], "--max-error-rate-increase"),
        (["--min-step-requests", "0"], "--min-step-requests"),
        (["--shadow", "101"], "--shadow"),
        (["--control", "Prod"], "--control"),
    ],
)
def test_an_impossible_flag_is_refused_naming_it(argv, flag, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_:
        parse("start", "churn", "--candidate", "Staging", *argv)
    assert exit_.value.code == 2
    assert flag in capsys.readouterr().err


def test_min_agreement_needs_a_shadow() -> None:
    args = parse("start", "churn", "--candidate", "Staging", "--min-agreement", "0.9")
    with pytest.raises(ValueError, match="--min-agreement needs --shadow"):
        start_body(args, "ana")


def test_the_token_comes_from_the_flag_then_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text("from-file\n")
    assert admin_token(str(file), {"STAGESERVE_ADMIN_TOKEN": "env"}) == "from-file"
    assert admin_token(None, {"STAGESERVE_ADMIN_TOKEN": "env"}) == "env"
    assert admin_token(None, {"STAGESERVE_ADMIN_TOKEN_FILE": str(file)}) == "from-file"
    assert admin_token(None, {}) is None
    with pytest.raises(ConfigError, match="both set"):
        admin_token(None, {"STAGESERVE_ADMIN_TOKEN": "a", "STAGESERVE_ADMIN_TOKEN_FILE": str(file)})


def rollout_at_step_two() -> Rollout:
    plan = RolloutPlan(
        id="a1b2c3d4e5f6", model="churn", control="Production", candidate="Staging",
        candidate_version=7, created_at=T0, require_approval=True,
    )  # fmt: skip
    started = start_rollout(plan, T0, "ana")
    figures = {"error_rate_increase": 0.0012345678, "p99_ratio": 1.1, "control_source": "live"}
    passed = GateVerdict(Outcome.PASSED, "every gate passed", figures=figures)
    move = next_move(plan, started.state, passed, T0 + 90, "controller@gw-1:42")
    return Rollout(plan, move.state)


def test_status_shows_the_step_its_time_the_last_gates_and_the_history() -> None:
    text = render(rollout_json(rollout_at_step_two()), "gateway http://gw", T0 + 90 + 125)
    lines = text.splitlines()
    assert lines[0] == (
        "churn: rollout a1b2c3d4e5f6 (live), step 2 of 4 (25 %)  [gateway http://gw]"
    )
    assert "in step    2m (since 2025-11-30 10:54:50Z)" in text
    assert "candidate  Staging v7 against Production" in text
    assert "5 / 25 / 50 / 100 %, each at least 60 s and 100 requests per side" in text
    assert "approval   required before promotion" in text
    assert "policy     Production 75 %, Staging 25 %" in text
    assert "gate figures of the last decision (advance, 2025-11-30 10:54:50Z):" in text
    assert "  error_rate_increase  0.00123457\n  p99_ratio            1.1\n" in text
    assert lines[-2].split()[2:4] == ["start", "ana"]
    assert lines[-1].split()[2:4] == ["advance", "controller@gw-1:42"]


def test_an_aborted_rollout_says_it_is_over_and_why() -> None:
    rollout = rollout_at_step_two()
    move = abort(rollout.plan, rollout.state, T0 + 100, "bo", "p99 looks odd")
    view = rollout_json(Rollout(rollout.plan, move.state))
    text = render(view, "registry x", T0 + 200)
    assert text.splitlines()[0].startswith("churn: rollout a1b2c3d4e5f6 (over), aborted at step 2")
    assert "in step" not in text
    assert "policy     Production 100 %" in text
    assert text.splitlines()[-1].endswith("aborted by bo: p99 looks odd")
    assert done_line("abort", view) == "aborted: all traffic back to Production"


def test_a_registry_source_shows_no_credential() -> None:
    source = registry_source("https://alice:s3cret@mlflow.example:5000")
    assert "s3cret" not in source and "mlflow.example:5000" in source
    assert registry_source("sqlite:////tmp/mlflow.db") == "registry sqlite:////tmp/mlflow.db"
