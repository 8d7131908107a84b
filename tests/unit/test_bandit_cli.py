"""`stageserve bandit` arguments: flags refused in one line naming the flag, the bandit
the flags describe, and the status text (the registry side: tests/integration/test_bandit.py)."""

from __future__ import annotations

import pytest

from registry_watcher.traffic_policy import parse_policy
from service.cli.bandit_command import Refused, bandit_from_flags, status_text
from service.cli.main import main
from service.cli.parser import build_parser
from service.rollouts.bandit_config import BanditPlan


def parse(*argv: str):
    return build_parser().parse_args(["bandit", *argv])


def test_start_defaults_are_the_tags() -> None:
    args = parse("start", "m", "production", "@challenger", "--registry-uri", "http://r")
    plan = bandit_from_flags(args, 1000.0)
    assert plan == BanditPlan(arms=("Production", "@challenger"), started_at=1000.0, id=plan.id)
    assert args.registry_uri == "http://r"


def test_start_flags() -> None:
    args = parse(
        "start", "m", "Production", "Staging", "3", "--floor", "0.1", "--interval", "5",
        "--min-rewards", "0", "--min-change", "0.02", "--no-sticky",
    )  # fmt: skip
    plan = bandit_from_flags(args, 0.0)
    assert (plan.arms, plan.floor, plan.interval_s, plan.min_rewards) == (
        ("Production", "Staging", "3"),
        0.1,
        5.0,
        0,
    )
    assert (plan.min_change, plan.sticky) == (0.02, False)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["start", "m", "Production", "Staging", "--floor", "1.5"], "--floor"),
        (["start", "m", "Production", "Staging", "--floor", "x"], "--floor"),
        (["start", "m", "Production", "Staging", "--interval", "0"], "--interval"),
        (["start", "m", "Production", "Staging", "--min-rewards", "-1"], "--min-rewards"),
        (["start", "m", "Production", "Stagin g"], "ARM"),
        (["start", "m", "Production", "Prodution"], "ARM"),  # not an MLflow stage
        (["stop", "m", "--keep", "--winner", "Staging"], "not allowed with"),
        (["stop", "m", "--winner", "nope!"], "--winner"),
    ],
)
def test_impossible_flags_are_refused_naming_the_flag(argv, said, capsys) -> None:
    assert main(["bandit", *argv, "--registry-uri", "http://127.0.0.1:9"]) == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arms", "floor", "said"),
    [
        (["Production"], 0.05, "ARM: a bandit needs 2"),
        (["Production", "production"], 0.05, "ARM: Production is named twice"),
        (["Production", "Staging", "@c"], 0.4, "--floor: 0.4 for 3 arms"),
    ],
)
def test_bandits_the_tag_refuses_name_the_flag(arms, floor, said) -> None:
    args = parse("start", "m", *arms, "--floor", str(floor))
    with pytest.raises(Refused, match=said):
        bandit_from_flags(args, 0.0)


def test_without_a_registry(capsys, monkeypatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "STAGESERVE_REGISTRY_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    assert main(["bandit", "status", "m"]) == 2
    assert "no registry" in capsys.readouterr().err


def test_status_text() -> None:
    plan = BanditPlan(arms=("Production", "Staging"), started_at=1764460800.0, id="3f2a")
    policy = parse_policy('{"weights":{"Production":12.1,"Staging":87.9},"sticky":true}')
    assert status_text("m", plan, policy, 1764460800.0 + 300) == (
        "bandit on m (id 3f2a), started 2025-11-30 00:00:00 UTC (5 min ago)\n"
        "arms: Production, Staging\n"
        "floor 5 %, reweighed every 30 s, even until every arm has 100 rewards, "
        "rewritten when a share moves by 1 % of traffic, sticky\n"
        "traffic policy: Production 12.1 %, Staging 87.9 %"
    )
    assert status_text("m", None, None, 0.0) == (
        "no bandit on m\ntraffic policy: none (all traffic to the first target)"
    )
