"""Header values: any model or target name can be sent, and read back with unquote."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.api.header_values import header_value


@pytest.mark.parametrize("name", ["diabetes", "fraud-v2", "my model", "@champion", "Production"])
def test_printable_ascii_names_are_unchanged(name: str) -> None:
    assert header_value(name) == name


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("modèle-€", "mod%C3%A8le-%E2%82%AC"),
        ("100%", "100%25"),
        (" x", "%20x"),
        ("a\r\nb", "a%0D%0Ab"),
    ],
)
def test_other_names_are_percent_encoded(name: str, sent: str) -> None:
    assert header_value(name) == sent


@given(st.text(max_size=60))
def test_every_name_is_a_valid_header_value_that_unquotes_back(name: str) -> None:
    value = header_value(name)
    value.encode("latin-1")  # what the server writes: must not raise
    assert value.isprintable() and value == value.strip()
    assert unquote(value) == name
