"""`cdcsync run`: every region's producer, database sink and cache sink under one supervisor.

Each component is its own child process (`cdcsync producer|consumer ...`), so one crash never
takes the others down. A child that exits unexpectedly is restarted with backoff; its checkpoint
or consumer group makes the restart lossless. A producer fenced out by another producer of its
region (exit 3, producers/fence.py) is retried the same way: it takes over only once the other is
gone. Stopping sends SIGTERM to every child (each finishes its transaction or batch, commits and
exits 0) and waits, then SIGKILLs stragglers.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cdcsync.expected_errors import FENCED_EXIT

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Component:
    name: str                       # e.g. "eu/producer"
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    exits: list[int] = field(default_factory=list)


def components(config_path: Path, regions: list[str], log_dir: Path, *, log_args: list[str] | None = None,
               first_metrics_port: int | None = None) -> list[Component]:
    """Per region: producer, database sink, cache sink. With `first_metrics_port`, the components
    serve /metrics, /healthz, /readyz on consecutive ports from it, in this order (one host runs
    them all, so the config's per-region ports would collide between the two sinks)."""
    base = [sys.executable, "-m", "cdcsync"]
    result = []
    for region in regions:
        common = ["--config", str(config_path), "--region", region, *(log_args or [])]
        result.append(Component(f"{region}/producer", [*base, "producer", *common], log_dir / f"{region}-producer.log"))
        for sink in ("db", "cache"):
            result.append(Component(f"{region}/{sink}", [*base, "consumer", *common, "--sink", sink],
                                    log_dir / f"{region}-{sink}.log"))
    if first_metrics_port is not None:
        for offset, part in enumerate(result):
            part.argv += ["--metrics-port", str(first_metrics_port + offset)]
    return result


class Supervisor:
    """Owned by one thread; call `poll()` regularly (it restarts crashed children)."""

    def __init__(self, parts: list[Component], *, max_backoff_s: float = 30.0) -> None:
        self.parts = parts
        self.max_backoff_s = max_backoff_s
        self.stopping = False

    def start(self) -> None:
        for part in self.parts:
            self._spawn(part)

    def _spawn(self, part: Component) -> None:
        part.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(part.log_path, "ab") as out:
            part.proc = subprocess.Popen(part.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def poll(self) -> None:
        """Restart any child that exited while we were not stopping."""
        now = time.monotonic()
        for part in self.parts:
            if part.proc is None or self.stopping:
                continue
            code = part.proc.poll()
            if code is None:
                continue
            if part.next_start == 0.0:
                part.exits.append(code)
                part.restarts += 1
                delay = min(self.max_backoff_s, 0.5 * 2 ** min(part.restarts, 6))
                part.next_start = now + delay
                if code == FENCED_EXIT:   # another producer runs for the region: stand by, never fight it
                    log.warning("%s: another producer already runs for this region; standing by, trying again in "
                                "%.1fs (see %s)", part.name, delay, part.log_path)
                else:
                    log.warning("%s exited with %s; restarting in %.1fs (see %s)", part.name, code, delay,
                                part.log_path)
            elif now >= part.next_start:
                part.next_start = 0.0
                self._spawn(part)

    def stop(self, timeout_s: float = 60.0) -> dict[str, int | None]:
        """SIGTERM every child, wait for all, SIGKILL what is left. Returns exit codes by name."""
        self.stopping = True
        for part in self.parts:
            if part.proc is not None and part.proc.poll() is None:
                part.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int | None] = {}
        for part in self.parts:
            if part.proc is None:
                codes[part.name] = None
                continue
            try:
                codes[part.name] = part.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                part.proc.kill()
                codes[part.name] = part.proc.wait()
        return codes

    def alive(self) -> dict[str, bool]:
        return {p.name: p.proc is not None and p.proc.poll() is None for p in self.parts}
