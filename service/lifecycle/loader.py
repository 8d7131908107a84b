"""Load one registered model version and prove it works before it takes traffic.

Download, ``mlflow.pyfunc.load_model``, then a smoke test through the full request path;
the result is a ``LoadedVersion`` (service/inference/loaded_version.py), the servable.
Failures are ``LoadError``s (service/lifecycle/servable.py) that name the stage. The
log says what is about to be downloaded (and how big) before the download, its progress
while a big one runs (service/lifecycle/download_watch.py), and the load time after.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence

from registry_watcher.redact import redact
from registry_watcher.state import VersionRef
from service.errors import ServingError
from service.inference.codec import CONTENT_TYPE_JSON
from service.inference.invocation import accepts_params
from service.inference.loaded_version import DEFAULT_MAX_BATCH, LoadedVersion
from service.lifecycle.download_progress import DEFAULT_INTERVAL_S, ProgressReport, start_message
from service.lifecycle.download_watch import ProgressTicker, list_artifacts
from service.lifecycle.servable import LoadError
from service.lifecycle.worker_dirs import WorkerDir
from service.logs.log_format import fields

log = logging.getLogger("stageserve.loader")

SERVING_INPUT_EXAMPLE = "serving_input_example.json"

# Told each smoke test's verdict: (version, None) when it passed, (version, reason) when
# it failed; must not wait or raise (it runs on the load thread).
SmokeTestHook = Callable[[VersionRef, str | None], None]


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
        targets_of: Callable[[VersionRef], Sequence[str]] = lambda ref: (),
        progress_interval_s: float = DEFAULT_INTERVAL_S,
        on_smoke_test: SmokeTestHook = lambda ref, error: None,
    ) -> None:
        self._worker_dir = WorkerDir.claim(model_dir)
        self._root = self._worker_dir.path
        self._run_smoke_test = run_smoke_test
        self._max_batch = max_batch
        self._targets_of = targets_of  # the targets waiting for a version, for the log
        self._progress_interval_s = progress_interval_s
        self._on_smoke_test = on_smoke_test  # e.g. lifecycle/validation_writer.py

    def close(self) -> None:
        """Remove every version this loader downloaded (the worker is stopping)."""
        self._worker_dir.release()

    def __call__(self, ref: VersionRef) -> LoadedVersion:
        import mlflow

        started = time.monotonic()
        safe_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in ref.model)
        local_root = tempfile.mkdtemp(prefix=f"{safe_name}-v{ref.version}-", dir=self._root)
        targets = self._targets_of(ref)
        about = fields(model=ref.model, version=ref.version, target=", ".join(targets) or None)
        listing = list_artifacts(ref.uri)
        source = redact(ref.source or ref.uri)
        log.info("%s", start_message(ref.model, ref.version, targets, source, listing), extra=about)
        progress = ProgressReport(
            ref.model, ref.version, listing.total_bytes if listing is not None else None
        )
        try:
            with ProgressTicker(progress, local_root, log, self._progress_interval_s, about):
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
            try:
                loaded.smoke_tested = smoke_test(loaded)
            except LoadError as exc:
                self._on_smoke_test(ref, str(exc))
                raise
            if loaded.smoke_tested:
                self._on_smoke_test(ref, None)
        loaded.load_duration_s = time.monotonic() - started
        log.info(
            "loaded %s version %s in %.2fs%s",
            ref.model,
            ref.version,
            loaded.load_duration_s,
            " (smoke test passed)" if loaded.smoke_tested else "",
            extra=about,
        )
        return loaded
