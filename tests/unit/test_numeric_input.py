"""service.inference.numeric_input: the fast path builds exactly what MLflow's parser builds, or
declines. Checked against MLflow's own parser, not against hand-written expectations."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.pyfunc import scoring_server
from mlflow.types import ColSpec, Schema, TensorSpec

from service.inference.codec import CONTENT_TYPE_JSON, parse_request
from service.inference.numeric_input import NumericColumns, NumericRows, parse_numeric

NAMES = ["age", "sex", "bmi"]
SCHEMA = Schema([ColSpec("double", name) for name in NAMES])
COLUMNS = NumericColumns(tuple(NAMES))


def mlflow_frame(body: dict[str, Any]) -> pd.DataFrame:
    """What MLflow's scoring server hands to the model for this body."""
    return scoring_server._parse_json_data(json.dumps(body), None, SCHEMA).data


def fast_frame(body: dict[str, Any]) -> pd.DataFrame:
    rows = parse_numeric(json.loads(json.dumps(body)), COLUMNS)
    assert rows is not None, body
    return rows.frame()


# --- which versions qualify ---------------------------------------------------------


def test_all_double_named_columns_qualify() -> None:
    assert NumericColumns.for_model(None, SCHEMA) == COLUMNS


@pytest.mark.parametrize(
    "schema",
    [
        None,
        Schema([ColSpec("double", "a"), ColSpec("long", "b")]),
        Schema([ColSpec("float", "a")]),
        Schema([ColSpec("string", "a")]),
        Schema([ColSpec("double")]),  # unnamed
        Schema([TensorSpec(np.dtype("float64"), (-1, 3))]),
    ],
)
def test_other_schemas_do_not_qualify(schema: Schema | None) -> None:
    assert NumericColumns.for_model(None, schema) is None


def test_signatures_from_type_hints_do_not_qualify() -> None:
    class Metadata:
        def _is_signature_from_type_hint(self) -> bool:
            return True

    assert NumericColumns.for_model(Metadata(), SCHEMA) is None


# --- same frame as MLflow's parser -------------------------------------------------

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(2**53), max_value=2**53),
)
rows = st.lists(st.lists(numbers, min_size=3, max_size=3), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(rows)
def test_split_bodies_give_mlflows_frame(data: list[list[float]]) -> None:
    body = {"dataframe_split": {"columns": NAMES, "data": data}}
    pd.testing.assert_frame_equal(fast_frame(body), mlflow_frame(body), check_exact=True)


@settings(max_examples=100, deadline=None)
@given(rows)
def test_record_bodies_give_mlflows_frame(data: list[list[float]]) -> None:
    records = [dict(zip(reversed(NAMES), reversed(row), strict=True)) for row in data]
    body = {"dataframe_records": records}
    expected = mlflow_frame(body)[NAMES]  # MLflow keeps key order; the schema reorders
    pd.testing.assert_frame_equal(fast_frame(body), expected, check_exact=True)


def test_nan_from_json_is_kept() -> None:
    body = b'{"dataframe_split": {"columns": ["age", "sex", "bmi"], "data": [[NaN, 1, 2.5]]}}'
    rows = parse_numeric(json.loads(body), COLUMNS)
    assert rows is not None and np.isnan(rows.values[0, 0])


def test_parse_request_takes_the_fast_path_only_when_given_the_columns() -> None:
    body = json.dumps({"dataframe_split": {"columns": NAMES, "data": [[1, 2, 3]]}}).encode()
    fast = parse_request(body, CONTENT_TYPE_JSON, None, SCHEMA, COLUMNS)
    slow = parse_request(body, CONTENT_TYPE_JSON, None, SCHEMA)
    assert isinstance(fast.data, NumericRows)
    assert isinstance(slow.data, pd.DataFrame)
    pd.testing.assert_frame_equal(fast.data.frame(), slow.data, check_exact=True)


# --- declines whatever MLflow's rules must decide ----------------------------------

SPLIT = {"columns": NAMES, "data": [[1.0, 2.0, 3.0]]}


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": SPLIT, "params": {"k": 1}},
        {"dataframe_split": SPLIT, "extra": 1},
        {"dataframe_split": {**SPLIT, "index": [7]}},
        {"dataframe_split": {"data": [[1.0, 2.0, 3.0]]}},
        {"dataframe_split": {"columns": ["sex", "age", "bmi"], "data": [[1.0, 2.0, 3.0]]}},
        {"dataframe_split": {"columns": NAMES[:2], "data": [[1.0, 2.0]]}},
        {"dataframe_split": {"columns": [*NAMES, "x"], "data": [[1.0, 2.0, 3.0, 4.0]]}},
        {"dataframe_split": {"columns": NAMES, "data": []}},
        {"dataframe_split": {"columns": NAMES, "data": [[1.0, 2.0]]}},
        {"dataframe_split": {"columns": NAMES, "data": [[1.0, 2.0, 3.0, 4.0]]}},
        {"dataframe_split": {"columns": NAMES, "data": [[1.0, 2.0, "3"]]}},
        {"dataframe_split": {"columns": NAMES, "data": [[1.0, 2.0, None]]}},
        {"dataframe_split": {"columns": NAMES, "data": [[1.0, 2.0, True]]}},
        {"dataframe_split": {"columns": NAMES, "data": [[1.0, 2.0, [3.0]]]}},
        {"dataframe_split": {"columns": NAMES, "data": [[1.0, 2.0, 2**53 + 1]]}},
        {"dataframe_split": {"columns": NAMES, "data": [1.0, 2.0, 3.0]}},
        {"dataframe_split": {"columns": NAMES, "data": "rows"}},
        {"dataframe_split": [[1.0, 2.0, 3.0]]},
        {"dataframe_records": []},
        {"dataframe_records": [{"age": 1.0, "sex": 2.0}]},
        {"dataframe_records": [{"age": 1.0, "sex": 2.0, "bmi": 3.0, "x": 4.0}]},
        {"dataframe_records": [{"age": 1.0, "sex": 2.0, "bmi": "3"}]},
        {"dataframe_records": {"age": 1.0, "sex": 2.0, "bmi": 3.0}},
        {"dataframe_records": [[1.0, 2.0, 3.0]]},
        {"instances": [[1.0, 2.0, 3.0]]},
        {"inputs": {"age": [1.0], "sex": [2.0], "bmi": [3.0]}},
    ],
)
def test_declines_what_mlflow_must_decide(body: dict[str, Any]) -> None:
    assert parse_numeric(body, COLUMNS) is None


def test_stack_keeps_every_row_in_order() -> None:
    a = NumericRows(np.array([[1.0, 2.0, 3.0]]), COLUMNS.names)
    b = NumericRows(np.array([[4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]), COLUMNS.names)
    stacked = NumericRows.stack([a, b])
    assert stacked.row_count == 3
    assert stacked.values.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    assert list(stacked.frame().columns) == NAMES
