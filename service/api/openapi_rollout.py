"""The OpenAPI description of the rollout admin API (service/api/rollout_routes.py): the
path items, the start/approve/abort bodies and the rollout as answered (keys:
service/rollouts/rollout_view.py and rollout_tag.py). Pure."""

from __future__ import annotations

from typing import Any

from service.api.rollout_routes import MAX_ROLLOUT_BYTES
from service.rollouts.rollout_plan import (
    DEFAULT_STEPS,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    MAX_STEPS,
    MoveKind,
    Phase,
)
from service.rollouts.rollout_requests import DEFAULT_CONTROL
from service.rollouts.rollout_tag import ROLLOUT_TAG
from service.rollouts.tag_fields import number_out

JSON = "application/json"
Schema = dict[str, Any]
BASE = "/admin/models/{name}/rollout"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _object(properties: Schema, required: tuple[str, ...] = ()) -> Schema:
    return {"type": "object", "required": list(required), "properties": properties}


def rollout_schemas() -> dict[str, Schema]:
    number, integer, boolean = {"type": "number"}, {"type": "integer"}, {"type": "boolean"}
    name = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS}
    target = {"type": "string", "description": "A stage (`Staging`) or an alias (`@challenger`)."}
    gates = _object(
        {
            "max_error_rate_increase": {
                **number,
                "description": "Largest rise of the error rate allowed, candidate minus "
                "control (absolute; default 0.01).",
            },
            "max_p99_ratio": {**number, "description": "Largest p99 ratio to the control (1.5)."},
            "reward_not_worse": {
                **boolean,
                "description": "Fail when the candidate's reward is significantly worse (true).",
            },
        }
    )
    shadow = _object(
        {
            "percent": {**number, "description": "Share of requests mirrored to the candidate."},
            "min_agreement": {**number, "description": "Agreement needed (0.95)."},
            "min_requests": {**integer, "description": "Mirrored answers needed (100)."},
        },
        ("percent",),
    )
    start = _object(
        {
            "candidate": {
                **target,
                "description": "What is rolled out: its version is pinned at the start.",
            },
            "control": {**target, "default": DEFAULT_CONTROL},
            "steps": {
                "type": "array",
                "items": number,
                "maxItems": MAX_STEPS,
                "default": [number_out(p) for p in DEFAULT_STEPS],
                "description": "The candidate's percent of traffic at each step, rising.",
            },
            "min_step_seconds": {**number, "description": "Shortest step (60)."},
            "min_step_requests": {**integer, "description": "Requests per side per step (100)."},
            "gates": gates,
            "shadow": {**shadow, "type": ["object", "null"]},
            "require_approval": {**boolean, "description": "Wait for approve before promoting."},
            "sticky": {**boolean, "description": "Keep routing keys on their target."},
            "by": {**name, "description": "Who starts it (recorded in the history)."},
        },
        ("candidate",),
    )
    approve = _object({"by": {**name, "description": "Who approves (recorded with the time)."}})
    abort = _object(
        {
            "why": {"type": "string", "maxLength": MAX_REASON_CHARS},
            "by": {**name, "description": "Who aborts (recorded)."},
        }
    )
    rollout = _object(
        {
            "model": {"type": "string"},
            "tag": {"type": "string", "const": ROLLOUT_TAG},
            "describe": {"type": "string", "examples": ["step 2 of 4 (25 %)"]},
            "live": {**boolean, "description": "False once promoted, rolled back or aborted."},
            "policy": _ref("schemas", "TrafficPolicy"),
            "plan": {
                **_object({"id": {"type": "string"}, "candidate_version": integer}),
                "description": "The plan as the registry tag stores it.",
            },
            "state": {
                **_object(
                    {
                        "phase": {"enum": [p.value for p in Phase]},
                        "step": {**integer, "description": "Index into the plan's steps."},
                        "revision": integer,
                        "history": {
                            "type": "array",
                            "items": _object({"move": {"enum": [m.value for m in MoveKind]}}),
                        },
                    }
                ),
                "description": "Where it stands, the approval and the newest decisions, as "
                "the registry tag stores them.",
            },
        },
        ("model", "tag", "describe", "live", "policy", "plan", "state"),
    )
    return {
        "Rollout": rollout,
        "RolloutStart": start,
        "RolloutApprove": approve,
        "RolloutAbort": abort,
    }


def _answer(description: str, status: str = "200") -> dict[str, Any]:
    return {
        status: {
            "description": description,
            "content": {JSON: {"schema": _ref("schemas", "Rollout")}},
        }
    }


def _errors(described: dict[int, str]) -> dict[str, Any]:
    error = {JSON: {"schema": _ref("schemas", "Error")}}
    return {
        str(status): {"description": text, "content": error} for status, text in described.items()
    }


def _write(summary: str, body: str, answered: str, conflicts: str, status: str = "200") -> Any:
    errors = {
        400: "Not JSON, or a field out of range (the message names it).",
        401: "Missing or wrong bearer token (with `WWW-Authenticate: Bearer`).",
        403: "Admin writes are off: the gateway runs without STAGESERVE_ADMIN_TOKEN.",
        404: "The model is not served here"
        + ("." if status == "201" else ", or it has no rollout."),
        409: conflicts + " Or the rollout moved on while this was handled: read it again.",
        413: f"Body larger than {MAX_ROLLOUT_BYTES} bytes.",
        503: "The registry could not be read or written; nothing was changed.",
    }
    return {
        "summary": summary,
        "tags": ["admin"],
        "security": [{"adminToken": []}],
        "requestBody": {
            "required": status == "201",
            "content": {JSON: {"schema": _ref("schemas", body)}},
        },
        "responses": {**_answer(answered, status), **_errors(errors)},
    }


def rollout_paths() -> dict[str, Any]:
    model = [_ref("parameters", "ModelName")]
    return {
        BASE: {
            "parameters": model,
            "get": {
                "summary": "A model's progressive rollout: plan, state, history",
                "tags": ["admin"],
                "responses": {
                    **_answer("The rollout as the registry stores it, and where it stands."),
                    **_errors(
                        {
                            404: "The model is not served here, or it has no rollout.",
                            409: "The rollout tag cannot be read (the message says why).",
                            503: "The registry could not be read.",
                        }
                    ),
                },
            },
            "post": _write(
                "Start a progressive rollout (the candidate's version pinned now)",
                "RolloutStart",
                "Started: stored in the registry; the controller moves it on.",
                "A rollout is live, or the candidate (or control) names no version, or both "
                "name the same one.",
                "201",
            ),
        },
        f"{BASE}/approve": {
            "parameters": model,
            "post": _write(
                "Approve the promotion of a rollout awaiting approval",
                "RolloutApprove",
                "Approved (who and when recorded); the controller promotes next.",
                "The rollout is not awaiting approval, or is approved already.",
            ),
        },
        f"{BASE}/abort": {
            "parameters": model,
            "post": _write(
                "Abort a live rollout: all traffic back to the control",
                "RolloutAbort",
                "Aborted (who and why recorded).",
                "The rollout is over already.",
            ),
        },
    }
