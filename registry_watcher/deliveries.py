"""MLflow webhook deliveries: verify them, and nothing more. Pure: no I/O here.

What a delivery is worth is a domain verdict (an outcome and a reason); the HTTP
endpoint (service/api/webhooks.py) says which status answers each outcome.

MLflow signs ``"{delivery_id}.{timestamp}.{raw body}"`` with HMAC-SHA256 and sends
``X-MLflow-Signature: v1,<base64>`` with ``X-MLflow-Delivery-Id`` and
``X-MLflow-Timestamp`` (Unix seconds). A verified delivery is never trusted for what to
load: it only says "read the registry now"; the registry read decides.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_ID_HEADER = "x-mlflow-delivery-id"
SIGNATURE_VERSION = "v1"

# Events that can change what a target resolves to (stage moves have no event).
EVENTS = (
    "model_version.created",
    "model_version_alias.created",
    "model_version_alias.deleted",
    "model_version_tag.set",
)


class Outcome(StrEnum):
    """What became of a delivery; its value is the metric label."""

    ACCEPTED = "accepted"  # verified: read the registry now
    BAD_SIGNATURE = "bad_signature"  # unsigned, or signed with another secret
    MALFORMED = "malformed"  # a header missing or unreadable
    STALE = "stale"  # signed too long ago (or in the future)
    REPLAY = "replay"  # this delivery id was already received


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str  # why, in a few words
    model: str | None = None  # registered model the delivery is about, if it says


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The signature header value MLflow would send for this delivery."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_matches(
    secret: str, delivery_id: str, timestamp: str, body: bytes, header: str
) -> bool:
    """Constant-time check of every ``v1,<sig>`` in the header (space-separated, as
    Standard Webhooks allows during secret rotation)."""
    expected = sign(secret, delivery_id, timestamp, body).split(",", 1)[1].encode()
    matched = False
    for candidate in header.split():
        version, _, value = candidate.partition(",")
        if version != SIGNATURE_VERSION or not value:
            continue
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(value.encode(), expected)
    return matched


class ReplayStore(Protocol):
    def add(self, delivery_id: str, now: float, tolerance_s: float) -> bool: ...


class ReplayCache:
    """Delivery ids seen recently, bounded in size; older than the tolerance are forgotten
    (a delivery that old is refused as stale anyway)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def add(self, delivery_id: str, now: float, tolerance_s: float) -> bool:
        """Remember an id; False if it was already there (a replay)."""
        with self._lock:
            while self._seen and (
                len(self._seen) >= self._max
                or next(iter(self._seen.values())) < now - 2 * tolerance_s
            ):
                self._seen.popitem(last=False)
            if delivery_id in self._seen:
                return False
            self._seen[delivery_id] = now
            return True

    def __len__(self) -> int:
        return len(self._seen)


def _model_name(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: RecursionError
        return None
    data = payload.get("data") if isinstance(payload, dict) else None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: float,
    tolerance_s: float,
    seen: ReplayStore,
) -> Verdict:
    """Decide what to do with one delivery. The replay cache is only updated for
    deliveries whose signature is valid, so forged ids cannot poison it."""
    delivery_id = headers.get(DELIVERY_ID_HEADER, "").strip()
    timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
    signature = headers.get(SIGNATURE_HEADER, "").strip()
    if not signature:
        return Verdict(Outcome.BAD_SIGNATURE, "missing X-MLflow-Signature header")
    if not delivery_id or not timestamp:
        return Verdict(
            Outcome.MALFORMED, "missing X-MLflow-Delivery-Id or X-MLflow-Timestamp header"
        )
    if not signature_matches(secret, delivery_id, timestamp, body, signature):
        return Verdict(Outcome.BAD_SIGNATURE, "signature does not match")
    try:
        sent_at = int(timestamp)
    except ValueError:
        return Verdict(Outcome.MALFORMED, "X-MLflow-Timestamp is not a Unix time")
    if abs(now - sent_at) > tolerance_s:
        return Verdict(Outcome.STALE, f"timestamp is more than {tolerance_s:.0f}s away from now")
    if not seen.add(delivery_id, now, tolerance_s):
        return Verdict(Outcome.REPLAY, "delivery already received")
    return Verdict(Outcome.ACCEPTED, "registry refresh triggered", _model_name(body))
