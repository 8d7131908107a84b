"""Load one registered model version and prove it works before it takes traffic.

Per-version work (signature lookup, whether predict takes params) is done here,
once, not per request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from registry_watcher.state import VersionRef
from service.errors import ServingError
from service.inference.batch_predict import Outcome, Request, run_batch
from service.inference.micro_batcher import MicroBatcher
from service.inference.numeric_input import NumericColumns
from service.inference.protocol import (
    CONTENT_TYPE_JSON,
    ParsedInput,
    accepts_params,
    encode_predictions,
    parse_request,
    run_predict,
)
from service.lifecycle.worker_dirs import WorkerDir

log = logging.getLogger("stageserve.loader")

SERVING_INPUT_EXAMPLE = "serving_input_example.json"
DEFAULT_MAX_BATCH = 64
# A batch runs on the event loop itself, with no thread hop, when its bodies are this
# small and this version's batches typically take this little time; otherwise in a thread.
INLINE_MAX_BYTES = 256 * 1024
INLINE_MAX_S = 0.003


class LoadError(Exception):
    """A version that could not be loaded or failed its smoke test."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage  # "load" or "smoke_test": the swap metric's result label


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


def _remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def smoke_test(loaded: LoadedVersion) -> bool:
    """Run the version's own serving input example through the full request path.

    Returns whether an example existed; raises LoadError if it failed.
    """
    example = os.path.join(loaded.local_dir, SERVING_INPUT_EXAMPLE)
    if not os.path.exists(example):
        return False
    with open(example, "rb") as fh:
        body = fh.read()
    try:
        loaded.invoke(body, CONTENT_TYPE_JSON)
    except ServingError as exc:
        raise LoadError(
            "smoke_test", f"smoke test with {SERVING_INPUT_EXAMPLE} failed: {exc.message}"
        ) from None
    except Exception as exc:
        raise LoadError("smoke_test", f"smoke test failed: {type(exc).__name__}: {exc}") from exc
    return True


class VersionLoader:
    """Downloads a version's artifacts into a private folder and loads it with pyfunc.

    The folders live in this worker's own folder of ``model_dir`` (see
    service/lifecycle/worker_dirs.py): ``close()`` removes it, and the next start removes it if
    the worker died without closing.
    """

    def __init__(
        self,
        model_dir: str | None = None,
        run_smoke_test: bool = True,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._worker_dir = WorkerDir.claim(model_dir)
        self._root = self._worker_dir.path
        self._run_smoke_test = run_smoke_test
        self._max_batch = max_batch

    def close(self) -> None:
        """Remove every version this loader downloaded (the worker is stopping)."""
        self._worker_dir.release()

    def __call__(self, ref: VersionRef) -> LoadedVersion:
        import mlflow

        started = time.monotonic()
        safe_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in ref.model)
        local_root = tempfile.mkdtemp(prefix=f"{safe_name}-v{ref.version}-", dir=self._root)
        try:
            local_dir = mlflow.artifacts.download_artifacts(
                artifact_uri=ref.uri, dst_path=local_root
            )
        except Exception as exc:
            _remove_dir(local_root)
            raise LoadError(
                "load", f"download of {ref.uri} failed: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            model = mlflow.pyfunc.load_model(local_dir)
        except Exception as exc:
            _remove_dir(local_root)
            raise LoadError(
                "load", f"loading {ref.uri} failed: {type(exc).__name__}: {exc}"
            ) from exc
        loaded = LoadedVersion(
            ref=ref,
            model=model,
            metadata=model.metadata,
            input_schema=model.metadata.get_input_schema(),
            with_params=accepts_params(model.predict),
            local_dir=local_dir,
            max_batch=self._max_batch,
        )
        weakref.finalize(loaded, _remove_dir, local_root)
        if self._run_smoke_test:
            loaded.smoke_tested = smoke_test(loaded)
        loaded.load_duration_s = time.monotonic() - started
        log.info(
            "loaded %s version %s in %.2fs%s",
            ref.model,
            ref.version,
            loaded.load_duration_s,
            " (smoke test passed)" if loaded.smoke_tested else "",
        )
        return loaded
