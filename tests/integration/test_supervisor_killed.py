"""`kill -9` of the `cdcsync run` supervisor (issue 11, the nemesis): its children must not live on
as orphans, and a restarted supervisor must not run a second producer or pair of sinks next to them.
Checked with the process table (/proc), as an operator would with `ps`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import config_for_test
from tests.support.process_table import components as _components, processes as _processes
from tests.support.producer import wait_until, write_config

pytestmark = pytest.mark.integration


def _start(path: Path, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cdcsync", "run", "--config", str(path), "--regions", "eu",
                             "--log-dir", str(tmp_path / "logs")], stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "run.log", "ab"))


def test_killed_supervisor_leaves_no_orphan_and_no_duplicate(sandbox_config, unique, tmp_path) -> None:
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"sup_{unique}.*"], tmp=tmp_path,
                             regions=["eu", "us"], snapshot="never")
    path = write_config(config, tmp_path / "c.toml")
    first = _start(path, tmp_path)
    try:
        wait_until(lambda: len(_components(path)) == 3, timeout=60, what="the supervisor's 3 components")
        checkpoint = tmp_path / "checkpoints" / "eu" / "eu.json"
        wait_until(checkpoint.exists, timeout=90, what="the producer's checkpoint")
        children = _components(path)
        assert {_processes()[pid][0] for pid in children} == {first.pid}
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        # Each child stops as on SIGTERM (finishes its batch); none is left running as an orphan.
        wait_until(lambda: not set(children) & set(_processes()), timeout=60,
                   what=f"the killed supervisor's children {sorted(children)} to exit: {_components(path)}")
        logs = {name: tmp_path / "logs" / f"eu-{name}.log" for name in ("producer", "db", "cache")}
        sizes = {name: log.stat().st_size for name, log in logs.items()}
        second = _start(path, tmp_path)
        try:
            wait_until(lambda: len(_components(path)) >= 3, timeout=60, what="the restarted supervisor's components")
            running = _components(path)
            # Running (their SIGTERM handlers installed) once each has logged since the restart.
            wait_until(lambda: "resuming from checkpoint" in logs["producer"].read_text(), timeout=60,
                       what="the new producer to resume from its checkpoint")
            wait_until(lambda: all(log.stat().st_size > sizes[name] for name, log in logs.items()), timeout=60,
                       what="the new sinks to log")
            assert len(running) == 3 and sum(" producer " in line for line in running.values()) == 1, running
            assert {_processes()[pid][0] for pid in running} == {second.pid}
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0, (tmp_path / "run.log").read_text()
        finally:
            if second.poll() is None:
                second.kill()
    finally:
        if first.poll() is None:
            first.kill()
        for pid in _components(path):
            os.kill(pid, signal.SIGKILL)
