"""Answer several requests for one model version with one ``predict`` call.

Most of a small model's cost is per call (schema enforcement, input validation), not
per row, so concurrent requests are stacked into one input and the output is cut back
into each request's rows, in order. Only inputs that are the same kind of table are
stacked: the same columns, the same dtypes, no params, a default index. When the
stacked call fails, or its output cannot be cut by rows, every request is answered on
its own, so a bad request fails alone and never takes its neighbours with it.

This module is synchronous and knows nothing of the event loop: service/inference/micro_batcher.py
decides which requests run together, this decides how.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from service.errors import ServingError
from service.inference.codec import ParsedInput, encode_predictions
from service.inference.numeric_input import NumericRows

log = logging.getLogger("stageserve.batching")

# A stacked call never holds more rows than this; bigger groups are cut into chunks.
MAX_BATCH_ROWS = 4096


class Predictor(Protocol):
    """What batching needs of a loaded version."""

    def parse(self, body: bytes, content_type: str | None) -> ParsedInput: ...

    def predict(self, parsed: ParsedInput) -> Any: ...


@dataclass(frozen=True)
class Request:
    body: bytes
    content_type: str | None


Outcome = bytes | ServingError


def internal_error() -> ServingError:
    return ServingError(500, "INTERNAL_ERROR", "Internal error; see the gateway log.", "error")


def batch_key(parsed: ParsedInput) -> Hashable | None:
    """Inputs with equal keys can be stacked into one call; None: this one runs alone."""
    if parsed.params is not None or parsed.unwrapped:
        return None
    data = parsed.data
    if isinstance(data, NumericRows):
        return ("numeric", data.columns)
    if isinstance(data, pd.DataFrame) and len(data) > 0:
        index = data.index
        if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
            return None
        if not data.columns.is_unique:
            return None
        return ("frame", tuple(data.columns), tuple(str(dtype) for dtype in data.dtypes))
    return None


def row_count(parsed: ParsedInput) -> int:
    data = parsed.data
    return data.row_count if isinstance(data, NumericRows) else len(data)


def stack(parts: Sequence[ParsedInput]) -> ParsedInput:
    """One input holding every part's rows, in order (parts share a batch key)."""
    first = parts[0].data
    if isinstance(first, NumericRows):
        return ParsedInput(NumericRows.stack([p.data for p in parts]))
    return ParsedInput(pd.concat([p.data for p in parts], ignore_index=True))


def cut_rows(raw: Any, counts: Sequence[int]) -> list[Any] | None:
    """The output of a stacked call cut back into each part's rows; None when it does
    not have one entry per input row (then it cannot be attributed)."""
    total = sum(counts)
    if isinstance(raw, (pd.DataFrame, pd.Series)):
        if len(raw) != total:
            return None
        take = raw.iloc.__getitem__
    elif isinstance(raw, np.ndarray):
        if raw.ndim == 0 or raw.shape[0] != total:
            return None
        take = raw.__getitem__
    elif isinstance(raw, list):
        if len(raw) != total:
            return None
        take = raw.__getitem__
    else:
        return None
    parts = []
    start = 0
    for count in counts:
        parts.append(take(slice(start, start + count)))
        start += count
    return parts


def chunks(indices: Sequence[int], rows: Mapping[int, int], max_rows: int) -> list[list[int]]:
    """Consecutive groups of request indices holding at most ``max_rows`` rows each
    (a request bigger than that is a group of its own)."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index in indices:
        if current and size + rows[index] > max_rows:
            groups.append(current)
            current, size = [], 0
        current.append(index)
        size += rows[index]
    if current:
        groups.append(current)
    return groups


def _answer_alone(version: Predictor, parsed: ParsedInput) -> Outcome:
    try:
        return encode_predictions(version.predict(parsed), parsed.unwrapped)
    except ServingError as error:
        return error
    except Exception:
        log.exception("unexpected error while predicting")
        return internal_error()


def _answer_together(version: Predictor, parts: list[ParsedInput]) -> list[Outcome]:
    counts = [row_count(p) for p in parts]
    try:
        pieces = cut_rows(version.predict(stack(parts)), counts)
    except ServingError:
        pieces = None  # someone's input is bad: find out whose, one by one
    except Exception:
        log.exception("unexpected error in a batched predict; answering one by one")
        pieces = None
    if pieces is None:
        return [_answer_alone(version, p) for p in parts]
    answers: list[Outcome] = []
    for piece in pieces:
        try:
            answers.append(encode_predictions(piece))
        except ServingError as error:
            answers.append(error)
    return answers


def run_batch(
    version: Predictor, requests: Sequence[Request], max_rows: int = MAX_BATCH_ROWS
) -> list[Outcome]:
    """Each request's answer body or error, in order."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    parsed: dict[int, ParsedInput] = {}
    rows: dict[int, int] = {}  # rows of each stackable request
    groups: dict[Hashable, list[int]] = {}
    for index, request in enumerate(requests):
        try:
            parsed[index] = version.parse(request.body, request.content_type)
        except ServingError as error:
            outcomes[index] = error
            continue
        except Exception:
            log.exception("unexpected error while parsing a request")
            outcomes[index] = internal_error()
            continue
        key = batch_key(parsed[index])
        if key is None:
            key = ("alone", index)
            rows[index] = 0
        else:
            rows[index] = row_count(parsed[index])
        groups.setdefault(key, []).append(index)
    for members in groups.values():
        for chunk in chunks(members, rows, max_rows):
            if len(chunk) == 1:
                outcomes[chunk[0]] = _answer_alone(version, parsed[chunk[0]])
                continue
            answers = _answer_together(version, [parsed[i] for i in chunk])
            for index, answer in zip(chunk, answers, strict=True):
                outcomes[index] = answer
    return [o if o is not None else internal_error() for o in outcomes]
