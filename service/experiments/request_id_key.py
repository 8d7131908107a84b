"""The key request ids are signed with, when none is configured: one random key kept in
the runtime folder, so every worker of a gateway, and the gateway after a restart,
signs and verifies with the same one.

Created atomically (written under a temporary name, mode 0600, then linked to its
name, which fails if another worker got there first: then that worker's key is read),
so two workers starting at once agree. Replicas do not share a runtime folder: feedback
sent to another replica is refused until STAGESERVE_REQUEST_ID_KEY(_FILE) is set to one
key for the fleet; the log says so once per gateway start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets

from registry_watcher.redact import read_secret_file

log = logging.getLogger("stageserve.feedback")

KEY_FILE = "request-id.key"
KEY_BYTES = 32
_NOTICE_SUFFIX = ".noticed"


def runtime_key(runtime_dir: str, supervisor_pid: int | None = None) -> bytes:
    """This gateway's generated key (made on first use); logs once per gateway start
    (``supervisor_pid``: the process all its workers share) where it is."""
    os.makedirs(runtime_dir, exist_ok=True)
    path = os.path.join(runtime_dir, KEY_FILE)
    key = _read(path)
    if key is None:
        key = _create(path)
    _notice_once(runtime_dir, path, os.getppid() if supervisor_pid is None else supervisor_pid)
    return key


def _read(path: str) -> bytes | None:
    """The key the file holds; None when there is none or it is not one (a leftover that
    ``_create`` replaces)."""
    try:
        text = read_secret_file(path)
        return bytes.fromhex(text) if len(text) == 2 * KEY_BYTES else None
    except FileNotFoundError:
        return None
    except ValueError:  # not hex, not UTF-8 (UnicodeError is one), far too long
        return None


def _create(path: str) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(key.hex() + "\n")
        try:
            os.link(temporary, path)  # atomic: fails if another worker linked first
        except FileExistsError:
            existing = _read(path)
            if existing is not None:
                return existing
            os.replace(temporary, path)  # an unreadable leftover: ours replaces it
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return key


def _notice_once(runtime_dir: str, path: str, supervisor_pid: int) -> None:
    marker = os.path.join(runtime_dir, f"{KEY_FILE}.{supervisor_pid}{_NOTICE_SUFFIX}")
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return  # another worker of this start said it
    for entry in os.scandir(runtime_dir):  # markers of earlier starts
        if entry.name.endswith(_NOTICE_SUFFIX) and entry.path != marker:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    log.info(
        "request ids are signed with a key generated for this gateway (%s): feedback sent "
        "to another replica is refused until every replica shares one key "
        "(STAGESERVE_REQUEST_ID_KEY_FILE, --request-id-key-file)",
        path,
    )


def signing_key(configured: str | None, runtime_dir: str | None) -> bytes:
    """The configured key; else the gateway's generated one; else (no runtime folder:
    one worker, in a test) a key of this process alone."""
    if configured:
        return configured.encode()
    if runtime_dir:
        return runtime_key(runtime_dir)
    log.warning("no runtime folder: request ids are signed with a key of this process alone")
    return secrets.token_bytes(KEY_BYTES)
