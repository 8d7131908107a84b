"""Per-worker folders for downloaded versions that never outlive their worker for long.

Each worker downloads into its own folder ``<root>/worker-<pid>-<token>`` and holds an
exclusive ``flock`` on ``<root>/worker-<pid>-<token>.lock`` for as long as it lives. The
kernel drops the lock when the process ends, however it ends (SIGKILL and OOM kills
included), so "the lock can be taken" means "the owner is gone": unforgeable by pid
reuse, and true across the pid namespaces of containers that share a ``--model-dir``
volume on one host. A clean stop removes the worker's folder; every start sweeps the
folders whose owner is gone, so a crash-looping pod does not fill its disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import shutil
import tempfile

log = logging.getLogger("stageserve.worker_dirs")

PREFIX = "worker-"
LOCK_SUFFIX = ".lock"
_NAME = re.compile(r"^worker-\d+-[0-9a-f]+$")


def default_root() -> str:
    """Where downloads go without ``--model-dir``: one folder per user, so that a start
    finds (and sweeps) what earlier runs left behind."""
    return os.path.join(tempfile.gettempdir(), f"stageserve-models-{os.getuid()}")


def _usable_root(root: str, explicit: bool) -> str:
    os.makedirs(root, mode=0o700, exist_ok=True)
    if explicit or os.stat(root).st_uid == os.getuid():
        return root
    # Someone else owns the shared default: never download into (or sweep) their folder.
    log.warning("%s belongs to another user; downloading into a private temp folder", root)
    return tempfile.mkdtemp(prefix="stageserve-models-")


def _try_lock(fd: int) -> bool | None:
    """True: locked; False: someone holds it; None: this file system has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        log.debug("no file locks here: %s", exc)
        return None
    return True


def sweep(root: str) -> list[str]:
    """Remove the worker folders in ``root`` whose owner is gone; returns their names."""
    try:
        names = set(os.listdir(root))
    except FileNotFoundError:
        return []
    removed = []
    for name in sorted(names):
        if not _NAME.match(name.removesuffix(LOCK_SUFFIX)):
            continue
        if name.endswith(LOCK_SUFFIX):
            folder = name.removesuffix(LOCK_SUFFIX)
            if _remove_if_unowned(root, folder):
                removed.append(folder)
        elif name + LOCK_SUFFIX not in names:
            # A folder without its lock file has no owner: a worker creates and locks
            # the lock file before the folder and removes it last.
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            removed.append(name)
    if removed:
        log.info("removed %d folder(s) of stopped workers in %s", len(removed), root)
    return removed


def _remove_if_unowned(root: str, folder: str) -> bool:
    lock_path = os.path.join(root, folder + LOCK_SUFFIX)
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        if not _try_lock(fd):  # held, or no locks here: the owner may be alive
            return False
        shutil.rmtree(os.path.join(root, folder), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock_path)
        return True
    finally:
        os.close(fd)


class WorkerDir:
    """This worker's download folder, locked for as long as the process lives."""

    def __init__(self, root: str, path: str, lock_fd: int) -> None:
        self.root = root
        self.path = path
        self._lock_fd: int | None = lock_fd

    @classmethod
    def claim(cls, root: str | None = None) -> WorkerDir:
        """Sweep ``root`` (default: ``default_root()``), then take a new folder in it."""
        root = _usable_root(root or default_root(), explicit=root is not None)
        sweep(root)
        while True:
            name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            lock_path = os.path.join(root, name + LOCK_SUFFIX)
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            # A sweep may take the lock between our create and our flock, and unlink the
            # file: then ours is a lock on nothing; try another name.
            locked = _try_lock(fd)
            if locked is None:
                log.warning("%s has no file locks: stopped workers' folders stay there", root)
            if locked is not False and _same_file(fd, lock_path):
                path = os.path.join(root, name)
                os.mkdir(path, 0o700)
                return cls(root, path, fd)
            os.close(fd)

    def release(self) -> None:
        """Remove the folder, then the lock file (in that order: see ``sweep``)."""
        if self._lock_fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path + LOCK_SUFFIX)
        os.close(self._lock_fd)
        self._lock_fd = None


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
