"""The supervisor restarts a crashed child and stops the rest with SIGTERM."""

from __future__ import annotations

import sys
import time

from cdcsync.supervisor import Component, Supervisor

SLEEPER = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(60)"


def test_restart_then_clean_stop(tmp_path) -> None:
    crash = Component("x/crash", [sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path / "crash.log")
    steady = Component("x/steady", [sys.executable, "-c", SLEEPER], tmp_path / "steady.log")
    supervisor = Supervisor([crash, steady], max_backoff_s=0.2)
    supervisor.start()
    deadline = time.monotonic() + 10
    while crash.restarts < 2 and time.monotonic() < deadline:
        supervisor.poll()
        time.sleep(0.05)
    assert crash.restarts >= 2 and crash.exits[:2] == [3, 3]
    assert supervisor.alive()["x/steady"] and steady.restarts == 0
    codes = supervisor.stop(timeout_s=10)
    assert codes["x/steady"] == 0
    assert not any(supervisor.alive().values())


def test_fenced_producer_stands_by(tmp_path, caplog) -> None:
    """Exit 3 (another producer holds the region's lock, producers/fence.py) is named as standing by, and
    the child is tried again: it takes over once the other producer is gone."""
    import logging

    from cdcsync.expected_errors import FENCED_EXIT

    caplog.set_level(logging.WARNING, logger="cdcsync.supervisor")
    fenced = Component("eu/producer", [sys.executable, "-c", f"import sys; sys.exit({FENCED_EXIT})"],
                       tmp_path / "producer.log")
    supervisor = Supervisor([fenced], max_backoff_s=0.1)
    supervisor.start()
    deadline = time.monotonic() + 10
    while fenced.restarts < 2 and time.monotonic() < deadline:
        supervisor.poll()
        time.sleep(0.05)
    supervisor.stop(timeout_s=5)
    assert fenced.restarts >= 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("eu/producer: another producer already runs for this region; standing by" in m for m in messages)
