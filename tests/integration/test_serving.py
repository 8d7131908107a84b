"""The MLflow scoring protocol, end to end: stageserve against `mlflow models serve`.

The same requests go to MLflow's own scoring server and to stageserve on the same
model version; successful answers must be identical (a client of one works
unchanged against the other), and bad input must get a 4xx MLflow error, never a 500.
The gateway logs JSON with its access log on: its whole output is checked at the end.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import socket
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from tests.integration.harness import (
    ALL_FEATURES,
    ROW,
    Gateway,
    Registered,
    free_port,
    run_cli,
    split_payload,
)
from tests.support.processes import (
    ServerProcess,
    mlflow_models_serve,
    wait_until,
    with_venv_path,
)

pytestmark = pytest.mark.integration

ROWS = [ROW, [0.01, -0.04, 0.03, 0.05, 0.01, 0.02, -0.01, 0.03, 0.0, 0.01]]


@pytest.fixture(scope="module")
def served(mlflow_server, registry, tmp_path_factory) -> Iterator[tuple[Registered, Gateway, str]]:
    """A model with v1 in Production and v2 in Staging; stageserve and mlflow serve on v1."""
    root = tmp_path_factory.mktemp("serving")
    name = "protocol-model"
    v1 = registry.register_ridge(name, ALL_FEATURES[:4], alpha=1.0)
    registry.transition(name, v1.version, "Production")
    v2 = registry.register_ridge(name, ALL_FEATURES, alpha=0.5)  # served through Staging
    registry.transition(name, v2.version, "Staging")

    port = free_port()
    log = root / "mlflow-models-serve.log"
    # mlflow models serve execs `uvicorn`: it must find the one in this interpreter's bin/.
    env = with_venv_path(dict(os.environ, MLFLOW_TRACKING_URI=mlflow_server.uri))
    command = mlflow_models_serve(f"models:/{name}/{v1.version}", port)
    peer = ServerProcess("mlflow models serve", command, log, port, env=env).launch()
    gateway = Gateway(
        root, mlflow_server.uri, [name], "--poll-interval", "0.5",
        "--log-format", "json", "--access-log",
    )  # fmt: skip
    try:
        gateway.start()
        peer_url = peer.wait_ready(120).url
        yield v1, gateway, peer_url
    finally:
        gateway.stop()
        peer.stop()


REQUESTS = [
    ("dataframe_split", "application/json", json.dumps(split_payload(ROWS))),
    (
        "dataframe_records",
        "application/json",
        json.dumps({"dataframe_records": [dict(zip(ALL_FEATURES, r, strict=True)) for r in ROWS]}),
    ),
    (
        "instances",
        "application/json",
        json.dumps({"instances": [dict(zip(ALL_FEATURES, r, strict=True)) for r in ROWS]}),
    ),
    (
        "inputs",
        "application/json",
        json.dumps({"inputs": {f: [r[i] for r in ROWS] for i, f in enumerate(ALL_FEATURES)}}),
    ),
    ("json with charset", "application/json; charset=utf-8", json.dumps(split_payload(ROWS))),
    ("csv", "text/csv", pd.DataFrame(ROWS, columns=ALL_FEATURES).to_csv(index=False)),
]


@pytest.mark.parametrize(("label", "content_type", "body"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_same_answers_as_mlflow_models_serve(served, label, content_type, body) -> None:
    v1, gateway, peer_url = served
    headers = {"Content-Type": content_type}
    ours = gateway.post("/invocations", content=body, headers=headers)
    theirs = httpx.post(peer_url + "/invocations", content=body, headers=headers, timeout=30)
    assert theirs.status_code == 200, theirs.text
    assert ours.status_code == 200, ours.text
    assert ours.json() == theirs.json()
    assert ours.json()["predictions"][0] == pytest.approx(v1.expected(ROWS[0]))
    assert ours.headers["X-Model-Name"] == v1.name
    assert ours.headers["X-Model-Version"] == v1.version
    assert ours.headers["X-Model-Target"] == "Production"


def test_parquet_body(served) -> None:
    v1, gateway, _ = served
    buf = io.BytesIO()
    pd.DataFrame(ROWS, columns=ALL_FEATURES).to_parquet(buf)
    response = gateway.post(
        "/invocations",
        content=buf.getvalue(),
        headers={"Content-Type": "application/vnd.apache.parquet"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0] == pytest.approx(v1.expected(ROWS[0]))


def test_named_model_route_and_target_header(served) -> None:
    v1, gateway, _ = served
    body = split_payload([ROW])
    by_name = gateway.post(f"/models/{v1.name}/invocations", json=body)
    assert by_name.status_code == 200
    assert by_name.headers["X-Model-Version"] == v1.version

    staging = gateway.post("/invocations", json=body, headers={"X-Model-Target": "staging"})
    assert staging.status_code == 200, staging.text
    assert staging.headers["X-Model-Target"] == "Staging"
    assert staging.headers["X-Model-Version"] != v1.version
    assert staging.json()["predictions"][0] != pytest.approx(v1.expected())

    by_version = gateway.post(
        "/invocations", json=body, headers={"X-Model-Target": staging.headers["X-Model-Version"]}
    )
    assert by_version.status_code == 200
    assert by_version.headers["X-Model-Target"] == "Staging"
    assert by_version.json() == staging.json()


def _raw_post(port: int, head: str, body: bytes) -> tuple[int, bytes]:
    """A POST written by hand, for requests httpx would not send (no Content-Type)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data:
                headers, _, rest = data.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ]  # fmt: skip
                if length and len(rest) >= length[0]:
                    break
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


