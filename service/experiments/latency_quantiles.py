"""Latency quantiles from cumulative histogram buckets, computed as Prometheus's
``histogram_quantile`` does (promql/quantile.go, ``bucketQuantile``), so a p99 read from
one gateway's /metrics and one computed by Prometheus over the fleet's summed buckets
agree.

Buckets are a mapping from upper bound (the ``le`` label as a float, ``+Inf``
included) to cumulative count; series with the same bound (``"1"`` and ``"1.0"``) are
summed by the caller, as is a window's difference of two readings
(service/experiments/window.py's ``counts_since``). Where Prometheus answers NaN, this
answers None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# Prometheus treats neighbouring counts this close as equal (float summation noise).
_PRECISION_TOLERANCE = 1e-12


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q``-quantile (0 <= q <= 1), interpolated linearly within its bucket.

    As Prometheus: the lowest bucket starts at 0 when its bound is positive (else its
    bound is the answer); a quantile in the +Inf bucket is the highest finite bound;
    q < 0 gives -inf and q > 1 gives +inf. None (Prometheus: NaN) without observations,
    without a +Inf bucket, with fewer than 2 buckets, or for q = NaN.
    """
    if math.isnan(q):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][0] != math.inf or len(ordered) < 2:
        return None
    bounds = [bound for bound, _ in ordered]
    counts = _monotonic(_without_precision_noise([count for _, count in ordered]))
    observations = counts[-1]
    if observations == 0:
        return None
    rank = q * observations
    b = next((i for i in range(len(counts) - 1) if counts[i] >= rank), len(counts) - 1)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, in_bucket = 0.0, counts[b]
    if b > 0:
        start, in_bucket, rank = bounds[b - 1], counts[b] - counts[b - 1], rank - counts[b - 1]
    if in_bucket == 0:  # only q = 0 over an empty lowest bucket: Prometheus's 0/0
        return None
    return start + (bounds[b] - start) * (rank / in_bucket)


def _without_precision_noise(counts: list[float]) -> list[float]:
    """A count within 1e-12 (relative) of the one before it is taken as equal to it."""
    fixed, previous = list(counts), counts[0]
    for i in range(1, len(fixed)):
        current = fixed[i]
        delta = abs(current - previous)
        if delta == 0:
            continue
        if current != 0 and delta / current <= _PRECISION_TOLERANCE:
            fixed[i] = previous
        else:
            previous = current
    return fixed


def _monotonic(counts: list[float]) -> list[float]:
    """The envelope of the counts: a bucket never counts fewer than the one below it."""
    envelope, highest = [], counts[0]
    for count in counts:
        highest = max(highest, count)
        envelope.append(highest)
    return envelope
