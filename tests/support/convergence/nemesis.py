"""The nemesis: a seeded schedule of real faults, injected in a thread while the workload runs.

Each fault uses the real mechanism, never a mock:

| kind | what it does |
|---|---|
| `kill-producer`, `kill-db`, `kill-cache` | `kill -9` of that component of one region; restarted after `restart_s` |
| `stop-broker` | SIGSTOP of the broker for `duration_s`, then SIGCONT |
| `restart-mariadb` | a region's mariadbd shut down cleanly (SIGTERM) and started again, same port and datadir |
| `restart-redis` | a region's redis-server restarted without persistence (empty), then `cdcsync cache rebuild` |
| `kill-supervisor` | `kill -9` of `cdcsync run` (a supervised seed only); its components must exit by themselves (none orphaned), and its restart must run each exactly once |
| `cut-region`, `cut-region-mid-txn` | a region's components cut off from the broker (both directions) for `cut_s`, then healed; the second cuts in the middle of a large transaction's delivery (region_cut.py) |
| `kill-mariadb` | `kill -9` of a region's mariadbd, started again on the same port and datadir after `restart_s`: crash recovery (a durable sandbox only: `sync_binlog=1`, `innodb_flush_log_at_trx_commit=1`) |
| `kill-bloom` | `kill -9` of a region's `cdcsync bloom` (a seed run with `bloom=True`), restarted after `restart_s` |

In a supervised seed (`cdcsync run`), a killed component is restarted by the supervisor, not by the
nemesis.

The broker is never killed: Tansu keeps topics and offsets only in memory, so a restarted broker is
empty and that is data loss by design of the sandbox, not a fault cdcsync could survive.

A schedule is a list of `Fault(at_s, kind, target, duration_s)` from `random.Random(f"nemesis-{seed}")`:
a seed always injects the same faults at the same offsets from the workload's start.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.local import Sandbox
from tests.support import process_table
from tests.support.convergence.region_cut import CUTS, RegionCutter
from tests.support.producer import CdcsyncProcess

KILLS = {"kill-producer": "producer", "kill-db": "db", "kill-cache": "cache"}
KINDS = (*KILLS, "stop-broker", "restart-mariadb", "restart-redis", "kill-supervisor", *CUTS)
KINDS = (*KINDS, "kill-mariadb")   # needs Sandbox(durable=True)
KINDS = (*KINDS, "kill-bloom")     # needs the seed's Bloom maintainers (run_seed(bloom=True))
# The CI schedule's kinds: the ones the issue asks CI to prove on every run, and a MariaDB restart
# (the workload's clients must reconnect, the producer and sinks retry).
CI_KINDS = ("kill-producer", "kill-db", "stop-broker", "restart-mariadb")


def parse_kinds(text: str) -> tuple[str, ...]:
    """`kill-producer,stop-broker`; `all` or empty: every kind; a leading `-` excludes the list."""
    text = text.strip()
    if text in ("", "all"):
        return KINDS
    exclude = text.startswith("-")
    names = [n.strip() for n in text.lstrip("-").split(",") if n.strip()]
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise ValueError(f"unknown fault kind {', '.join(unknown)}: use some of {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k not in names) if exclude else tuple(k for k in KINDS if k in names)


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float          # seconds after the workload starts
    kind: str
    target: str          # a region, or `broker`
    duration_s: float    # how long the broker stays stopped; how long a killed component stays down

    def describe(self) -> str:
        return f"t+{self.at_s:.1f}s {self.kind} {self.target} ({self.duration_s:.1f}s)"


def schedule(seed: int, kinds: tuple[str, ...], regions: list[str], *, count: int, span_s: float,
             stop_s: tuple[float, float] = (5.0, 60.0), restart_s: float = 1.0,
             must: tuple[str, ...] = (), cut_s: tuple[float, float] = (60.0, 180.0)) -> list[Fault]:
    """`count` faults spread over `span_s` seconds, each kind at least once when `count` allows
    (`must` first), the others drawn at random. Faults never overlap: each starts after the previous
    one's duration, so a schedule longer than `span_s` simply runs later."""
    if not kinds:
        raise ValueError("no fault kind to schedule")
    rng = random.Random(f"nemesis-{seed}")
    picked = [*must, *[k for k in kinds if k not in must]][:count]
    picked += [rng.choice(kinds) for _ in range(count - len(picked))]
    rng.shuffle(picked)
    faults: list[Fault] = []
    at = 0.0
    gap = span_s / max(count, 1)
    for kind in picked:
        at += rng.uniform(0.3, 1.0) * gap
        target = "broker" if kind == "stop-broker" else rng.choice(regions)
        duration = round(rng.uniform(*stop_s), 1) if kind == "stop-broker" else restart_s
        if kind in CUTS:
            duration = round(rng.uniform(*cut_s), 1)
        faults.append(Fault(round(at, 1), kind, target, duration))
        at += duration
    return faults


