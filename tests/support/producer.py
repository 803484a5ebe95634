"""Running `cdcsync producer` as a real subprocess (so it can be SIGTERMed and `kill -9`ed)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import tomli_w

from schemas.config import PipelineConfig
from schemas.config_secrets import plain_data


def write_config(config: PipelineConfig, path: Path) -> Path:
    """The config as a TOML file, every secret in it (the file is what an operator writes)."""
    path.write_text(tomli_w.dumps(plain_data(config)))
    return path


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB, from /proc (0.0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


STARTED: list["CdcsyncProcess"] = []   # reaped after every test by an autouse fixture (conftest.py)


class CdcsyncProcess:
    """A `cdcsync <command> --config ... --region ...` subprocess."""

    def __init__(self, command: list[str], config_path: Path, region: str, log: Path, *extra: str) -> None:
        self.argv = [sys.executable, "-m", "cdcsync", *command, "--config", str(config_path), "--region", region,
                     *extra]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "CdcsyncProcess":
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        out.close()
        STARTED.append(self)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> "CdcsyncProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.kill9()


class ProducerProcess(CdcsyncProcess):
    def __init__(self, config_path: Path, region: str, log: Path, *extra: str) -> None:
        super().__init__(["producer"], config_path, region, log, *extra)


class SinkProcess(CdcsyncProcess):
    def __init__(self, config_path: Path, region: str, sink: str, log: Path, *extra: str) -> None:
        super().__init__(["consumer"], config_path, region, log, "--sink", sink, *extra)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def reap_all() -> None:
    """Kill whatever a test left running (a failed assertion skips its own clean-up)."""
    while STARTED:
        proc = STARTED.pop()
        if proc.alive():
            proc.kill9()


@contextlib.contextmanager
def pipeline(config: PipelineConfig, path: Path, tmp_path: Path, sinks: tuple[str, ...] = ("db", "cache")):
    """Every region's producer and `sinks`, as subprocesses; each must exit 0 on SIGTERM at the end."""
    procs: list[CdcsyncProcess] = []
    try:
        for region in config.regions:
            procs.append(ProducerProcess(path, region, tmp_path / f"producer-{region}.log").start())
            for sink in sinks:
                procs.append(SinkProcess(path, region, sink, tmp_path / f"{sink}-{region}.log").start())
        for region in config.regions:
            wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, timeout=90,
                       what=f"{region} checkpoint")
        yield procs
        for proc in procs:
            assert proc.terminate() == 0, proc.output()
    finally:
        for proc in procs:
            if proc.alive():
                proc.kill9()
