"""The OpenAPI description of ``GET /admin/models/{name}/experiment``: the path item and
the schema of its answer (keys: service/experiments/results.py and
gateway_experiments.py)."""

from __future__ import annotations

from typing import Any

from service.experiments.window_starts import GATEWAY_START, POLICY_CHANGE

JSON = "application/json"
Schema = dict[str, Any]


def _nullable(type_name: str) -> Schema:
    return {"type": [type_name, "null"]}


def _object(properties: dict[str, Schema]) -> Schema:
    return {"type": "object", "required": list(properties), "properties": properties}


def experiment_schema() -> Schema:
    number, integer, string = _nullable("number"), {"type": "integer"}, _nullable("string")
    reward = _object(
        {
            "mean": number,
            "low": number,
            "high": number,
            "method": {"enum": ["wilson", "student_t", None]},
            "undefined": {**string, "description": "Why there is no interval, or null."},
        }
    )
    versus = {
        **_object(
            {
                "test": {"enum": ["welch", "two_proportions", None]},
                "difference": {**number, "description": "This version's mean minus the control's."},
                "low": number,
                "high": number,
                "statistic": number,
                "df": number,
                "p_value": number,
                "undefined": string,
            }
        ),
        "type": ["object", "null"],
        "description": "Null for the control itself.",
    }
    shadow = _object(
        {
            **{outcome: integer for outcome in ("agree", "disagree", "error", "dropped")},
            "agreement": {**number, "description": "agree / (agree + disagree), as the shadow."},
        }
    )
    row = _object(
        {
            "target": {"type": "string"},
            "version": integer,
            "control": {"type": "boolean"},
            "requests": integer,
            "errors": integer,
            "error_rate": number,
            "outcomes": {"type": "object", "additionalProperties": integer},
            "latency_seconds": _object({"p50": number, "p99": number}),
            "feedback": integer,
            "reward": reward,
            "vs_control": versus,
            "shadow": shadow,
        }
    )
    return {
        **_object(
            {
                "model": {"type": "string"},
                "confidence": {"type": "number"},
                "window": _object(
                    {
                        "start": number,
                        "end": number,
                        "since": {"enum": [POLICY_CHANGE, GATEWAY_START]},
                    }
                ),
                "control": _object({"target": {"type": "string"}, "version": _nullable("integer")}),
                "targets": {"type": "array", "items": row},
                "policy": {"$ref": "#/components/schemas/TrafficPolicy"},
            }
        ),
        "description": "Per target and version, over the window (epoch seconds): what it "
        "served, its rewards, and how it compares with the control (the policy's first target).",
    }


def experiment_path() -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/Error"}
    return {
        "parameters": [{"$ref": "#/components/parameters/ModelName"}],
        "get": {
            "summary": "A model's A/B results on this gateway since its traffic policy changed",
            "tags": ["admin"],
            "responses": {
                "200": {
                    "description": "Summed over this gateway's workers; the window starts when "
                    "the policy in force was first applied (or the gateway started).",
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Experiment"}}},
                },
                "400": {
                    "description": "A `since` was given: one gateway keeps no history; ask "
                    "Prometheus (`stageserve experiment show --prometheus`).",
                    "content": {JSON: {"schema": error}},
                },
                "404": {
                    "description": "The model is not served here.",
                    "content": {JSON: {"schema": error}},
                },
            },
        },
    }
