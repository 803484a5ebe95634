"""`cdcsync demo` (what `make demo` runs) end to end, as a newcomer runs it: its own sandbox, the
supervised pipeline, conflicting writes in all regions, quiescence, verify, the summary, and
nothing left running afterwards, also when it is interrupted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.local import Sandbox

pytestmark = pytest.mark.integration

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def leftovers(root: Path) -> list[str]:
    """Command lines of live processes that mention the demo's directory (servers, pipeline)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(root) in line and state != "Z":
            found.append(line)
    return found


def test_demo_converges_with_conflicts_and_leaves_nothing_running(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "cdcsync", "demo", "--dir", str(root), "--duration", "12",
                                 "--writes", "80"], capture_output=True, text=True, timeout=240, env=ENV)
    finally:
        left = [s.name for s in Sandbox(root).status() if s.running]
        Sandbox(root).down()    # only if the demo failed to: it must have stopped them (asserted below)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert time.monotonic() - started < 180
    # init ran in every region before the writes, and the pipeline ran under the supervisor.
    for region in ("eu", "us", "ap"):
        assert re.search(rf"cdcsync init {region}: metadata tables in `cdcsync`, 12 clock triggers", out), out
    assert "the pipeline settled" in out
    # The writers made conflicts on purpose, and they were resolved and logged.
    converged = re.search(r"converged: (\d+) concurrent writes in 3 regions, (\d+) conflict resolutions logged", out)
    assert converged, out[-4000:]
    assert int(converged.group(1)) > 100 and int(converged.group(2)) > 0
    assert "OK: 4 tables match in eu, us, ap" in out
    # The delta column: every region holds the start plus every region's changes.
    assert re.search(r"stock on hand adds up: 12 x 1000 eu [-+]\d+, us [-+]\d+, ap [-+]\d+ = \d+; every region holds", out), \
        out[-4000:]
    for strategy in ("lww", "custom", "region-priority"):
        assert strategy in out
    assert re.search(r"(eu|us|ap) #\d+ +shop\.\w+ \w+=\w+ +[\w-]+, winner: (local|remote|merged)", out), out
    for command in ("conflicts list ", r"conflicts show  \d+", "conflicts stats"):
        assert re.search(rf"cdcsync {command} --config {re.escape(str(root))}/cdcsync.toml", out), command
    # Nothing runs any more; the files stay (--dir), the servers are stopped.
    assert left == []
    assert leftovers(root) == []


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # as in a background job of a non-interactive shell


def test_interrupted_demo_stops_everything(tmp_path: Path) -> None:
    """Ctrl-C in a terminal: SIGINT to the whole process group (the demo and its supervised
    components), here even with SIGINT inherited as ignored."""
    root = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "cdcsync", "demo", "--dir", str(root), "--duration", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
                            start_new_session=True, preexec_fn=ignore_sigint)
    seen = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("pipeline running"):
                break
        time.sleep(3)   # the writers are at work now
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
        left = [s.name for s in Sandbox(root).status() if s.running]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        Sandbox(root).down()    # only if the demo failed to: it must have stopped them (asserted below)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out[-4000:]
    assert "interrupted" in out
    assert left == []
    assert leftovers(root) == []
