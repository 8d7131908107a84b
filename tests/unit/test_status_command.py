"""``stageserve status`` and ``stageserve --version`` through main(): the exit code for
each answer a gateway (a real HTTP server on 127.0.0.1 here) can give, the URL's
sources, and one line on stderr when there is no usable answer."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata

import pytest

from service.cli.main import main
from service.cli.status_command import DEFAULT_URL, NoState, base_url, exit_code
from service.cli.version import installed_version, version_line
from tests.support.processes import free_port

WATCHER = {"registry_uri": "sqlite:///r.db", "poll_interval_s": 2.0, "reachable": True}
TARGET = {"target": "Production", "required": True, "status": "ready", "version": 1}
MODEL = {"name": "m", "targets": [TARGET], "traffic": {"effective_shares": {"Production": 1.0}}}


def state(ready: bool) -> dict:
    return {"ready": ready, "unready_reasons": [] if ready else ["m Production: loading"],
            "models": [MODEL], "watcher": WATCHER}  # fmt: skip


class Gateway:
    """An HTTP server answering GET /admin/models with a set status and body."""

    def __init__(self) -> None:
        self.status, self.body, self.paths = 200, b"{}", []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, body: object, status: int = 200) -> Gateway:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    fake = Gateway()
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(5)


def test_a_ready_gateway_exits_0_with_its_table(gateway, capsys) -> None:
    assert main(["status", "--url", gateway.answer(state(True)).url + "/"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"gateway   {gateway.url}  ready")
    assert "Production" in out and err == ""
    assert gateway.paths == ["/admin/models"]


def test_a_gateway_answering_but_not_ready_exits_1(gateway, capsys) -> None:
    assert main(["status", "--url", gateway.answer(state(False)).url]) == 1
    out = capsys.readouterr().out
    assert "NOT READY" in out and "- m Production: loading" in out


def test_json_prints_the_gateways_document_as_it_came(gateway, capsys) -> None:
    assert main(["status", "--json", "--url", gateway.answer(state(False)).url]) == 1
    assert json.loads(capsys.readouterr().out) == state(False)


def test_no_gateway_listening_exits_2_in_one_line(capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["status", "--url", url]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"stageserve: no gateway answers at {url} (")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "body, status, said",
    [
        (b"not found", 404, "/admin/models answered HTTP 404: is it a stageserve gateway?"),
        (b"<html>hello</html>", 200, "is not a stageserve gateway's state"),
        ({"ready": True}, 200, 'no "models" list in it'),
    ],
)
def test_an_answer_that_is_not_a_state_exits_2(gateway, capsys, body, status, said) -> None:
    assert main(["status", "--url", gateway.answer(body, status).url]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1


def test_a_gateway_too_slow_to_answer_exits_2(capsys) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert main(["status", "--url", url, "--timeout", "0.2"]) == 2
    assert capsys.readouterr().err == f"stageserve: no answer from {url} within 0.2 s\n"


def test_the_url_comes_from_the_flag_then_the_environment_then_the_default() -> None:
    env = {"STAGESERVE_URL": " http://gw:8080/ "}
    assert base_url("http://flag:1", env) == "http://flag:1"
    assert base_url(None, env) == "http://gw:8080"
    assert base_url(None, {"STAGESERVE_URL": ""}) == DEFAULT_URL == "http://127.0.0.1:3000"
    with pytest.raises(NoState, match="STAGESERVE_URL: 'gw:8080'"):
        base_url(None, {"STAGESERVE_URL": "gw:8080"})


def test_the_environment_url_is_used(gateway, capsys, monkeypatch) -> None:
    monkeypatch.setenv("STAGESERVE_URL", gateway.answer(state(True)).url)
    assert main(["status"]) == 0
    assert gateway.paths == ["/admin/models"]


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--url", "localhost:3000"], "argument --url: 'localhost:3000': give the gateway's URL"),
        (["--url", "http://h:99999"], "argument --url: 'http://h:99999' is not a URL"),
        (["--timeout", "0"], "argument --timeout: '0': give a finite number of seconds above 0"),
    ],
)
def test_bad_flags_are_refused_naming_them(flags, said, capsys) -> None:
    assert main(["status", *flags]) == 2
    assert said in capsys.readouterr().err


def test_the_exit_code_follows_readiness() -> None:
    assert exit_code(state(True)) == 0
    assert exit_code(state(False)) == 1


def test_version_names_stageserve_mlflow_bentoml_and_python(capsys) -> None:
    import platform

    assert main(["--version"]) == 0
    expected = (
        f"stageserve {metadata.version('stageserve')} (mlflow {metadata.version('mlflow')}, "
        f"bentoml {metadata.version('bentoml')}, python {platform.python_version()})\n"
    )
    assert capsys.readouterr().out == expected


def test_a_missing_package_is_said_not_raised() -> None:
    def lookup(name: str) -> str:
        if name == "bentoml":
            raise metadata.PackageNotFoundError(name)
        return "9.9"

    assert installed_version("bentoml", lookup) == "not installed"
    assert version_line(lookup).startswith("stageserve 9.9 (mlflow 9.9, bentoml not installed, ")
