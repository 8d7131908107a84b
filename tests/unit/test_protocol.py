"""service.inference.protocol: the MLflow scoring protocol, parsed with MLflow's own helpers."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.pyfunc import scoring_server
from mlflow.types import ColSpec, Schema

from service.errors import MAX_MESSAGE_CHARS, ServingError, truncate
from service.inference.codec import (
    CONTENT_TYPE_CSV,
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PARQUET,
    ParsedInput,
    encode_predictions,
    media_type,
    parse_request,
)
from service.inference.invocation import accepts_params, run_predict

SCHEMA = Schema([ColSpec("double", "a"), ColSpec("double", "b")])
TEXT_SCHEMA = Schema([ColSpec("string", "text")])


def parse(
    body: bytes | str | dict[str, Any],
    content_type: str | None = CONTENT_TYPE_JSON,
    schema: Schema | None = SCHEMA,
) -> ParsedInput:
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return parse_request(body, content_type, None, schema)


def client_error(exc: ServingError, status: int = 400) -> ServingError:
    assert isinstance(exc, ServingError)
    assert exc.status == status
    assert 400 <= exc.status < 500
    body = json.loads(exc.body())
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == exc.error_code
    assert body["message"] == exc.message
    assert isinstance(body["message"], str)
    assert body["message"]
    return exc


def parse_error(
    body: bytes | str | dict[str, Any],
    content_type: str | None = CONTENT_TYPE_JSON,
    schema: Schema | None = SCHEMA,
    status: int = 400,
) -> ServingError:
    with pytest.raises(ServingError) as info:
        parse(body, content_type, schema)
    return client_error(info.value, status)


# --- media_type ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", CONTENT_TYPE_JSON),
        ("application/json; charset=utf-8", CONTENT_TYPE_JSON),
        ("application/json;charset=UTF-8", CONTENT_TYPE_JSON),
        ('application/json; charset="utf-8"', CONTENT_TYPE_JSON),
        ("application/json; charset=utf8", CONTENT_TYPE_JSON),
        ("application/json;", CONTENT_TYPE_JSON),
        ("Application/JSON", CONTENT_TYPE_JSON),
        ("  APPLICATION/JSON  ", CONTENT_TYPE_JSON),
        ("text/csv", CONTENT_TYPE_CSV),
        ("TEXT/CSV; Charset=UTF-8", CONTENT_TYPE_CSV),
        ("application/vnd.apache.parquet", CONTENT_TYPE_PARQUET),
    ],
)
def test_media_type_accepted(header: str, expected: str) -> None:
    assert media_type(header) == expected


@pytest.mark.parametrize("header", [None, "", "   "])
def test_media_type_missing(header: str | None) -> None:
    with pytest.raises(ServingError) as info:
        media_type(header)
    error = client_error(info.value, 415)
    assert "Missing Content-Type" in error.message


@pytest.mark.parametrize(
    "header", ["application/json; charset=latin-1", "text/csv; charset=utf-16"]
)
def test_media_type_other_charset(header: str) -> None:
    with pytest.raises(ServingError) as info:
        media_type(header)
    assert "UTF-8" in client_error(info.value, 415).message


@pytest.mark.parametrize(
    "header",
    ["application/json; format=pandas-split", "application/json; boundary", "text/csv; x=1"],
)
def test_media_type_unknown_parameter(header: str) -> None:
    with pytest.raises(ServingError) as info:
        media_type(header)
    assert "Unrecognized content type parameters" in client_error(info.value, 415).message


@pytest.mark.parametrize(
    "header", ["text/plain", "application/xml", "application/jsonx", "multipart/form-data", "json"]
)
def test_media_type_unknown_type(header: str) -> None:
    with pytest.raises(ServingError) as info:
        media_type(header)
    assert "Unsupported Content-Type" in client_error(info.value, 415).message


def test_content_type_is_checked_before_the_body() -> None:
    parse_error(b"", None, status=415)
    parse_error(b'{"inputs": [1]}', "text/plain", status=415)


# --- parse_request: success ---------------------------------------------------------


def test_dataframe_split() -> None:
    parsed = parse({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}})
    assert isinstance(parsed.data, pd.DataFrame)
    assert parsed.data.to_dict(orient="list") == {"a": [1.0, 3.0], "b": [2.0, 4.0]}
    assert list(parsed.data.dtypes) == [np.float64, np.float64]
    assert parsed.params is None
    assert parsed.unwrapped is False


def test_dataframe_records() -> None:
    parsed = parse({"dataframe_records": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]})
    assert isinstance(parsed.data, pd.DataFrame)
    assert parsed.data.to_dict(orient="list") == {"a": [1.0, 3.0], "b": [2.0, 4.0]}
    assert list(parsed.data.dtypes) == [np.float64, np.float64]
    assert parsed.unwrapped is False


def test_instances() -> None:
    parsed = parse({"instances": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]})
    assert set(parsed.data) == {"a", "b"}
    np.testing.assert_array_equal(parsed.data["a"], np.array([1.0, 3.0]))
    np.testing.assert_array_equal(parsed.data["b"], np.array([2.0, 4.0]))
    assert parsed.unwrapped is False


def test_inputs() -> None:
    parsed = parse({"inputs": {"a": [1, 3], "b": [2, 4]}})
    np.testing.assert_array_equal(parsed.data["a"], np.array([1.0, 3.0]))
    assert parsed.data["a"].dtype == np.float64
    assert parsed.params is None


def test_inputs_without_schema() -> None:
    parsed = parse({"inputs": [[1, 2], [3, 4]]}, schema=None)
    assert isinstance(parsed.data, np.ndarray)
    assert parsed.data.tolist() == [[1, 2], [3, 4]]


def test_params() -> None:
    parsed = parse(
        {
            "dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]},
            "params": {"threshold": 0.5, "mode": "fast"},
        }
    )
    assert parsed.params == {"threshold": 0.5, "mode": "fast"}
    assert parsed.data.shape == (1, 2)


def test_unified_llm_input_is_unwrapped() -> None:
    parsed = parse({"prompt": "hello", "temperature": 0.1}, schema=None)
    assert parsed.unwrapped is True
    assert parsed.data == {"prompt": "hello", "temperature": 0.1}
    assert parsed.params == {}


def test_csv() -> None:
    parsed = parse(b"a,b\n1,2\n3,4\n", CONTENT_TYPE_CSV)
    assert isinstance(parsed.data, pd.DataFrame)
    assert parsed.data.values.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert list(parsed.data.dtypes) == [np.float64, np.float64]
    assert parsed.params is None
    assert parsed.unwrapped is False


def test_csv_without_schema() -> None:
    parsed = parse(b"x,y\n1,hello\n", CONTENT_TYPE_CSV, schema=None)
    assert parsed.data.to_dict(orient="records") == [{"x": 1, "y": "hello"}]


def test_parquet() -> None:
    frame = pd.DataFrame({"a": [1.5, 2.5], "b": [3.0, 4.0]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    parsed = parse(buffer.getvalue(), CONTENT_TYPE_PARQUET)
    pd.testing.assert_frame_equal(parsed.data, frame)
    assert parsed.unwrapped is False


def test_utf8_text_survives() -> None:
    parsed = parse({"dataframe_records": [{"text": "naïve café 模型"}]}, schema=TEXT_SCHEMA)
    assert parsed.data["text"].tolist() == ["naïve café 模型"]


def test_json_with_charset_parameter() -> None:
    parsed = parse({"inputs": {"a": [1], "b": [2]}}, "application/json; charset=utf-8")
    assert parsed.data["a"].tolist() == [1.0]


def test_large_text_input_with_brackets_inside_strings() -> None:
    # A text model's input: more than 64 records, each with an unmatched "[" inside a
    # string (an emoticon), in a body over 4 KiB. Valid JSON, nested 3 levels deep.
    records = [{"text": f"so sad :[ review number {i} " + "x" * 40} for i in range(100)]
    body = json.dumps({"dataframe_records": records})
    assert len(body) > 4096
    parsed = parse(body, schema=TEXT_SCHEMA)
    assert len(parsed.data) == 100
    assert parsed.data["text"][0].startswith("so sad :[")


def test_large_text_input_with_balanced_brackets_inside_strings() -> None:
    nested_text = "[" * 100 + "]" * 100
    body = json.dumps({"dataframe_records": [{"text": nested_text}] * 30})
    assert len(body) > 4096
    parsed = parse(body, schema=TEXT_SCHEMA)
    assert parsed.data["text"][0] == nested_text


def test_large_flat_input_is_accepted() -> None:
    rows = [[float(i), float(i + 1)] for i in range(2000)]
    parsed = parse({"dataframe_split": {"columns": ["a", "b"], "data": rows}})
    assert parsed.data.shape == (2000, 2)


# --- parse_request: errors ----------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [CONTENT_TYPE_JSON, CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET]
)
@pytest.mark.parametrize("body", [b"", b" ", b"\n\t  \r\n"])
def test_empty_or_whitespace_body(body: bytes, content_type: str) -> None:
    assert "empty" in parse_error(body, content_type).message


@pytest.mark.parametrize("content_type", [CONTENT_TYPE_JSON, CONTENT_TYPE_CSV])
def test_invalid_utf8(content_type: str) -> None:
    error = parse_error(b'{"inputs": "\xff\xfe"}', content_type)
    assert "not valid UTF-8" in error.message


@pytest.mark.parametrize("body", ['{"inputs": [1,', "{inputs: 1}", "{'inputs': [1]}", "{", "nope"])
def test_malformed_json(body: str) -> None:
    assert "valid JSON" in parse_error(body).message


@pytest.mark.parametrize(
    ("body", "kind"), [("[1, 2]", "list"), ('"hello"', "str"), ("3", "int"), ("null", "NoneType")]
)
def test_top_level_not_an_object(body: str, kind: str) -> None:
    error = parse_error(body)
    assert "JSON dictionary" in error.message
    assert f"Received a {kind}" in error.message


def test_no_recognised_key() -> None:
    error = parse_error({"data": [[1, 2]]})
    assert "exactly one of the input fields" in error.message
    assert error.error_code == "BAD_REQUEST"


def test_two_keys() -> None:
    error = parse_error({"inputs": {"a": [1], "b": [2]}, "instances": [{"a": 1, "b": 2}]})
    assert "exactly one of the input fields" in error.message


@pytest.mark.parametrize("params", [[1, 2], "fast", 3, True])
def test_params_not_an_object(params: Any) -> None:
    error = parse_error({"inputs": {"a": [1], "b": [2]}, "params": params})
    assert "'params' must be a JSON object" in error.message


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": 5},
        {"dataframe_records": 5},
        {"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}},
        {"dataframe_records": [{"a": "not a number", "b": 1}]},
    ],
)
def test_input_incompatible_with_the_schema_or_format(body: dict[str, Any]) -> None:
    parse_error(body)


@pytest.mark.parametrize("body", [b"a,b\n1,2\n1,2,3,4\n", b'a,b\n"1,2\n', b"a,b\nx,y\n"])
def test_malformed_csv(body: bytes) -> None:
    assert "CSV" in parse_error(body, CONTENT_TYPE_CSV).message


def test_malformed_parquet() -> None:
    assert "Parquet" in parse_error(b"this is not parquet", CONTENT_TYPE_PARQUET).message


@pytest.mark.parametrize("depth", [65, 1_000, 2_040, 100_000])
def test_deeply_nested_json_is_a_400(depth: int) -> None:
    body = '{"inputs": ' + "[" * depth + "]" * depth + "}"
    error = parse_error(body)
    assert "nested" in error.message or "Invalid input" in error.message


def test_deeply_nested_objects_are_a_400() -> None:
    depth = 100_000
    body = '{"inputs": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    assert "nested" in parse_error(body).message


def test_unbalanced_deep_json_is_a_400() -> None:
    parse_error('{"inputs": ' + "[" * 100_000)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"dataframe_records": [{"a": "x" * 100_000, "b": 1}]}), CONTENT_TYPE_JSON),
        ("a,b\n" + "y" * 100_000 + ",1\n", CONTENT_TYPE_CSV),
    ],
)
def test_error_messages_are_truncated_for_huge_inputs(body: str, content_type: str) -> None:
    # MLflow quotes the value it could not convert: a huge value gives a huge message.
    error = parse_error(body, content_type)
    assert len(error.message) <= MAX_MESSAGE_CHARS + 40
    assert error.message.endswith("more characters]")
    assert len(error.body()) < MAX_MESSAGE_CHARS + 200


def test_huge_content_type_is_truncated() -> None:
    with pytest.raises(ServingError) as info:
        media_type("application/" + "x" * 100_000)
    error = client_error(info.value, 415)
    assert len(error.message) <= MAX_MESSAGE_CHARS + 40


# --- errors -------------------------------------------------------------------------


def test_truncate() -> None:
    assert truncate("short") == "short"
    exact = "x" * MAX_MESSAGE_CHARS
    assert truncate(exact) == exact
    longer = "y" * (MAX_MESSAGE_CHARS + 1)
    assert truncate(longer) == "y" * MAX_MESSAGE_CHARS + "... [1 more characters]"
    assert truncate("abcdef", limit=3) == "abc... [3 more characters]"


def test_serving_error_body() -> None:
    error = ServingError(404, "RESOURCE_DOES_NOT_EXIST", 'no "model" here')
    assert json.loads(error.body()) == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": 'no "model" here',
    }
    assert error.outcome == "bad_request"
    assert str(error) == 'no "model" here'


# --- encode_predictions -------------------------------------------------------------


def _mlflow_encoding(raw: Any, unwrapped: bool = False) -> Any:
    out = io.StringIO()
    if unwrapped:
        scoring_server.unwrapped_predictions_to_json(raw, out)
    else:
        scoring_server.predictions_to_json(raw, out)
    return json.loads(out.getvalue())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (np.array([1, 2, 3]), [1, 2, 3]),
        (np.array([[0.5, 1.5], [2.5, 3.5]]), [[0.5, 1.5], [2.5, 3.5]]),
        (np.array(["a", "b"]), ["a", "b"]),
        (pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]),
        (pd.Series([0.1, 0.2], name="score"), [{"score": 0.1}, {"score": 0.2}]),
        (pd.Series([1, 2]), [{"0": 1}, {"0": 2}]),
        ([1, 2, 3], [1, 2, 3]),
        ([np.float32(0.5), np.int64(2)], [0.5, 2]),
        ({"label": "cat", "p": np.float64(0.9)}, {"label": "cat", "p": 0.9}),
        ("plain text", "plain text"),
    ],
)
def test_encode_predictions(raw: Any, expected: Any) -> None:
    encoded = encode_predictions(raw)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == {"predictions": expected}
    assert json.loads(encoded) == _mlflow_encoding(raw)


@pytest.mark.parametrize(
    "raw", [np.array([1, 2]), pd.DataFrame({"x": [1]}), ["a"], {"choices": [{"text": "hi"}]}]
)
def test_encode_predictions_unwrapped(raw: Any) -> None:
    encoded = json.loads(encode_predictions(raw, unwrapped=True))
    assert encoded == _mlflow_encoding(raw, unwrapped=True)
    assert not (isinstance(encoded, dict) and "predictions" in encoded)


def test_encode_predictions_unserialisable_is_a_model_error() -> None:
    with pytest.raises(ServingError) as info:
        encode_predictions([object()])
    error = client_error(info.value)
    assert error.outcome == "model_error"
    assert "could not be serialised" in error.message


# --- run_predict --------------------------------------------------------------------


class Model:
    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.calls: list[tuple[Any, Any]] = []

    def predict(self, data: Any, params: Any = "not passed") -> Any:
        self.calls.append((data, params))
        if self.error is not None:
            raise self.error
        return self.result


class NoParamsModel:
    def predict(self, data: Any) -> Any:
        return [len(data)]


def test_run_predict_returns_the_model_output() -> None:
    model = Model(result=[1, 2])
    parsed = ParsedInput(data=[[1.0], [2.0]], params={"k": 1})
    assert run_predict(model, parsed, with_params=False) == [1, 2]
    assert model.calls == [([[1.0], [2.0]], "not passed")]


def test_run_predict_with_params_passes_them() -> None:
    model = Model(result="ok")
    parsed = ParsedInput(data="d", params={"k": 1})
    assert run_predict(model, parsed, with_params=True) == "ok"
    assert model.calls == [("d", {"k": 1})]


def test_run_predict_with_params_passes_none() -> None:
    model = Model(result="ok")
    run_predict(model, ParsedInput(data="d"), with_params=True)
    assert model.calls == [("d", None)]


def test_run_predict_without_params_on_a_model_without_params() -> None:
    assert run_predict(NoParamsModel(), ParsedInput(data=[1, 2, 3]), with_params=False) == [3]


def test_model_raising_value_error_is_a_model_error() -> None:
    model = Model(error=ValueError("shape mismatch"))
    with pytest.raises(ServingError) as info:
        run_predict(model, ParsedInput(data=1), with_params=False)
    error = client_error(info.value)
    assert error.outcome == "model_error"
    assert error.error_code == "BAD_REQUEST"
    assert "ValueError: shape mismatch" in error.message


def test_model_raising_mlflow_exception() -> None:
    model = Model(error=MlflowException("bad column", error_code=INVALID_PARAMETER_VALUE))
    with pytest.raises(ServingError) as info:
        run_predict(model, ParsedInput(data=1), with_params=False)
    error = client_error(info.value)
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert error.message == "Failed to predict: bad column"
    assert error.outcome == "bad_request"


def test_model_raising_a_server_side_mlflow_exception_is_still_a_4xx() -> None:
    model = Model(error=MlflowException("internal", error_code=INTERNAL_ERROR))
    with pytest.raises(ServingError) as info:
        run_predict(model, ParsedInput(data=1), with_params=False)
    error = client_error(info.value)
    assert error.error_code == "INTERNAL_ERROR"


def test_huge_model_error_is_truncated() -> None:
    model = Model(error=ValueError("z" * 100_000))
    with pytest.raises(ServingError) as info:
        run_predict(model, ParsedInput(data=1), with_params=False)
    assert len(client_error(info.value).message) <= MAX_MESSAGE_CHARS + 40


def test_accepts_params() -> None:
    assert accepts_params(Model().predict) is True
    assert accepts_params(NoParamsModel().predict) is False
    assert accepts_params(lambda data, params=None: data) is True
    assert accepts_params(len) is False
    assert accepts_params(42) is False
