"""The small parts a worker's gateway wires together: readiness, the refresh relay, and
the one place domain errors become client answers."""

from __future__ import annotations

import pytest

from registry_watcher.deliveries import Outcome, Verdict
from service.errors import ServingError, client_error
from service.ops.readiness import WorkerReadiness
from service.ops.refresh_relay import RefreshRelay
from service.traffic.control import PolicyWriteFailed
from service.traffic.pinning import NothingLoaded, UnknownOverride
from service.traffic.router import NoTargetAvailable
from tests.unit.metric_fakes import fake_metrics


class Board:
    def __init__(self) -> None:
        self.posted: list[bool] = []
        self.other: str | None = None

    def publish(self, ready: bool) -> None:
        self.posted.append(ready)

    def standby(self, waiting: bool) -> None: ...

    def other_ready_workers(self) -> int:
        return 1

    def unready_reason(self) -> str | None:
        return self.other


class Pool:
    ready = True
    reasons: list[str] = []

    def is_ready(self) -> bool:
        return self.ready

    def unready_reasons(self) -> list[str]:
        return self.reasons


def test_a_withdrawn_worker_never_posts_ready_again() -> None:
    board = Board()
    readiness = WorkerReadiness(Pool(), board)
    readiness.publish()
    readiness.withdraw()
    readiness.publish()  # a poll or a swap after stop() began
    assert board.posted == [True, False, False]


def test_the_gateway_is_unready_while_another_worker_is() -> None:
    board = Board()
    board.other = "1 of 2 workers ready"
    readiness = WorkerReadiness(Pool(), board)
    assert readiness.is_loaded() and not readiness.is_ready()
    assert readiness.unready_reasons() == ["1 of 2 workers ready"]


def relay(served: tuple[str, ...] = ("m",)) -> tuple[RefreshRelay, list[str], list[str], object]:
    refreshed: list[str] = []
    told: list[str] = []
    now = [100.0]
    metrics = fake_metrics()
    r = RefreshRelay(lambda: served, lambda: refreshed.append("now"), metrics, lambda: now[0])
    r.broadcast = lambda: told.append("others")
    return r, refreshed, told, (metrics, now)


def test_an_accepted_delivery_refreshes_every_worker() -> None:
    r, refreshed, told, (metrics, now) = relay()
    r.received(Verdict(Outcome.ACCEPTED, "ok", "m"))
    assert (refreshed, told) == (["now"], ["others"])
    assert metrics.webhooks.of("accepted") == 1
    assert metrics.webhook_refreshes.of("webhook") == 1
    now[0] += 2.5
    r.swapped()
    r.swapped()  # a second swap was not caused by the delivery
    assert metrics.webhook_to_serving.observed == [2.5]


def test_refused_and_foreign_deliveries_refresh_nothing() -> None:
    r, refreshed, told, (metrics, _) = relay()
    r.received(Verdict(Outcome.REPLAY, "delivery already received"))
    r.received(Verdict(Outcome.ACCEPTED, "ok", "not-served-here"))
    assert (refreshed, told) == ([], [])
    assert metrics.webhooks.of("replay") == 1


def test_a_swap_long_after_the_refresh_is_not_measured() -> None:
    r, _, _, (metrics, now) = relay()
    r.relayed()
    now[0] += 61
    r.swapped()
    assert metrics.webhook_to_serving.observed == []
    assert metrics.webhook_refreshes.of("relay") == 1


@pytest.mark.parametrize(
    ("error", "status", "code", "outcome"),
    [
        (UnknownOverride("x"), 400, "INVALID_PARAMETER_VALUE", "bad_request"),
        (NothingLoaded("x"), 503, "TEMPORARILY_UNAVAILABLE", "unavailable"),
        (NoTargetAvailable("x"), 503, "TEMPORARILY_UNAVAILABLE", "unavailable"),
        (PolicyWriteFailed("x"), 503, "TEMPORARILY_UNAVAILABLE", "unavailable"),
        (RuntimeError("a bug"), 500, "INTERNAL_ERROR", "error"),
    ],
)
def test_domain_errors_are_answered_in_one_place(
    error: Exception, status: int, code: str, outcome: str
) -> None:
    answered = client_error(error)
    assert (answered.status, answered.error_code, answered.outcome) == (status, code, outcome)
    assert answered.message == ("x" if status != 500 else "Internal error; see the gateway log.")
    given = ServingError(418, "TEAPOT", "short and stout")
    assert client_error(given) is given
