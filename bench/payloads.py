"""Request bodies: MLflow ``dataframe_split`` JSON built from rows of the diabetes data,
written to files so wrk sends exactly the same bytes as the Python clients."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.cli.diabetes_registry import diabetes_data

PAYLOAD_ROWS = {"1-row": 1, "32-row": 32}


@dataclass(frozen=True)
class Payload:
    name: str
    rows: int
    body: bytes
    path: Path

    def as_json(self) -> dict[str, Any]:
        return json.loads(self.body)


def split_body(rows: int) -> bytes:
    X, _ = diabetes_data()
    frame = X.head(rows)
    body = {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}
    return json.dumps(body).encode()


def write_payloads(folder: Path) -> dict[str, Payload]:
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Payload] = {}
    for name, rows in PAYLOAD_ROWS.items():
        body = split_body(rows)
        path = folder / f"payload-{name}.json"
        path.write_bytes(body)
        out[name] = Payload(name, rows, body, path)
    return out
