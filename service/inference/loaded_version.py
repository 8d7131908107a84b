"""A model version in memory, ready to answer: the servable the request path holds.

It lives in inference/, not lifecycle/, because everything it does is answering
requests (parse, predict, encode, batch concurrent requests through its micro-batcher);
the lifecycle only needs its ``ref`` (``service/lifecycle/servable.py``'s ``Servable``),
so the pool never imports it. The loader (``service/lifecycle/loader.py``) builds one.
Per-version work (signature lookup, the numeric fast path) is done once, here, not per
request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any

from registry_watcher.state import VersionRef
from service.errors import ServingError
from service.inference.batch_predict import Outcome, Request, run_batch
from service.inference.codec import ParsedInput, encode_predictions, parse_request
from service.inference.invocation import run_predict
from service.inference.micro_batcher import MicroBatcher
from service.inference.numeric_input import NumericColumns

DEFAULT_MAX_BATCH = 64
# A batch runs on the event loop itself, with no thread hop, when its bodies are this
# small and this version's batches typically take this little time; otherwise in a thread.
INLINE_MAX_BYTES = 256 * 1024
INLINE_MAX_S = 0.003


@dataclass(eq=False)
class LoadedVersion:
    """A model version in memory, ready to predict. Immutable once built.

    Requests hold a reference while they run, so a swapped-out version finishes its
    in-flight requests and is freed (with its downloaded files) when the last one ends.
    """

    ref: VersionRef
    model: Any
    metadata: Any
    input_schema: Any
    with_params: bool
    local_dir: str
    loaded_at: float = field(default_factory=time.time)
    load_duration_s: float = 0.0
    smoke_tested: bool = False
    max_batch: int = DEFAULT_MAX_BATCH  # requests per predict call; 1 turns batching off
    numeric: NumericColumns | None = field(init=False)
    batcher: MicroBatcher[tuple[LoadedVersion, Request], Outcome] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.numeric = NumericColumns.for_model(self.metadata, self.input_schema)
        # The batcher gets the version with each item, not at construction: no cycle, so
        # a swapped-out version is freed as soon as its last request ends.
        self.batcher = MicroBatcher(
            _run_items, self.max_batch, small=_small_bodies, inline_max_s=INLINE_MAX_S
        )

    def parse(self, body: bytes, content_type: str | None) -> ParsedInput:
        return parse_request(body, content_type, self.metadata, self.input_schema, self.numeric)

    def predict(self, parsed: ParsedInput) -> Any:
        return run_predict(self.model, parsed, self.with_params)

    def invoke(self, body: bytes, content_type: str | None) -> bytes:
        """Parse, predict and encode one request body, on its own, in this thread.

        Only before the version takes traffic (the smoke test): once it does, its batcher
        runs its predicts, one at a time, and a predict beside it could break a model
        that is not thread-safe. Other threads use ``submit_from_thread``."""
        parsed = self.parse(body, content_type)
        return encode_predictions(self.predict(parsed), parsed.unwrapped)

    async def submit(self, body: bytes, content_type: str | None) -> bytes:
        """Answer one request from the event loop, batched with concurrent ones."""
        outcome = await self.batcher.submit((self, Request(body, content_type)))
        if isinstance(outcome, ServingError):
            raise outcome
        return outcome

    def submit_from_thread(
        self,
        body: bytes,
        content_type: str | None,
        loop: asyncio.AbstractEventLoop,
        timeout_s: float,
    ) -> bytes:
        """Answer one request from a thread that is not ``loop``'s, through this version's
        batcher on ``loop``, so that it never runs beside the batcher's own predict."""
        future = asyncio.run_coroutine_threadsafe(self.submit(body, content_type), loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


def _small_bodies(items: list[tuple[LoadedVersion, Request]]) -> bool:
    return sum(len(request.body) for _, request in items) <= INLINE_MAX_BYTES


def _run_items(items: list[tuple[LoadedVersion, Request]]) -> list[Outcome]:
    return run_batch(items[0][0], [request for _, request in items])
