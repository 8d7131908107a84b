"""Signed request ids: what an id carries comes back only with the key that signed it,
untouched, and in time; any other text is refused with a reason, never an exception."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.experiments.request_ids import (
    MAX_CLOCK_SKEW_S,
    Attribution,
    Refusal,
    RequestIdSigner,
    fresh_request_id,
)
from service.logs.access_log import request_id

KEY = b"k" * 32
NOW = 1_764_460_000.0
SIGNER = RequestIdSigner(KEY, max_age_s=3600)


def test_an_issued_id_verifies_to_what_answered() -> None:
    text = SIGNER.issue("diabetes", "Production", 7, NOW)
    assert SIGNER.verify(text, NOW + 1) == Attribution(text, "diabetes", "Production", 7, int(NOW))


def test_ids_are_compact_unique_and_well_formed_request_ids() -> None:
    ids = {SIGNER.issue("diabetes", "@challenger", 12, NOW) for _ in range(1000)}
    assert len(ids) == 1000  # the nonce
    for text in ids:
        assert len(text) < 120
        assert request_id(text) == text  # the access log keeps it as it is


@given(st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=60), st.integers(1, 10**9))
def test_any_model_and_target_name_round_trips(model: str, target: str, version: int) -> None:
    text = SIGNER.issue(model, target, version, NOW)
    verdict = SIGNER.verify(text, NOW)
    assert isinstance(verdict, Attribution)
    assert (verdict.model, verdict.target, verdict.version) == (model, target, version)


def test_changing_any_field_is_refused_as_forged() -> None:
    text = SIGNER.issue("diabetes", "Production", 7, NOW)
    other = SIGNER.issue("other-model", "Staging", 8, NOW + 5).split(".")
    parts = text.split(".")
    # model, target, version, issued, nonce, MAC: each taken from another valid id.
    for index in range(1, len(parts)):
        changed = [*parts[:index], other[index], *parts[index + 1 :]]
        assert other[index] != parts[index]
        assert SIGNER.verify(".".join(changed), NOW) is Refusal.FORGED, index
    assert SIGNER.verify("ss2" + text[3:], NOW) is Refusal.UNSIGNED  # not our format


@given(st.integers(0, 5), st.sampled_from(string.ascii_letters + string.digits + "_-"))
def test_one_character_changed_anywhere_is_refused(field: int, char: str) -> None:
    text = SIGNER.issue("diabetes", "Production", 7, NOW)
    parts = text.split(".")
    part = parts[field + 1]
    for position in range(len(part)):
        if part[position] == char:
            continue
        parts_changed = list(parts)
        parts_changed[field + 1] = part[:position] + char + part[position + 1 :]
        assert isinstance(SIGNER.verify(".".join(parts_changed), NOW), Refusal)


def test_another_key_is_forged() -> None:
    text = RequestIdSigner(b"another key, 16+ bytes").issue("diabetes", "Production", 7, NOW)
    assert SIGNER.verify(text, NOW) is Refusal.FORGED


def test_expiry_and_clock_skew() -> None:
    text = SIGNER.issue("diabetes", "Production", 7, NOW)
    assert isinstance(SIGNER.verify(text, NOW + 3600), Attribution)
    assert SIGNER.verify(text, NOW + 3601) is Refusal.EXPIRED
    assert isinstance(SIGNER.verify(text, NOW - MAX_CLOCK_SKEW_S), Attribution)
    assert SIGNER.verify(text, NOW - MAX_CLOCK_SKEW_S - 1) is Refusal.EXPIRED


def test_a_clients_own_id_is_unsigned_and_says_what_to_send() -> None:
    for client_id in ("my-request-42", fresh_request_id(), "a:b.c"):
        assert SIGNER.verify(client_id, NOW) is Refusal.UNSIGNED
    assert "X-Feedback-Id" in Refusal.UNSIGNED.message("'my-request-42'")


@given(st.one_of(st.text(max_size=300), st.none(), st.integers(), st.floats(), st.lists(st.text())))
def test_anything_else_is_refused_never_raises(value: object) -> None:
    assert isinstance(SIGNER.verify(value, NOW), Refusal)


@given(st.from_regex(r"ss1\.[A-Za-z0-9_-]{0,30}\.[A-Za-z0-9_-]{0,30}\.[0-9]{0,14}\.[0-9]{0,14}"
                     r"\.[A-Za-z0-9_-]{0,13}\.[A-Za-z0-9_.-]{0,30}", fullmatch=True))  # fmt: skip
def test_near_misses_of_the_format_are_refused(text: str) -> None:
    assert isinstance(SIGNER.verify(text, NOW), Refusal)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        RequestIdSigner(b"short")
