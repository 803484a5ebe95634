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
