"""Hostile and unusual HTTP against the real gateway: bounded bodies, heads and metrics,
and every error answered as MLflow JSON with a truthful status, counted once.

One gateway (one worker) serves a model whose name is outside Latin-1 and a model that
sleeps on a marked input (to hit BentoML's request timeout, shortened here).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote, unquote

import httpx
import pytest

from registry_watcher.deliveries import sign
from tests.integration.harness import (
    ALL_FEATURES,
    ROW,
    Gateway,
    Registered,
    metric_samples,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

SECRET = "whsec-bounded"
TOKEN = "admin-bounded"
MAX_HEADER_BYTES = 16 * 1024
HEADER_TIMEOUT_S = 2.0
MAX_BODY_BYTES = 1024 * 1024
REQUEST_TIMEOUT_S = 3  # BentoML's traffic timeout (60 s in production)
MB = 1024 * 1024

SLEEPY_MODEL = """
import time

import mlflow
from mlflow.pyfunc import PythonModel


class Sleepy(PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["age"] > 100).any():
            time.sleep(8)
        return (model_input["age"] * 2).to_numpy()


mlflow.models.set_model(Sleepy())
"""


@pytest.fixture(scope="module")
def served(mlflow_server, registry, tmp_path_factory) -> Iterator[tuple[Registered, str, Gateway]]:
    root = tmp_path_factory.mktemp("bounded")
    name = f"modèle-€-{uuid.uuid4().hex[:6]}"  # valid in MLflow, not in Latin-1
    model = registry.register_ridge(name, ALL_FEATURES[:4], alpha=1.0)
    registry.transition(name, model.version, "Production")
    sleepy = f"sleepy-{uuid.uuid4().hex[:6]}"
    registry.transition(
        sleepy, registry.register_from_code(sleepy, SLEEPY_MODEL, root), "Production"
    )
    env = {
        "STAGESERVE_WEBHOOK_SECRET": SECRET,
        "STAGESERVE_ADMIN_TOKEN": TOKEN,
        "STAGESERVE_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "STAGESERVE_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S),
        "STAGESERVE_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "BENTOML_CONFIG_OPTIONS": f"services.stageserve.traffic.timeout={REQUEST_TIMEOUT_S}",
    }
    gateway = Gateway(root, mlflow_server.uri, [name, sleepy], "--target", "Production", env=env)
    gateway.start()
    try:
        yield model, sleepy, gateway
    finally:
        gateway.stop()


def route(name: str) -> str:
    return f"/models/{quote(name)}/invocations"


def requests_total(gateway: Gateway) -> dict[tuple[tuple[str, str], ...], float]:
    return metric_samples(gateway.get("/metrics").text, "stageserve_requests_total")


def count(samples: dict, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for k, v in samples.items() if wanted <= set(k))


def worker_pid(gateway: Gateway) -> int:
    return gateway.state()["worker"]["pid"]


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current RSS


def raw_exchange(port: int, send: bytes | None = None, sender=None, timeout: float = 20) -> bytes:
    """Open a connection, send ``send`` (or run ``sender(sock)`` on a thread, errors
    ignored: the server may close while it sends), read until the server closes."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)
    thread = None
    if send is not None:
        sock.sendall(send)
    if sender is not None:

        def run() -> None:
            with contextlib.suppress(OSError):
                sender(sock)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
        if thread is not None:
            thread.join(5)
    return received


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


# --- item 6: webhook bodies ------------------------------------------------------------


def test_a_100_mb_webhook_body_is_refused_without_being_read(served) -> None:
    _, _, gateway = served
    pid = worker_pid(gateway)
    body = b"x" * (100 * MB)
    growth = []
    for declared in (True, False):  # with a Content-Length, and chunked without one
        reset_peak(pid)
        before = memory_kib(pid)
        started = time.monotonic()
        content = body if declared else (body[i : i + MB] for i in range(0, len(body), MB))
        answer = httpx.post(
            gateway.url + "/webhooks/mlflow",
            content=content,
            headers={"X-MLflow-Signature": "v1,AAAA"},
            timeout=60,
        )
        took = time.monotonic() - started
        after = memory_kib(pid)
        growth.append((after["VmHWM"] - before["VmRSS"]) / 1024)
        print(
            f"100 MB webhook body ({'declared' if declared else 'chunked'}): {answer.status_code} "
            f"in {took:.2f}s; worker RSS {before['VmRSS'] / 1024:.0f} MiB before, "
            f"{after['VmRSS'] / 1024:.0f} MiB after, peak {after['VmHWM'] / 1024:.0f} MiB"
        )
        assert answer.status_code == 413
        assert answer.json()["error_code"] == "BAD_REQUEST"
        assert "1048576 bytes" in answer.json()["message"]
        assert took < 30
    assert max(growth) < 30, f"worker peak RSS grew by {growth} MiB"  # was 170-200
    assert gateway.get("/ping").status_code == 200


