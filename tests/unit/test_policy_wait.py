"""``stageserve traffic set|clear --wait`` (service/cli/policy_wait.py): whether a
gateway's traffic view shows the policy written, and the wait against a real local
HTTP server whose answer changes after a few polls."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from itertools import count
from typing import ClassVar

import pytest

from registry_watcher.traffic_policy import policy_from_dict
from service.cli.policy_wait import applied, wait_applied
from service.cli.status_command import NoState
from tests.integration.faulty_servers import LocalHttpServer

POLICY = policy_from_dict({"weights": {"Production": 50, "Staging": 50}, "sticky": True})
OLD = {"weights": {"Production": 90, "Staging": 10}, "sticky": False}


def view(policy: dict, source: str = "registry") -> dict:
    return {"model": "m", "policy": policy, "source": source, "error": None}


def test_applied_needs_the_same_policy_from_the_registry() -> None:
    assert applied(view(POLICY.to_dict()), POLICY)
    assert not applied(view(OLD), POLICY)
    assert not applied(view(POLICY.to_dict(), "admin"), POLICY)  # not what was written
    assert not applied({}, POLICY)


def test_a_cleared_policy_is_applied_when_the_default_is_back() -> None:
    assert applied(view({"weights": {"Production": 1}}, "default"), None)
    assert not applied(view(OLD), None)


class Views(BaseHTTPRequestHandler):
    """Answers the old policy to the first ``stale`` requests, then the new one."""

    stale: ClassVar[int] = 3
    seen: ClassVar[count] = count()

    def do_GET(self) -> None:
        assert self.path == "/admin/models/m/traffic"
        fresh = next(Views.seen) >= Views.stale
        body = json.dumps(view(POLICY.to_dict() if fresh else OLD)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_wait_polls_until_the_gateway_applied_it() -> None:
    Views.seen, Views.stale = count(), 3
    naps: list[float] = []
    with LocalHttpServer(Views) as server:
        wait_applied(server.uri, "m", POLICY, timeout=30, sleep=naps.append)
    assert len(naps) == 3  # three stale answers, then the policy


def test_a_gateway_that_never_applies_it_is_one_line_after_the_timeout() -> None:
    Views.seen, Views.stale = count(), 10**9
    ticks = iter(range(100))
    with LocalHttpServer(Views) as server, pytest.raises(NoState) as caught:
        wait_applied(server.uri, "m", POLICY, timeout=5, clock=lambda: next(ticks),
                     sleep=lambda _: None)  # fmt: skip
    message = str(caught.value)
    assert "did not apply the policy within 5 s" in message
    assert "'Staging': 10" in message and "from registry" in message


def test_no_gateway_is_said_too() -> None:
    with LocalHttpServer(Views) as server:
        url = server.uri  # closed once the block ends
    ticks = iter(range(100))
    with pytest.raises(NoState, match="no gateway answers"):
        wait_applied(url, "m", POLICY, timeout=2, clock=lambda: next(ticks), sleep=lambda _: None)
