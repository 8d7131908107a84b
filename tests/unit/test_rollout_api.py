"""service/api/rollout_routes.py through HTTP (Starlette's test client): the routes with a
real RolloutStore over registered-model tags kept in memory, and a registry snapshot
(registry_watcher/snapshot.py records) that says which version each target names."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from registry_watcher.snapshot import RegistryModel, RegistryVersion
from registry_watcher.targets import parse_targets
from registry_watcher.traffic_policy import TrafficPolicy, check_targets
from service.api.rollout_routes import RolloutApi, rollout_routes
from service.rollouts.gates import GateVerdict, Outcome
from service.rollouts.progression import next_move
from service.rollouts.rollout_plan import Phase
from service.rollouts.rollout_store import RolloutStore, Written
from service.rollouts.rollout_tag import ROLLOUT_TAG

TOKEN = "an-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "churn"
NOW = 1_764_500_000.0
URL = f"/admin/models/{MODEL}/rollout"


class Tags:
    """Registered-model tags in memory; ``race`` runs once right after the next read (a
    writer slipping in between a read and the write that follows it)."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, str]] = {}
        self.race: Callable[[], None] | None = None

    def model_tags(self, model: str) -> Mapping[str, str]:
        values = dict(self.values.get(model, {}))
        if self.race is not None:
            race, self.race = self.race, None
            race()
        return values

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        self.values.setdefault(model, {})[key] = value


class Snapshot:
    """Production v2, Staging v3, @challenger -> v3, @old -> v1 (not a latest version)."""

    def __init__(self) -> None:
        self.versions = {1: "Archived", 2: "Production", 3: "Staging"}
        self.aliases = {"challenger": 3, "old": 1}

    def _version(self, number: int) -> RegistryVersion:
        return RegistryVersion(MODEL, number, self.versions[number], f"models:/m-{number}", None)

    def search(self, names: Iterable[str]) -> list[RegistryModel]:
        latest = tuple(self._version(n) for n, s in self.versions.items() if s != "Archived")
        return [RegistryModel(MODEL, 1, latest, dict(self.aliases))] if MODEL in names else []

    def get_version(self, model: str, version: int) -> RegistryVersion | None:
        return self._version(version) if version in self.versions else None


class Served:
    targets = parse_targets(["Production", "Staging", "@challenger", "@old"])

    def serves(self, model: str) -> bool:
        return model == MODEL

    def models(self) -> tuple[str, ...]:
        return (MODEL,)

    def check(self, model: str, policy: TrafficPolicy) -> None:
        check_targets(policy, self.targets)


def client(token: str | None = TOKEN) -> tuple[TestClient, Tags, Snapshot]:
    tags, snapshot = Tags(), Snapshot()
    api = RolloutApi(RolloutStore(tags), snapshot, Served(), token, clock=lambda: NOW)
    app = Starlette(routes=rollout_routes(lambda: api))
    return TestClient(app), tags, snapshot


def stored(tags: Tags) -> dict:
    return json.loads(tags.values[MODEL][ROLLOUT_TAG])


def test_start_pins_the_version_the_candidate_names_now() -> None:
    http, tags, _ = client()
    answer = http.post(URL, json={"candidate": "Staging", "steps": [10, 50, 100]}, headers=AUTH)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["plan"]["candidate_version"] == 3
    assert body["describe"] == "step 1 of 3 (10 %)"
    assert body["policy"] == {"weights": {"Production": 90, "Staging": 10}, "sticky": False}
    assert stored(tags)["plan"]["steps"] == [10, 50, 100]
    assert http.get(URL).json()["plan"]["id"] == body["plan"]["id"]


def test_an_alias_candidate_pins_its_version_even_off_the_latest_versions() -> None:
    http, tags, snapshot = client()
    snapshot.versions[4] = "None"
    snapshot.aliases["old"] = 1
    answer = http.post(URL, json={"candidate": "@old"}, headers=AUTH)
    assert answer.status_code == 201, answer.text
    assert stored(tags)["plan"]["candidate_version"] == 1


def test_a_second_start_is_refused_while_the_first_is_live() -> None:
    http, tags, _ = client()
    assert http.post(URL, json={"candidate": "Staging"}, headers=AUTH).status_code == 201
    first = stored(tags)
    again = http.post(URL, json={"candidate": "@challenger"}, headers=AUTH)
    assert again.status_code == 409
    assert "live rollout" in again.json()["message"]
    assert stored(tags) == first


