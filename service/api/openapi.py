"""The OpenAPI 3.1 description of stageserve's HTTP API, as a JSON-ready dict.

Why written here rather than generated: the endpoints read raw bodies and headers
(MLflow's scoring protocol, byte for byte), so no framework can infer their schemas;
BentoML's own generated document described only its health routes. The limits, header
names, policy rules and webhook statuses come from the modules that enforce them, so the
document changes when they do; tests/unit/test_openapi.py validates the document and
checks that its (method, path) pairs are exactly the routes the served app has.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from registry_watcher.deliveries import (
    DELIVERY_ID_HEADER,
    EVENTS,
    SIGNATURE_HEADER,
    SIGNATURE_VERSION,
    TIMESTAMP_HEADER,
    Outcome,
)
from registry_watcher.traffic_policy import MAX_TARGETS, POLICY_TAG
from service.api.admin import MAX_POLICY_BYTES
from service.api.feedback import MAX_ERRORS_SHOWN
from service.api.openapi_experiment import experiment_path, experiment_schema
from service.api.openapi_rollout import rollout_paths, rollout_schemas
from service.api.webhooks import MAX_DELIVERY_BYTES, STATUS
from service.config import SETTINGS
from service.errors import JSON, MAX_MESSAGE_CHARS
from service.experiments.feedback_items import MAX_ITEMS, MAX_TRUTH_BYTES, Reason
from service.request_path import FEEDBACK_ID, REQUEST_ID
from service.traffic.pinning import TARGET_HEADER
from service.traffic.policy_book import ADMIN, DEFAULT, REGISTRY

OPENAPI_VERSION = "3.1.0"
DOCUMENT_PATHS = ("/openapi.json", "/docs.json")  # /docs.json: where BentoML served its own
INDEX_PATH = "/"

Schema = dict[str, Any]


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _default(env: str) -> str:
    (setting,) = [s for s in SETTINGS if s.env == env]
    assert setting.default is not None, env
    return setting.default


def _header_name(lowercase: str) -> str:
    """``x-mlflow-delivery-id`` -> ``X-Mlflow-Delivery-Id`` (header names ignore case)."""
    return "-".join(part.capitalize() for part in lowercase.split("-"))


def _json(schema: Schema) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _errors(described: Mapping[int, str], headers: Iterable[str] = ()) -> dict[str, Any]:
    """Error answers, all MLflow's ``{"error_code", "message"}`` (with ``headers``)."""
    answers: dict[str, Any] = {
        str(status): {"description": text, "content": _json(_ref("schemas", "Error"))}
        for status, text in described.items()
    }
    named = {name: _ref("headers", name) for name in headers}
    if named:
        for answer in answers.values():
            answer["headers"] = named
    return answers


# --- schemas ---------------------------------------------------------------------------


def _nullable(type_name: str) -> Schema:
    return {"type": [type_name, "null"]}


def _scoring_request(key: str, description: str, shape: Schema) -> Schema:
    return {
        "type": "object",
        "description": description,
        "required": [key],
        "properties": {key: shape, "params": _ref("schemas", "Params")},
    }


