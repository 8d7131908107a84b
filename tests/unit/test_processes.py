"""service.ops.processes: a process is its pid and its start time."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
from hypothesis import given
from hypothesis import strategies as st

from service.ops.processes import ProcessIdentity, pid_alive, start_ticks


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_start_time_is_that_of_the_process() -> None:
    ticks = start_ticks(os.getpid())
    assert ticks is not None
    boot = psutil.boot_time()
    started = boot + ticks / os.sysconf("SC_CLK_TCK")
    assert abs(started - psutil.Process().create_time()) < 1.0
    assert start_ticks(os.getpid()) == ticks  # fixed for the process's life


def test_a_command_name_with_spaces_and_parentheses_is_parsed() -> None:
    """Field 2 of /proc/<pid>/stat is the command name, which may hold ") ("."""
    code = "import ctypes,sys; ctypes.CDLL(None).prctl(15, b'a) (b c', 0, 0, 0); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        psutil_start = psutil.Process(proc.pid)

        def renamed() -> bool:
            with open(f"/proc/{proc.pid}/stat", "rb") as fh:
                return b"a) (b c" in fh.read()

        while not renamed():
            assert proc.poll() is None
        boot = psutil.boot_time()
        ticks = start_ticks(proc.pid)
        assert ticks is not None
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
        assert abs(started - psutil_start.create_time()) < 1.0
    finally:
        proc.communicate(b"")


def test_a_dead_process_is_not_alive() -> None:
    dead = _dead_pid()
    assert not pid_alive(dead)
    assert start_ticks(dead) is None
    assert not ProcessIdentity(dead, 12345).alive()
    assert not ProcessIdentity(dead, None).alive()
    assert not pid_alive(0) and not pid_alive(-1)


def test_a_live_pid_with_another_start_time_is_not_the_same_process() -> None:
    me = ProcessIdentity.current()
    assert me.alive()
    assert me.started is not None
    assert not ProcessIdentity(me.pid, me.started + 1).alive()
    assert ProcessIdentity(me.pid, None).alive()  # where /proc is missing: pid only


@given(st.integers(1, 2**22), st.one_of(st.none(), st.integers(0, 2**63)))
def test_identity_text_round_trips(pid: int, started: int | None) -> None:
    identity = ProcessIdentity(pid, started)
    assert ProcessIdentity.from_text(identity.to_text()) == identity


@given(st.text(max_size=30))
def test_anything_else_is_no_identity_or_a_clean_one(text: str) -> None:
    parsed = ProcessIdentity.from_text(text)
    assert parsed is None or ProcessIdentity.from_text(parsed.to_text()) == parsed


def test_torn_or_foreign_text_is_no_identity() -> None:
    for text in ("", " ", "12 x", "1 2 3", "-1 5", "12\n34\n56"):
        assert ProcessIdentity.from_text(text) is None
