"""The slot through which the HTTP app reaches its worker's gateway.

Why a slot: BentoML needs the app when it decorates the service class, at import,
while the gateway is made in the worker's ``__init__``, later. The app is built with
the slot and asks it for the gateway per request; until the gateway is in, it fails
loudly rather than answering without one.
"""

from __future__ import annotations

from service.gateway import Gateway


class GatewaySlot:
    """Holds one process's gateway; calling it returns the gateway."""

    def __init__(self) -> None:
        self._gateway: Gateway | None = None

    def fill(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def __call__(self) -> Gateway:
        if self._gateway is None:
            raise RuntimeError("the stageserve gateway is not started in this process")
        return self._gateway