BAD_REQUESTS = [
    ("malformed json", "application/json", b'{"dataframe_split": {"columns": [', 400),
    ("json list", "application/json", b"[1, 2, 3]", 400),
    ("no known key", "application/json", b'{"data": [[1, 2]]}', 400),
    (
        "two keys",
        "application/json",
        json.dumps({**split_payload(), "instances": [ROW]}).encode(),
        400,
    ),
    (
        "wrong shape",
        "application/json",
        json.dumps({"dataframe_split": {"columns": ALL_FEATURES, "data": [[1.0, 2.0]]}}).encode(),
        400,
    ),
    (
        "missing columns",
        "application/json",
        json.dumps({"dataframe_split": {"columns": ["age"], "data": [[0.1]]}}).encode(),
        400,
    ),
    (
        "wrong types",
        "application/json",
        json.dumps(
            {"dataframe_split": {"columns": ALL_FEATURES, "data": [["x"] * len(ALL_FEATURES)]}}
        ).encode(),
        400,
    ),
    ("unknown content type", "application/xml", b"<a/>", 415),
    ("bad charset", "application/json; charset=latin-1", b"{}", 415),
    ("empty body", "application/json", b"", 400),
    ("invalid utf-8", "application/json", b'{"inputs": "\xff\xfe"}', 400),
    ("bad csv", "text/csv", b'a,b\n1,"2\n', 400),
    ("deep json", "application/json", b"[" * 100_000 + b"]" * 100_000, 400),
    (
        "params not an object",
        "application/json",
        json.dumps({**split_payload(), "params": 3}).encode(),
        400,
    ),
]


