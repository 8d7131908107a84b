"""Webhook deliveries turned into "read the registry now", on every worker.

A verified delivery about a served model makes this worker's watcher poll at once and
nudges the other workers (service/ops/nudge.py), which do the same. The time from the
delivery to the next successful swap is measured (stageserve_webhook_to_serving_seconds),
unless that swap comes so late that the delivery did not cause it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

from registry_watcher.deliveries import Outcome, Verdict
from service.ops.metrics import Metrics

log = logging.getLogger("stageserve.runtime")

# A swap later than this after the refresh was asked for was not caused by it.
CAUSED_WITHIN_S = 60.0


class RefreshRelay:
    def __init__(
        self,
        served: Callable[[], Collection[str]],
        refresh_now: Callable[[], None],
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._served = served
        self._refresh_now = refresh_now
        self._metrics = metrics
        self._clock = clock
        self._asked_at: float | None = None
        # Tells the other workers; set once the nudge exists (it calls ``relayed``).
        self.broadcast: Callable[[], object] | None = None

    def count(self, outcome: str) -> None:
        """Count a delivery by what became of it (a webhook-metric label)."""
        self._metrics.webhooks.labels(outcome).inc()

    def received(self, verdict: Verdict) -> None:
        """A delivery was checked: on acceptance, read the registry now, on every worker."""
        self.count(verdict.outcome.value)
        if verdict.outcome is not Outcome.ACCEPTED:
            log.warning("webhook refused (%s): %s", verdict.outcome.value, verdict.message)
            return
        if verdict.model is not None and verdict.model not in self._served():
            return  # about a model this gateway does not serve
        self._refresh("webhook")
        if self.broadcast is not None:
            self.broadcast()

    def relayed(self) -> None:
        """Another worker received a delivery."""
        self._refresh("relay")

    def swapped(self) -> None:
        """A version was swapped in: measure the wait if a refresh asked for it."""
        asked_at = self._asked_at
        if asked_at is None:
            return
        self._asked_at = None
        waited = self._clock() - asked_at
        if waited < CAUSED_WITHIN_S:
            self._metrics.webhook_to_serving.observe(waited)

    def _refresh(self, source: str) -> None:
        self._asked_at = self._clock()
        self._metrics.webhook_refreshes.labels(source).inc()
        self._refresh_now()
