"""Request ids that carry their own attribution: model, target, version, issue time.

A gateway signs what answered a request into the id it answers with (``X-Feedback-Id``),
so feedback sent later, to any worker or replica holding the same key, is credited to
that target and version with no shared store: the id is the record. The format is
``ss1.<model>.<target>.<version>.<issued>.<nonce>.<mac>``: model and target in base64url
(any MLflow name fits), version and issue time (Unix seconds) in decimal, a random
nonce, and an HMAC-SHA256 of everything before it, cut to 128 bits. Every character is
one of ``[A-Za-z0-9._-]``, so the id is also a well-formed ``X-Request-Id``.

``verify`` never raises on any text: it answers an ``Attribution`` or a ``Refusal``
saying why (unsigned, malformed, forged, expired), comparing the MAC in constant time.
Pure: the time is passed in, the nonce source can be.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from service.logs.access_log import MISSING, request_id

PREFIX = "ss1"
NONCE_BYTES = 8
MAC_BYTES = 16  # HMAC-SHA256 cut to 128 bits
DEFAULT_MAX_AGE_S = 30 * 24 * 3600.0
# Replicas' clocks may differ: an id issued this far in the future is still good.
MAX_CLOCK_SKEW_S = 300.0
# Longer than any id this module issues for a name MLflow accepts; checked first.
MAX_ID_CHARS = 4096
MIN_KEY_BYTES = 16

_B64 = r"[A-Za-z0-9_-]"
_SIGNED = re.compile(
    rf"(?P<signed>{PREFIX}\.(?P<model>{_B64}+)\.(?P<target>{_B64}+)\.(?P<version>[0-9]{{1,12}})"
    rf"\.(?P<issued>[0-9]{{1,12}})\.{_B64}{{11}})\.(?P<mac>{_B64}{{22}})"
)


class Refusal(enum.Enum):
    """Why a text is not an id to credit feedback to (a metric label each)."""

    UNSIGNED = "unsigned"  # a client's own request id: it carries no attribution
    MALFORMED = "malformed"  # not a request id at all
    FORGED = "forged"  # shaped like ours, but not signed with this fleet's key
    EXPIRED = "expired"  # older than the max age (or issued far in the future)

    def message(self, text_shown: str) -> str:
        return {
            Refusal.UNSIGNED: f"{text_shown} names no model version (a client's own request "
            "id, or an error answer's): send the X-Feedback-Id header of the answer instead.",
            Refusal.MALFORMED: f"{text_shown} is not a request id of this gateway: send the "
            "X-Feedback-Id header of the answer.",
            Refusal.FORGED: f"{text_shown} was not issued by this gateway fleet (its signature "
            "does not match; replicas must share STAGESERVE_REQUEST_ID_KEY).",
            Refusal.EXPIRED: f"{text_shown} is older than STAGESERVE_FEEDBACK_MAX_AGE allows "
            "(or issued in the future by a clock far off).",
        }[self]


@dataclass(frozen=True)
class Attribution:
    """What answered the request an id names."""

    request_id: str
    model: str
    target: str
    version: int
    issued_at: int


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode("ascii")


@functools.lru_cache(maxsize=1024)  # a batch names the same few models and targets
def _decode(part: str) -> str:
    """base64url without padding -> text; ValueError when it is not (UnicodeError is one)."""
    padded = part + "=" * (-len(part) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class RequestIdSigner:
    """Issues and verifies signed request ids with one key (shared by a fleet)."""

    def __init__(
        self,
        key: bytes,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        nonce: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a request id key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self.max_age_s = max_age_s
        self._nonce = nonce

    def _mac(self, signed: str) -> str:
        return _b64(hmac.digest(self._key, signed.encode("ascii"), "sha256")[:MAC_BYTES])

    def issue(self, model: str, target: str, version: int, now: float) -> str:
        """The id of a request answered now by ``model``'s ``target`` at ``version``."""
        signed = ".".join(
            (
                PREFIX,
                _encode(model),
                _encode(target),
                str(version),
                str(int(now)),
                _b64(self._nonce(NONCE_BYTES)),
            )
        )
        return f"{signed}.{self._mac(signed)}"

    def verify(self, text: object, now: float) -> Attribution | Refusal:
        """The attribution an id carries, or why it is refused; never raises."""
        if not isinstance(text, str) or len(text) > MAX_ID_CHARS:
            return Refusal.MALFORMED
        match = _SIGNED.fullmatch(text)
        if match is None:
            return Refusal.UNSIGNED if request_id(text) != MISSING else Refusal.MALFORMED
        expected = self._mac(match["signed"])
        if not hmac.compare_digest(expected.encode(), match["mac"].encode()):
            return Refusal.FORGED
        issued = int(match["issued"])
        if not (now - self.max_age_s <= issued <= now + MAX_CLOCK_SKEW_S):
            return Refusal.EXPIRED
        try:
            model, target = _decode(match["model"]), _decode(match["target"])
        except ValueError:  # signed with our key, so never; but never raise either
            return Refusal.MALFORMED
        return Attribution(text, model, target, int(match["version"]), issued)


def fresh_request_id(nonce: Callable[[int], bytes] = os.urandom) -> str:
    """A random, unsigned id for an answer that names no version (an error)."""
    return _b64(nonce(16))