@pytest.mark.parametrize(
    ("label", "content_type", "body", "status"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_input_gets_mlflow_error(served, label, content_type, body, status) -> None:
    _, gateway, _ = served
    response = gateway.post("/invocations", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error_code", "message"}
    assert error["error_code"] and error["message"]
    assert len(error["message"]) < 3000  # never the whole request echoed back


def test_missing_content_type_is_4xx(served) -> None:
    _, gateway, _ = served
    body = json.dumps(split_payload()).encode()
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close"
    )
    status, payload = _raw_post(gateway.port, head, body)
    assert status == 415
    assert "Content-Type" in json.loads(payload)["message"]


def test_huge_body_is_413_and_service_survives(served) -> None:
    _, gateway, _ = served
    huge = b'{"inputs": "' + b"x" * (51 * 1024 * 1024) + b'"}'
    response = gateway.post(
        "/invocations", content=huge, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert gateway.post("/invocations", json=split_payload()).status_code == 200


def test_unknown_model_and_target(served) -> None:
    _, gateway, _ = served
    unknown = gateway.post("/models/nope/invocations", json=split_payload())
    assert unknown.status_code == 404
    assert "protocol-model" in unknown.json()["message"]
    bad_target = gateway.post(
        "/invocations", json=split_payload(), headers={"X-Model-Target": "@ghost"}
    )
    assert bad_target.status_code == 400
    assert "Production, Staging" in bad_target.json()["message"]
    empty_target = gateway.post(
        "/invocations", json=split_payload(), headers={"X-Model-Target": ""}
    )
    assert empty_target.status_code == 400


def test_health_version_and_metrics(served) -> None:
    v1, gateway, _ = served
    for path in ("/ping", "/health", "/readyz"):
        assert gateway.get(path).status_code == 200, path
    assert gateway.get("/version").text.startswith("3.")
    state = gateway.state()
    assert state["ready"] is True
    production = gateway.target_state(v1.name, "Production")
    assert production["status"] == "ready"
    assert production["version"] == int(v1.version)
    assert production["smoke_tested"] is True
    assert state["watcher"]["reachable"] is True
    metrics = gateway.get("/metrics").text
    assert (
        f'stageserve_loaded_version{{model="{v1.name}",target="Production"}} {float(v1.version)}'
        in metrics
    )
    assert "stageserve_registry_up 1.0" in metrics
    assert "stageserve_requests_total" in metrics
    assert "bentoml_" in metrics  # BentoML's own metrics are still there


def test_status_shows_what_the_gateway_serves(served) -> None:
    """`stageserve status` against this gateway: its table, its --json, its exit codes."""
    v1, gateway, _ = served
    shown = run_cli("status", "--url", gateway.url)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"gateway   {gateway.url}  ready (worker pid ")
    assert lines[1].startswith(f"registry  {gateway.state()['watcher']['registry_uri']}  reachable")
    assert lines[3].split()[:6] == ["MODEL", "TARGET", "VERSION", "SINCE", "STATUS", "SHARE"]
    production, staging = (line.split() for line in lines[4:6])
    assert production[:3] == [v1.name, "Production", v1.version]
    assert production[-3:] == ["ready", "100%", "-"]
    assert staging[:4] == [v1.name, "Staging", "(optional)", str(int(v1.version) + 1)]
    assert staging[-3:] == ["ready", "0%", "-"]

    env = {**os.environ, "STAGESERVE_URL": gateway.url}  # the variable, in place of --url
    as_json = run_cli("status", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    state = json.loads(as_json.stdout)
    assert state["ready"] is True and state["models"][0]["name"] == v1.name
    assert [t["version"] for t in state["models"][0]["targets"]] == [
        int(v1.version), int(v1.version) + 1,
    ]  # fmt: skip

    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    refused = run_cli("status", "--url", nobody)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith(f"stageserve: no gateway answers at {nobody} (")
    assert refused.stderr.count("\n") == 1


def test_write_endpoints_are_off_without_their_secrets(served) -> None:
    """This gateway runs without STAGESERVE_WEBHOOK_SECRET and STAGESERVE_ADMIN_TOKEN."""
    v1, gateway, _ = served
    webhook = gateway.post("/webhooks/mlflow", content=b"{}")
    assert webhook.status_code == 404
    assert "STAGESERVE_WEBHOOK_SECRET" in webhook.json()["message"]
    policy = {"weights": {"Production": 1}}
    admin = httpx.put(f"{gateway.url}/admin/models/{v1.name}/traffic", json=policy)
    assert admin.status_code == 403
    assert "STAGESERVE_ADMIN_TOKEN" in admin.json()["message"]


def test_concurrent_requests_each_get_their_own_answer(served) -> None:
    """Concurrent requests share predict calls (service/inference/micro_batcher.py); each
    must still get exactly its own rows back, whichever parser (fast path or MLflow's) read it."""
    from concurrent.futures import ThreadPoolExecutor

    v1, gateway, _ = served
    rng = random.Random(7)
    rows = [[round(rng.uniform(-0.1, 0.1), 6) for _ in ALL_FEATURES] for _ in range(48)]

    def body(i: int) -> dict:
        if i % 2:  # exactly the model's columns: the fast path
            return {"dataframe_split": {"columns": v1.features, "data": [rows[i][:4]]}}
        return split_payload([rows[i]])  # extra columns: MLflow's parser

    sequential = [gateway.post("/invocations", json=body(i)).json() for i in range(len(rows))]

    def send(i: int) -> tuple[int, dict]:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            return i, client.post("/invocations", json=body(i)).json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = dict(pool.map(send, range(len(rows))))
    for i, row in enumerate(rows):
        expected = v1.expected(row)
        assert answers[i]["predictions"] == pytest.approx([expected], rel=1e-12, abs=1e-12), i
        assert answers[i]["predictions"] == pytest.approx(
            sequential[i]["predictions"], rel=1e-12, abs=1e-12
        )


def test_the_root_describes_the_api_and_loads_nothing(served) -> None:
    """GET / is a page listing the API, /openapi.json and /docs.json its OpenAPI document
    (BentoML's Swagger page, its third-party script and its assets are gone), and the
    gateway's real answers match the document's schemas."""
    from openapi_schema_validator import OAS31Validator

    v1, gateway, _ = served
    document = gateway.get("/openapi.json")
    assert document.status_code == 200
    spec = document.json()
    assert spec["openapi"] == "3.1.0"
    routes = {"/invocations", "/models/{name}/invocations", "/webhooks/mlflow"}
    assert routes <= spec["paths"].keys()
    assert gateway.get("/docs.json").json() == spec

    page = gateway.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text.lower()
    urls = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert urls and all(url.startswith("./") for url in urls), urls
    for gone in ("/static_content/swagger-ui-bundle.js", "/schema.json"):
        assert gateway.get(gone).status_code == 404, gone

    def conforms(answer: httpx.Response, schema: str) -> None:
        root = {**spec, "$ref": f"#/components/schemas/{schema}"}
        OAS31Validator(root).validate(answer.json())

    conforms(gateway.get("/ping"), "Health")
    conforms(gateway.get("/admin/models"), "GatewayState")
    conforms(gateway.get(f"/admin/models/{v1.name}/traffic"), "TrafficView")
    conforms(gateway.post("/invocations", json=split_payload()), "Predictions")
    conforms(gateway.get("/no/such/route"), "Error")


def _log_records(gateway: Gateway) -> list[dict]:
    """Every non-empty line of the gateway's output (stdout and stderr), parsed: any line
    that is not one JSON object fails the test."""
    records = []
    for number, line in enumerate(gateway.log.read_text().splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"line {number} is not JSON: {line!r}") from None
            assert isinstance(record, dict), line
            records.append(record)
    return records


def test_json_logs_every_line_and_an_access_record_per_prediction(served) -> None:
    v1, gateway, _ = served
    ok = gateway.post("/invocations", json=split_payload(), headers={"X-Request-Id": "log-ok-1"})
    staging = gateway.post(
        "/invocations",
        json=split_payload(),
        headers={"X-Model-Target": "Staging", "X-Request-Id": "log-staging-1"},
    )
    missing = gateway.post("/models/nope/invocations", json={}, headers={"X-Request-Id": "log-404"})
    forged = gateway.post("/invocations", json=split_payload(), headers={"X-Request-Id": "a b"})
    assert [r.status_code for r in (ok, staging, missing, forged)] == [200, 200, 404, 200]
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        # An upgrade uvicorn does not support: it logs a warning of its own.
        sock.sendall(
            b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        )
        sock.recv(1024)

    def uvicorn_logged() -> bool:
        return any(r["logger"].startswith("uvicorn") for r in _log_records(gateway))

    assert wait_until(uvicorn_logged, 10), gateway.log_tail()
    records = _log_records(gateway)
    loggers = {r["logger"] for r in records}
    assert {"bentoml.serve", "stageserve.loader", "stageserve.access"} <= loggers, loggers
    assert all({"time", "level", "logger", "message", "pid"} <= set(r) for r in records)
    assert all(r["time"].endswith("Z") and len(r["time"]) == 24 for r in records)

    access = {r["request_id"]: r for r in records if r["logger"] == "stageserve.access"}
    staging_version = int(staging.headers["X-Model-Version"])
    expected = {
        "log-ok-1": (200, "/invocations", v1.name, "Production", int(v1.version)),
        "log-staging-1": (200, "/invocations", v1.name, "Staging", staging_version),
        "log-404": (404, "/models/nope/invocations", "nope", None, None),
    }  # fmt: skip
    for request_id, (status, path, model, target, version) in expected.items():
        record = access[request_id]
        assert (record["status"], record["path"], record["model"]) == (status, path, model)
        assert (record["target"], record["version"], record["method"]) == (target, version, "POST")
        assert 0 < record["latency_ms"] < 30_000
    assert "a b" not in access  # a malformed request id is not logged as given
    ids = [r["request_id"] for r in records if r["logger"] == "stageserve.access"]
    assert all(ids.count(request_id) == 1 for request_id in expected)  # one record each

    for version in (v1.version, staging.headers["X-Model-Version"]):
        mine = [r for r in records if r.get("version") == int(version) and "model" in r]
        lines = [r["message"] for r in mine if r["logger"] == "stageserve.loader"]
        assert lines[0].startswith(f"downloading {v1.name} v{version} (")
        assert " files, " in lines[0] and "B" in lines[0]  # the size was listed
        assert lines[-1].startswith(f"loaded {v1.name} version {version} in ")


def _feedback_counts(gateway: Gateway, name: str) -> dict[tuple[str, ...], float]:
    """(metric, target, version[, result or reason]) -> value, of this model's feedback."""
    from tests.integration.harness import metric_samples

    text = gateway.get("/metrics").text
    out: dict[tuple[str, ...], float] = {}
    for metric in ("stageserve_feedback_total", "stageserve_reward_count_total",
                   "stageserve_reward_positive_sum_total", "stageserve_reward_negative_sum_total",
                   "stageserve_reward_squares_sum_total", "stageserve_reward_nonbinary_total",
                   "stageserve_feedback_refused_total"):  # fmt: skip
        for labels, value in metric_samples(text, metric).items():
            named = dict(labels)
            if named.get("model") == name:
                key = (named.get("target", ""), named.get("version", ""))
                out[(metric, *key, named.get("result", named.get("reason", "")))] = value
    return out


def test_answers_carry_request_ids_and_feedback_is_credited_to_them(served) -> None:
    v1, gateway, _ = served
    name = v1.name
    made = gateway.post("/invocations", json=split_payload())
    own = gateway.post("/invocations", json=split_payload(), headers={"X-Request-Id": "client-42"})
    staging = gateway.post(
        "/invocations", json=split_payload(), headers={"X-Model-Target": "Staging"}
    )
    failed = gateway.post(
        "/invocations", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert [r.status_code for r in (made, own, staging, failed)] == [200, 200, 200, 400]
    assert made.headers["X-Request-Id"] == made.headers["X-Feedback-Id"]
    assert (
        made.headers["X-Feedback-Id"].startswith("ss1.")
        and len(made.headers["X-Feedback-Id"]) < 120
    )
    assert own.headers["X-Request-Id"] == "client-42"
    assert own.headers["X-Feedback-Id"].startswith("ss1.")
    assert failed.headers["X-Request-Id"] and "X-Feedback-Id" not in failed.headers
    staging_version = staging.headers["X-Model-Version"]
    assert staging_version != v1.version

    def post(body: object) -> httpx.Response:
        return gateway.post("/feedback", json=body)

    prod_id, staging_id = made.headers["X-Feedback-Id"], staging.headers["X-Feedback-Id"]
    first = post({"request_id": prod_id, "reward": 1})
    assert first.status_code == 200, first.text
    assert first.json() == {
        "accepted": True,
        "duplicate": False,
        "request_id": prod_id,
        "model": name,
        "target": "Production",
        "version": int(v1.version),
    }
    assert post({"request_id": staging_id, "reward": 0.25, "truth": 151.0}).json()["accepted"]
    again = post({"request_id": prod_id, "reward": 1})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    unsigned = post({"request_id": "client-42", "reward": 1})
    assert unsigned.status_code == 400 and "X-Feedback-Id" in unsigned.json()["message"]
    forged = post({"request_id": prod_id[:-2] + ("AA" if not prod_id.endswith("AA") else "BB"),
                   "reward": 1})  # fmt: skip
    assert forged.status_code == 400 and "not issued" in forged.json()["message"]
    batch = gateway.post(f"/models/{name}/feedback", json=[
        {"request_id": own.headers["X-Feedback-Id"], "reward": -2},
        {"request_id": staging_id, "reward": 0.25},
        {"request_id": "client-42", "reward": 1},
    ])  # fmt: skip
    assert batch.json() == {"accepted": 1, "duplicates": 1, "refused": 1, "errors": [
        {"index": 2, "error_code": "INVALID_PARAMETER_VALUE", "reason": "unsigned",
         "message": batch.json()["errors"][0]["message"]}]}  # fmt: skip

    counts = _feedback_counts(gateway, name)
    prod, stag = ("Production", v1.version), ("Staging", staging_version)
    assert counts[("stageserve_feedback_total", *prod, "accepted")] == 2
    assert counts[("stageserve_feedback_total", *prod, "duplicate")] == 1
    assert counts[("stageserve_feedback_total", *stag, "accepted")] == 1
    assert counts[("stageserve_feedback_total", *stag, "duplicate")] == 1
    assert counts[("stageserve_reward_count_total", *prod, "")] == 2
    assert counts[("stageserve_reward_positive_sum_total", *prod, "")] == 1
    assert counts[("stageserve_reward_negative_sum_total", *prod, "")] == 2
    assert counts[("stageserve_reward_squares_sum_total", *prod, "")] == 5
    assert counts[("stageserve_reward_nonbinary_total", *prod, "")] == 1
    assert counts[("stageserve_reward_positive_sum_total", *stag, "")] == 0.25
    assert counts[("stageserve_feedback_refused_total", "", "", "unsigned")] == 2
    assert counts[("stageserve_feedback_refused_total", "", "", "forged")] == 1
    assert counts[("stageserve_feedback_refused_total", "", "", "expired")] == 0  # at zero

    # The access log records the id each answer carries, the gateway's own included.
    def logged() -> bool:
        ids = {r.get("request_id") for r in _log_records(gateway)}
        return {made.headers["X-Request-Id"], "client-42", failed.headers["X-Request-Id"]} <= ids

    assert wait_until(logged, 10), gateway.log_tail()