def _schemas() -> dict[str, Schema]:
    nullable_string = _nullable("string")
    target_text = {
        "type": "string",
        "description": "A stage (`Production`), an alias (`@champion`) or a version number (`7`).",
        "examples": ["Production", "@champion", "7"],
    }
    traffic_view = {
        "type": "object",
        "required": [
            "model",
            "tag",
            "policy",
            "source",
            "updated_at",
            "error",
            "effective_shares",
        ],
        "properties": {
            "model": {"type": "string"},
            "tag": {"type": "string", "const": POLICY_TAG},
            "policy": _ref("schemas", "TrafficPolicy"),
            "source": {"type": "string", "enum": [DEFAULT, REGISTRY, ADMIN]},
            "updated_at": {**nullable_string, "format": "date-time"},
            "error": {
                **nullable_string,
                "description": "The last invalid policy tag's problem, while the last good "
                "policy serves.",
            },
            "effective_shares": {
                "type": "object",
                "description": "Share (0-1) of traffic each target gets, over the targets "
                "that have a version loaded.",
                "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
    }
    target_state = {
        "type": "object",
        "required": ["target", "required", "status", "version", "stale_reason", "last_error"],
        "properties": {
            "target": {"type": "string"},
            "required": {"type": "boolean"},
            "status": {
                "type": "string",
                "description": "e.g. `ready`, `loading`, `failed`, `stale`, `empty`, `pending`.",
            },
            "version": _nullable("integer"),
            "run_id": nullable_string,
            "source": nullable_string,
            "loaded_at": {**nullable_string, "format": "date-time"},
            "load_duration_s": _nullable("number"),
            "smoke_tested": _nullable("boolean"),
            "registry_version": _nullable("integer"),
            "registry_note": nullable_string,
            "stale_reason": nullable_string,
            "last_error": nullable_string,
            "last_error_stage": {
                **nullable_string,
                "description": "`load`, `smoke_test` or `load_timeout`.",
            },
            "last_error_at": {**nullable_string, "format": "date-time"},
            "failed_attempts": {"type": "integer", "minimum": 0},
        },
    }
    return {
        "Error": {
            "type": "object",
            "description": "MLflow's error format, for every error on every route. Messages "
            f"are cut after {MAX_MESSAGE_CHARS} characters and never carry credentials.",
            "required": ["error_code", "message"],
            "properties": {
                "error_code": {
                    "type": "string",
                    "examples": ["BAD_REQUEST", "RESOURCE_DOES_NOT_EXIST"],
                },
                "message": {"type": "string"},
            },
        },
        "Params": {
            "type": "object",
            "description": "Inference parameters, passed to the model's `predict`.",
        },
        "ScoringRequest": {
            "description": "MLflow's scoring protocol: exactly one of these keys.",
            "oneOf": [
                _scoring_request(
                    "dataframe_split",
                    "A pandas DataFrame in `split` orientation.",
                    {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "index": {"type": "array"},
                            "data": {"type": "array", "items": {"type": "array"}},
                        },
                    },
                ),
                _scoring_request(
                    "dataframe_records",
                    "A pandas DataFrame in `records` orientation.",
                    {"type": "array", "items": {"type": "object"}},
                ),
                _scoring_request(
                    "instances", "TensorFlow Serving's row format.", {"type": "array"}
                ),
                _scoring_request(
                    "inputs", "TensorFlow Serving's column format.", {"type": ["array", "object"]}
                ),
            ],
        },
        "Predictions": {
            "type": "object",
            "required": ["predictions"],
            "properties": {"predictions": {"description": "What the model's `predict` returned."}},
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "not_ready"]},
                "reasons": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Why not ready (only when not ready).",
                },
            },
        },
        "TrafficPolicy": {
            "type": "object",
            "description": f"Stored in the registered-model tag `{POLICY_TAG}`; any other "
            "key is an error.",
            "required": ["weights"],
            "additionalProperties": False,
            "properties": {
                "weights": {
                    "type": "object",
                    "description": "Target -> weight; weights are normalised, not all zero; "
                    "targets must be ones the gateway serves.",
                    "minProperties": 1,
                    "maxProperties": MAX_TARGETS,
                    "propertyNames": target_text,
                    "additionalProperties": {"type": "number", "minimum": 0},
                },
                "sticky": {
                    "type": "boolean",
                    "default": False,
                    "description": "A request with a routing key always lands on the same target.",
                },
                "shadow": {
                    "type": ["object", "null"],
                    "description": "Also send `percent` % of requests to `target`, after the "
                    "answer; its answer is compared, never returned.",
                    "required": ["target", "percent"],
                    "additionalProperties": False,
                    "properties": {
                        "target": target_text,
                        "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                    },
                },
            },
            "examples": [
                {
                    "weights": {"Production": 90, "Staging": 10},
                    "sticky": True,
                    "shadow": {"target": "@challenger", "percent": 25},
                }
            ],
        },
        "TrafficView": traffic_view,
        "TargetState": target_state,
        "GatewayState": {
            "type": "object",
            "required": ["worker", "ready", "unready_reasons", "models", "watcher"],
            "properties": {
                "worker": {
                    "type": "object",
                    "description": "The worker process that answered.",
                    "properties": {
                        "pid": {"type": "integer"},
                        "started_at": {"type": "string", "format": "date-time"},
                    },
                },
                "ready": {"type": "boolean"},
                "unready_reasons": {"type": "array", "items": {"type": "string"}},
                "models": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "targets", "traffic"],
                        "properties": {
                            "name": {"type": "string"},
                            "targets": {"type": "array", "items": _ref("schemas", "TargetState")},
                            "traffic": _ref("schemas", "TrafficView"),
                        },
                    },
                },
                "watcher": {
                    "type": "object",
                    "description": "The registry watcher of this worker.",
                    "required": ["registry_uri", "reachable", "consecutive_failures"],
                    "properties": {
                        "registry_uri": nullable_string,
                        "poll_interval_s": {"type": "number"},
                        "polls": {"type": "integer"},
                        "reachable": _nullable("boolean"),
                        "consecutive_failures": {"type": "integer"},
                        "last_success_at": {**nullable_string, "format": "date-time"},
                        "last_attempt_at": {**nullable_string, "format": "date-time"},
                        "last_poll_duration_s": _nullable("number"),
                        "next_poll_in_s": _nullable("number"),
                        "last_error": nullable_string,
                    },
                },
            },
        },
        "Experiment": experiment_schema(),
        **rollout_schemas(),
        "FeedbackItem": {
            "type": "object",
            "description": "Feedback on one answered request: a reward, a truth, or both "
            "(each counted once per request, whenever it comes).",
            "required": ["request_id"],
            "additionalProperties": False,
            "anyOf": [{"required": ["reward"]}, {"required": ["truth"]}],
            "properties": {
                "request_id": {
                    "type": "string",
                    "description": f"The answer's `{FEEDBACK_ID}` header (signed with the "
                    "model, target and version that answered).",
                },
                "reward": {"type": "number", "description": "Any finite number."},
                "truth": {
                    "description": f"The true value or label, any JSON (at most "
                    f"{MAX_TRUTH_BYTES} bytes serialized); logged, not aggregated."
                },
            },
            "examples": [
                {
                    "request_id": "ss1.ZGlhYmV0ZXM.UHJvZHVjdGlvbg.1.1764460000.XhGMqbjgyXE."
                    "rsW-19HsxFqdJxl0ByDJKg",
                    "reward": 1,
                }
            ],
        },
        "FeedbackAccepted": {
            "type": "object",
            "required": ["accepted", "duplicate", "request_id", "model", "target", "version"],
            "properties": {
                "accepted": {"type": "boolean", "description": "Counted now."},
                "duplicate": {
                    "type": "boolean",
                    "description": "Already counted before (by any worker): not counted again.",
                },
                "request_id": {"type": "string"},
                "model": {"type": "string"},
                "target": {"type": "string"},
                "version": {"type": "integer"},
            },
        },
        "FeedbackCounts": {
            "type": "object",
            "required": ["accepted", "duplicates", "refused", "errors"],
            "properties": {
                "accepted": {"type": "integer", "minimum": 0},
                "duplicates": {"type": "integer", "minimum": 0},
                "refused": {"type": "integer", "minimum": 0},
                "errors": {
                    "type": "array",
                    "description": f"The first {MAX_ERRORS_SHOWN} refused items.",
                    "maxItems": MAX_ERRORS_SHOWN,
                    "items": {
                        "type": "object",
                        "required": ["index", "error_code", "reason", "message"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "error_code": {"type": "string"},
                            "reason": {"type": "string", "enum": [r.value for r in Reason]},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
        "WebhookAccepted": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {
                "status": {"type": "string", "const": Outcome.ACCEPTED.value},
                "message": {"type": "string"},
                "model": nullable_string,
            },
        },
    }


# --- parameters and headers ------------------------------------------------------------


def _parameters() -> dict[str, Any]:
    routing_key = _default("STAGESERVE_ROUTING_KEY_HEADER")
    return {
        "ModelName": {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "A registered model name; it may contain `/`.",
            "schema": {"type": "string"},
        },
        "ModelTarget": {
            "name": _header_name(TARGET_HEADER),
            "in": "header",
            "required": False,
            "description": "Send the request to this target, bypassing the traffic policy: "
            "a stage (case-insensitive), an `@alias`, or a version number one of the targets "
            "serves now. Unknown: 400 listing the valid ones; nothing loaded: 503.",
            "schema": {"type": "string"},
        },
        "RoutingKey": {
            "name": routing_key,
            "in": "header",
            "required": False,
            "description": "Under a sticky policy, requests with the same key land on the "
            f"same target. The header's name is set by STAGESERVE_ROUTING_KEY_HEADER "
            f"(default `{routing_key}`).",
            "schema": {"type": "string"},
        },
    }


def _answer_headers() -> dict[str, Any]:
    """The headers of every prediction answer (each named once: the 200 answer lists these)."""
    encoded = (
        " Percent-encoded as UTF-8 (RFC 3986) when not printable ASCII or when it "
        "contains `%`: `urllib.parse.unquote` gives it back."
    )
    return {
        "X-Model-Name": {
            "description": "The model that answered." + encoded,
            "schema": {"type": "string"},
        },
        "X-Model-Version": {
            "description": "Its version number.",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        },
        _header_name(TARGET_HEADER): {
            "description": "The target that answered: `Production`, `@champion`, `7`." + encoded,
            "schema": {"type": "string"},
        },
        REQUEST_ID: {
            "description": f"The client's own `{REQUEST_ID}` when it sent a well-formed one "
            f"(1-128 of `A-Za-z0-9._:-`), else the `{FEEDBACK_ID}` (an error answer: a random "
            "id).",
            "schema": {"type": "string"},
        },
        FEEDBACK_ID: {
            "description": "The id feedback on this answer names: signed with the model, "
            "target and version that answered and the time; valid on every replica sharing "
            "STAGESERVE_REQUEST_ID_KEY, for STAGESERVE_FEEDBACK_MAX_AGE.",
            "schema": {"type": "string"},
        },
    }


# --- operations ------------------------------------------------------------------------


def _prediction(summary: str, extra_errors: Mapping[int, str]) -> dict[str, Any]:
    max_body = _default("STAGESERVE_MAX_BODY_BYTES")
    errors = {
        400: "Malformed input, wrong shape, missing columns, wrong types, the model raising "
        f"on the input, or an unknown `{_header_name(TARGET_HEADER)}`.",
        **extra_errors,
        413: f"Body larger than STAGESERVE_MAX_BODY_BYTES (default {max_body} bytes).",
        415: "Missing or unsupported Content-Type, or a charset other than UTF-8.",
        500: "A bug; the details are in the gateway's log only.",
        503: "The chosen target has no version loaded.",
        504: "No answer started within the request timeout.",
    }
    return {
        "summary": summary,
        "tags": ["predictions"],
        "parameters": [_ref("parameters", "ModelTarget"), _ref("parameters", "RoutingKey")],
        "requestBody": {
            "required": True,
            "content": {
                JSON: {"schema": _ref("schemas", "ScoringRequest")},
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"contentMediaType": "application/vnd.apache.parquet"}
                },
            },
        },
        "responses": {
            "200": {
                "description": "The predictions, as `mlflow models serve` answers them.",
                "headers": {name: _ref("headers", name) for name in _answer_headers()},
                "content": _json(_ref("schemas", "Predictions")),
            },
            **_errors(dict(sorted(errors.items())), headers=[REQUEST_ID]),
        },
    }


def _feedback(summary: str, extra_errors: Mapping[int, str]) -> dict[str, Any]:
    errors = {
        400: "Not JSON, not feedback, or (one item) refused: unsigned (a client's own id), "
        "malformed, forged (another key), expired, for another model, or invalid.",
        **extra_errors,
        401: "STAGESERVE_FEEDBACK_TOKEN is set and the bearer token is missing or wrong.",
        413: "Body larger than STAGESERVE_MAX_BODY_BYTES.",
    }
    item = _ref("schemas", "FeedbackItem")
    return {
        "summary": summary,
        "tags": ["feedback"],
        "security": [{}, {"feedbackToken": []}],
        "requestBody": {
            "required": True,
            "content": _json(
                {
                    "oneOf": [
                        item,
                        {"type": "array", "items": item, "maxItems": MAX_ITEMS},
                    ]
                }
            ),
        },
        "responses": {
            "200": {
                "description": "One item: accepted, or a duplicate (counted before). A list: "
                "the counts and the refused items' errors.",
                "content": _json(
                    {
                        "oneOf": [
                            _ref("schemas", "FeedbackAccepted"),
                            _ref("schemas", "FeedbackCounts"),
                        ]
                    }
                ),
            },
            **_errors(dict(sorted(errors.items()))),
        },
    }


def _traffic_write(summary: str, body: bool) -> dict[str, Any]:
    errors: dict[int, str] = {}
    if body:
        errors[400] = "Not JSON, or not a valid policy for this model (the message says why)."
    errors[401] = "Missing or wrong bearer token (with `WWW-Authenticate: Bearer`)."
    errors[403] = "Admin writes are off: the gateway runs without STAGESERVE_ADMIN_TOKEN."
    errors[404] = "The model is not served here."
    if body:
        errors[413] = f"Policy larger than {MAX_POLICY_BYTES} bytes."
    errors[503] = "The registry refused or failed the tag write; nothing was applied."
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["admin"],
        "security": [{"adminToken": []}],
        "parameters": [_ref("parameters", "ModelName")],
        "responses": {
            "200": {
                "description": "The model's traffic, as now applied on this worker (other "
                "workers and replicas follow within a poll).",
                "content": _json(_ref("schemas", "TrafficView")),
            },
            **_errors(errors),
        },
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": _json(_ref("schemas", "TrafficPolicy")),
        }
    return operation


