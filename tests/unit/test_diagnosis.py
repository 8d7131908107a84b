"""registry_watcher.diagnosis and its hook in the watcher: a model or target that
resolves to nothing is said once, with what exists."""

from __future__ import annotations

import logging

import pytest

from registry_watcher.diagnosis import (
    ResolutionDiagnosis,
    did_you_mean,
    missing_model_message,
    target_message,
)
from registry_watcher.snapshot import RegistryModel, resolve_state
from registry_watcher.targets import parse_target
from registry_watcher.watcher import RegistryWatcher
from tests.unit.test_watcher import FakeRegistry, mv

PROD = parse_target("Production")
STAGING = parse_target("Staging")
CHAMP = parse_target("@champion")


def iris(**kwargs) -> RegistryModel:
    defaults = {"latest_versions": (mv(2, "Staging", "iris-clf"),), "aliases": {}}
    return RegistryModel("iris-clf", 1, **{**defaults, **kwargs})


@pytest.mark.parametrize(
    ("word", "candidates", "expected"),
    [
        ("iris-cfl", ["iris-clf", "fraud"], "iris-clf"),
        ("frud", ["iris-clf", "fraud"], "fraud"),
        ("zzz", ["iris-clf", "fraud"], None),
        ("x", [], None),
    ],
)
def test_did_you_mean(word, candidates, expected) -> None:
    assert did_you_mean(word, candidates) == expected


def test_missing_model_messages() -> None:
    assert (
        missing_model_message("iris-cfl", ["iris-clf", "fraud"])
        == "model 'iris-cfl' not found in the registry; did you mean 'iris-clf'?"
    )
    assert missing_model_message("zzz", ["b", "a"]) == (
        "model 'zzz' not found in the registry; registered models: a, b"
    )
    assert missing_model_message("zzz", []) == (
        "model 'zzz' not found in the registry; registered models: none"
    )
    assert missing_model_message("zzz", None) == "model 'zzz' not found in the registry"
    many = [f"m{i:02d}" for i in range(30)]
    assert "... (30 in all)" in missing_model_message("zzz", many)


def test_alias_message_lists_the_aliases_and_guesses() -> None:
    model = iris(aliases={"champion": 2, "challenger": 1})
    assert target_message(model, parse_target("@champio"), None) == (
        "alias @champio is not set on iris-clf; aliases: challenger, champion; "
        "did you mean @champion?"
    )
    assert target_message(iris(), CHAMP, None) == (
        "alias @champion is not set on iris-clf; aliases: none"
    )


def test_stage_message_lists_the_stages_in_use() -> None:
    assert target_message(iris(), PROD, None) == (
        "no version of iris-clf is in stage Production; latest versions by stage: Staging: v2"
    )


def test_version_message_uses_the_resolution_note() -> None:
    message = target_message(iris(), parse_target("7"), "version 7 does not exist")
    assert message == "iris-clf 7: version 7 does not exist"


def check(diagnosis, snapshot, targets):
    return diagnosis.check(snapshot, resolve_state(targets, snapshot, {}))


def test_a_problem_is_reported_once_and_again_when_it_comes_back() -> None:
    targets = {"iris-cfl": (PROD,)}
    lookups: list[int] = []

    def names() -> list[str]:
        lookups.append(1)
        return ["iris-clf"]

    diagnosis = ResolutionDiagnosis(targets, names)
    first = check(diagnosis, [], targets)
    assert [(f.level, f.message) for f in first] == [
        (logging.WARNING, "model 'iris-cfl' not found in the registry; did you mean 'iris-clf'?")
    ]
    assert check(diagnosis, [], targets) == []  # not every poll
    assert check(diagnosis, [], targets) == []
    assert len(lookups) == 1  # one extra search, only when the model went missing
    found = [RegistryModel("iris-cfl", 1, (mv(1, "Production", "iris-cfl"),))]
    assert check(diagnosis, found, targets) == []
    assert len(check(diagnosis, [], targets)) == 1  # gone again: said again
    assert len(lookups) == 2


def test_required_and_alias_targets_warn_optional_stages_inform() -> None:
    targets = {"iris-clf": (PROD, STAGING, parse_target("@champio"), parse_target("9"))}
    snapshot = [iris(aliases={"champion": 2})]
    findings = check(ResolutionDiagnosis(targets), snapshot, targets)
    by_target = {f.target.text: f for f in findings}
    assert set(by_target) == {"Production", "@champio", "9"}  # Staging resolves
    assert by_target["Production"].level == logging.WARNING
    assert by_target["@champio"].level == logging.WARNING
    assert "did you mean @champion?" in by_target["@champio"].message
    assert by_target["9"].level == logging.INFO


def test_a_failing_name_lookup_still_reports_the_missing_model() -> None:
    def names() -> list[str]:
        raise ConnectionError("down")

    targets = {"m": (PROD,)}
    findings = check(ResolutionDiagnosis(targets, names), [], targets)
    assert [f.message for f in findings] == ["model 'm' not found in the registry"]


class NamedRegistry(FakeRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.name_calls = 0

    def model_names(self) -> list[str]:
        self.name_calls += 1
        return sorted(self.models)


def test_the_watcher_warns_on_the_first_poll_only(caplog) -> None:
    registry = NamedRegistry()
    registry.put("iris-clf", latest=(mv(1, "Production", "iris-clf"),), aliases={"champion": 1})
    watcher = RegistryWatcher(
        registry, {"iris-cfl": (PROD,), "iris-clf": (parse_target("@champio"),)}
    )
    with caplog.at_level(logging.INFO, logger="stageserve.watcher"):
        for _ in range(3):
            assert watcher.poll_once().ok
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "model 'iris-cfl' not found in the registry; did you mean 'iris-clf'?",
        "alias @champio is not set on iris-clf; aliases: champion; did you mean @champion?",
    ]
    assert registry.name_calls == 1
    assert len(registry.search_calls) == 3  # the hint costs no extra poll search


def test_the_watcher_status_never_shows_credentials() -> None:
    registry = FakeRegistry()
    registry.search_error = ConnectionError(
        "HTTPConnectionPool: request to http://user:S3cr3t@h:5000/api?token=tok-987 failed"
    )
    watcher = RegistryWatcher(registry, {"m": (PROD,)}, registry_uri="http://user:S3cr3t@h:5000")
    assert not watcher.poll_once().ok
    shown = str(watcher.status.as_dict())
    assert "S3cr3t" not in shown and "tok-987" not in shown
    assert watcher.status.registry_uri == "http://***@h:5000"