def test_a_candidate_without_a_version_or_the_controls_version_is_refused() -> None:
    http, tags, snapshot = client()
    del snapshot.aliases["challenger"]
    answer = http.post(URL, json={"candidate": "@challenger"}, headers=AUTH)
    assert answer.status_code == 409
    assert "@challenger" in answer.json()["message"] and "not set" in answer.json()["message"]
    snapshot.versions.update({2: "Archived", 3: "Production"})  # Staging is empty now
    answer = http.post(URL, json={"candidate": "Staging"}, headers=AUTH)
    assert answer.status_code == 409 and "Staging" in answer.json()["message"]
    snapshot.aliases["challenger"] = 3  # = Production's latest version
    answer = http.post(URL, json={"candidate": "@challenger"}, headers=AUTH)
    assert answer.status_code == 409 and "both name version 3" in answer.json()["message"]
    assert MODEL not in tags.values


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.candidate: required"),
        ({"candidate": "Staging", "steps": [50, 20]}, "steps[1]"),
        ({"candidate": "Staging", "steps": [100]}, "steps[0]"),
        ({"candidate": "Staging", "gates": {"max_p99_ratio": 0.5}}, "gates.max_p99_ratio"),
        ({"candidate": "Staging", "gates": {"p99": 2}}, "gates: unknown key"),
        ({"candidate": "Staging", "shadow": {"percent": 0}}, "shadow.percent"),
        ({"candidate": "Staging", "min_step_requests": 0}, "min_step_requests"),
        ({"candidate": "Staging", "control": "3"}, "control: cannot be promoted"),
        ({"candidate": "Production"}, "candidate: must differ"),
        ({"candidate": "@nope"}, "does not serve: @nope"),
        ({"candidate": "Staging", "sticky": "yes"}, "sticky: must be true or false"),
        ({"candidate": "Staging", "typo": 1}, "body: unknown key(s) 'typo'"),
        ([1, 2], "body: must be a JSON object"),
    ],
)
def test_a_bad_start_body_is_a_400_naming_the_field(body: object, field: str) -> None:
    http, tags, _ = client()
    answer = http.post(URL, json=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["message"]
    assert MODEL not in tags.values


def test_a_body_that_is_not_json_is_a_400() -> None:
    http, _, _ = client()
    answer = http.post(URL, content=b"{candidate", headers=AUTH)
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["message"]


def test_writes_need_the_token_and_are_off_without_one() -> None:
    http, tags, _ = client()
    for path in (URL, f"{URL}/approve", f"{URL}/abort"):
        answer = http.post(path, json={"candidate": "Staging"})
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        wrong = http.post(path, json={}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert MODEL not in tags.values
    http, _, _ = client(token=None)
    answer = http.post(f"{URL}/approve", json={}, headers=AUTH)
    assert answer.status_code == 403
    assert "STAGESERVE_ADMIN_TOKEN" in answer.json()["message"]


def test_reads_need_no_token_and_say_when_there_is_no_rollout() -> None:
    http, _, _ = client()
    answer = http.get(URL)
    assert answer.status_code == 404
    assert "stageserve rollout start churn" in answer.json()["message"]
    assert http.get("/admin/models/other/rollout").status_code == 404
    assert http.post(f"{URL}/approve", headers=AUTH).status_code == 404


def awaiting_approval(tags: Tags) -> None:
    """Moves the stored rollout to awaiting_approval with the pure API, as a controller."""
    store = RolloutStore(tags)
    rollout = store.read(MODEL)
    assert rollout is not None
    passed = GateVerdict(Outcome.PASSED, "every gate passed")
    state, plan = rollout.state, rollout.plan
    while state.phase is Phase.STEP:
        move = next_move(plan, state, passed, NOW + 1000 * (state.step + 1), "controller@test")
        assert store.write(MODEL, move) is Written.WRITTEN
        state = move.state
    assert state.phase is Phase.AWAITING_APPROVAL


def test_approve_only_when_awaiting_approval_records_who_and_when() -> None:
    http, tags, _ = client()
    start = {"candidate": "Staging", "require_approval": True, "min_step_seconds": 0}
    assert http.post(URL, json=start, headers=AUTH).status_code == 201
    early = http.post(f"{URL}/approve", json={"by": "ana"}, headers=AUTH)
    assert early.status_code == 409 and "not awaiting approval" in early.json()["message"]
    awaiting_approval(tags)
    approved = http.post(f"{URL}/approve", json={"by": "ana"}, headers=AUTH)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"]["approval"] == {"by": "ana", "at": NOW}
    assert stored(tags)["state"]["history"][-1]["move"] == "approve"
    again = http.post(f"{URL}/approve", json={"by": "bo"}, headers=AUTH)
    assert again.status_code == 409 and "already approved by ana" in again.json()["message"]
    bad = http.post(f"{URL}/approve", json={"by": ""}, headers=AUTH)
    assert bad.status_code == 400 and "by:" in bad.json()["message"]


def test_abort_records_who_and_why_and_frees_the_model_for_a_new_start() -> None:
    http, tags, _ = client()
    assert http.post(URL, json={"candidate": "Staging"}, headers=AUTH).status_code == 201
    answer = http.post(f"{URL}/abort", json={"why": "p99 looks odd", "by": "ana"}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["live"] is False and body["state"]["phase"] == "aborted"
    assert body["policy"] == {"weights": {"Production": 100}, "sticky": False}
    last = stored(tags)["state"]["history"][-1]
    assert (last["move"], last["by"], last["reason"]) == (
        "abort",
        "ana",
        "aborted by ana: p99 looks odd",
    )
    assert http.post(f"{URL}/abort", headers=AUTH).status_code == 409  # over already
    assert http.post(URL, json={"candidate": "@challenger"}, headers=AUTH).status_code == 201


def test_a_write_computed_from_an_older_revision_is_a_409_and_writes_nothing() -> None:
    http, tags, _ = client()
    assert http.post(URL, json={"candidate": "Staging"}, headers=AUTH).status_code == 201
    store = RolloutStore(tags)

    def controller_rolls_back() -> None:  # another writer, right after the API's read
        rollout = store.read(MODEL)
        assert rollout is not None
        failed = GateVerdict(Outcome.FAILED, "failed: error rate +0.05", ("error_rate",))
        move = next_move(rollout.plan, rollout.state, failed, NOW + 5, "controller@test")
        assert store.write(MODEL, move) is Written.WRITTEN

    tags.race = controller_rolls_back
    answer = http.post(f"{URL}/abort", json={"why": "late"}, headers=AUTH)
    assert answer.status_code == 409, answer.text
    assert "moved on" in answer.json()["message"]
    last = stored(tags)["state"]["history"][-1]
    assert (stored(tags)["state"]["phase"], last["by"]) == ("rolled_back", "controller@test")
