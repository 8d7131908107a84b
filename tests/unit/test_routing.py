"""service.traffic.pinning.pin: the target an X-Model-Target override names."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from registry_watcher.state import VersionRef
from registry_watcher.targets import Target, parse_target
from service.errors import ServingError, client_error
from service.traffic.pinning import TARGET_HEADER, OverrideRefused, Route, pin

PROD = parse_target("Production")
STAGING = parse_target("Staging")
CHAMP = parse_target("@champion")
V7 = parse_target("7")
TARGETS = (PROD, STAGING, CHAMP, V7)


@dataclass
class Loaded:
    ref: VersionRef


def loaded_map(**versions: int | None) -> dict[Target, Loaded | None]:
    by_name = {"prod": PROD, "staging": STAGING, "champ": CHAMP, "v7": V7}
    return {
        by_name[k]: (Loaded(VersionRef("m", v, f"s3://m/{v}")) if v is not None else None)
        for k, v in versions.items()
    }


ALL = loaded_map(prod=3, staging=4, champ=5, v7=7)


def pick(override: str, loaded: dict[Target, Loaded | None] = ALL) -> Route[Loaded]:
    return pin("m", TARGETS, loaded.get, override)


def error_of(override: str, loaded: dict[Target, Loaded | None] = ALL) -> ServingError:
    with pytest.raises(ServingError) as info:
        try:
            pick(override, loaded)
        except OverrideRefused as refused:  # answered as service/errors.py says
            raise client_error(refused) from None
    body = json.loads(info.value.body())
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == info.value.error_code
    return info.value


def test_header_name_is_lowercase() -> None:
    assert TARGET_HEADER == "x-model-target"


@pytest.mark.parametrize(
    ("override", "target"),
    [
        ("Production", PROD),
        ("production", PROD),
        (" Staging ", STAGING),
        ("STAGING", STAGING),
        ("@champion", CHAMP),
        ("7", V7),
        ("007", V7),
    ],
)
def test_override_to_each_configured_target(override: str, target: Target) -> None:
    route = pick(override)
    assert route.target == target
    assert route.loaded is ALL[target]


@pytest.mark.parametrize(("override", "target"), [("3", PROD), ("4", STAGING), ("5", CHAMP)])
def test_override_with_a_version_number_a_target_serves(override: str, target: Target) -> None:
    route = pick(override)
    assert route.target == target
    assert route.loaded.ref.version == int(override)


def test_version_override_prefers_the_first_target_serving_it() -> None:
    loaded = loaded_map(prod=3, staging=3, champ=3, v7=7)
    assert pick("3", loaded).target == PROD
    assert pin("m", (STAGING, PROD), loaded.get, "3").target == STAGING


def test_version_override_with_leading_zeros() -> None:
    assert pick("04").target == STAGING


def test_version_override_ignores_empty_targets() -> None:
    loaded = loaded_map(prod=None, staging=4, champ=None, v7=None)
    assert pick("4", loaded).target == STAGING


@pytest.mark.parametrize("override", ["Archived", "@challenger", "99", "Canary"])
def test_unknown_target_is_a_400_naming_the_valid_targets(override: str) -> None:
    error = error_of(override)
    assert error.status == 400
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert error.outcome == "bad_request"
    assert repr(override) in error.message
    assert "'m'" in error.message
    assert "Production, Staging, @champion, 7" in error.message


def test_version_not_served_by_a_loaded_target_is_unknown() -> None:
    # Version 4 is Staging's in the registry, but Staging has nothing loaded.
    loaded = loaded_map(prod=3, staging=None, champ=5, v7=7)
    error = error_of("4", loaded)
    assert error.status == 400
    assert error.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("override", ["", " ", "\t"])
def test_empty_override_is_a_400(override: str) -> None:
    error = error_of(override)
    assert error.status == 400
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert "Production, Staging, @champion, 7" in error.message


@pytest.mark.parametrize("override", ["Prod uction", "@", "@bad alias", "0", "a/b", "1.5", "²"])
def test_invalid_override_text_is_a_400(override: str) -> None:
    error = error_of(override)
    assert error.status == 400
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert "Invalid X-Model-Target" in error.message
    assert "Production, Staging, @champion, 7" in error.message


def test_huge_override_is_truncated_in_the_message() -> None:
    error = error_of("x" * 100_000)
    assert error.status == 400
    assert len(error.message) < 2100


def test_override_to_a_target_with_nothing_loaded_is_a_503() -> None:
    loaded = loaded_map(prod=3, staging=None, champ=5, v7=7)
    error = error_of("Staging", loaded)
    assert error.status == 503
    assert error.error_code == "TEMPORARILY_UNAVAILABLE"
    assert "Staging has no version loaded" in error.message


def test_unlisted_target_with_missing_entry_is_a_503() -> None:
    error = error_of("@champion", {PROD: ALL[PROD]})
    assert error.status == 503


def test_loaded_is_asked_only_for_what_is_needed() -> None:
    asked: list[Target] = []

    def loaded(target: Target) -> Loaded | None:
        asked.append(target)
        return ALL.get(target)

    pin("m", TARGETS, loaded, "@champion")
    assert asked == [CHAMP]
