"""``stageserve traffic set|clear --wait``: after writing the policy tag, wait until a
running gateway applies it, so a script can start its experiment when the split is in
force (the experiment's window starts when a gateway applies the policy) instead of
guessing a poll interval.

``applied`` is pure (a gateway's ``GET /admin/models/{name}/traffic`` answer against the
policy written); ``wait_applied`` polls. A gateway's workers poll the registry each on
its own: this waits for the worker that answers, the others follow within a poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from registry_watcher.traffic_policy import TrafficPolicy
from service.cli.status_command import NoState, ask_gateway

POLL_S = 0.25


def applied(view: Mapping[str, Any], policy: TrafficPolicy | None) -> bool:
    """Whether a gateway's traffic view shows ``policy`` read from the registry (or,
    for None, the policy cleared: back to the default)."""
    if policy is None:
        return view.get("source") == "default"
    return view.get("source") == "registry" and view.get("policy") == policy.to_dict()


def wait_applied(
    url: str,
    model: str,
    policy: TrafficPolicy | None,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Seconds until the gateway at ``url`` answered with ``policy`` in force, or
    NoState saying what it answered instead when ``timeout`` passed."""
    path = f"/admin/models/{quote(model, safe='/')}/traffic"
    started = clock()
    last = "no answer yet"
    while True:
        try:
            answer = ask_gateway(url, path, min(5.0, timeout))
            view = answer.json() if answer.status_code == 200 else None
            if isinstance(view, dict):
                if applied(view, policy):
                    return clock() - started
                last = f"its policy is {view.get('policy')} from {view.get('source')}"
            else:
                last = f"HTTP {answer.status_code}"
        except NoState as exc:
            last = str(exc)
        except ValueError:
            last = "an answer that is not JSON"
        if clock() - started >= timeout:
            raise NoState(
                f"the gateway at {url} did not apply the policy within {timeout:g} s ({last})"
            )
        sleep(POLL_S)
