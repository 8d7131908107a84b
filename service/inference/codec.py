"""The MLflow scoring protocol's codec: request bodies in (``ParsedInput``),
``{"predictions": ...}`` out. Calling the model between the two is
``invocation.py``'s job.

Parsing reuses MLflow's own scoring-server helpers, so a client of
``mlflow models serve`` gets the same behaviour, with three differences a gateway
needs: a missing Content-Type, an empty body and an oversized body are 4xx errors
(MLflow answers 500 or tries to parse), and error messages are truncated instead of
echoing a whole request back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import BytesIO, StringIO
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server as mlflow_scoring
from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

from service.errors import JSON, ServingError, bad_request
from service.inference.numeric_input import NumericColumns, parse_numeric

CONTENT_TYPE_JSON = JSON
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = (CONTENT_TYPE_JSON, CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET)


@dataclass(frozen=True)
class ParsedInput:
    data: Any
    params: dict[str, Any] | None = None
    # MLflow's "unified LLM" JSON (no dataframe_*/instances/inputs key): the answer is
    # the bare predictions, not wrapped in {"predictions": ...}.
    unwrapped: bool = False


def unsupported_media_type(message: str) -> ServingError:
    return ServingError(415, "BAD_REQUEST", message)


def media_type(content_type: str | None) -> str:
    """Validate a Content-Type header the way MLflow does and return the media type."""
    if content_type is None or not content_type.strip():
        raise unsupported_media_type(
            "Missing Content-Type header: send 'application/json' (dataframe_split, "
            "dataframe_records, instances or inputs), 'text/csv' or "
            f"'{CONTENT_TYPE_PARQUET}'."
        )
    parts = [p.strip() for p in content_type.split(";")]
    mime = parts[0].lower()
    parameters = {}
    for pair in parts[1:]:
        if pair:
            key, _, value = pair.partition("=")
            parameters[key.strip().lower()] = value.strip().strip('"')
    charset = parameters.pop("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise unsupported_media_type(
            f"Unsupported charset {charset!r}: the scoring server only supports UTF-8."
        )
    if parameters:
        raise unsupported_media_type(
            f"Unrecognized content type parameters: {', '.join(sorted(parameters))}."
        )
    if mime not in CONTENT_TYPES:
        raise unsupported_media_type(
            f"Unsupported Content-Type {content_type!r}. Supported types: {list(CONTENT_TYPES)}."
        )
    return mime


def from_mlflow_error(exc: MlflowException) -> ServingError:
    """An MLflow exception as the 4xx answer MLflow's scoring server would give."""
    status = exc.get_http_status_code()
    if not 400 <= status < 500:
        status = 400
    return ServingError(status, str(exc.error_code), exc.message)


def parse_json(
    body: bytes, metadata: Any, input_schema: Any, numeric: NumericColumns | None = None
) -> ParsedInput:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"Request body is not valid UTF-8: {exc}") from None
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"Ensure that input is a valid JSON formatted string. Error: {exc}"
        ) from None
    except RecursionError:
        raise bad_request("JSON input is nested too deeply.") from None
    if not isinstance(decoded, dict):
        raise bad_request(
            "The input must be a JSON dictionary with exactly one of the input fields "
            "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}. "
            f"Received a {type(decoded).__name__}."
        )
    if numeric is not None:
        rows = parse_numeric(decoded, numeric)
        if rows is not None:
            return ParsedInput(rows)
    params = decoded.get("params")
    if params is not None and not isinstance(params, dict):
        raise bad_request(f"'params' must be a JSON object, got {type(params).__name__}.")
    try:
        parsed = mlflow_scoring._parse_json_data(decoded, metadata, input_schema)
    except MlflowException as exc:
        raise from_mlflow_error(exc) from None
    except RecursionError:
        raise bad_request("JSON input is nested too deeply.") from None
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise bad_request(f"Failed to parse the JSON input: {type(exc).__name__}: {exc}") from None
    return ParsedInput(parsed.data, parsed.params, parsed.is_unified_llm_input)


def parse_csv(body: bytes, input_schema: Any) -> ParsedInput:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"Request body is not valid UTF-8: {exc}") from None
    try:
        data = mlflow_scoring.parse_csv_input(StringIO(text), schema=input_schema)
    except MlflowException as exc:
        raise from_mlflow_error(exc) from None
    return ParsedInput(data)


def parse_parquet(body: bytes) -> ParsedInput:
    try:
        data = mlflow_scoring.parse_parquet_input(BytesIO(body))
    except MlflowException as exc:
        raise from_mlflow_error(exc) from None
    return ParsedInput(data)


def parse_request(
    body: bytes,
    content_type: str | None,
    metadata: Any,
    input_schema: Any,
    numeric: NumericColumns | None = None,
) -> ParsedInput:
    """Parse an /invocations body for a model with this metadata and input schema
    (``numeric``: the version qualifies for the fast path of service/inference/numeric_input.py)."""
    mime = media_type(content_type)
    if not body or not body.strip():
        raise bad_request(
            "Request body is empty: send a JSON object with one of dataframe_split, "
            "dataframe_records, instances or inputs, or a CSV table."
        )
    if mime == CONTENT_TYPE_JSON:
        return parse_json(body, metadata, input_schema, numeric)
    if mime == CONTENT_TYPE_CSV:
        return parse_csv(body, input_schema)
    return parse_parquet(body)


def encode_predictions(raw: Any, unwrapped: bool = False) -> bytes:
    """Serialise predictions exactly as MLflow's scoring server does."""
    try:
        jsonable = _get_jsonable_obj(raw, pandas_orient="records")
        payload = jsonable if unwrapped else {"predictions": jsonable}
        return json.dumps(payload, cls=NumpyEncoder).encode()
    except (TypeError, ValueError) as exc:
        raise ServingError(
            400,
            "BAD_REQUEST",
            f"The model's output could not be serialised to JSON: {exc}",
            outcome="model_error",
        ) from None