@dataclass
class Injected:
    fault: Fault
    started_s: float
    seconds: float
    note: str = ""


@dataclass
class Nemesis:
    """Runs a schedule against a running pipeline: `procs` maps `producer-eu`, `db-us`, `cache-ap`
    to the running components (a killed one is replaced by its restart)."""

    sandbox: Sandbox
    config_path: Path
    procs: MutableMapping[str, CdcsyncProcess]
    faults: list[Fault]
    cutter: RegionCutter | None = None      # the seed's broker front, for the region cuts
    injected: list[Injected] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        # Refused before the seed starts, in one line: a kill -9 of a non-durable MariaDB proves less.
        if any(f.kind == "kill-mariadb" for f in self.faults) and not self.sandbox.durable:
            raise ValueError("kill-mariadb needs a durable sandbox (Sandbox(root, durable=True); the soak "
                             "turns it on for this kind): sync_binlog=1 and innodb_flush_log_at_trx_commit=1")
        if any(f.kind == "kill-bloom" for f in self.faults) and not any(n.startswith("bloom-") for n in self.procs):
            raise ValueError("kill-bloom needs the seed's Bloom maintainers: run_seed(..., bloom=True)")

    def start(self) -> "Nemesis":
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float = 600.0) -> None:
        """Wait for the whole schedule (a fault is never left half-done: a stopped broker resumes)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._stop.set()
                self._thread.join(120)
                self.errors.append(f"the schedule did not finish within {timeout}s")

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for item in self.injected:
            found[item.fault.kind] = found.get(item.fault.kind, 0) + 1
        return found

    def log(self) -> list[dict[str, Any]]:
        return [{"at_s": round(i.started_s, 1), "kind": i.fault.kind, "target": i.fault.target,
                 "seconds": round(i.seconds, 1), **({"note": i.note} if i.note else {})} for i in self.injected]

    def _run(self) -> None:
        started = time.monotonic()
        for fault in self.faults:
            if self._stop.wait(max(0.0, started + fault.at_s - time.monotonic())):
                return
            began = time.monotonic()
            try:
                note = self._inject(fault)
            except Exception as err:  # noqa: BLE001 - a fault that could not be injected is reported, not raised
                self.errors.append(f"{fault.describe()}: {type(err).__name__}: {err}")
                continue
            self.injected.append(Injected(fault, began - started, time.monotonic() - began, note))

    def _inject(self, fault: Fault) -> str:
        handlers: dict[str, Callable[[Fault], str]] = {
            "stop-broker": self._stop_broker, "restart-mariadb": self._restart_mariadb,
            "restart-redis": self._restart_redis, "kill-supervisor": self._kill_supervisor}
        handlers["kill-mariadb"] = self._kill_mariadb
        handlers["kill-bloom"] = self._kill_bloom
        if fault.kind in KILLS:
            return self._kill(fault)
        if fault.kind in CUTS:
            return self._cut_region(fault)
        return handlers[fault.kind](fault)

    def _kill(self, fault: Fault) -> str:
        if "supervisor" in self.procs:
            return self._kill_supervised(fault)
        pid, restarted, logged = self._kill_and_restart(f"{KILLS[fault.kind]}-{fault.target}", fault)
        return f"pid {pid} -> {restarted.proc.pid}{self._wait_started(restarted, KILLS[fault.kind], logged)}"

    def _kill_and_restart(self, name: str, fault: Fault) -> tuple[int, CdcsyncProcess, int]:
        """kill -9 of the nemesis's own process `name`, then, after the fault's pause, the same command
        line appending to the same log (what systemd's Restart=always does): (old pid, the new
        process, the log's size before it started)."""
        proc = self.procs[name]
        if not proc.alive():
            raise RuntimeError(f"{name} was not running (exit {proc.proc.returncode if proc.proc else None})")
        pid = proc.proc.pid
        proc.kill9()
        time.sleep(fault.duration_s)
        restarted = CdcsyncProcess([], self.config_path, fault.target, proc.log)
        restarted.argv = proc.argv
        logged = proc.log.stat().st_size if proc.log.exists() else 0
        self.procs[name] = restarted.start()
        return pid, restarted, logged

    def _wait_started(self, proc: CdcsyncProcess, kind: str, logged: int, timeout_s: float = 90.0) -> str:
        """Wait until a restarted component is past its start-up before the next fault. A producer
        starting while its MariaDB restarts exits at once with one line (`cannot connect`), as it
        should: a supervisor (cdcsync run, systemd) starts it again. The nemesis restarts only once,
        so two faults must not meet inside one start-up (seed 104 of the first soak did)."""
        marker = "resuming from checkpoint" if kind == "producer" else ""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.alive():
            text = proc.log.read_bytes()[logged:].decode(errors="replace") if proc.log.exists() else ""
            if text.strip() and marker in text:
                return ""
            time.sleep(0.2)
        return "" if proc.alive() else f", exited {proc.proc.returncode} at start-up"

    def _kill_supervised(self, fault: Fault) -> str:
        pids = process_table.component(self.config_path, KILLS[fault.kind], fault.target)
        if len(pids) != 1:
            raise RuntimeError(f"{len(pids)} processes for {fault.target}/{KILLS[fault.kind]}, expected 1: {pids}")
        os.kill(pids[0], signal.SIGKILL)
        return f"pid {pids[0]}, restarted by the supervisor"

    def _kill_supervisor(self, fault: Fault) -> str:
        proc = self.procs["supervisor"]
        children = process_table.components(self.config_path)
        pid = proc.proc.pid
        proc.kill9()
        deadline = time.monotonic() + 60
        while set(children) & set(process_table.processes()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"orphans: the killed supervisor's components {sorted(children)} still run 60 s "
                                   f"later")
            time.sleep(0.2)
        time.sleep(fault.duration_s)
        restarted = CdcsyncProcess([], self.config_path, "-", proc.log)
        restarted.argv = proc.argv
        self.procs["supervisor"] = restarted.start()
        deadline = time.monotonic() + 60
        # Three components per region (one may have been down, between a kill and its restart).
        regions = {line.split("--region ", 1)[1].split()[0] for line in children.values()}
        expected = 3 * len(regions)
        while len(process_table.components(self.config_path)) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the restarted supervisor runs {process_table.components(self.config_path)}")
            time.sleep(0.2)
        running = process_table.components(self.config_path)
        if len(running) != expected:
            raise RuntimeError(f"{len(running)} components after the restart, {expected} expected: {running}")
        return f"pid {pid} -> {restarted.proc.pid}, {len(children)} components stopped, {expected} started once"

    def _cut_region(self, fault: Fault) -> str:
        if self.cutter is None:
            raise RuntimeError("a region cut needs the broker behind a BrokerFront (run_seed(front=...), "
                               "region_cut.py)")
        return self.cutter.inject(fault, self._stop)

    def _stop_broker(self, fault: Fault) -> str:
        pid = self.sandbox.pid("broker")
        if pid is None:
            raise RuntimeError("the broker is not running")
        os.kill(pid, signal.SIGSTOP)
        try:
            self._stop.wait(fault.duration_s)
        finally:
            os.kill(pid, signal.SIGCONT)
        return f"pid {pid}"

    def _restart_mariadb(self, fault: Fault) -> str:
        old = self.sandbox.pid(f"{fault.target}/mariadbd")
        new = self.sandbox.restart(f"{fault.target}/mariadbd")
        return f"pid {old} -> {new}"

    def _kill_mariadb(self, fault: Fault) -> str:
        old = self.sandbox.pid(f"{fault.target}/mariadbd")
        new = self.sandbox.crash(f"{fault.target}/mariadbd", pause_s=fault.duration_s)
        return f"pid {old} -> {new}, crash recovery"

    def _kill_bloom(self, fault: Fault) -> str:
        # Not a child of `cdcsync run` (the supervisor runs producer and sinks): always the nemesis's.
        pid, restarted, logged = self._kill_and_restart(f"bloom-{fault.target}", fault)
        return f"pid {pid} -> {restarted.proc.pid}{self._wait_bloom_started(restarted, fault.target, logged)}"

    def _wait_bloom_started(self, proc: CdcsyncProcess, region: str, logged: int, timeout_s: float = 90.0) -> str:
        """As `_wait_started`: a maintainer exits at start-up with one line when a server does not
        answer (seed 602 of the first soak: a broker stall 1 s after the restart, while the new
        maintainer waited for the dead one's lease). Its start-up ends with `bloom eu: started`,
        after the lease (up to 15 s after a kill -9), the partitions and the captured tables."""
        marker = f"bloom {region}: started"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.alive():
            if marker in (proc.log.read_bytes()[logged:].decode(errors="replace") if proc.log.exists() else ""):
                return ""
            time.sleep(0.2)
        return "" if proc.alive() else f", exited {proc.proc.returncode} at start-up"

    def _restart_redis(self, fault: Fault) -> str:
        old = self.sandbox.pid(f"{fault.target}/redis-server")
        new = self.sandbox.restart(f"{fault.target}/redis-server")
        # What the operator does after losing a cache without persistence (docs/components/sinks.md, "Cache rebuild").
        rebuilt = subprocess.run([sys.executable, "-m", "cdcsync", "cache", "rebuild", "--config", str(self.config_path),
                                  "--region", fault.target], capture_output=True, text=True, timeout=300)
        if rebuilt.returncode != 0:
            raise RuntimeError(f"cache rebuild in {fault.target} exited {rebuilt.returncode}: "
                               f"{(rebuilt.stdout + rebuilt.stderr)[-1500:]}")
        return f"pid {old} -> {new}, cache rebuilt"
