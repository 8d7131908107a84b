"""Webhook verification against deliveries signed exactly as MLflow signs them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlflow.webhooks.delivery import _generate_hmac_signature

from registry_watcher.deliveries import Outcome, ReplayCache, sign, signature_matches, verify
from service.api.webhooks import status_of

ACCEPTED, BAD_SIGNATURE, MALFORMED, REPLAY, STALE = (
    Outcome.ACCEPTED,
    Outcome.BAD_SIGNATURE,
    Outcome.MALFORMED,
    Outcome.REPLAY,
    Outcome.STALE,
)

SECRET = "whsec-test"
NOW = 1_800_000_000.0
BODY = json.dumps(
    {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2027-01-15T08:00:00+00:00",
        "data": {"name": "fraud", "alias": "champion", "version": "3"},
    }
).encode()


def delivery(
    body: bytes = BODY,
    delivery_id: str = "d-1",
    timestamp: float = NOW,
    secret: str = SECRET,
) -> dict[str, str]:
    """Headers as MLflow's delivery code builds them (its own signing function)."""
    ts = str(int(timestamp))
    return {
        "x-mlflow-delivery-id": delivery_id,
        "x-mlflow-timestamp": ts,
        "x-mlflow-signature": _generate_hmac_signature(secret, delivery_id, ts, body.decode()),
    }


def check(headers: dict[str, str], body: bytes = BODY, seen: ReplayCache | None = None):
    return verify(headers, body, SECRET, NOW, 300, seen if seen is not None else ReplayCache())


def test_our_signature_is_mlflows() -> None:
    assert sign(SECRET, "d-1", "123", BODY) == _generate_hmac_signature(
        SECRET, "d-1", "123", BODY.decode()
    )


def test_a_genuine_delivery_is_accepted_and_names_its_model() -> None:
    verdict = check(delivery())
    assert (verdict.outcome, status_of(verdict), verdict.model) == (ACCEPTED, 202, "fraud")


def test_tampered_body_is_refused() -> None:
    headers = delivery()
    tampered = BODY.replace(b'"3"', b'"4"')
    assert check(headers, tampered).outcome == BAD_SIGNATURE
    assert status_of(check(headers, tampered)) == 401


def test_wrong_secret_is_refused() -> None:
    assert check(delivery(secret="other")).outcome == BAD_SIGNATURE


@pytest.mark.parametrize("header", ["", "v1,", "v2,abc", "garbage", "v1,!!!notbase64", "v1,AAAA"])
def test_malformed_signatures_are_refused(header) -> None:
    headers = {**delivery(), "x-mlflow-signature": header}
    assert check(headers).outcome == BAD_SIGNATURE


def test_missing_id_or_timestamp() -> None:
    for key in ("x-mlflow-delivery-id", "x-mlflow-timestamp"):
        headers = {k: v for k, v in delivery().items() if k != key}
        assert check(headers).outcome == MALFORMED


def test_signed_but_unparsable_timestamp() -> None:
    body = BODY
    headers = {
        "x-mlflow-delivery-id": "d-1",
        "x-mlflow-timestamp": "yesterday",
        "x-mlflow-signature": sign(SECRET, "d-1", "yesterday", body),
    }
    assert check(headers).outcome == MALFORMED


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_stale_deliveries_are_refused(skew) -> None:
    verdict = check(delivery(timestamp=NOW + skew))
    assert (verdict.outcome, status_of(verdict)) == (STALE, 400)


@pytest.mark.parametrize("skew", [-299, 0, 299])
def test_within_tolerance_is_fine(skew) -> None:
    assert check(delivery(timestamp=NOW + skew)).outcome == ACCEPTED


def test_replayed_delivery_is_refused() -> None:
    seen = ReplayCache()
    assert check(delivery(), seen=seen).outcome == ACCEPTED
    again = check(delivery(), seen=seen)
    assert (again.outcome, status_of(again)) == (REPLAY, 409)
    assert check(delivery(delivery_id="d-2"), seen=seen).outcome == ACCEPTED


def test_forged_deliveries_do_not_poison_the_replay_cache() -> None:
    seen = ReplayCache()
    forged = {**delivery(), "x-mlflow-signature": "v1,AAAA"}
    assert check(forged, seen=seen).outcome == BAD_SIGNATURE
    assert len(seen) == 0
    assert check(delivery(), seen=seen).outcome == ACCEPTED


def test_rotated_secrets_any_listed_signature_matches() -> None:
    old = sign("old-secret", "d-1", str(int(NOW)), BODY)
    new = sign(SECRET, "d-1", str(int(NOW)), BODY)
    assert signature_matches(SECRET, "d-1", str(int(NOW)), BODY, f"{old} {new}")
    assert not signature_matches(SECRET, "d-1", str(int(NOW)), BODY, old)


def test_replay_cache_is_bounded_and_forgets_old_ids() -> None:
    seen = ReplayCache(max_entries=3)
    for i in range(10):
        assert seen.add(f"id-{i}", NOW, 300)
    assert len(seen) == 3
    assert not seen.add("id-9", NOW, 300)
    assert seen.add("id-0", NOW, 300)  # evicted long ago: accepted (and stale-checked anyway)
    aging = ReplayCache()
    aging.add("old", NOW, 300)
    assert aging.add("new", NOW + 601, 300)
    assert len(aging) == 1  # "old" is past twice the tolerance


def test_body_without_a_model_name() -> None:
    body = b'{"entity": "webhook", "action": "test", "data": {}}'
    assert check(delivery(body=body), body).model is None
    assert check(delivery(body=b"not json"), b"not json").model is None


@given(st.binary(max_size=200), st.text(min_size=1, max_size=20))
def test_any_body_signed_with_the_secret_verifies(body, delivery_id) -> None:
    ts = str(int(NOW))
    headers = {
        "x-mlflow-delivery-id": delivery_id.strip() or "x",
        "x-mlflow-timestamp": ts,
        "x-mlflow-signature": sign(SECRET, delivery_id.strip() or "x", ts, body),
    }
    assert check(headers, body).outcome == ACCEPTED


def test_a_signed_body_nested_too_deep_to_parse_is_accepted_without_a_model_name() -> None:
    """json.loads raises RecursionError (not ValueError) on deep nesting: that was a 500.
    Such a body names no model, like any other unparsable one: refresh every model."""
    deep = b"[" * 100_000 + b"]" * 100_000
    verdict = check(delivery(deep), deep)
    assert verdict.outcome == ACCEPTED and verdict.model is None