def _webhook() -> dict[str, Any]:
    why = {
        Outcome.BAD_SIGNATURE: "unsigned, or signed with another secret",
        Outcome.MALFORMED: "a header missing or unreadable",
        Outcome.STALE: "timestamp further from now than STAGESERVE_WEBHOOK_TOLERANCE",
        Outcome.REPLAY: "this delivery id was already received",
    }
    refused: dict[int, list[str]] = {}
    for outcome, reason in why.items():
        refused.setdefault(STATUS[outcome], []).append(f"{outcome.value}: {reason}")
    errors = {
        status: "Refused (" + "; ".join(reasons) + ")." for status, reasons in refused.items()
    }
    errors[404] = "Webhooks are off: the gateway runs without STAGESERVE_WEBHOOK_SECRET."
    errors[413] = f"Body larger than {MAX_DELIVERY_BYTES} bytes."
    headers = (
        (
            SIGNATURE_HEADER,
            f"`{SIGNATURE_VERSION},<base64 HMAC-SHA256>` of "
            "`{delivery id}.{timestamp}.{raw body}` with the webhook's secret.",
        ),
        (TIMESTAMP_HEADER, "Unix seconds."),
        (DELIVERY_ID_HEADER, "Unique per delivery; a repeat is refused."),
    )
    return {
        "summary": "An MLflow registry webhook delivery: read the registry now",
        "description": "A verified delivery makes every worker read the registry at once; "
        "it is never trusted for what to load. Events that matter: " + ", ".join(EVENTS) + ".",
        "tags": ["webhooks"],
        "parameters": [
            {
                "name": _header_name(name).replace("Mlflow", "MLflow"),
                "in": "header",
                "required": True,
                "description": description,
                "schema": {"type": "string"},
            }
            for name, description in headers
        ],
        "requestBody": {"required": True, "content": _json({"type": "object"})},
        "responses": {
            str(STATUS[Outcome.ACCEPTED]): {
                "description": "Verified; every worker reads the registry now.",
                "content": _json(_ref("schemas", "WebhookAccepted")),
            },
            **_errors(dict(sorted(errors.items()))),
        },
    }


