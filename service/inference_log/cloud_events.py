"""A logged prediction as two CloudEvents in binary mode, as KServe's payload logger
sends them (its ``pkg/logger``), so consumers built for KServe read them unchanged.

Binary mode: the event's data is the HTTP body and its attributes are ``Ce-*`` headers.
The request event carries the request body (as logged: cut at
``STAGESERVE_INFERENCE_LOG_MAX_INPUT_BYTES``, then marked ``Ce-Truncated: true``), the
response event the answer. Both have the request id as ``Ce-Id`` (KServe's way of
pairing them) and KServe's extension attributes where they map: the model is the
``inferenceservicename``, the target the ``endpoint`` (KServe's ``default`` or
``canary``), the component ``predictor``, and ``metadata`` is the JSON object of the
answer's headers (KServe puts chosen request headers there). The version, which KServe
has no attribute for, is also ``Ce-Modelversion``. ``Ce-Namespace`` is not sent: a
gateway knows no Kubernetes namespace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import quote

from service.api.header_values import header_value
from service.inference_log.records import Row

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
SPEC_VERSION = "1.0"
SOURCE_PREFIX = "http://stageserve/"
COMPONENT = "predictor"
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class CloudEvent:
    headers: dict[str, str]
    body: bytes


def source_of(model: str) -> str:
    return SOURCE_PREFIX + quote(model, safe="")


def event_time(row: Row) -> str:
    """RFC 3339, UTC, to the microsecond."""
    return row.time.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def events_of(row: Row, event_id: str) -> tuple[CloudEvent, CloudEvent]:
    """The request event and the response event of one prediction row."""
    answer_headers = {
        "X-Model-Name": [header_value(row.model)],
        "X-Model-Target": [header_value(row.target or "")],
        "X-Model-Version": [str(row.version)],
    }
    common = {
        "Ce-Specversion": SPEC_VERSION,
        "Ce-Id": event_id,
        "Ce-Source": source_of(row.model),
        "Ce-Time": event_time(row),
        "Ce-Inferenceservicename": header_value(row.model),
        "Ce-Component": COMPONENT,
        "Ce-Endpoint": header_value(row.target or ""),
        "Ce-Modelversion": str(row.version),
        "Ce-Metadata": json.dumps(answer_headers, separators=(",", ":")),
    }
    request_headers = {
        **common,
        "Ce-Type": REQUEST_TYPE,
        "Content-Type": header_value(row.content_type or JSON_TYPE),
    }
    if row.input_truncated:
        request_headers["Ce-Truncated"] = "true"
    response_headers = {**common, "Ce-Type": RESPONSE_TYPE, "Content-Type": JSON_TYPE}
    return (
        CloudEvent(request_headers, (row.input or "").encode()),
        CloudEvent(response_headers, (row.output or "").encode()),
    )
