"""service.inference.batch_predict and LoadedVersion.submit: a batched answer is each request's own
answer. Real MLflow models (saved and loaded with pyfunc), real parsing, real predict."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge

from registry_watcher.state import VersionRef
from service.errors import ServingError
from service.inference.batch_predict import Request, batch_key, chunks, cut_rows, run_batch
from service.inference.codec import CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, ParsedInput
from service.inference.loaded_version import LoadedVersion
from service.inference.numeric_input import NumericRows

X, Y = load_diabetes(return_X_y=True, as_frame=True)
COLUMNS = list(X.columns)
POISON = 666.0  # the row-wise model raises on this value


class RowWise(PythonModel):
    """Row-wise and exact: element-wise arithmetic only (a reduction such as a row sum
    is vectorised in an order that depends on the array's shape)."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        if (model_input.to_numpy() == POISON).any():
            raise ValueError("poisoned row")
        first, second = model_input.iloc[:, 0], model_input.iloc[:, 1]
        return pd.DataFrame({"mix": first * 3.0 - second, "first": first})


class Constant(PythonModel):
    """Not row-aligned: one answer per call, whatever the number of rows."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return [len(model_input)]


def _load(path: Path, version: int = 1, max_batch: int = 64) -> LoadedVersion:
    model = mlflow.pyfunc.load_model(str(path))
    return LoadedVersion(
        ref=VersionRef(f"m{version}", version, str(path), "run"),
        model=model,
        metadata=model.metadata,
        input_schema=model.metadata.get_input_schema(),
        with_params=False,
        local_dir=str(path),
        max_batch=max_batch,
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    signature = infer_signature(X, Y)
    ridge = Ridge(alpha=0.5).fit(X, Y)
    forest = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, Y)
    paths = {name: root / name for name in ("ridge", "forest", "rowwise", "constant")}
    mlflow.sklearn.save_model(ridge, paths["ridge"], signature=signature)
    mlflow.sklearn.save_model(
        forest,
        paths["forest"],
        signature=signature,
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
    mlflow.pyfunc.save_model(paths["rowwise"], python_model=RowWise(), signature=signature)
    mlflow.pyfunc.save_model(paths["constant"], python_model=Constant(), signature=signature)
    return paths


def split_body(rows: list[list[Any]], columns: list[str] = COLUMNS) -> Request:
    body = {"dataframe_split": {"columns": columns, "data": rows}}
    return Request(json.dumps(body).encode(), CONTENT_TYPE_JSON)


def record_body(rows: list[list[Any]]) -> Request:
    records = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    return Request(json.dumps({"dataframe_records": records}).encode(), CONTENT_TYPE_JSON)


def csv_body(rows: list[list[Any]]) -> Request:
    lines = [",".join(COLUMNS)] + [",".join(str(v) for v in row) for row in rows]
    return Request("\n".join(lines).encode(), CONTENT_TYPE_CSV)


def rows(start: int, count: int) -> list[list[float]]:
    return X.iloc[start : start + count].to_numpy().tolist()


def alone(version: LoadedVersion, request: Request) -> bytes | ServingError:
    """The unbatched answer: what a request sent on its own gets."""
    try:
        return version.invoke(request.body, request.content_type)
    except ServingError as error:
        return error


# Mixed sizes and formats: split (fast path), records (fast path), CSV (MLflow's parser).
MIXED = [
    split_body(rows(0, 1)),
    split_body(rows(1, 3)),
    record_body(rows(4, 2)),
    split_body(rows(6, 1)),
    csv_body(rows(7, 2)),
    csv_body(rows(9, 1)),
]


@pytest.mark.parametrize("name", ["forest", "rowwise"])
def test_batched_answers_are_byte_identical_for_row_wise_models(
    models: dict[str, Path], name: str
) -> None:
    version = _load(models[name])
    batched = run_batch(version, MIXED)
    assert batched == [alone(version, r) for r in MIXED]
    assert all(isinstance(answer, bytes) for answer in batched)


def test_each_request_gets_its_own_rows_in_order(models: dict[str, Path]) -> None:
    version = _load(models["rowwise"])
    for answer, request, first_row in zip(
        run_batch(version, MIXED), MIXED, [0, 1, 4, 6, 7, 9], strict=True
    ):
        predictions = json.loads(answer)["predictions"]
        count = len(json.loads(alone(version, request))["predictions"])
        assert len(predictions) == count
        expected = X.iloc[first_row : first_row + count]
        assert [p["first"] for p in predictions] == expected.iloc[:, 0].tolist()
        mix = expected.iloc[:, 0] * 3.0 - expected.iloc[:, 1]
        assert [p["mix"] for p in predictions] == mix.tolist()


def test_linear_models_agree_to_blas_rounding(models: dict[str, Path]) -> None:
    """BLAS sums a row's dot product in an order that depends on how many rows share the
    call, so a linear model's last bit can differ with the batch (as it does in MLflow's
    own server when a client sends several rows). Nothing else may differ."""
    version = _load(models["ridge"])
    for batched, request in zip(run_batch(version, MIXED), MIXED, strict=True):
        one = json.loads(alone(version, request))["predictions"]
        assert json.loads(batched)["predictions"] == pytest.approx(one, rel=1e-12, abs=1e-12)


def test_a_bad_request_fails_alone(models: dict[str, Path]) -> None:
    version = _load(models["rowwise"])
    poisoned = rows(20, 1)
    poisoned[0][3] = POISON
    requests = [
        split_body(rows(0, 2)),
        split_body(poisoned),  # the model raises on it
        split_body([[1.0, 2.0]], ["age", "sex"]),  # missing columns
        Request(b"{nope", CONTENT_TYPE_JSON),  # not JSON
        split_body([["x"] * len(COLUMNS)]),  # not numbers
        split_body(rows(2, 3)),
    ]
    answers = run_batch(version, requests)
    for index in (1, 2, 3, 4):
        assert isinstance(answers[index], ServingError), index
        assert answers[index].status == 400
        assert answers[index].message == alone(version, requests[index]).message
    for index in (0, 5):
        assert answers[index] == alone(version, requests[index])


def test_output_that_is_not_one_per_row_is_answered_request_by_request(
    models: dict[str, Path],
) -> None:
    version = _load(models["constant"])
    requests = [split_body(rows(0, 1)), split_body(rows(1, 3))]
    answers = run_batch(version, requests)
    assert [json.loads(a)["predictions"] for a in answers] == [[1], [3]]


def test_rows_per_call_are_capped(models: dict[str, Path]) -> None:
    version = _load(models["forest"])
    requests = [split_body(rows(i, 3)) for i in range(0, 30, 3)]
    assert run_batch(version, requests, max_rows=7) == [alone(version, r) for r in requests]


# --- versions never share a call -----------------------------------------------------


def test_requests_for_different_versions_never_share_a_predict_call(
    models: dict[str, Path],
) -> None:
    first, second = _load(models["rowwise"], 1), _load(models["rowwise"], 2)
    calls: list[tuple[str, int]] = []
    lock = threading.Lock()
    for version in (first, second):
        predict = version.predict

        def spy(parsed: ParsedInput, predict=predict, version=version) -> Any:
            with lock:
                calls.append((version.ref.model, len(parsed.data.frame())))
            return predict(parsed)

        version.predict = spy  # type: ignore[method-assign]

    async def main() -> list[bytes]:
        jobs = []
        for i in range(24):
            version = first if i % 2 else second
            jobs.append(version.submit(*_as_args(split_body(rows(i, 1)))))
        return await asyncio.gather(*jobs)

    answers = asyncio.run(main())
    assert len(answers) == 24
    assert {model for model, _ in calls} == {"m1", "m2"}
    assert sum(size for _, size in calls) == 24  # every row predicted once, no call mixes
    assert len(calls) < 24  # and concurrent requests did share calls


def _as_args(request: Request) -> tuple[bytes, str | None]:
    return request.body, request.content_type


def test_submit_raises_the_requests_own_error(models: dict[str, Path]) -> None:
    version = _load(models["rowwise"])

    async def main() -> list[Any]:
        return await asyncio.gather(
            version.submit(*_as_args(split_body(rows(0, 1)))),
            version.submit(b"[]", CONTENT_TYPE_JSON),
            return_exceptions=True,
        )

    good, bad = asyncio.run(main())
    assert good == alone(version, split_body(rows(0, 1)))
    assert isinstance(bad, ServingError) and bad.status == 400


def test_batching_off_gives_one_call_per_request(models: dict[str, Path]) -> None:
    version = _load(models["rowwise"], max_batch=1)
    sizes: list[int] = []
    predict = version.predict

    def spy(parsed: ParsedInput) -> Any:
        sizes.append(len(parsed.data.frame()))
        return predict(parsed)

    version.predict = spy  # type: ignore[method-assign]

    async def main() -> list[bytes]:
        return await asyncio.gather(
            *(version.submit(*_as_args(split_body(rows(i, 1)))) for i in range(6))
        )

    asyncio.run(main())
    assert sizes == [1] * 6


# --- pure helpers --------------------------------------------------------------------


def test_batch_keys() -> None:
    numeric = NumericRows(np.zeros((2, 2)), ("a", "b"))
    frame = pd.DataFrame({"a": [1.0], "b": ["x"]})
    assert batch_key(ParsedInput(numeric)) == ("numeric", ("a", "b"))
    dtypes = tuple(str(dtype) for dtype in frame.dtypes)  # "object" or "str" (pandas 3)
    assert batch_key(ParsedInput(frame)) == ("frame", ("a", "b"), dtypes)
    assert batch_key(ParsedInput(frame, params={"k": 1})) is None
    assert batch_key(ParsedInput(frame, unwrapped=True)) is None
    assert batch_key(ParsedInput(frame.set_axis([5]))) is None  # a meaningful index
    assert batch_key(ParsedInput(frame.iloc[:0])) is None
    assert batch_key(ParsedInput(pd.DataFrame([[1, 2]], columns=["a", "a"]))) is None
    assert batch_key(ParsedInput(np.zeros((2, 2)))) is None
    assert batch_key(ParsedInput({"a": [1.0]})) is None


def test_cut_rows() -> None:
    array = np.arange(6)
    assert [p.tolist() for p in cut_rows(array, [1, 2, 3])] == [[0], [1, 2], [3, 4, 5]]
    assert cut_rows(array, [1, 2]) is None
    assert cut_rows(np.float64(1.0), [1]) is None
    frame = pd.DataFrame({"a": range(3)})
    assert [p["a"].tolist() for p in cut_rows(frame, [2, 1])] == [[0, 1], [2]]
    series = pd.Series([1, 2, 3], name="y")
    assert [p.tolist() for p in cut_rows(series, [1, 2])] == [[1], [2, 3]]
    assert cut_rows([1, 2, 3], [3]) == [[1, 2, 3]]
    assert cut_rows({"a": [1]}, [1]) is None
    assert cut_rows("abc", [3]) is None


def test_chunks() -> None:
    sizes = {0: 3, 1: 3, 2: 1, 3: 10, 4: 1}
    assert chunks([0, 1, 2, 3, 4], sizes, 7) == [[0, 1, 2], [3], [4]]
    assert chunks([0, 1], sizes, 100) == [[0, 1]]
    assert chunks([], sizes, 5) == []
