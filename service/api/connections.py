"""Spread keep-alive connections over the workers by asking clients to reconnect.

BentoML's workers share one listening socket, and the kernel hands each new connection
to whichever worker accepts first. A burst of connections (a load balancer's pool
warming up, a client starting 32 threads) can all land on one worker, and keep-alive
keeps them there for good: one worker does all the work while the others idle (BentoML
issue 5426). So, with several workers, every connection is closed after a number of
requests (``Connection: close`` on a response, which HTTP/1.1 clients follow by
reconnecting); each reconnection is accepted by whichever worker is free first, so the
load evens out within seconds and stays even. A reconnection on a local network costs
far less than a request, so 100 requests per connection is noise.
"""

from __future__ import annotations

# Connections that closed on their own leave entries behind; past this many, forget all
# (the cost: a few connections get recycled a little early).
_MAX_TRACKED = 10_000


class ConnectionRecycler:
    """Counts requests per client connection (event-loop thread only)."""

    def __init__(self, max_requests: int) -> None:
        self.max_requests = max_requests
        self._counts: dict[tuple[str, int], int] = {}

    def should_close(self, client: tuple[str, int] | None) -> bool:
        """Whether this request's response should close its connection."""
        if self.max_requests <= 0 or client is None:
            return False
        count = self._counts.get(client, 0) + 1
        if count >= self.max_requests:
            self._counts.pop(client, None)
            return True
        if len(self._counts) >= _MAX_TRACKED:
            self._counts.clear()
        self._counts[client] = count
        return False