def _get(summary: str, tag: str, responses: Mapping[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "tags": [tag], "responses": dict(responses)}}


def _health() -> dict[str, Any]:
    return {
        "200": {
            "description": "Every required target of every model has a version loaded.",
            "content": _json(_ref("schemas", "Health")),
        },
        "503": {
            "description": "Not ready yet, with the reasons.",
            "content": _json(_ref("schemas", "Health")),
        },
    }


def _paths() -> dict[str, Any]:
    alive = {"200": _text("The process serves HTTP (the body is a newline).")}
    document = {"200": {"description": "This document.", "content": _json({"type": "object"})}}
    paths: dict[str, Any] = {
        "/invocations": {
            "post": _prediction(
                "Predict with the served model (MLflow scoring protocol)",
                {400: "As above, or several models are served: the message lists their routes."},
            )
        },
        "/models/{name}/invocations": {
            "parameters": [_ref("parameters", "ModelName")],
            "post": _prediction(
                "Predict with one of several served models",
                {404: "The model is not served here (RESOURCE_DOES_NOT_EXIST)."},
            ),
        },
        "/feedback": {
            "post": _feedback(
                "Feedback (rewards, truths) on the served model's answers",
                {400: "As above, or several models are served: the message lists their routes."},
            )
        },
        "/models/{name}/feedback": {
            "parameters": [_ref("parameters", "ModelName")],
            "post": _feedback(
                "Feedback (rewards, truths) on one served model's answers",
                {404: "The model is not served here (RESOURCE_DOES_NOT_EXIST)."},
            ),
        },
        "/ping": _get("Readiness, as mlflow models serve answers it", "health", _health()),
        "/health": _get("Readiness (same as /ping)", "health", _health()),
        "/readyz": _get(
            "Readiness probe (BentoML's), same rule as /ping",
            "health",
            {
                "200": _text("Ready (the body is a newline)."),
                **_errors({503: "Not ready."}),
            },
        ),
        "/livez": _get("Liveness probe", "health", alive),
        "/healthz": _get("Liveness probe (same as /livez)", "health", alive),
        "/admin/models": _get(
            "What each model and target serves, and why; the traffic; the watcher",
            "admin",
            {
                "200": {
                    "description": "This worker's view.",
                    "content": _json(_ref("schemas", "GatewayState")),
                }
            },
        ),
        "/admin/models/{name}/traffic": {
            "parameters": [_ref("parameters", "ModelName")],
            "get": {
                "summary": "A model's traffic policy and effective shares",
                "tags": ["admin"],
                "responses": {
                    "200": {
                        "description": "The model's traffic on this worker.",
                        "content": _json(_ref("schemas", "TrafficView")),
                    },
                    **_errors({404: "The model is not served here."}),
                },
            },
            "put": _traffic_write("Set a model's traffic policy (written to the registry)", True),
            "delete": _traffic_write(
                "Clear a model's traffic policy (all traffic to the first target)", False
            ),
        },
        "/admin/models/{name}/experiment": experiment_path(),
        **rollout_paths(),
        "/metrics": _get(
            "Prometheus metrics (stageserve_* and bentoml_*)",
            "operations",
            {"200": _text("Prometheus text exposition format.")},
        ),
        "/version": _get(
            "The MLflow version, as mlflow models serve answers it",
            "operations",
            {"200": _text("e.g. `3.17.2`.")},
        ),
        "/webhooks/mlflow": {"post": _webhook()},
        INDEX_PATH: _get(
            "A page listing these routes, linking to this document",
            "operations",
            {"200": {"description": "HTML, no scripts.", "content": {"text/html": {}}}},
        ),
    }
    for path in DOCUMENT_PATHS:
        paths[path] = _get("This OpenAPI document", "operations", document)
    return paths


