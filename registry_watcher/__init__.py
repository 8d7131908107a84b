"""Registry side of stageserve: reads MLflow, says which versions should be served.

Knows nothing about HTTP serving. The pure parts (target parsing, snapshot
resolution, diffing) live apart from the polling loop so they test without a server.
"""

from registry_watcher.state import DesiredState, ModelState, TargetChange, VersionRef
from registry_watcher.targets import Target, TargetKind, parse_target
from registry_watcher.watcher import RegistryWatcher, WatcherStatus

__all__ = [
    "DesiredState",
    "ModelState",
    "RegistryWatcher",
    "Target",
    "TargetChange",
    "TargetKind",
    "VersionRef",
    "WatcherStatus",
    "parse_target",
]
