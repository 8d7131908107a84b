"""service.api.connections.ConnectionRecycler: every connection is asked to reconnect after
its quota of requests, and only then."""

from __future__ import annotations

from service.api.connections import ConnectionRecycler


def test_each_connection_closes_after_its_quota() -> None:
    recycler = ConnectionRecycler(3)
    a, b = ("127.0.0.1", 1000), ("127.0.0.1", 1001)
    assert [recycler.should_close(a) for _ in range(3)] == [False, False, True]
    assert [recycler.should_close(b) for _ in range(2)] == [False, False]
    # a's next connection from the same port (reused) starts a fresh count
    assert [recycler.should_close(a) for _ in range(3)] == [False, False, True]
    assert recycler.should_close(b) is True


def test_zero_means_never() -> None:
    recycler = ConnectionRecycler(0)
    assert not any(recycler.should_close(("h", 1)) for _ in range(1000))


def test_unknown_client_is_never_closed() -> None:
    assert ConnectionRecycler(1).should_close(None) is False


def test_a_quota_of_one_closes_every_response() -> None:
    recycler = ConnectionRecycler(1)
    assert all(recycler.should_close(("h", 1)) for _ in range(5))


def test_forgotten_connections_do_not_grow_without_bound() -> None:
    recycler = ConnectionRecycler(5)
    for port in range(25_000):
        recycler.should_close(("h", port))
    assert len(recycler._counts) <= 10_000