def openapi_document(version: str) -> dict[str, Any]:
    """The whole document; ``version`` is stageserve's."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "stageserve",
            "version": version,
            "summary": "Serves MLflow registry models by stage or alias, hot-swapped as the "
            "registry changes.",
            "description": "Predictions speak MLflow's scoring protocol, so a client of "
            "`mlflow models serve` works unchanged. Every error, on every route (unknown "
            "paths: 404, wrong methods: 405, request heads too large: 431 or too slow: 408), "
            'is MLflow\'s `{"error_code", "message"}`. Every GET route also answers HEAD.',
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": name, "description": description}
            for name, description in (
                ("predictions", "MLflow's scoring protocol"),
                ("feedback", "Rewards and truths for answered requests"),
                ("health", "Readiness and liveness"),
                ("admin", "What is served; traffic policies; rollouts"),
                ("webhooks", "MLflow registry webhooks"),
                ("operations", "Metrics, version, this description"),
            )
        ],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "parameters": _parameters(),
            "headers": _answer_headers(),
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The gateway's STAGESERVE_ADMIN_TOKEN (compared in "
                    "constant time); without it, writes are off (403).",
                },
                "feedbackToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The gateway's STAGESERVE_FEEDBACK_TOKEN, when set; "
                    "without it, feedback is open.",
                },
            },
        },
    }


def operations(document: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    """Every (METHOD, path, operation) the document describes."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
                yield method.upper(), path, operation
