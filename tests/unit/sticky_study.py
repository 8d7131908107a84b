"""How many sticky keys a weight change moves: the router's contiguous bucket ranges
against weighted rendezvous hashing per bucket, both over the router's BUCKETS.

Keys are uniform over buckets, so the share of buckets whose target changes is the
share of keys that move. The least any layout can move is the total variation
distance between the old and new shares; a stateless layout reaches it with 2 targets
(contiguous and rendezvous both do), not in general with more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from service.traffic.router import BUCKETS

ALL_BUCKETS = np.arange(BUCKETS)


def contiguous(weights: Sequence[float]) -> np.ndarray:
    """The target index of each bucket under the router's ranges (router._in_ranges)."""
    total = sum(weights)
    running, bounds = 0.0, []
    for w in weights:
        running += w
        bounds.append(round(running / total * BUCKETS))
    return np.searchsorted(np.array(bounds), ALL_BUCKETS, side="right")


def uniforms(names: Sequence[str]) -> np.ndarray:
    """u in (0, 1) per (bucket, target), from SHA-256 like the router's bucket()."""
    out = np.empty((BUCKETS, len(names)))
    for j, name in enumerate(names):
        for b in range(BUCKETS):
            digest = hashlib.sha256(f"{name}\x00{b}".encode()).digest()[:8]
            out[b, j] = (int.from_bytes(digest, "big") + 0.5) / 2**64
    return out


def rendezvous(weights: Sequence[float], u: np.ndarray) -> np.ndarray:
    """The target of each bucket: argmin over targets of -ln(u) / w (weight 0: never).

    An exponential race: target j wins a bucket with probability w_j / Σw, and a weight
    change moves a bucket only where the race's order changes.
    """
    w = np.asarray(weights, dtype=float)
    with np.errstate(divide="ignore"):
        scores = -np.log(u) / w
    return np.argmin(scores, axis=1)


def moved(before: np.ndarray, after: np.ndarray) -> float:
    """The share of buckets (keys) whose target changed."""
    return float(np.mean(before != after))


def total_variation(old: Sequence[float], new: Sequence[float]) -> float:
    """The least share of keys any layout must move: ½ Σ |old_i - new_i| of the shares."""
    a, b = np.asarray(old, float), np.asarray(new, float)
    return float(0.5 * np.abs(a / a.sum() - b / b.sum()).sum())
