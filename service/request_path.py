"""The request path: one prediction request from its model's name to its answer.

route (pinning or the model's traffic policy) -> submit to the chosen version's
batcher -> answer with who answered; every request counted once, by outcome; the
shadow copy, if the policy asks for one, handed to the mirror once the answer is ready.

It sits at the service root, not in a sub-package, because it composes three of them:
traffic/ (which target), lifecycle/ (the loaded versions) and inference/ (what a
version does with a body, behind ``submit``). Routing and metrics run on the event
loop (no I/O, microseconds); parsing and predicting run in the version's batcher thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from registry_watcher.targets import Target, parse_target
from registry_watcher.traffic_policy import TrafficPolicy
from service.api.header_values import header_value
from service.errors import ServingError, bad_request, client_error, model_not_served
from service.experiments.request_ids import RequestIdSigner
from service.lifecycle.servable import LoadedVersions, Servable
from service.ops.metrics import Metrics
from service.traffic import router
from service.traffic.pinning import OverrideRefused, pin
from service.traffic.shadow import ShadowJob

# A shadow request waits this long at most for its version's batcher (the loop may stop).
SHADOW_TIMEOUT_S = 60.0
# A target can be emptied between the routing decision and the lookup: decide again.
ROUTE_ATTEMPTS = 3


class Answerer(Servable, Protocol):
    """A loaded version, as far as the request path goes: it answers request bodies."""

    async def submit(self, body: bytes, content_type: str | None) -> bytes: ...

    def submit_from_thread(
        self,
        body: bytes,
        content_type: str | None,
        loop: asyncio.AbstractEventLoop,
        timeout_s: float,
    ) -> bytes: ...


REQUEST_ID = "X-Request-Id"
FEEDBACK_ID = "X-Feedback-Id"


@dataclass(frozen=True)
class Answer:
    """A prediction response: body plus the headers that say who answered, and the ids
    feedback names it by (service/experiments/request_ids.py): ``feedback_id`` signed
    with who answered, ``request_id`` the client's own or else the same."""

    body: bytes
    model: str
    target: Target
    version: int
    request_id: str = ""  # "" (and no id headers) when the path signs no ids
    feedback_id: str = ""
    how: str = ""  # how the target was chosen (Route.how), for the inference log

    def headers(self) -> dict[str, str]:
        # A name outside Latin-1 cannot be a header value as is (service/api/header_values.py).
        headers = {
            "X-Model-Name": header_value(self.model),
            "X-Model-Version": str(self.version),
            "X-Model-Target": header_value(self.target.text),
        }
        if self.feedback_id:
            headers[REQUEST_ID] = self.request_id
            headers[FEEDBACK_ID] = self.feedback_id
        return headers


@dataclass(frozen=True)
class Route:
    """Where one request goes: the target, its version, how it was chosen (a metric
    label), and the target its shadow copy goes to, if any."""

    target: Target
    loaded: Answerer
    how: str
    shadow: Target | None = None


