"""One-shot service of the compose stack: seed the MLflow server with the demo model and
register one MLflow webhook per gateway replica.

Runs in the stageserve image (the repository is installed there). Idempotent: a
registry that already has the model is left alone, and `register` updates webhooks
found by name. Settings come from the environment:

    MLFLOW_TRACKING_URI           the MLflow server (http://mlflow:5000)
    STAGESERVE_WEBHOOK_SECRET     the secret the gateways verify deliveries with
    STAGESERVE_WEBHOOK_URLS       name=url,name=url: one webhook per replica
"""

from __future__ import annotations

import logging
import os
import sys

import mlflow
from mlflow import MlflowClient

from service.cli import demo
from service.cli.diabetes_registry import DiabetesRegistry
from service.cli.webhooks_command import register


def seed_model(uri: str) -> None:
    # The server proxies artifacts (mlflow-artifacts:/ to the MinIO bucket): this
    # container needs no S3 credentials.
    versions = demo.seed_model(DiabetesRegistry(uri, demo.EXPERIMENT))
    if versions is None:
        print(f"seed: {demo.DEMO_MODEL} is already registered; nothing to seed", flush=True)
        return
    print(f"seed: {demo.DEMO_MODEL} {demo.placement(versions)}", flush=True)


def register_webhooks(client: MlflowClient, secret: str, spec: str) -> None:
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, url = item.partition("=")
        if not url:
            raise SystemExit(f"seed: STAGESERVE_WEBHOOK_URLS entry {item!r} is not name=url")
        what, _ = register(client, name, url, secret)
        print(f"seed: webhook {name} -> {url} {what}", flush=True)


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    uri = os.environ["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    seed_model(uri)
    secret = os.environ.get("STAGESERVE_WEBHOOK_SECRET", "")
    urls = os.environ.get("STAGESERVE_WEBHOOK_URLS", "")
    if secret and urls:
        register_webhooks(client, secret, urls)
    else:
        print("seed: no STAGESERVE_WEBHOOK_SECRET/URLS: webhooks not registered", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
