"""The rollout admin API: read a model's progressive rollout, start one, approve its
promotion, abort it. The controller makes every other move (service/rollouts/).

``GET /admin/models/{name}/rollout`` needs no token, like the other admin reads. The
writes (``POST .../rollout`` to start, ``.../rollout/approve``, ``.../rollout/abort``)
need the admin token, checked as the traffic API checks it (service/api/admin.py):
403 when the gateway has none, 401 without the right one. So "approve without a
token is refused" is the gateway's rule, whatever client asks.

A start pins the candidate version the registry names NOW (a stage's latest version,
an alias's version): only that version's figures count, whatever the target names
later. Every write is keyed (service/rollouts/rollout_store.py): when another writer
(a controller, a second operator) moved the rollout on between our read and our
write, the answer is 409 and nothing of ours is stored. Answers: the rollout as
service/rollouts/rollout_view.py shows it; errors: MLflow's JSON, 4xx for what the
caller can fix, 503 when the registry cannot be used.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry_watcher.traffic_policy import PolicyError, TrafficPolicy
from service.api.admin import check_token, unauthorized_headers
from service.api.bodies import read_body
from service.api.responses import error_response, json_response
from service.errors import ServingError, bad_request, model_not_served, not_found, unavailable
from service.rollouts.pinned_version import NoVersion, RegistryVersions, versions_now
from service.rollouts.progression import (
    abort,
    approve,
    shadow_policy,
    start_rollout,
    step_policy,
)
from service.rollouts.rollout_plan import Approval, Rollout, new_plan_id
from service.rollouts.rollout_requests import (
    StartRequest,
    parse_abort,
    parse_approve,
    parse_start,
)
from service.rollouts.rollout_store import RolloutStore, Written
from service.rollouts.rollout_view import rollout_json
from service.rollouts.tag_fields import RolloutError

log = logging.getLogger("stageserve.admin")

MAX_ROLLOUT_BYTES = 16 * 1024
INDENT = 2  # read by people
API_AUTHOR = "admin-api"  # who acts when a write names no one
R = TypeVar("R")
MOVED_ON = "The rollout moved on while this request was handled: read it again."


class ServedModels(Protocol):
    """What the gateway serves (service/traffic/control.py TrafficControl)."""

    def serves(self, model: str) -> bool: ...

    def models(self) -> Collection[str]: ...

    def check(self, model: str, policy: TrafficPolicy) -> None: ...


@dataclass(frozen=True)
class RolloutApi:
    store: RolloutStore
    registry: RegistryVersions
    served: ServedModels
    token: str | None  # STAGESERVE_ADMIN_TOKEN; None: writes are off (403)
    clock: Callable[[], float] = field(default=time.time)


def conflict(message: str) -> ServingError:
    return ServingError(409, "RESOURCE_CONFLICT", message)


def rollout_routes(get: Callable[[], RolloutApi]) -> list[Route]:
    async def read(request: Request) -> Response:
        api = get()
        try:
            name = _served(api, request)
            rollout = await anyio.to_thread.run_sync(_stored, api, name)
            return json_response(rollout_json(rollout), indent=INDENT)
        except ServingError as error:
            return error_response(error)

    def write(
        act: Callable[[RolloutApi, str, object], Rollout], status: int = 200
    ) -> Callable[[Request], Awaitable[Response]]:
        """An authorized write: model served, token checked, body read, ``act`` run
        in a thread (registry I/O), answered with the rollout as stored."""

        async def endpoint(request: Request) -> Response:
            api = get()
            try:
                name = _served(api, request)
                denied = check_token(api.token, request.headers.get("authorization"))
                if denied is not None:
                    raise denied
                body = await _json_body(request)
                rollout = await anyio.to_thread.run_sync(act, api, name, body)
                return json_response(rollout_json(rollout), status, indent=INDENT)
            except ServingError as error:
                return error_response(error, unauthorized_headers(error))

        return endpoint

    start = write(_start, 201)
    methods = {"GET": read, "POST": start}

    async def rollout(request: Request) -> Response:
        # One route for both methods, so a 405 lists both (and HEAD answers as GET).
        return await methods.get(request.method, read)(request)

    base = "/admin/models/{name:path}/rollout"
    return [
        Route(f"{base}/approve", write(_approve), methods=["POST"]),
        Route(f"{base}/abort", write(_abort), methods=["POST"]),
        Route(base, rollout, methods=list(methods)),
    ]


# --- the writes (in a worker thread: they read and write the registry) ---------------


def _start(api: RolloutApi, name: str, body: object) -> Rollout:
    try:
        request = parse_start(name, body)
    except RolloutError as exc:
        raise _invalid(exc) from None
    _check_policies(api, name, request)
    existing = _registry(lambda: _readable_or_none(api.store, name))
    if existing is not None and not existing.state.finished:
        raise conflict(
            f"Model {name!r} has a live rollout ({existing.plan.id}, {existing.state.phase}): "
            f"abort it first (stageserve rollout abort {name})."
        )
    probe = request.probe(name)
    candidate, control = probe.candidate_target(), probe.control_target()
    try:
        versions = _registry(lambda: versions_now(api.registry, name, (candidate, control)))
    except NoVersion as exc:
        raise conflict(f"Cannot start: {exc}.") from None
    if versions[candidate] == versions[control]:
        raise conflict(
            f"Cannot start: {candidate.text} and {control.text} both name version "
            f"{versions[candidate]} of {name!r}: there is nothing to roll out."
        )
    now = api.clock()
    plan = request.plan(name, versions[candidate], new_plan_id(), now)
    rollout = start_rollout(plan, now, request.by or API_AUTHOR, existing)
    _stored_or_moved_on(_registry(lambda: api.store.start(name, rollout, existing)))
    log.info(
        "rollout %s of %s started: %s v%d against %s",
        plan.id, name, plan.candidate, plan.candidate_version, plan.control,
    )  # fmt: skip
    return rollout


def _approve(api: RolloutApi, name: str, body: object) -> Rollout:
    try:
        by = parse_approve(body) or API_AUTHOR
    except RolloutError as exc:
        raise _invalid(exc) from None
    stored = _stored(api, name)
    try:
        move = approve(stored.plan, stored.state, Approval(by, api.clock()))
    except RolloutError as exc:
        raise conflict(str(exc)) from None
    _stored_or_moved_on(_registry(lambda: api.store.write(name, move)))
    log.info("rollout %s of %s approved by %s", stored.plan.id, name, by)
    return Rollout(stored.plan, move.state)


def _abort(api: RolloutApi, name: str, body: object) -> Rollout:
    try:
        by, why = parse_abort(body)
    except RolloutError as exc:
        raise _invalid(exc) from None
    stored = _stored(api, name)
    try:
        move = abort(stored.plan, stored.state, api.clock(), by or API_AUTHOR, why)
    except RolloutError as exc:
        raise conflict(str(exc)) from None
    _stored_or_moved_on(_registry(lambda: api.store.write(name, move)))
    log.info("rollout %s of %s: %s", stored.plan.id, name, move.reason)
    return Rollout(stored.plan, move.state)


# --- helpers ------------------------------------------------------------------------


def _served(api: RolloutApi, request: Request) -> str:
    name: str = request.path_params["name"]
    if not api.served.serves(name):
        raise model_not_served(name, api.served.models())
    return name


async def _json_body(request: Request) -> object:
    """The body as JSON; an empty body is None."""
    body = await read_body(request, MAX_ROLLOUT_BYTES, "A rollout request")
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_request("The body is nested too deeply.") from None


def _invalid(exc: RolloutError) -> ServingError:
    return bad_request(f"Invalid rollout request: {exc}", "INVALID_PARAMETER_VALUE")


def _check_policies(api: RolloutApi, name: str, request: StartRequest) -> None:
    """The policies the rollout will write must name targets this gateway serves."""
    probe = request.probe(name)
    policies = [step_policy(probe, 0)] + ([shadow_policy(probe)] if probe.shadow else [])
    try:
        for policy in policies:
            api.served.check(name, policy)
    except PolicyError as exc:
        raise _invalid(RolloutError(f"candidate/control: {exc}")) from None


def _registry(call: Callable[[], R]) -> R:
    """A registry call; its failure (unreachable, refused) a 503 saying so."""
    try:
        return call()
    except (ServingError, NoVersion, RolloutError):
        raise
    except Exception as exc:  # MLflow's errors, timeouts, refused connections
        raise unavailable(f"The registry could not be used: {type(exc).__name__}: {exc}") from None


def _stored(api: RolloutApi, name: str) -> Rollout:
    """The model's rollout; 404 without one, 409 when its tag cannot be read."""
    try:
        rollout = _registry(lambda: api.store.read(name))
    except RolloutError as exc:
        raise conflict(
            f"The rollout tag of {name!r} cannot be read ({exc}); start a new rollout to "
            "replace it."
        ) from None
    if rollout is None:
        raise not_found(
            f"Model {name!r} has no rollout; start one with: stageserve rollout start {name} "
            "--candidate Staging"
        )
    return rollout


def _readable_or_none(store: RolloutStore, name: str) -> Rollout | None:
    """The stored rollout; None without one, or when its tag cannot be read (a new start
    replaces it)."""
    try:
        return store.read(name)
    except RolloutError as exc:
        log.warning("the rollout tag of %s cannot be read, a new start replaces it: %s", name, exc)
        return None


def _stored_or_moved_on(written: Written) -> None:
    if written is not Written.WRITTEN:
        raise conflict(MOVED_ON)
