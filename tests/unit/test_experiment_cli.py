"""``stageserve experiment show``: --since's forms, the table rendered from real results,
the fleet read through (captured, replayed) Prometheus answers, and the one-line refusals."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

import pytest

from service.cli.experiment_command import since_flag
from service.cli.experiment_table import render
from service.cli.main import main
from service.experiments.results import ExperimentWindow, VersionWindow, experiment_result
from service.experiments.reward_stats import RewardSummary
from tests.integration.harness import free_port
from tests.unit.test_experiment_promql import (  # noqa: F401 (replay: a fixture)
    CAPTURED,
    Replay,
    any_window,
    replay,
)

INF = float("inf")


def test_since_is_a_duration_ago_or_an_iso_time() -> None:
    assert since_flag("2h").start(10_000.0) == 10_000 - 7200
    assert since_flag("1h30m").start(10_000.0) == 10_000 - 5400
    assert since_flag("1.5d").ago == 129600
    at = datetime(2026, 1, 31, 12, tzinfo=UTC).timestamp()
    assert since_flag("2026-01-31T12:00:00Z").at == at
    assert since_flag("2026-01-31 12:00:00").at == at  # no zone: UTC
    assert since_flag("2026-01-31T13:00:00+01:00").at == at
    for bad in ("", "2x", "h", "0s", "yesterday", "2h-"):
        with pytest.raises(argparse.ArgumentTypeError, match="duration ago"):
            since_flag(bad)


def results() -> dict:
    production = VersionWindow(
        "Production", 1, {"success": 200},
        {0.005: 150.0, 0.01: 198.0, 0.025: 200.0, INF: 200.0},
        RewardSummary.from_values([1.0] * 100 + [0.0] * 100),
    )  # fmt: skip
    staging = VersionWindow(
        "Staging", 2, {"success": 196, "error": 4},
        {0.005: 10.0, 0.01: 150.0, 0.025: 196.0, INF: 196.0},
        RewardSummary.from_values([1.0] * 130 + [0.0] * 70),
        {"agree": 45, "disagree": 5},
    )  # fmt: skip
    canary = VersionWindow("@canary", 7, {"success": 3})
    window = ExperimentWindow("m", "Production", (production, staging, canary), 1000.0, 8200.0)
    answer = experiment_result(window).to_json()
    answer["window"]["since"] = "policy_change"
    return answer


def test_the_table_shows_each_version_against_the_control() -> None:
    text = render(results(), "gateway http://127.0.0.1:3000")
    lines = text.splitlines()
    assert lines[0] == "model m (gateway http://127.0.0.1:3000); control Production v1"
    assert lines[1] == (
        "window 1970-01-01 00:16:40Z .. 1970-01-01 02:16:40Z, 2h00m, since the traffic policy "
        "changed; intervals 95%"
    )
    header, production, staging, canary = lines[3:7]
    assert header.split()[:4] == ["TARGET", "VERSION", "REQUESTS", "ERRORS"]
    assert production.split()[:8] == [
        "Production", "1", "200", "0.0%", "3.33", "10", "200", "0.500",
    ]  # fmt: skip
    assert "[0.431, 0.569]" in production and "control" in production
    cells = staging.split()
    assert cells[:7] == ["Staging", "2", "200", "2.0%", "8.14", "24.4", "200"]
    assert "0.650 [0.582, 0.713]" in staging
    assert "+0.150 [+0.053, +0.243]" in staging and "(two_proportions)" in staging
    assert staging.rstrip().endswith("90.0% of 50")
    assert canary.split()[:4] == ["@canary", "7", "3", "0.0%"]
    assert "@canary v7: no reward interval:" in text
    assert "@canary v7: no comparison with the control:" in text


def test_no_requests_in_the_window_says_so() -> None:
    empty = experiment_result(ExperimentWindow("m", "Production", ())).to_json()
    assert render(empty, "gateway x").splitlines()[-1] == "no requests in the window"


def test_the_fleet_through_prometheus(replay: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    Replay.answers = {any_window(a["query"]): a["answer"] for a in CAPTURED["answers"]}
    assert main(["experiment", "show", "m", "--prometheus", replay, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [(r["target"], r["version"], r["requests"]) for r in answer["targets"]] == [
        ("Production", 1, 20), ("Staging", 2, 25)
    ]  # fmt: skip
    assert answer["window"]["since"] == "policy_change"
    assert main(["experiment", "show", "m", "--prometheus", replay, "--since", "1h"]) == 0
    text = capsys.readouterr().out
    assert f"model m (fleet, Prometheus {replay}); control Production v1" in text
    assert "since --since" in text


def test_refusals_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "show", "m", "--since", "2h"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("its window starts when the traffic policy last changed")
    )
    nobody = f"http://127.0.0.1:{free_port()}"
    for flag in ("--url", "--prometheus"):
        assert main(["experiment", "show", "m", flag, nobody]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("stageserve: no ")
    assert main(["experiment", "show", "m", "--url", "x", "--prometheus", "y"]) == 2
