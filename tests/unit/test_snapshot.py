"""registry_watcher.snapshot: from one registry read to the desired state (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.entities.model_registry import (
    ModelVersion,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
)
from mlflow.utils.search_utils import SearchModelUtils

from registry_watcher.snapshot import (
    READY,
    RegistryModel,
    RegistryVersion,
    cacheable_keys,
    name_filter,
    resolve_model,
    resolve_state,
    version_key,
    versions_to_fetch,
)
from registry_watcher.state import DesiredState, ModelState, VersionRef
from registry_watcher.targets import parse_target

FAST = settings(max_examples=150, deadline=None, database=None, derandomize=True)

PROD = parse_target("Production")
STAGING = parse_target("Staging")
CHAMP = parse_target("@champion")
CHALLENGER = parse_target("@challenger")
V3 = parse_target("3")
V7 = parse_target("7")


def version(
    n: int, stage: str = "None", model: str = "m", status: str = READY, run_id: str | None = None
) -> RegistryVersion:
    return RegistryVersion(
        model=model,
        version=n,
        stage=stage,
        source=f"s3://bucket/{model}/{n}",
        run_id=run_id if run_id is not None else f"run{n}",
        status=status,
    )


def model(
    name: str = "m",
    latest: tuple[RegistryVersion, ...] = (),
    aliases: dict[str, int] | None = None,
    tags: dict[str, str] | None = None,
    created: int | None = 1000,
) -> RegistryModel:
    return RegistryModel(
        name=name,
        creation_timestamp=created,
        latest_versions=latest,
        aliases=aliases or {},
        tags=tags or {},
    )


# --- RegistryVersion / VersionRef ---------------------------------------------------


def test_registry_version_ref() -> None:
    ref = version(4, "Production", run_id="abc").ref()
    assert ref == VersionRef("m", 4, "s3://bucket/m/4", "abc")
    assert ref.uri == "models:/m/4"


# --- stage targets ------------------------------------------------------------------


def test_stage_target_resolves_to_the_version_in_that_stage() -> None:
    snapshot = model(latest=(version(1, "Staging"), version(2, "Production"), version(3)))
    state = resolve_model("m", (PROD, STAGING), snapshot, {})
    assert state.found
    assert state.targets == {PROD: version(2).ref(), STAGING: version(1).ref()}
    assert state.notes == {}


def test_stage_matching_is_case_insensitive() -> None:
    snapshot = model(latest=(version(5, "production"),))
    state = resolve_model("m", (PROD,), snapshot, {})
    assert state.targets[PROD] == version(5).ref()


def test_custom_stage_target() -> None:
    snapshot = model(latest=(version(5, "Canary"),))
    state = resolve_model("m", (parse_target("canary"),), snapshot, {})
    assert state.targets[parse_target("canary")] == version(5).ref()


def test_stage_without_a_version_resolves_to_nothing_with_a_note() -> None:
    snapshot = model(latest=(version(2, "Production"),))
    state = resolve_model("m", (PROD, STAGING), snapshot, {})
    assert state.targets[STAGING] is None
    assert state.notes[STAGING] == "no version in stage Staging"
    assert PROD not in state.notes


def test_stage_target_ignores_known_versions() -> None:
    snapshot = model(latest=())
    known = {version_key(snapshot, 2): version(2, "Production")}
    state = resolve_model("m", (PROD,), snapshot, known)
    assert state.targets[PROD] is None


# --- alias targets ------------------------------------------------------------------


def test_alias_pointing_at_a_latest_version() -> None:
    snapshot = model(latest=(version(2, "Production"), version(3)), aliases={"champion": 3})
    state = resolve_model("m", (CHAMP,), snapshot, {})
    assert state.targets[CHAMP] == version(3).ref()
    assert state.notes == {}


def test_alias_pointing_at_a_version_only_known_from_a_fetch() -> None:
    snapshot = model(latest=(version(9),), aliases={"champion": 4})
    known = {version_key(snapshot, 4): version(4, "Archived")}
    state = resolve_model("m", (CHAMP,), snapshot, known)
    assert state.targets[CHAMP] == version(4).ref()


def test_latest_versions_take_precedence_over_known_details() -> None:
    snapshot = model(latest=(version(4, run_id="fresh"),), aliases={"champion": 4})
    known = {version_key(snapshot, 4): version(4, run_id="stale")}
    state = resolve_model("m", (CHAMP,), snapshot, known)
    assert state.targets[CHAMP].run_id == "fresh"


def test_unknown_alias_resolves_to_nothing_with_a_note() -> None:
    snapshot = model(latest=(version(1),), aliases={"challenger": 1})
    state = resolve_model("m", (CHAMP, CHALLENGER), snapshot, {})
    assert state.targets[CHAMP] is None
    assert state.notes[CHAMP] == "alias @champion is not set"
    assert state.targets[CHALLENGER] == version(1).ref()


def test_alias_pointing_at_a_missing_version() -> None:
    snapshot = model(latest=(), aliases={"champion": 8})
    state = resolve_model("m", (CHAMP,), snapshot, {})
    assert state.targets[CHAMP] is None
    assert state.notes[CHAMP] == "version 8 does not exist"


def test_known_entry_of_none_means_missing() -> None:
    snapshot = model(aliases={"champion": 8})
    state = resolve_model("m", (CHAMP,), snapshot, {version_key(snapshot, 8): None})
    assert state.targets[CHAMP] is None
    assert state.notes[CHAMP] == "version 8 does not exist"


# --- pinned versions ----------------------------------------------------------------


def test_pinned_version_in_latest_versions() -> None:
    snapshot = model(latest=(version(3, "Production"),))
    state = resolve_model("m", (V3,), snapshot, {})
    assert state.targets[V3] == version(3).ref()


def test_pinned_version_from_known() -> None:
    snapshot = model(latest=(version(9, "Production"),))
    known = {version_key(snapshot, 3): version(3)}
    state = resolve_model("m", (V3,), snapshot, known)
    assert state.targets[V3] == version(3).ref()


def test_pinned_version_missing() -> None:
    snapshot = model(latest=(version(9, "Production"),))
    state = resolve_model("m", (V7,), snapshot, {})
    assert state.targets[V7] is None
    assert state.notes[V7] == "version 7 does not exist"


def test_known_details_of_a_recreated_model_are_not_used() -> None:
    old = model(created=1000)
    new = model(created=2000)
    known = {version_key(old, 3): version(3)}
    state = resolve_model("m", (V3,), new, known)
    assert state.targets[V3] is None
    assert state.notes[V3] == "version 3 does not exist"


# --- model not found ----------------------------------------------------------------


def test_model_not_found() -> None:
    state = resolve_model("m", (PROD, CHAMP), None, {})
    assert state == ModelState(
        name="m",
        found=False,
        targets={PROD: None, CHAMP: None},
        notes={PROD: "model not found in the registry", CHAMP: "model not found in the registry"},
    )
    assert state.tags == {}


def test_model_not_found_drops_the_previous_resolution() -> None:
    previous = ModelState("m", True, {PROD: version(1).ref()})
    state = resolve_model("m", (PROD,), None, {}, previous)
    assert state.targets[PROD] is None


# --- not READY ----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["PENDING_REGISTRATION", "FAILED_REGISTRATION"])
def test_not_ready_version_keeps_the_previous_resolution(status: str) -> None:
    previous = ModelState("m", True, {PROD: version(1).ref(), STAGING: version(1).ref()})
    snapshot = model(latest=(version(2, "Production", status=status), version(1, "Staging")))
    state = resolve_model("m", (PROD, STAGING), snapshot, {}, previous)
    assert state.targets[PROD] == version(1).ref()
    assert state.notes[PROD] == f"version 2 is {status}, not READY yet"
    assert state.targets[STAGING] == version(1).ref()
    assert STAGING not in state.notes


def test_not_ready_version_without_previous_resolves_to_nothing() -> None:
    snapshot = model(latest=(version(2, "Production", status="PENDING_REGISTRATION"),))
    state = resolve_model("m", (PROD,), snapshot, {})
    assert state.targets[PROD] is None
    assert state.notes[PROD] == "version 2 is PENDING_REGISTRATION, not READY yet"


def test_not_ready_version_from_known_keeps_previous() -> None:
    snapshot = model(aliases={"champion": 5})
    known = {version_key(snapshot, 5): version(5, status="PENDING_REGISTRATION")}
    previous = ModelState("m", True, {CHAMP: version(4).ref()})
    state = resolve_model("m", (CHAMP,), snapshot, known, previous)
    assert state.targets[CHAMP] == version(4).ref()
    assert "PENDING_REGISTRATION" in state.notes[CHAMP]


def test_not_ready_keeps_previous_only_for_the_same_target() -> None:
    previous = ModelState("m", True, {STAGING: version(1).ref()})
    snapshot = model(latest=(version(2, "Production", status="PENDING_REGISTRATION"),))
    state = resolve_model("m", (PROD,), snapshot, {}, previous)
    assert state.targets[PROD] is None


def test_ready_version_replaces_the_previous_resolution() -> None:
    previous = ModelState("m", True, {PROD: version(1).ref()})
    snapshot = model(latest=(version(2, "Production"),))
    state = resolve_model("m", (PROD,), snapshot, {}, previous)
    assert state.targets[PROD] == version(2).ref()


def test_tags_are_copied() -> None:
    tags = {"traffic": "canary=10"}
    state = resolve_model("m", (PROD,), model(tags=tags), {})
    assert state.tags == {"traffic": "canary=10"}
    tags["traffic"] = "changed"
    assert state.tags == {"traffic": "canary=10"}


# --- resolve_state ------------------------------------------------------------------


def test_resolve_state_covers_every_served_model() -> None:
    targets = {"a": (PROD,), "b": (CHAMP,), "missing": (PROD,)}
    snapshot = [
        model("a", latest=(version(1, "Production", model="a"),)),
        model("b", latest=(version(2, model="b"),), aliases={"champion": 2}),
        model("not-served", latest=(version(1, "Production", model="not-served"),)),
    ]
    state = resolve_state(targets, snapshot, {})
    assert set(state.models) == {"a", "b", "missing"}
    assert state.version_for("a", PROD) == version(1, model="a").ref()
    assert state.version_for("b", CHAMP) == version(2, model="b").ref()
    assert state.models["missing"].found is False
    assert state.version_for("missing", PROD) is None


def test_resolve_state_passes_each_model_its_previous_state() -> None:
    targets = {"a": (PROD,), "b": (PROD,)}
    previous = DesiredState(
        {
            "a": ModelState("a", True, {PROD: version(1, model="a").ref()}),
            "b": ModelState("b", True, {PROD: version(7, model="b").ref()}),
        }
    )
    snapshot = [
        model("a", latest=(version(2, "Production", model="a", status="PENDING_REGISTRATION"),)),
        model("b", latest=(version(8, "Production", model="b", status="PENDING_REGISTRATION"),)),
    ]
    state = resolve_state(targets, snapshot, {}, previous)
    assert state.version_for("a", PROD) == version(1, model="a").ref()
    assert state.version_for("b", PROD) == version(7, model="b").ref()


def test_resolve_state_with_no_targets_is_empty() -> None:
    assert resolve_state({}, [model()], {}) == DesiredState()


# --- versions_to_fetch --------------------------------------------------------------


def test_stage_targets_are_never_fetched() -> None:
    snapshot = [model(latest=())]
    assert versions_to_fetch(snapshot, {"m": (PROD, STAGING)}, {}) == []


def test_alias_and_version_targets_outside_the_snapshot_are_fetched() -> None:
    m = model(latest=(version(9),), aliases={"champion": 4})
    assert versions_to_fetch([m], {"m": (CHAMP, V3, V7)}, {}) == [(m, 4), (m, 3), (m, 7)]


def test_versions_in_the_snapshot_are_not_fetched() -> None:
    m = model(latest=(version(3), version(4, "Production")), aliases={"champion": 4})
    assert versions_to_fetch([m], {"m": (CHAMP, V3)}, {}) == []


def test_known_alias_versions_are_not_fetched() -> None:
    m = model(aliases={"champion": 4})
    known = {version_key(m, 4): version(4)}
    assert versions_to_fetch([m], {"m": (CHAMP,)}, known) == []


def test_pinned_versions_are_fetched_every_poll_even_when_known() -> None:
    # A pinned version can be deleted; re-reading it each poll notices that.
    m = model(aliases={"champion": 4})
    known = {version_key(m, 4): version(4), version_key(m, 3): version(3)}
    assert versions_to_fetch([m], {"m": (CHAMP, V3)}, known) == [(m, 3)]


def test_cacheable_keys_are_alias_versions_off_the_snapshot() -> None:
    m = model(latest=(version(5, "Production"),), aliases={"champion": 4, "latest": 5})
    targets = {"m": (CHAMP, V3, parse_target("@latest"))}
    assert cacheable_keys([m], targets) == {version_key(m, 4)}


def test_known_versions_of_a_recreated_model_are_fetched_again() -> None:
    old = model(created=1, aliases={"champion": 4})
    new = model(created=2, aliases={"champion": 4})
    known = {version_key(old, 4): version(4)}
    assert versions_to_fetch([new], {"m": (CHAMP,)}, known) == [(new, 4)]


def test_a_version_wanted_twice_is_fetched_once() -> None:
    m = model(aliases={"champion": 3, "challenger": 3})
    assert versions_to_fetch([m], {"m": (CHAMP, CHALLENGER, V3)}, {}) == [(m, 3)]


def test_unset_alias_is_not_fetched() -> None:
    m = model(aliases={})
    assert versions_to_fetch([m], {"m": (CHAMP,)}, {}) == []


def test_models_without_targets_are_not_fetched() -> None:
    m = model(name="other", aliases={"champion": 3})
    assert versions_to_fetch([m], {"m": (CHAMP,)}, {}) == []


def test_fetch_list_spans_models() -> None:
    a = model("a", aliases={"champion": 1})
    b = model("b", aliases={"champion": 2})
    assert versions_to_fetch([a, b], {"a": (CHAMP,), "b": (CHAMP,)}, {}) == [(a, 1), (b, 2)]


# --- version_key --------------------------------------------------------------------


def test_version_key() -> None:
    assert version_key(model(created=5), 3) == ("m", 5, 3)
    assert version_key(model(created=5), 3) == version_key(model(created=5, tags={"x": "y"}), 3)
    assert version_key(model(created=5), 3) != version_key(model(created=6), 3)
    assert version_key(model(created=5), 3) != version_key(model(created=5), 4)
    assert version_key(model("a", created=5), 3) != version_key(model("b", created=5), 3)


# --- name_filter --------------------------------------------------------------------


def test_name_filter_sorts_and_deduplicates() -> None:
    assert name_filter(["b", "a", "b"]) == "name IN ('a', 'b')"


def test_name_filter_single_name() -> None:
    assert name_filter(["model"]) == "name IN ('model')"


def test_name_filter_escapes_single_quotes() -> None:
    assert name_filter(["it's"]) == "name IN ('it\\'s')"


def _parsed_names(filter_string: str) -> tuple[str, ...]:
    (clause,) = SearchModelUtils.parse_search_filter(filter_string)
    assert clause["key"] == "name"
    assert clause["comparator"] == "IN"
    return tuple(clause["value"])


@pytest.mark.parametrize(
    "names",
    [
        ["a"],
        ["fraud-model", "churn_model", "x.y"],
        ["it's", "o'brien's"],
        ['say "hi"'],
        ["with space", "tab\tname"],
        ["ünïcødé", "模型"],
        ["(parens)", "a,b", "semi;colon", "%like_"],
    ],
)
def test_name_filter_round_trips_through_mlflows_parser(names: list[str]) -> None:
    assert _parsed_names(name_filter(names)) == tuple(sorted(set(names)))


@pytest.mark.parametrize("names", [["a\\b"], ["ends-with\\", "other"]])
def test_name_filter_round_trips_names_with_backslashes(names: list[str]) -> None:
    # MLflow allows a backslash in a registered model name; the search filter must
    # still name exactly that model (and must not break the query for the others).
    assert _parsed_names(name_filter(names)) == tuple(sorted(set(names)))


_NAME_CHARS = st.sampled_from(list("abcXYZ019 _-.'\"é%()"))


@FAST
@given(names=st.lists(st.text(_NAME_CHARS, min_size=1, max_size=12), min_size=1, max_size=6))
def test_name_filter_round_trip_property(names: list[str]) -> None:
    names = [n for n in names if n.strip()] or ["x"]
    assert _parsed_names(name_filter(names)) == tuple(sorted(set(names)))


# --- from MLflow entities -----------------------------------------------------------


def _mlflow_model() -> RegisteredModel:
    return RegisteredModel(
        name="fraud",
        creation_timestamp=1_700_000_000_000,
        last_updated_timestamp=1_700_000_500_000,
        latest_versions=[
            ModelVersion(
                name="fraud",
                version="3",
                creation_timestamp=1_700_000_100_000,
                current_stage="Production",
                source="s3://bucket/fraud/3",
                run_id="abc123",
            ),
            ModelVersion(
                name="fraud",
                version="5",
                creation_timestamp=1_700_000_200_000,
                current_stage="None",
                source="models:/m-5",
                run_id=None,
                status="PENDING_REGISTRATION",
            ),
        ],
        tags=[RegisteredModelTag("traffic", "canary=5"), RegisteredModelTag("team", "risk")],
        aliases=[RegisteredModelAlias("champion", "3"), RegisteredModelAlias("next", "5")],
    )


def test_registry_model_from_entity() -> None:
    rm = RegistryModel.from_entity(_mlflow_model())
    assert rm.name == "fraud"
    assert rm.creation_timestamp == 1_700_000_000_000
    assert rm.aliases == {"champion": 3, "next": 5}
    assert all(isinstance(v, int) for v in rm.aliases.values())
    assert rm.tags == {"traffic": "canary=5", "team": "risk"}
    assert rm.latest_versions == (
        RegistryVersion("fraud", 3, "Production", "s3://bucket/fraud/3", "abc123", "READY"),
        RegistryVersion("fraud", 5, "None", "models:/m-5", None, "PENDING_REGISTRATION"),
    )


def test_registry_model_from_entity_round_tripped_through_proto() -> None:
    # What MlflowClient hands back from a REST server went through the proto form.
    direct = RegistryModel.from_entity(_mlflow_model())
    via_proto = RegistryModel.from_entity(RegisteredModel.from_proto(_mlflow_model().to_proto()))
    assert via_proto == direct


def test_registry_model_from_bare_entity() -> None:
    rm = RegistryModel.from_entity(RegisteredModel(name="bare"))
    assert rm == RegistryModel(name="bare", creation_timestamp=None)
    assert rm.latest_versions == ()
    assert rm.aliases == {}
    assert rm.tags == {}


def test_registry_version_from_entity() -> None:
    mv = ModelVersion(
        name="m",
        version="12",
        creation_timestamp=1,
        current_stage="Staging",
        source="runs:/r/model",
        run_id="r",
        status="READY",
    )
    assert RegistryVersion.from_entity(mv) == RegistryVersion(
        "m", 12, "Staging", "runs:/r/model", "r"
    )


def test_registry_version_from_entity_defaults() -> None:
    mv = ModelVersion(name="m", version="1", creation_timestamp=1)
    rv = RegistryVersion.from_entity(mv)
    assert rv == RegistryVersion("m", 1, "None", "", None, READY)


def test_registry_version_from_proto_entity_with_empty_fields() -> None:
    proto = ModelVersion(name="m", version="2", creation_timestamp=1).to_proto()
    rv = RegistryVersion.from_entity(ModelVersion.from_proto(proto))
    assert rv.stage == "None"
    assert rv.run_id is None
    assert rv.source == ""
    assert rv.status == READY


def test_entity_resolution_end_to_end() -> None:
    rm = RegistryModel.from_entity(_mlflow_model())
    state = resolve_model("fraud", (PROD, CHAMP, parse_target("@next")), rm, {})
    assert state.targets[PROD] == VersionRef("fraud", 3, "s3://bucket/fraud/3", "abc123")
    assert state.targets[CHAMP] == state.targets[PROD]
    assert state.targets[parse_target("@next")] is None
    assert "PENDING_REGISTRATION" in state.notes[parse_target("@next")]