class RequestPath:
    def __init__(
        self,
        pool: LoadedVersions[Answerer],
        policy_of: Callable[[str], TrafficPolicy],
        hand_off: Callable[[ShadowJob], object],
        metrics: Metrics,
        signer: RequestIdSigner | None = None,
    ) -> None:
        self._pool = pool
        self._policy_of = policy_of
        self._hand_off = hand_off  # queue a shadow copy; never blocks
        self._metrics = metrics
        self._signer = signer  # None: answers carry no request ids

    @property
    def signs_ids(self) -> bool:
        """Whether answers (errors too) carry X-Request-Id, and successes X-Feedback-Id."""
        return self._signer is not None

    def model_for_default_route(self, route: str = "invocations") -> str:
        """The model ``/invocations`` (or ``/feedback``) means: the only one served, or a 400."""
        models = self._pool.models()
        if len(models) == 1:
            return models[0]
        routes = ", ".join(f"/models/{m}/{route}" for m in models)
        raise bad_request(
            f"This gateway serves {len(models)} models, so /{route} is ambiguous. "
            f"Use one of: {routes}."
        )

    async def invoke(
        self,
        model: str,
        override: str | None,
        body: bytes,
        content_type: str | None,
        routing_key: str | None = None,
        request_id: str | None = None,
    ) -> Answer:
        """Answer one prediction request; a ServingError for what the client is told.
        ``request_id``: the client's own, well-formed, if it sent one."""
        started = time.perf_counter()
        metrics = self._metrics
        targets = self._pool.targets(model)
        if not targets:
            metrics.requests.labels("", "", "", "not_found").inc()
            raise model_not_served(model, self._pool.models())
        label_target, label_version = "", ""
        metrics.in_flight.labels(model).inc()
        try:
            route = self.route(model, targets, override, routing_key)
            label_target, label_version = route.target.text, str(route.loaded.ref.version)
            payload = await route.loaded.submit(body, content_type)
        except ServingError as exc:
            metrics.requests.labels(model, label_target, label_version, exc.outcome).inc()
            raise
        except asyncio.CancelledError:  # BentoML's request timeout (a 504) cancelled it
            metrics.requests.labels(model, label_target, label_version, "timeout").inc()
            raise
        except Exception:  # answered as a 500
            metrics.requests.labels(model, label_target, label_version, "error").inc()
            raise
        finally:
            metrics.in_flight.labels(model).dec()
        metrics.requests.labels(model, label_target, label_version, "success").inc()
        metrics.request_duration.labels(model, label_target, label_version).observe(
            time.perf_counter() - started
        )
        metrics.routing.labels(model, label_target, route.how).inc()
        if route.shadow is not None:
            loop = asyncio.get_running_loop()
            self._hand_off(
                ShadowJob(model, label_target, route.shadow.text, body, content_type, payload, loop)
            )
        version = route.loaded.ref.version
        if self._signer is None:
            return Answer(payload, model, route.target, version, how=route.how)
        feedback_id = self._signer.issue(model, label_target, version, time.time())
        return Answer(
            payload, model, route.target, version, request_id or feedback_id, feedback_id,
            how=route.how,
        )  # fmt: skip

    def count_refused(self, model: str | None, outcome: str) -> None:
        """Count a prediction request that ended before ``invoke`` (no model to route to,
        body too large, timed out or failed while reading the body). Only a served
        model's name becomes a label."""
        served = model if model is not None and self._pool.targets(model) else ""
        self._metrics.requests.labels(served, "", "", outcome).inc()

    def route(
        self, model: str, targets: tuple[Target, ...], override: str | None, key: str | None
    ) -> Route:
        """Where one request goes; a ServingError when it can go nowhere."""
        try:
            return self._route(model, targets, override, key)
        except (OverrideRefused, router.NoTargetAvailable) as exc:
            raise client_error(exc) from None

    def _route(
        self, model: str, targets: tuple[Target, ...], override: str | None, key: str | None
    ) -> Route:
        def loaded(target: Target) -> Answerer | None:
            return self._pool.get(model, target)

        if override is not None:
            pinned = pin(model, targets, loaded, override)
            return Route(pinned.target, pinned.loaded, "override")
        policy = self._policy_of(model)
        for _ in range(ROUTE_ATTEMPTS):
            try:
                decision = router.decide(policy, router.available_targets(targets, loaded), key)
            except router.NoTargetAvailable as exc:
                raise router.NoTargetAvailable(f"Model {model!r}: {exc}") from None
            version = loaded(decision.target)
            if version is not None:
                return Route(decision.target, version, decision.how, decision.shadow)
        raise router.NoTargetAvailable(f"Model {model!r}: its targets keep changing; retry.")


class ShadowLeg:
    """The shadow copy's side of the request path: run it in the mirror's thread, count
    how it compared."""

    def __init__(self, pool: LoadedVersions[Answerer], metrics: Metrics) -> None:
        self._pool = pool
        self._metrics = metrics

    def run(self, job: ShadowJob) -> bytes:
        """Through the shadow version's batcher on the loop that answered the primary, so
        that version never runs two predicts at once."""
        loaded = self._pool.get(job.model, parse_target(job.shadow_target))
        if loaded is None:
            raise RuntimeError(f"shadow target {job.shadow_target} has no version loaded")
        if job.loop is None:
            raise RuntimeError("shadow job without the event loop that answered it")
        return loaded.submit_from_thread(job.body, job.content_type, job.loop, SHADOW_TIMEOUT_S)

    def record(self, job: ShadowJob, outcome: str) -> None:
        self._metrics.shadow.labels(job.model, job.primary_target, job.shadow_target, outcome).inc()
