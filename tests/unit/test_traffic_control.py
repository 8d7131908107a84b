"""Traffic control on its own: a fake registry and pool, the real policy book."""

from __future__ import annotations

import pytest

from registry_watcher.targets import Target, parse_target
from registry_watcher.traffic_policy import POLICY_TAG, PolicyError, policy_from_dict
from service.traffic.control import PolicyWriteFailed, TrafficControl
from service.traffic.policy_book import ADMIN, DEFAULT, PolicyBook
from tests.unit.metric_fakes import fake_metrics

PROD = parse_target("Production")
STAGING = parse_target("Staging")
SPLIT = policy_from_dict({"weights": {"Production": 75, "Staging": 25}})


class Registry:
    def __init__(self, fails: bool = False) -> None:
        self.tags: dict[tuple[str, str], str] = {}
        self.fails = fails

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        if self.fails:
            raise ConnectionError("registry down")
        self.tags[(model, key)] = value

    def delete_model_tag(self, model: str, key: str) -> None:
        if self.fails:
            raise ConnectionError("registry down")
        self.tags.pop((model, key), None)


class Pool:
    def __init__(self, loaded: set[Target]) -> None:
        self.loaded = loaded

    def models(self) -> tuple[str, ...]:
        return ("m",)

    def targets(self, model: str) -> tuple[Target, ...]:
        return (PROD, STAGING)

    def get(self, model: str, target: Target) -> object | None:
        return object() if target in self.loaded else None


def control(loaded: set[Target] = {PROD, STAGING}, fails: bool = False):  # noqa: B006
    written: list[bool] = []
    metrics = fake_metrics()
    registry = Registry(fails)
    traffic = TrafficControl(
        PolicyBook({"m": (PROD, STAGING)}), Pool(loaded), registry, metrics,
        lambda: written.append(True),
    )  # fmt: skip
    return traffic, registry, metrics, written


def test_a_write_goes_to_the_registry_then_applies_here() -> None:
    traffic, registry, metrics, written = control()
    record = traffic.write("m", SPLIT)
    assert registry.tags[("m", POLICY_TAG)] == SPLIT.to_json()
    assert (record.source, traffic.book.policy("m")) == (ADMIN, SPLIT)
    assert written == [True]  # the registry is read back at once
    assert metrics.traffic_weight.of("m", "Staging") == 0.25
    assert metrics.traffic_configured_weight.of("m", "Production") == 0.75


def test_a_failed_write_changes_nothing() -> None:
    traffic, _, _, written = control(fails=True)
    with pytest.raises(PolicyWriteFailed, match="nothing changed: registry down"):
        traffic.write("m", SPLIT)
    assert traffic.book.get("m").source == DEFAULT
    assert written == []


def test_deleting_the_policy_goes_back_to_the_default() -> None:
    traffic, registry, _, _ = control()
    traffic.write("m", SPLIT)
    assert traffic.write("m", None).source == DEFAULT
    assert registry.tags == {}


def test_the_view_spreads_an_unloaded_targets_share_over_the_others() -> None:
    traffic, _, _, _ = control(loaded={PROD})
    traffic.write("m", SPLIT)
    view = traffic.view("m")
    assert view.shares == ((PROD, 1.0), (STAGING, 0.0))
    assert view.record.policy == SPLIT


def test_check_refuses_a_target_this_model_does_not_serve() -> None:
    traffic, _, _, _ = control()
    with pytest.raises(PolicyError):
        traffic.check("m", policy_from_dict({"weights": {"@champion": 1}}))
    traffic.check("m", SPLIT)


def test_a_bad_tag_keeps_the_last_good_policy_and_is_counted() -> None:
    traffic, _, metrics, _ = control()
    traffic.apply_tags("m", {POLICY_TAG: SPLIT.to_json()})
    assert metrics.policy_valid.of("m") == 1
    traffic.apply_tags("m", {POLICY_TAG: "{not json"})
    assert traffic.book.policy("m") == SPLIT
    assert metrics.policy_valid.of("m") == 0
    assert metrics.policy_errors.of("m") == 1
    assert traffic.view("m").record.error
