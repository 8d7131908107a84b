"""Feedback received: judged (service/experiments/feedback_items.py), deduplicated across
the gateway's workers and restarts (service/experiments/seen_feedback.py), counted
(service/experiments/feedback_tally.py into the Prometheus counters), then handed to
``on_feedback`` (the inference log's hook: truths are logged there, not aggregated).

Blocking (the store is SQLite): the endpoint runs ``receive`` in a thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.experiments.feedback_items import (
    FeedbackItem,
    ItemError,
    NotFeedback,
    Reason,
    judge,
)
from service.experiments.feedback_tally import AcceptedFeedback, Tally, tally
from service.experiments.request_ids import RequestIdSigner
from service.experiments.seen_feedback import SeenFeedback
from service.ops.metrics import Metrics

log = logging.getLogger("stageserve.feedback")


FeedbackHook = Callable[[Sequence[AcceptedFeedback]], object]


@dataclass
class Receipt:
    """What became of a post: items accepted (something in them counted now),
    duplicates (all of it counted before), and the refused ones."""

    batch: bool
    accepted: list[FeedbackItem] = field(default_factory=list)
    duplicates: list[FeedbackItem] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


class FeedbackIntake:
    def __init__(
        self,
        signer: RequestIdSigner,
        seen: SeenFeedback,
        metrics: Metrics,
        on_feedback: FeedbackHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self._seen = seen
        self._metrics = metrics
        self.on_feedback = on_feedback  # the lead wires the inference log here
        self._clock = clock

    def receive(self, model: str, document: Any) -> Receipt:
        """Judge, deduplicate, count and hand on one post to ``model``'s route;
        NotFeedback when the body as a whole is not feedback."""
        now = self._clock()
        try:
            judged = judge(document, model, self.signer, now)
        except NotFeedback:
            self.refuse(model, Reason.INVALID)
            raise
        receipt = Receipt(judged.batch, errors=judged.errors)
        keys = [item.keys(self.signer.max_age_s) for item in judged.items]
        fresh = self._seen.add([key for item_keys in keys for key in item_keys], now)
        accepted: list[AcceptedFeedback] = []
        start = 0
        for item, item_keys in zip(judged.items, keys, strict=True):
            flags = fresh[start : start + len(item_keys)]
            start += len(item_keys)
            new = {
                key.partition(":")[0]
                for (key, _), is_new in zip(item_keys, flags, strict=True)
                if is_new
            }
            if not new:
                receipt.duplicates.append(item)
                continue
            receipt.accepted.append(item)
            accepted.append(
                AcceptedFeedback(
                    item.attribution,
                    item.reward if "reward" in new else None,
                    "truth" in new,
                    item.truth if "truth" in new else None,
                    now,
                )
            )
        self._count(
            model,
            tally(
                accepted,
                [item.attribution for item in receipt.duplicates],
                [error.reason for error in receipt.errors],
            ),
        )
        if accepted and self.on_feedback is not None:
            try:
                self.on_feedback(accepted)
            except Exception:  # a hook never fails the feedback it is told about
                log.exception("the feedback hook failed; the feedback itself was counted")
        return receipt

    def close(self) -> None:
        self._seen.close()

    def refuse(self, model: str, reason: Reason) -> None:
        """Count a post refused as a whole (its token, its body)."""
        self._count(model, tally([], [], [reason]))

    def _count(self, model: str, counts: Tally) -> None:
        """``model`` is a served one: the endpoint answers 404 for any other before this."""
        m = self._metrics
        for reason, n in counts.refused.items():
            m.feedback_refused.labels(model, reason.value).inc(n)
        for ((served_model, target, version), result), n in counts.feedback.items():
            m.feedback.labels(served_model, target, version, result).inc(n)
        for (served_model, target, version), sums in counts.rewards.items():
            m.reward_count.labels(served_model, target, version).inc(sums.count)
            m.reward_positive_sum.labels(served_model, target, version).inc(sums.positive_sum)
            m.reward_negative_sum.labels(served_model, target, version).inc(sums.negative_sum)
            m.reward_squares_sum.labels(served_model, target, version).inc(sums.squares_sum)
            m.reward_nonbinary.labels(served_model, target, version).inc(sums.nonbinary)
