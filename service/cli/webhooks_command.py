"""``stageserve webhooks register|list``: set up the MLflow webhook that tells gateways
to read the registry at once. Registering is idempotent: the webhook is found by name
and updated, or created."""

from __future__ import annotations

import argparse
import json
from typing import Any

from registry_watcher.deliveries import EVENTS
from registry_watcher.redact import redact_url
from service.cli.common import NO_REGISTRY, registry_actions, say

DEFAULT_NAME = "stageserve"


def add_webhooks_parser(sub: Any) -> None:
    action = registry_actions(sub, "webhooks", "register or list the MLflow webhook")
    register = action("register", help="create or update the webhook for a gateway URL")
    register.add_argument("--url", required=True, help="e.g. http://gateway:3000/webhooks/mlflow")
    register.add_argument(
        "--secret", default=None, help="signing secret (default: $STAGESERVE_WEBHOOK_SECRET)"
    )
    register.add_argument("--name", default=DEFAULT_NAME, help=f"webhook name ({DEFAULT_NAME})")
    action("list", help="list the registry's webhooks")


def _describe(webhook: Any) -> dict[str, Any]:
    return {
        "id": webhook.webhook_id,
        "name": webhook.name,
        "url": redact_url(webhook.url),  # a gateway URL may carry credentials
        "events": sorted(str(e) for e in webhook.events),
        "status": str(webhook.status),
    }


def _all_webhooks(client: Any) -> list[Any]:
    found: list[Any] = []
    token = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def register(client: Any, name: str, url: str, secret: str) -> tuple[str, Any]:
    """Create the webhook, or bring the one with this name up to date."""
    existing = [w for w in _all_webhooks(client) if w.name == name]
    if existing:
        webhook = client.update_webhook(
            existing[0].webhook_id,
            url=url,
            events=list(EVENTS),
            secret=secret,
            status="ACTIVE",
        )
        return "updated", webhook
    webhook = client.create_webhook(
        name=name,
        url=url,
        events=list(EVENTS),
        secret=secret,
        description="stageserve: read the registry now",
    )
    return "created", webhook


def run_webhooks(args: argparse.Namespace, registry_uri: str | None, env_secret: str | None) -> int:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if not registry_uri:
        say(NO_REGISTRY)
        return 2
    try:
        client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
        if args.action == "list":
            print(json.dumps([_describe(w) for w in _all_webhooks(client)], indent=2))
            return 0
        secret = args.secret or env_secret
        if not secret:
            say(
                "a signing secret is needed: --secret or $STAGESERVE_WEBHOOK_SECRET "
                "(the same value the gateway gets)"
            )
            return 2
        what, webhook = register(client, args.name, args.url, secret)
        print(json.dumps(_describe(webhook), indent=2))
        say(f"webhook {what}")
        return 0
    except MlflowException as exc:
        say(f"the registry refused: {exc.message}")
        return 1
    except Exception as exc:  # unreachable registry, bad URI: one line, not a traceback
        say(f"could not use the registry: {type(exc).__name__}: {exc}")
        return 1
