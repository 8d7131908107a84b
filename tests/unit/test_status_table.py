"""``stageserve status``'s table, from /admin/models documents written by the gateway's
own JSON layout (service/ops/state_view.py): a change of that layout shows up here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from registry_watcher.state import VersionRef
from registry_watcher.targets import parse_target
from registry_watcher.traffic_policy import default_policy, policy_from_dict
from registry_watcher.watcher import WatcherStatus
from service.cli.status_table import (
    COLUMNS,
    ERROR_CHARS,
    NotAState,
    age,
    check_state,
    percent,
    render,
    shorten,
)
from service.lifecycle.pool import Failure
from service.ops.state_view import (
    GatewayState,
    Health,
    ModelState,
    TargetState,
    state_json,
)
from service.traffic.control import TrafficView
from service.traffic.policy_book import DEFAULT, REGISTRY, PolicyRecord

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
NOW = T0 + 300
URL = "http://127.0.0.1:3000"
PROD, STAGING = parse_target("Production"), parse_target("Staging")
LONG_ERROR = (
    "OSError: could not download models:/m-0123456789abcdef/artifacts/model.pkl from "
    "http://artifacts:5000/api/2.0/mlflow-artifacts/artifacts/1/models/m-0123/artifacts:\n"
    "    connection reset by peer after 3 retries"
)


@dataclass
class Loaded:
    ref: VersionRef
    loaded_at: float = T0
    load_duration_s: float = 0.5
    smoke_tested: bool = True


def target(
    name: str,
    status: str,
    serves: int | None = None,
    wants: int | None = None,
    required: bool = True,
    failure: Failure | None = None,
    stale_reason: str | None = None,
    note: str | None = None,
) -> TargetState:
    current = Loaded(VersionRef("m", serves, f"models:/m/{serves}", "run")) if serves else None
    return TargetState(
        name, required, status, current, wants, note, stale_reason, failure
    )  # fmt: skip


def traffic(
    name: str, shares: dict[str, float], policy: dict | None = None, error: str | None = None
) -> TrafficView:
    chosen = policy_from_dict(policy) if policy else default_policy(PROD)
    record = PolicyRecord(chosen, REGISTRY if policy else DEFAULT, None, T0, error)
    return TrafficView(name, record, tuple((parse_target(t), share) for t, share in shares.items()))


def reachable() -> WatcherStatus:
    return WatcherStatus(
        "http://mlflow:5000", 2.0, polls=40, last_success_at=NOW - 1, reachable=True
    )


def document(
    models: list[ModelState],
    ready: bool = True,
    reasons: tuple[str, ...] = (),
    watcher: WatcherStatus | None = None,
) -> dict[str, Any]:
    """What the gateway answers, through its own JSON writer and the wire."""
    state = GatewayState(4242, T0 - 60, Health(ready, reasons), tuple(models),
                         watcher or reachable())  # fmt: skip
    return check_state(json.loads(json.dumps(state_json(state))))


def one_model(*targets: TargetState, shares: dict[str, float] | None = None) -> ModelState:
    return ModelState("diabetes", targets, traffic("diabetes", shares or {"Production": 1.0}))


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def test_a_ready_gateway_shows_what_each_target_serves_and_since_when() -> None:
    doc = document([one_model(
        target("Production", "ready", serves=1, wants=1),
        target("Staging", "ready", serves=2, wants=2, required=False),
        shares={"Production": 1.0, "Staging": 0.0},
    )])  # fmt: skip
    lines = lines_of(render(doc, URL, NOW))
    assert lines[0] == f"gateway   {URL}  ready (worker pid 4242, up 6m)"
    assert lines[1] == (
        "registry  http://mlflow:5000  reachable (last read 1s ago, polled every 2s)"
    )
    assert lines[2] == ""
    assert lines[3].split() == [
        "MODEL", "TARGET", "VERSION", "SINCE", "STATUS", "SHARE", "LAST", "ERROR", "/", "NOTE",
    ]  # fmt: skip
    assert lines[4].split() == [
        "diabetes", "Production", "1", "2027-01-15", "08:00:00Z", "(5m", "ago)", "ready",
        "100%", "-",
    ]  # fmt: skip
    assert lines[5].split()[:4] == ["diabetes", "Staging", "(optional)", "2"]
    assert lines[5].split()[-3:] == ["ready", "0%", "-"]
    assert len(lines) == 6


def test_columns_line_up_under_their_headers() -> None:
    doc = document([one_model(
        target("Production", "ready", serves=12, wants=12),
        target("@challenger", "ready", serves=3, wants=3, required=False),
    )])  # fmt: skip
    header, *rows = lines_of(render(doc, URL, NOW))[3:]
    for column in COLUMNS[1:]:
        start = header.index(column)
        for row in rows:  # every cell starts where its header does
            assert row[start - 2 : start] == "  " and row[start] != " ", (column, row)


def test_a_stale_target_says_why_and_still_takes_the_traffic() -> None:
    reason = "no version in stage Production"
    doc = document([one_model(
        target("Production", "stale", serves=4, wants=None, stale_reason=reason),
    )])  # fmt: skip
    row = lines_of(render(doc, URL, NOW))[4]
    assert "  stale  " in row and "  100%  " in row
    assert row.endswith(reason)


def test_a_failed_load_shows_its_error_shortened_and_the_versions_apart() -> None:
    failure = Failure(attempts=3, error=LONG_ERROR, stage="download", at=NOW - 10, retry_at=0.0)
    doc = document(
        [
            one_model(
                target("Production", "failed", serves=None, wants=7, failure=failure),
                shares={"Production": 0.0},  # what the gateway says of a target serving nothing
            )
        ],
        ready=False,
        reasons=("diabetes Production: version 7 failed to load",),
    )
    lines = lines_of(render(doc, URL, NOW))
    assert lines[0] == f"gateway   {URL}  NOT READY (worker pid 4242, up 6m)"
    assert lines[1] == "          - diabetes Production: version 7 failed to load"
    row = lines[5]
    assert row.split()[:5] == ["diabetes", "Production", "-", "(registry:", "7)"]
    assert "  failed  " in row and "  0%  " in row
    note = row[row.index("[download") :]
    assert note.startswith("[download, 3 attempts] OSError: could not download")
    assert len(note) == ERROR_CHARS and note.endswith("...")
    assert "\n" not in note and "    " not in note


def test_a_version_waiting_to_replace_the_served_one_shows_both() -> None:
    doc = document([one_model(target("Production", "loading", serves=3, wants=4))])
    row = lines_of(render(doc, URL, NOW))[4]
    assert row.split()[:5] == ["diabetes", "Production", "3", "(registry:", "4)"]


def test_an_unreachable_registry_is_said_with_its_last_error() -> None:
    down = WatcherStatus(
        "http://***@mlflow:5000", 2.0, polls=50, consecutive_failures=12,
        last_success_at=NOW - 125, reachable=False, last_error="ConnectionError: " + "x" * 300,
    )  # fmt: skip
    doc = document([one_model(target("Production", "ready", serves=1, wants=1))], watcher=down)
    line = lines_of(render(doc, URL, NOW))[1]
    assert line.startswith(
        "registry  http://***@mlflow:5000  UNREACHABLE (12 failed polls, last read 2m ago, "
        "polled every 2s): ConnectionError: xxx"
    )
    assert line.endswith("...") and len(line) < 200


def test_a_registry_never_read_is_not_called_reachable() -> None:
    never = WatcherStatus("sqlite:///r.db", 0.5)
    doc = document([one_model(target("Production", "waiting_for_registry"))], ready=False,
                   reasons=("diabetes Production: the registry has not been read yet",),
                   watcher=never)  # fmt: skip
    assert lines_of(render(doc, URL, NOW))[2] == (
        "registry  sqlite:///r.db  not read yet, polled every 0.5s"
    )


def test_several_models_with_a_split_a_shadow_and_a_refused_policy_tag() -> None:
    policy = {"weights": {"Production": 90, "Staging": 10},
              "shadow": {"target": "@challenger", "percent": 25}}  # fmt: skip
    split = ModelState(
        "churn",
        (
            target("Production", "ready", serves=5, wants=5),
            target("Staging", "ready", serves=6, wants=6, required=False),
            target("@challenger", "ready", serves=7, wants=7, required=False),
        ),
        traffic("churn", {"Production": 0.9, "Staging": 0.1, "@challenger": 0.0}, policy),
    )
    refused = ModelState(
        "fraud",
        (target("Production", "ready", serves=2, wants=2),),
        traffic("fraud", {"Production": 1.0}, error="weights: must not be empty"),
    )  # fmt: skip
    empty = ModelState(
        "legacy",
        (target("Production", "empty", note="model 'legacy' not found in the registry"),),
        traffic("legacy", {"Production": 0.0}),
    )
    lines = lines_of(render(document([split, refused, empty]), URL, NOW))
    rows = {(line.split()[0], line.split()[1]): line for line in lines[4:9]}
    assert "  90%  " in rows["churn", "Production"]
    assert "  10%  " in rows["churn", "Staging"]
    assert "  0% +shadow 25%  " in rows["churn", "@challenger"]
    assert "  100%  " in rows["fraud", "Production"]
    assert rows["legacy", "Production"].endswith("model 'legacy' not found in the registry")
    assert "  empty  " in rows["legacy", "Production"]
    assert lines[9:] == ["", "fraud: traffic policy tag refused: weights: must not be empty"]


def test_a_gateway_with_no_model_says_so() -> None:
    assert lines_of(render(document([]), URL, NOW))[3] == "no model is configured"


@pytest.mark.parametrize(
    "doc, why",
    [
        ([1, 2], "a JSON list"),
        ({"ready": True, "models": [], "watcher": None}, '"watcher"'),
        ({"ready": "yes", "models": [], "watcher": {}}, '"ready"'),
        ({"ready": True, "models": [{"name": "m"}], "watcher": {}}, '"targets"'),
    ],
)
def test_what_is_not_a_gateway_state_is_refused(doc: object, why: str) -> None:
    with pytest.raises(NotAState, match=why):
        check_state(doc)


@pytest.mark.parametrize(
    "seconds, said",
    [(-3, "0s"), (45, "45s"), (180, "3m"), (7500, "2h05m"), (3 * 86400 + 4 * 3600, "3d04h")],
)
def test_ages_read_as_people_say_them(seconds: float, said: str) -> None:
    assert age(seconds) == said


def test_shares_and_shortened_texts() -> None:
    assert [percent(s) for s in (1.0, 0.9, 1 / 3, 0.0)] == ["100%", "90%", "33.3%", "0%"]
    assert shorten("a\n  b\tc") == "a b c"
    assert shorten("x" * 100, 10) == "xxxxxxx..."