# --- item 7: request heads -------------------------------------------------------------


def test_64_mb_of_headers_get_431_fast_and_the_gateway_stays_healthy(served) -> None:
    _, _, gateway = served
    pid = worker_pid(gateway)
    reset_peak(pid)
    before = memory_kib(pid)

    def send_64_mb(sock: socket.socket) -> None:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(64):
            sock.sendall(b"a" * MB)
        sock.sendall(b"\r\n\r\n")

    started = time.monotonic()
    answer = raw_exchange(gateway.port, sender=send_64_mb)
    took = time.monotonic() - started
    peak = memory_kib(pid)["VmHWM"]
    grew = (peak - before["VmRSS"]) / 1024
    print(f"64 MB header: answered in {took:.2f}s, worker peak RSS +{grew:.1f} MiB")
    status, error = status_and_json(answer)
    assert status == 431 and error["error_code"] == "BAD_REQUEST"
    assert "STAGESERVE_MAX_HEADER_BYTES" in error["message"]
    assert took < 5
    assert grew < 20
    assert gateway.get("/ping").status_code == 200


def test_many_small_headers_over_the_limit_get_431(served) -> None:
    _, _, gateway = served
    headers = b"".join(b"X-H-%d: v\r\n" % i for i in range(10_000))
    answer = raw_exchange(gateway.port, b"GET /ping HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert status_and_json(answer)[0] == 431
    assert gateway.get("/ping").status_code == 200


def test_headers_just_under_the_limit_are_served(served) -> None:
    model, _, gateway = served
    filler = "a" * (MAX_HEADER_BYTES - 1024)
    answer = gateway.post(route(model.name), json=split_payload(), headers={"X-Filler": filler})
    assert answer.status_code == 200
    assert answer.json()["predictions"] == [pytest.approx(model.expected())]
    over = gateway.get("/ping", headers={"X-Filler": "a" * (MAX_HEADER_BYTES + 1024)})
    assert over.status_code == 431  # the setting applies, not the 64 KiB default


def test_a_slowloris_connection_is_closed_within_the_head_timeout(served) -> None:
    _, _, gateway = served

    def one_byte_every_half_second(sock: socket.socket) -> None:
        for byte in b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            sock.sendall(bytes([byte]))
            time.sleep(0.5)

    started = time.monotonic()
    answer = raw_exchange(gateway.port, sender=one_byte_every_half_second)
    took = time.monotonic() - started
    print(f"slowloris closed after {took:.2f}s (timeout {HEADER_TIMEOUT_S}s)")
    status, error = status_and_json(answer)
    assert status == 408 and "STAGESERVE_HEADER_TIMEOUT" in error["message"]
    assert took < HEADER_TIMEOUT_S + 2


def test_a_connection_that_sends_nothing_is_closed(served) -> None:
    _, _, gateway = served
    started = time.monotonic()
    assert raw_exchange(gateway.port) == b""
    assert time.monotonic() - started < HEADER_TIMEOUT_S + 2


def test_keep_alive_requests_each_get_the_full_head_timeout(served) -> None:
    """The head timer is per request: a keep-alive connection that sends requests
    promptly is never cut, however long it lives."""
    model, _, gateway = served
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        started = time.monotonic()
        while time.monotonic() - started < HEADER_TIMEOUT_S * 2:
            assert client.post(route(model.name), json=split_payload()).status_code == 200
            time.sleep(0.2)


# --- item 8: /metrics stays bounded --------------------------------------------------


def test_metrics_size_does_not_grow_with_random_paths(served) -> None:
    _, _, gateway = served
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        # every route once first, so their series exist before the measurement
        client.get("/nope")
        client.post("/models/nope/invocations", json=split_payload())
        client.get("/admin/models/nope/traffic")
        before = len(client.get("/metrics").content)
        started = time.monotonic()
        for i in range(3000):
            token = uuid.uuid4().hex
            if i % 3 == 0:
                client.get(f"/{token}")
            elif i % 3 == 1:
                client.post(f"/models/{token}/invocations", json=split_payload())
            else:
                client.get(f"/admin/models/{token}/traffic")
        took = time.monotonic() - started
        scrape_started = time.monotonic()
        scraped = client.get("/metrics")
        scrape = time.monotonic() - scrape_started
        assert scraped.status_code == 200 and "stageserve_requests_total" in scraped.text
        after = len(scraped.content)
    print(
        f"/metrics: {before} bytes before, {after} bytes after 3,000 random paths "
        f"({took:.1f}s); scrape {scrape:.3f}s"
    )
    # the same series, only their values grew (a few digits), not 3,000 new ones
    assert after - before < 5_000, (before, after)
    metrics = gateway.get("/metrics").text
    assert "nope" not in metrics and token not in metrics


# --- item 9: every error is MLflow JSON with a truthful status -------------------------


def test_unknown_paths_and_wrong_methods_are_json(served) -> None:
    model, _, gateway = served
    unknown = gateway.get("/no/such/path")
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    wrong = gateway.get("/invocations")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert wrong.json()["error_code"] == "BAD_REQUEST"
    traffic = httpx.patch(f"{gateway.url}/admin/models/{quote(model.name)}/traffic")
    assert traffic.status_code == 405
    assert set(traffic.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}
    assert traffic.json()["error_code"] == "BAD_REQUEST"
    bentoml_route = httpx.post(f"{gateway.url}/metrics")  # one of BentoML's own
    assert bentoml_route.status_code == 405 and "error_code" in bentoml_route.json()


def test_deeply_nested_json_is_a_400_not_a_500(served) -> None:
    model, _, gateway = served
    deep = b"[" * 30_000 + b"]" * 30_000  # under the 64 KiB policy limit
    policy = httpx.put(
        f"{gateway.url}/admin/models/{quote(model.name)}/traffic",
        content=deep,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert policy.status_code == 400, policy.text
    assert "nested too deeply" in policy.json()["message"]
    ts = str(int(time.time()))
    delivery = f"d-{uuid.uuid4().hex}"
    webhook = gateway.post(
        "/webhooks/mlflow",
        content=deep,
        headers={
            "X-MLflow-Delivery-Id": delivery,
            "X-MLflow-Timestamp": ts,
            "X-MLflow-Signature": sign(SECRET, delivery, ts, deep),
        },
    )
    # authentic, names no model it can read: refresh everything, as for any unparsable body
    assert webhook.status_code == 202, webhook.text


def test_a_model_name_outside_latin_1_is_served_and_counted(served) -> None:
    model, _, gateway = served
    before = count(requests_total(gateway), model=model.name, outcome="success")
    answer = gateway.post(route(model.name), json=split_payload())
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [pytest.approx(model.expected())]
    assert unquote(answer.headers["X-Model-Name"]) == model.name
    assert answer.headers["X-Model-Name"] == quote(model.name, safe="-")
    assert answer.headers["X-Model-Target"] == "Production"
    after = count(requests_total(gateway), model=model.name, outcome="success")
    assert after == before + 1


def test_requests_total_counts_413_and_504(served) -> None:
    model, sleepy, gateway = served
    before = requests_total(gateway)
    too_big = gateway.post(
        route(model.name),
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    slow_row = [150.0, *ROW[1:]]
    started = time.monotonic()
    timed_out = gateway.post(route(sleepy), json=split_payload([slow_row]))
    assert timed_out.status_code == 504, timed_out.text
    assert timed_out.json()["error_code"] == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < REQUEST_TIMEOUT_S + 3

    def counted() -> bool:
        after = requests_total(gateway)
        return (
            count(after, model=model.name, outcome="bad_request")
            == count(before, model=model.name, outcome="bad_request") + 1
            and count(after, model=sleepy, outcome="timeout")
            == count(before, model=sleepy, outcome="timeout") + 1
        )

    assert wait_until(counted, 10), requests_total(gateway)
