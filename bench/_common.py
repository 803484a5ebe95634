"""What every benchmark needs: a throw-away sandbox, progress on stderr, results on stdout.

Contract of a benchmark script: progress and diagnostics go to stderr; stdout ends with one JSON
object per line (`emit`), nothing after them. The sandbox lives in a temporary directory and is
stopped on every exit path, SIGTERM included.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pymysql

from deploy.local import Sandbox
from common.mysql import connect as mysql_connect
from schemas.config import PipelineConfig, load_config, parse_config


@dataclass(frozen=True, slots=True)
class Running:
    """A started sandbox: where it lives and its pipeline config."""

    root: Path
    sandbox: Sandbox
    config: PipelineConfig

    def server_pids(self) -> dict[str, int]:
        """PIDs of the sandbox's running servers by name (`eu/mariadbd`, `broker`, ...)."""
        return {s.name: s.pid for s in self.sandbox.status() if s.running and s.pid}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(results: Iterable[dict[str, Any]]) -> None:
    """The benchmark's results: one JSON object per line on stdout."""
    for result in results:
        print(json.dumps(result), flush=True)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def sandbox(regions: list[str]) -> Iterator[Running]:
    """A sandbox of `regions` in a temporary directory; stopped and removed on exit."""
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)  # so `finally` runs on SIGTERM too
    with tempfile.TemporaryDirectory(prefix="cdcsync-bench-") as tmp:
        box = Sandbox(tmp)
        try:
            progress(f"starting sandbox ({','.join(regions)}) in {tmp}")
            box.up(regions)
            yield Running(Path(tmp), box, load_config(box.config_path))
        finally:
            stopped = box.down()
            progress(f"sandbox stopped: {', '.join(stopped) or 'nothing was running'}")
            signal.signal(signal.SIGTERM, previous)


def connect(config: PipelineConfig, region: str, db: str | None = None) -> pymysql.Connection:
    return mysql_connect(config.region(region).mysql, database=db)


def narrowed_config(base: PipelineConfig, *, prefix: str, include: list[str], checkpoint_dir: Path,
                    **producer: Any) -> PipelineConfig:
    """`base` with its own topic prefix, captured tables and checkpoint directory (every region)."""
    data = base.model_dump(mode="python")
    data["prefix"] = prefix
    for name, region in data["regions"].items():
        region["mysql"]["password"] = base.regions[name].mysql.password.get_secret_value()
        region["producer"].update(include=include, checkpoint_dir=checkpoint_dir / name, **producer)
    return parse_config(data)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far (Linux /proc; 0.0 if unknown)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class Stopwatch:
    """Wall time of one run, and the CPU time used meanwhile by this thread, this whole process
    (its library threads included: librdkafka's, for one) and other processes, by name."""

    def __init__(self, others: Mapping[str, int]) -> None:
        self._others = dict(others)
        self.seconds = 0.0
        self.cpu: dict[str, float] = {}
        self.laps: dict[str, float] = {}
        self._started: tuple[float, float, float, dict[str, float]] | None = None

    def start(self) -> None:
        self._started = (time.perf_counter(), time.thread_time(), time.process_time(),
                         {name: cpu_seconds(pid) for name, pid in self._others.items()})

    def lap(self, name: str) -> None:
        """Record the wall time since `start` under `name` (say, where a run's phases end)."""
        assert self._started is not None, "lap() before start()"
        self.laps[name] = time.perf_counter() - self._started[0]

    def stop(self) -> None:
        assert self._started is not None, "stop() before start()"
        wall, thread, process, others = self._started
        self.seconds = time.perf_counter() - wall
        self.cpu = {"main thread": time.thread_time() - thread, "process": time.process_time() - process}
        self.cpu.update({name: cpu_seconds(pid) - others[name] for name, pid in self._others.items()})


@dataclass(frozen=True, slots=True)
class Sample:
    units: int
    seconds: float
    cpu: dict[str, float]
    laps: dict[str, float]

    def describe(self) -> str:
        laps = "".join(f", {name} at {seconds:.2f}s" for name, seconds in self.laps.items())
        cpu = ", ".join(f"{name} {seconds:.2f}" for name, seconds in self.cpu.items())
        return f"{self.units} in {self.seconds:.2f}s ({self.units / self.seconds:,.0f}/s{laps}); CPU s: {cpu}"


@dataclass(frozen=True, slots=True)
class Timing:
    """Repeated measurements of one thing; `best` is what a benchmark reports."""

    label: str
    samples: tuple[Sample, ...]

    @property
    def units(self) -> int:
        return self.samples[0].units

    @property
    def best(self) -> Sample:
        return min(self.samples, key=lambda s: s.seconds)

    @property
    def median_seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def best_rate(self) -> float:
        return self.units / self.best.seconds

    def describe(self) -> str:
        runs = ", ".join(f"{s.seconds:.2f}s" for s in self.samples)
        return (f"{self.label}: best {self.best.describe()}; median {self.median_seconds:.2f}s "
                f"({self.units / self.median_seconds:,.0f}/s) [{runs}]")


def repeat(label: str, run: Callable[[Stopwatch], int], *, runs: int, warmup: int = 1,
           others: Mapping[str, int] | None = None) -> Timing:
    """Call `run` `warmup` times unrecorded, then `runs` times; each call times itself with the
    Stopwatch it is given (watching the CPU of `others` too) and returns the units it did.

    Every run must do the same number of units: a run that does not is a bug, not noise.
    """
    for i in range(warmup):
        watch = Stopwatch(others or {})
        units = run(watch)
        progress(f"  {label} warm-up {i + 1}: {units} in {watch.seconds:.2f}s")
    samples: list[Sample] = []
    for i in range(runs):
        watch = Stopwatch(others or {})
        sample = Sample(run(watch), watch.seconds, watch.cpu, watch.laps)
        if samples and sample.units != samples[0].units:
            raise RuntimeError(f"{label}: run {i + 1} did {sample.units} units, earlier runs {samples[0].units}")
        samples.append(sample)
        progress(f"  {label} run {i + 1}/{runs}: {sample.describe()}")
    if not samples:
        raise ValueError("runs must be >= 1")
    return Timing(label, tuple(samples))
