"""The generated request id key: made once per runtime folder, private, the same for
workers starting at once and after a restart; its notice logged once per gateway start."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from service.experiments.request_id_key import KEY_BYTES, KEY_FILE, runtime_key, signing_key

REPO = Path(__file__).resolve().parents[2]


def test_made_once_private_and_kept(tmp_path: Path) -> None:
    key = runtime_key(str(tmp_path), supervisor_pid=1)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600
    assert runtime_key(str(tmp_path), supervisor_pid=1) == key
    assert runtime_key(str(tmp_path), supervisor_pid=2) == key  # a restarted gateway
    # No temporary file left; the notice marker of the last start only.
    assert {p.name for p in tmp_path.iterdir()} == {KEY_FILE, f"{KEY_FILE}.2.noticed"}


def test_the_notice_is_logged_once_per_gateway_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "stageserve.feedback"):
        for pid in (10, 10, 10, 11, 11):  # two starts of three and two workers
            runtime_key(str(tmp_path), supervisor_pid=pid)
    notices = [r for r in caplog.records if "STAGESERVE_REQUEST_ID_KEY_FILE" in r.getMessage()]
    assert len(notices) == 2
    assert str(tmp_path / KEY_FILE) in notices[0].getMessage()
    assert key_not_in(notices[0].getMessage(), tmp_path)


def key_not_in(message: str, folder: Path) -> bool:
    return (folder / KEY_FILE).read_text().strip() not in message


@pytest.mark.parametrize(
    "leftover",
    ["z" * 2 * KEY_BYTES, "\u00e9" * 2 * KEY_BYTES, "abc"],
    ids=["not-hex", "not-ascii", "short"],
)
def test_a_file_that_holds_no_key_is_replaced(tmp_path: Path, leftover: str) -> None:
    (tmp_path / KEY_FILE).write_text(leftover)
    key = runtime_key(str(tmp_path), supervisor_pid=1)
    assert len(key) == KEY_BYTES
    assert (tmp_path / KEY_FILE).read_text().strip() == key.hex()


READER = "import sys; from service.experiments.request_id_key import runtime_key; " \
    "print(runtime_key(sys.argv[1]).hex())"  # fmt: skip


def test_workers_starting_at_once_agree(tmp_path: Path) -> None:
    for attempt in range(5):
        folder = tmp_path / str(attempt)
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", READER, str(folder)],
                stdout=subprocess.PIPE,
                env={"PYTHONPATH": str(REPO)},
                cwd=REPO,
            )
            for _ in range(4)
        ]
        keys = {worker.communicate(timeout=60)[0].strip() for worker in workers}
        assert len(keys) == 1 and len(keys.pop()) == 2 * KEY_BYTES


def test_a_configured_key_wins(tmp_path: Path) -> None:
    assert signing_key("configured-key-0123456789", str(tmp_path)) == b"configured-key-0123456789"
    assert not (tmp_path / KEY_FILE).exists()
    assert len(signing_key(None, None)) == KEY_BYTES  # no folder: this process's own
