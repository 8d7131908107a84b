"""Keep the garbage collector's full passes off the request path.

A worker holds millions of long-lived objects (MLflow, pandas, scikit-learn, the
models), and a full collection walks them all: 100-500 ms with the GIL held, which is
every request's p99 under load. Each time the set of loaded versions changes, one full
collection runs (on the thread that made the change, a load's or the watcher's, never
in a request) and everything alive is then frozen (``gc.freeze``): later collections
only walk what requests create. Nothing
leaks: reference counting still frees frozen objects, and the next change unfreezes
and collects whatever cycles a released version left.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("stageserve.heap")


def settle() -> float:
    """Collect everything, then freeze the survivors; returns the seconds it took."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    elapsed = time.perf_counter() - started
    log.debug("heap settled in %.3fs; %d objects frozen", elapsed, gc.get_freeze_count())
    return elapsed
