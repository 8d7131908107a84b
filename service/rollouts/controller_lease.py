"""Which controller decides for a model: a lease in the registered-model tag
``stageserve.controller`` = ``{"holder": "<host>:<pid>:<random>", "until": <epoch s>}``.

A controller takes the lease when it is absent, expired or its own, writes it with a
new expiry, and re-reads it: only if the stored holder is still itself does it decide
this tick (MLflow has no compare-and-set; of two writers at the same moment, the one
written last wins and the other sees it on the re-read). It renews the lease every tick;
a controller that stops renewing (killed, partitioned) loses it after ``ttl_s`` (about
three ticks). Keyed moves (service/rollouts/rollout_store.py) remain the second line of
defence for the instant two controllers both believe they hold it. Expiry compares
wall clocks of different hosts: keep them synchronised (NTP) well within ``ttl_s``.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.rollouts.rollout_store import ModelTags

LEASE_TAG = "stageserve.controller"


def new_holder_id() -> str:
    """This process's name as a lease holder: host, pid, and a random part (pids recur)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Lease:
    holder: str
    until: float

    def to_json(self) -> str:
        return json.dumps({"holder": self.holder, "until": round(self.until, 3)})


def read_lease(text: str | None) -> Lease | None:
    """The stored lease; None when absent or unreadable (then anyone may take it)."""
    if text is None:
        return None
    try:
        data: Any = json.loads(text)
        return Lease(str(data["holder"]), float(data["until"]))
    except (ValueError, TypeError, KeyError):
        return None


class ControllerLease:
    """Takes, renews and releases ``holder``'s lease on models, each lasting ``ttl_s``."""

    def __init__(self, tags: ModelTags, holder: str, ttl_s: float) -> None:
        self.tags = tags
        self.holder = holder
        self.ttl_s = ttl_s

    def claim(self, model: str, tags: Mapping[str, str], now: float) -> bool:
        """Take or renew the lease given the model's ``tags`` as just read; whether this
        controller holds it now (written and read back as its own)."""
        stored = read_lease(tags.get(LEASE_TAG))
        if stored is not None and stored.holder != self.holder and stored.until > now:
            return False
        self.tags.set_model_tag(model, LEASE_TAG, Lease(self.holder, now + self.ttl_s).to_json())
        again = read_lease(self.tags.model_tags(model).get(LEASE_TAG))
        return again is not None and again.holder == self.holder

    def release(self, model: str) -> None:
        """Give the lease up now (a clean stop), if still this controller's."""
        stored = read_lease(self.tags.model_tags(model).get(LEASE_TAG))
        if stored is not None and stored.holder == self.holder:
            self.tags.set_model_tag(model, LEASE_TAG, Lease(self.holder, 0.0).to_json())
