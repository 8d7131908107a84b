"""A fast path for the commonest request: a small table of numbers for an all-double schema.

MLflow's parser builds a DataFrame from JSON and then casts it column by column to the
schema's types; for one row that is most of a millisecond, paid on every request. When a
version's input schema is a list of named ``double`` columns, a ``dataframe_split`` or
``dataframe_records`` body whose columns are exactly those, in that order (records: those
keys), and whose values are all JSON numbers (not booleans, strings or nulls), ends up as
float64 columns holding ``float(value)``. That is what this module builds directly, as
one float64 matrix, which is also what the micro-batcher stacks. Anything else returns
None and takes MLflow's own parser, so behaviour never differs, only speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Beyond 2**53 an int does not round-trip through float64; leave those to MLflow.
_EXACT_INT = 2**53
_NUMBER_TYPES = frozenset({float, int})


@dataclass(frozen=True)
class NumericColumns:
    """The column names of a version whose input schema is all named ``double`` columns."""

    names: tuple[str, ...]

    @classmethod
    def for_model(cls, metadata: Any, input_schema: Any) -> NumericColumns | None:
        """The fast-path spec for a loaded version, or None when it does not qualify."""
        from mlflow.types.schema import ColSpec, DataType

        if input_schema is None or not input_schema.has_input_names():
            return None
        from_type_hint = getattr(metadata, "_is_signature_from_type_hint", None)
        if from_type_hint is not None and from_type_hint():
            return None  # MLflow does not parse these bodies at all
        inputs = input_schema.inputs
        if not inputs or not all(
            isinstance(spec, ColSpec) and spec.type == DataType.double for spec in inputs
        ):
            return None
        names = tuple(spec.name for spec in inputs)
        if len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            return None
        return cls(names)


@dataclass(frozen=True, eq=False)
class NumericRows:
    """Rows in the schema's column order, as float64: what MLflow's parser would produce."""

    values: np.ndarray
    columns: tuple[str, ...]

    @property
    def row_count(self) -> int:
        return int(self.values.shape[0])

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.values, columns=list(self.columns))

    @classmethod
    def stack(cls, parts: list[NumericRows]) -> NumericRows:
        """Several requests' rows as one block (all parts share the same columns)."""
        return cls(np.vstack([p.values for p in parts]), parts[0].columns)


def _numbers_only(rows: list[list[Any]]) -> bool:
    kinds = {type(value) for row in rows for value in row}
    if not kinds <= _NUMBER_TYPES:
        return False
    if int in kinds:
        return all(
            -_EXACT_INT <= value <= _EXACT_INT
            for row in rows
            for value in row
            if type(value) is int
        )
    return True


def _split_rows(split: Any, columns: NumericColumns) -> list[list[Any]] | None:
    if type(split) is not dict or split.keys() != {"columns", "data"}:
        return None
    if split["columns"] != list(columns.names):
        return None
    rows = split["data"]
    width = len(columns.names)
    if type(rows) is not list or not rows:
        return None
    for row in rows:
        if type(row) is not list or len(row) != width:
            return None
    return rows


def _record_rows(records: Any, columns: NumericColumns) -> list[list[Any]] | None:
    if type(records) is not list or not records:
        return None
    names = columns.names
    wanted = set(names)
    rows = []
    for record in records:
        if type(record) is not dict or record.keys() != wanted:
            return None
        rows.append([record[name] for name in names])
    return rows


def parse_numeric(decoded: dict[str, Any], columns: NumericColumns) -> NumericRows | None:
    """The rows of a decoded JSON body, or None when MLflow's parser must handle it."""
    if len(decoded) != 1:
        return None  # params, extra keys or several formats: MLflow's rules apply
    if "dataframe_split" in decoded:
        rows = _split_rows(decoded["dataframe_split"], columns)
    elif "dataframe_records" in decoded:
        rows = _record_rows(decoded["dataframe_records"], columns)
    else:
        return None
    if rows is None or not _numbers_only(rows):
        return None
    return NumericRows(np.array(rows, dtype=np.float64), columns.names)
