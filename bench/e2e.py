"""End to end: the whole pipeline of a 3-region mesh against a native MariaDB replica, in one run.

    .venv/bin/python bench/e2e.py [--burst 30000] [--rate 20] [--seconds 20] [--quick]
                                  [--profile DIR] [--components] [--set KEY=VALUE ...]

What it starts, in a temporary directory: the project's sandbox with regions eu, us, ap (3 MariaDB
with `innodb_flush_log_at_trx_commit=2`, `sync_binlog=0`, a 128 MB buffer pool; 3 Redis; one
broker), a table `e2e.items` in every region, `cdcsync init` (metadata tables, clock triggers),
and the pipeline as `cdcsync run` runs it (cdcsync/supervisor.py: per region a producer, a
database sink and a cache sink, each its own process, default config). Next to it, a fourth
MariaDB rendered from the same template (deploy/local/mariadb.cnf.tmpl, same durability and
buffer pool) replicating eu natively (GTID, one SQL thread): the baseline.

Phases, every write from one client connection to eu, autocommit:

1. latency: `--rate` single-row INSERTs per second for `--seconds`, paced. One thread per target
   polls it every `POLL_S` (a PK range SELECT on a database, pipelined EXISTS on a cache) and
   stamps each row the first time a poll returns it; delay = that stamp minus the time the
   client's INSERT returned (commit acknowledged), both from this process's `time.time()`. A
   delay can be late by up to one poll period plus a round trip, never early. Targets: the
   databases of us and ap, the caches of us and ap (and eu's, reported apart), the native replica.
2. burst: `--burst` single-row upserts (`INSERT ... ON DUPLICATE KEY UPDATE`, new keys) as fast as
   the one client goes; its rate is reported as `burst_tps`. Catch-up = seconds from the return of
   the burst's last commit until a target holds every row of the burst (the last key present,
   then the count equal; polled every `CATCHUP_POLL_S`); reported for us, ap (`catchup_s` is the
   later one), every cache, and the native replica (`native_catchup_s`).
3. CPU: utime+stime (/proc/<pid>/stat) of every pipeline process from just before the burst until
   the pipeline is idle again after it (echoes included: the applied rows us and ap capture and
   publish, which the other sinks discard), divided by the burst's writes; idle = its CPU rate
   back under `IDLE_FACTOR` times the rate measured before the burst. `idle_cpu_us_per_s` is
   that rate (every pipeline process together, polling and heartbeats), over `IDLE_S`;
   `server_idle_cpu_us_per_s` the same window's rate of each server (the broker answers the
   consumers' empty long-polls: the cost of a short `fetch.wait.max.ms`).
   After it, each sink's `cdcsync_sink_seconds_behind_source` (its last batch's lag, from its
   /metrics: the components serve them on consecutive free ports) is reported as
   `behind_source_s_after_latency`, a check of the metric against the polled delays.
4. `events_per_s`: burst writes / seconds from the burst's first write until both other regions
   hold them all: the rate the pipeline sustained end to end.

`--profile DIR` runs `py-spy record` (raw collapsed stacks and speedscope JSON in DIR) on every
pipeline process during the burst and catch-up and prints each one's top frames on stderr and as
a `profile` JSON line; profiling slows the processes, so its figures are for reading, not
comparing. `--set KEY=VALUE` changes one config setting for the run (the figures of the issue
are taken with none: the defaults). `--components` also runs bench/apply.py and bench/capture.py
afterwards (each its own sandbox, minutes each) and fills their goals. Progress goes to stderr;
stdout ends with one JSON line (after `profile` when asked): every figure and `goals` (issue 13)
with whether each is met; the catch-up goal says `comparable: false` when the burst ran at less
than half the issue's ~6k tps (a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import redis
import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `python bench/e2e.py`

from bench._common import Running, connect, cpu_seconds, emit, progress, sandbox  # noqa: E402
from bench.e2e_figures import (cpu_us_per_write, goals, latency_summary, parse_collapsed,  # noqa: E402
                               top_frames)
from cdcsync.supervisor import Supervisor, components  # noqa: E402
from cdcsync.tools.clock_init import init as clock_init  # noqa: E402
from common.mysql import connect as mysql_connect  # noqa: E402
from common.redis_connect import redis_client  # noqa: E402
from deploy.local import mariadb, processes  # noqa: E402
from schemas.cache_layout import cache_key  # noqa: E402
from schemas.config import MySQLConfig, PipelineConfig, load_config  # noqa: E402

REGIONS = ["eu", "us", "ap"]
SOURCE = "eu"
DB, TABLE = "e2e", "items"
DDL = (f"CREATE TABLE {DB}.{TABLE} (id BIGINT NOT NULL PRIMARY KEY, val INT NOT NULL, "
       f"note VARCHAR(64) NOT NULL, updated_at DATETIME(6) NOT NULL)")
UPSERT = (f"INSERT INTO {DB}.{TABLE} (id, val, note, updated_at) VALUES (%s, %s, %s, NOW(6)) "
          f"ON DUPLICATE KEY UPDATE val = VALUES(val), note = VALUES(note), updated_at = VALUES(updated_at)")
WARMUP_IDS = range(1, 31)
LATENCY_BASE = 1_000_000
BURST_BASE = 10_000_000
POLL_S = 0.005          # latency phase: a delay is late by at most this plus a round trip
CATCHUP_POLL_S = 0.01   # burst phase: fewer polls, less CPU taken from the pipeline on a 2-core box
IDLE_FACTOR = 3.0
IDLE_S = 5.0            # the at-rest window: /proc counts in 10 ms ticks, so a short one is coarse
REPLICA_SERVER_ID = 90
# Bare (module-level) functions that only wait: a sample on top of one is idle, not work. py-spy
# already leaves out most idle samples; these catch what it counts as running.
IDLE_FRAMES = ("poll", "select", "epoll", "wait", "sleep", "_wait_for_tstate_lock", "accept")


# -- the native replica -------------------------------------------------------------------------
@dataclass(slots=True)
class NativeReplica:
    """A MariaDB from the sandbox's template replicating the source region over GTID."""

    spec: mariadb.MariaDBSpec
    mysql: MySQLConfig
    pid: int = 0

    @classmethod
    def start(cls, root: Path, config: PipelineConfig) -> "NativeReplica":
        spec = mariadb.MariaDBSpec(home=root / "replica" / "mysql", port=processes.free_port(),
                                   server_id=REPLICA_SERVER_ID, gtid_domain_id=REPLICA_SERVER_ID)
        source = config.region(SOURCE).mysql
        replica = cls(spec, source.model_copy(update={"port": spec.port}))
        replica.pid = mariadb.start(spec)
        mariadb.ensure_user(spec, source.user, source.password.get_secret_value())
        with mysql_connect(source) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            (position,) = cur.fetchone()
        with mariadb.root_connect(spec) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL gtid_slave_pos = %s", (position,))
            cur.execute("CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %s, MASTER_USER = %s, "
                        "MASTER_PASSWORD = %s, MASTER_USE_GTID = slave_pos",
                        (source.port, source.user, source.password.get_secret_value()))
            cur.execute("START SLAVE")
        return replica

    def check(self) -> None:
        """Raise with the replica's own error when replication stopped."""
        with mariadb.root_connect(self.spec) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            status = cur.fetchone() or {}
        if status.get("Slave_SQL_Running") != "Yes" or status.get("Slave_IO_Running") != "Yes":
            error = status.get("Last_Error") or status.get("Last_IO_Error")
            raise RuntimeError(f"the native replica stopped: IO {status.get('Slave_IO_Running')}, "
                               f"SQL {status.get('Slave_SQL_Running')}: {error}")

    def stop(self) -> None:
        if self.pid:
            processes.stop(self.pid, mariadb.MARKER, timeout=60.0)


# -- targets: where a row becomes visible --------------------------------------------------------
class Target:
    """One place a source row must reach; `visible(ids)` returns those of `ids` present now."""

    name: str

    def visible(self, ids: list[int]) -> set[int]:
        raise NotImplementedError

    def count(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def close(self) -> None: ...


class DbTarget(Target):
    def __init__(self, name: str, mysql: MySQLConfig) -> None:
        self.name = name
        self.conn = mysql_connect(mysql)

    def visible(self, ids: list[int]) -> set[int]:
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT id FROM {DB}.{TABLE} WHERE id BETWEEN %s AND %s", (min(ids), max(ids)))
            wanted = set(ids)
            return {row[0] for row in cur.fetchall() if row[0] in wanted}

    def count(self, lo: int, hi: int) -> int:
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {DB}.{TABLE} WHERE id BETWEEN %s AND %s", (lo, hi))
            return int(cur.fetchone()[0])

    def close(self) -> None:
        self.conn.close()


class CacheTarget(Target):
    def __init__(self, name: str, config: PipelineConfig, region: str) -> None:
        self.name = name
        self.prefix = config.prefix
        self.client: redis.Redis = redis_client(config.region(region).redis)

    def _key(self, row_id: int) -> str:
        return cache_key(self.prefix, DB, TABLE, [row_id])

    def visible(self, ids: list[int]) -> set[int]:
        pipe = self.client.pipeline(transaction=False)
        for row_id in ids:
            pipe.exists(self._key(row_id))
        return {row_id for row_id, present in zip(ids, pipe.execute()) if present}

    def count(self, lo: int, hi: int) -> int:
        present = 0
        for start in range(lo, hi + 1, 5000):
            present += len(self.visible(list(range(start, min(hi, start + 4999) + 1))))
        return present

    def close(self) -> None:
        self.client.close()


# -- config overrides (--set) -------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """`--set` values: integers, floats, true/false, else text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` settings into a parsed cdcsync.toml: `producer.X` and `sink.X` go to every region;
    `kafka.extra.<librdkafka property>` keeps the property's dots; anything else is a dotted path."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        value = parse_value(text)
        if key.startswith(("producer.", "sink.")):
            section, name = key.split(".", 1)
            for region in config["regions"].values():
                region.setdefault(section, {})[name] = value
            continue
        if key.startswith("kafka.extra."):
            config.setdefault("kafka", {}).setdefault("extra", {})[key.removeprefix("kafka.extra.")] = value
            continue
        *path, name = key.split(".")
        node = config
        for part in path:
            node = node.setdefault(part, {})
        node[name] = value
    return config


def overridden_config(run: Running, overrides: list[str]) -> Path:
    """The sandbox's config with `overrides`, written next to it (the sandbox's own file stays)."""
    if not overrides:
        return run.sandbox.config_path
    data = apply_overrides(tomllib.loads(run.sandbox.config_path.read_text()), overrides)
    path = run.root / "e2e.toml"
    path.write_text(tomli_w.dumps(data))
    return path


# -- the pipeline --------------------------------------------------------------------------------
@dataclass(slots=True)
class Pipeline:
    supervisor: Supervisor
    pids: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def behind_source(self) -> dict[str, dict[str, float]]:
        """Each sink's `cdcsync_sink_seconds_behind_source` now, by source region (its /metrics)."""
        found: dict[str, dict[str, float]] = {}
        for name, port in self.metrics_ports.items():
            if name.endswith("/producer"):
                continue
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                text = response.read().decode()
            for line in text.splitlines():
                if line.startswith("cdcsync_sink_seconds_behind_source{"):
                    labels, value = line.rsplit(" ", 1)
                    source = labels.split('source="', 1)[1].split('"', 1)[0]
                    found.setdefault(name, {})[source] = round(float(value), 3)
        return found

    def cpu(self) -> dict[str, float]:
        self.check()
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def starting(self) -> None:
        """While starting up: restart what exited, as `cdcsync run` does (a component may lose a
        race for its port or the broker's first answers on a loaded machine)."""
        self.supervisor.poll()

    def freeze(self) -> None:
        """Started: from now on the processes measured are these, and none may exit."""
        self.check(strict=False)
        self.pids = {p.name: p.proc.pid for p in self.supervisor.parts if p.proc is not None}
        restarted = {p.name: p.exits for p in self.supervisor.parts if p.restarts}
        if restarted:
            progress(f"components restarted while starting (exit codes): {restarted}")

    def check(self, *, strict: bool = True) -> None:
        """Loud when a component died (its log's tail in the message): a restart would be measured
        as the pipeline's cost."""
        for part in self.supervisor.parts:
            alive = part.proc is not None and part.proc.poll() is None
            if not alive or (strict and self.pids and part.proc.pid != self.pids.get(part.name)):
                tail = part.log_path.read_text(errors="replace").splitlines()[-15:] if part.log_path.exists() else []
                raise RuntimeError(f"pipeline component {part.name} exited; the end of {part.log_path}:\n"
                                   + "\n".join(tail))


def start_pipeline(run: Running, config_path: Path, config: PipelineConfig, timeout_s: float = 180.0) -> Pipeline:
    """`cdcsync run`'s supervisor and components; waits until every producer streams. Stops
    them again when they do not start."""
    first = processes.free_port()
    while not all(not processes.port_open(first + i) for i in range(3 * len(REGIONS))):
        first = processes.free_port()
    supervisor = Supervisor(components(config_path, REGIONS, run.root / "logs", first_metrics_port=first))
    supervisor.start()
    pipeline = Pipeline(supervisor, {}, {p.name: first + i for i, p in enumerate(supervisor.parts)})
    try:
        deadline = time.monotonic() + timeout_s
        for region in REGIONS:
            checkpoint = config.region(region).producer.checkpoint_dir / f"{region}.json"
            while not checkpoint.exists():
                pipeline.starting()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {region} producer did not stream within {timeout_s:.0f}s")
                time.sleep(0.2)
    except BaseException:
        supervisor.stop(timeout_s=60)
        raise
    return pipeline


def wait_visible(targets: list[Target], ids: list[int], timeout_s: float, pipeline: Pipeline) -> None:
    deadline = time.monotonic() + timeout_s
    for target in targets:
        while len(target.visible(ids)) < len(ids):
            pipeline.starting()
            if time.monotonic() > deadline:
                raise RuntimeError(f"warm-up rows not visible in {target.name} within {timeout_s:.0f}s")
            time.sleep(0.1)


# -- phase 1: latency ---------------------------------------------------------------------------
class Poller(threading.Thread):
    """Polls one target for the rows the writer committed; stamps each the first time it is seen."""

    def __init__(self, target: Target, committed: dict[int, float], deadline: Callable[[], float]) -> None:
        super().__init__(name=f"poll {target.name}", daemon=True)
        self.target = target
        self.committed = committed   # id -> time.time() when its INSERT returned (filled by the writer)
        self.deadline = deadline
        self.seen: dict[int, float] = {}
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while time.monotonic() < self.deadline():
                pending = [i for i in list(self.committed) if i not in self.seen]
                if pending:
                    found = self.target.visible(pending)
                    stamp = time.time()
                    for row_id in found:
                        self.seen[row_id] = stamp
                if self.done.is_set() and len(self.seen) == len(self.committed):
                    return
                time.sleep(POLL_S)
        except BaseException as err:  # noqa: BLE001 - re-raised by the main thread
            self.error = err

    def delays(self) -> list[float]:
        return [self.seen[i] - self.committed[i] for i in self.committed if i in self.seen]


def measure_latency(config: PipelineConfig, targets: list[Target], rate: float, seconds: float,
                    pipeline: Pipeline) -> dict[str, dict[str, float | int]]:
    writes = int(rate * seconds)
    committed: dict[int, float] = {}
    end = {"at": float("inf")}
    pollers = [Poller(t, committed, lambda: end["at"]) for t in targets]
    for poller in pollers:
        poller.start()
    progress(f"latency: {writes} single-row INSERTs at {rate:g}/s into {SOURCE}, polling {len(targets)} targets "
             f"every {POLL_S * 1000:.0f} ms")
    with connect(config, SOURCE) as conn, conn.cursor() as cur:
        start = time.monotonic()
        for i in range(writes):
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            row_id = LATENCY_BASE + i
            cur.execute(UPSERT, (row_id, i, f"latency {i}"))
            committed[row_id] = time.time()
    end["at"] = time.monotonic() + 60.0
    for poller in pollers:
        poller.done.set()
    for poller in pollers:
        poller.join()
        if poller.error is not None:
            raise RuntimeError(f"polling {poller.target.name} failed") from poller.error
        missing = len(committed) - len(poller.seen)
        if missing:
            raise RuntimeError(f"{missing} of {len(committed)} latency writes never became visible in "
                               f"{poller.target.name} within 60 s of the last")
    pipeline.check()
    return {p.target.name: latency_summary(p.delays()) for p in pollers}


# -- phase 2: the burst and its catch-up --------------------------------------------------------
class CatchUp(threading.Thread):
    """Waits until a target holds every row of the burst; `at` = the monotonic time it did. Gives
    up `timeout_s` after the burst's end (`burst_done`), however long the burst took."""

    def __init__(self, target: Target, lo: int, hi: int, timeout_s: float, burst_done: threading.Event) -> None:
        super().__init__(name=f"catch-up {target.name}", daemon=True)
        self.target, self.lo, self.hi = target, lo, hi
        self.timeout_s = timeout_s
        self.burst_done = burst_done
        self.at: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline: float | None = None
            while deadline is None or time.monotonic() < deadline:
                if deadline is None and self.burst_done.is_set():
                    deadline = time.monotonic() + self.timeout_s
                # The last key first (cheap); then the count, since partitions apply independently.
                if self.target.visible([self.hi]) and self.target.count(self.lo, self.hi) == self.hi - self.lo + 1:
                    self.at = time.monotonic()
                    return
                time.sleep(CATCHUP_POLL_S)
            raise TimeoutError(f"{self.target.name} did not hold the burst's rows {self.timeout_s:.0f}s after its end")
        except BaseException as err:  # noqa: BLE001 - re-raised by the main thread
            self.error = err


@dataclass(slots=True)
class Burst:
    writes: int
    seconds: float
    first_at: float
    last_at: float
    catchup_s: dict[str, float]
    done_at: dict[str, float]


def run_burst(config: PipelineConfig, targets: list[Target], writes: int, timeout_s: float) -> Burst:
    lo, hi = BURST_BASE + 1, BURST_BASE + writes
    done = threading.Event()
    watchers = [CatchUp(t, lo, hi, timeout_s, done) for t in targets]
    for watcher in watchers:
        watcher.start()
    progress(f"burst: {writes} single-row upserts into {SOURCE}, one client, as fast as it goes")
    with connect(config, SOURCE) as conn, conn.cursor() as cur:
        first = time.monotonic()
        for row_id in range(lo, hi + 1):
            cur.execute(UPSERT, (row_id, row_id % 1000, "burst"))
        last = time.monotonic()
    done.set()
    progress(f"burst: {writes} commits in {last - first:.2f}s ({writes / (last - first):,.0f} tps)")
    for watcher in watchers:
        watcher.join()
        if watcher.error is not None:
            raise RuntimeError(f"catch-up of {watcher.target.name} failed") from watcher.error
    assert all(w.at is not None for w in watchers)
    return Burst(writes, last - first, first, last,
                 {w.target.name: round(max(0.0, w.at - last), 3) for w in watchers if w.at is not None},
                 {w.target.name: w.at for w in watchers if w.at is not None})


def idle_rate(pipeline: Pipeline, servers: dict[str, int], seconds: float = IDLE_S) -> tuple[float, dict[str, float]]:
    """CPU seconds per second at rest: of all pipeline processes together, and of each server
    (`servers`: name -> pid; the broker answers every consumer's empty long-polls)."""
    before, servers_before = sum(pipeline.cpu().values()), {name: cpu_seconds(pid) for name, pid in servers.items()}
    time.sleep(seconds)
    pipeline_rate = (sum(pipeline.cpu().values()) - before) / seconds
    return pipeline_rate, {name: (cpu_seconds(pid) - servers_before[name]) / seconds for name, pid in servers.items()}


def wait_idle(pipeline: Pipeline, rest_rate: float, timeout_s: float = 120.0) -> dict[str, float]:
    """The pipeline's CPU counters once its CPU rate fell back near `rest_rate` (window 1 s)."""
    deadline = time.monotonic() + timeout_s
    previous = pipeline.cpu()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        current = pipeline.cpu()
        if sum(current.values()) - sum(previous.values()) <= max(IDLE_FACTOR * rest_rate, 0.02):
            return previous   # the second before was already idle: count up to its start
        previous = current
    raise RuntimeError(f"the pipeline did not come back to rest within {timeout_s:.0f}s of the burst")


# -- profiling ----------------------------------------------------------------------------------
class Profiles:
    """`py-spy record` on every pipeline process, from `start` until `stop`: collapsed stacks in
    DIR/<region>-<component>.txt (speedscope.app and flamegraph.pl read them)."""

    def __init__(self, directory: Path, pids: dict[str, int]) -> None:
        self.directory = directory
        self.pids = pids
        self.procs: dict[str, subprocess.Popen] = {}
        self.spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

    def _path(self, name: str, suffix: str) -> Path:
        return self.directory / f"{name.replace('/', '-')}.{suffix}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            with open(self._path(name, "log"), "wb") as log:
                self.procs[name] = subprocess.Popen(
                    [self.spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
                     "--output", str(self._path(name, "txt")), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=log)

    def stop(self) -> dict[str, Any]:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)   # py-spy writes its file and exits
        summary: dict[str, Any] = {}
        for name, proc in self.procs.items():
            proc.wait(timeout=60)
            raw = self._path(name, "txt")
            if not raw.exists():
                raise RuntimeError(f"py-spy wrote no profile of {name}: see {self._path(name, 'log')}")
            summary[name] = top_frames(parse_collapsed(raw.read_text().splitlines()), idle=IDLE_FRAMES)
        return summary


# -- the whole run ------------------------------------------------------------------------------
def component_ratios() -> dict[str, float]:
    """bench/apply.py and bench/capture.py, each in its own sandbox: their ratios by goal name."""
    ratios: dict[str, float] = {}
    here = Path(__file__).resolve().parent
    for script in ("apply.py", "capture.py"):
        progress(f"running bench/{script} (its own sandbox)")
        out = subprocess.run([sys.executable, str(here / script)], stdout=subprocess.PIPE, check=True, text=True)
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                result = json.loads(line)
                if "sink" in result:
                    ratios[result["sink"]] = result["ratio"]
                elif "workload" in result:
                    ratios[f"capture_{result['workload']}"] = result["ratio"]
    return ratios


def e2e(args: argparse.Namespace) -> list[dict[str, Any]]:
    load_before = os.getloadavg()[0]   # other work on the machine, before this run adds its own
    with sandbox(REGIONS) as run:
        config_path = overridden_config(run, args.set)
        config = load_config(config_path)
        replica = NativeReplica.start(run.root, config)
        pipeline: Pipeline | None = None
        profiles: Profiles | None = None
        targets: list[Target] = []
        try:
            progress(f"native replica of {SOURCE} on port {replica.spec.port}")
            for region in REGIONS:
                with connect(config, region) as conn, conn.cursor() as cur:
                    cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
                    cur.execute(DDL)    # eu's reaches the native replica through eu's binlog
            for report in clock_init(config):
                progress(f"cdcsync init {report.region}: {len(report.created)} clock triggers created")
            pipeline = start_pipeline(run, config_path, config)
            running = [f"{p.name} pid {p.proc.pid}" for p in pipeline.supervisor.parts if p.proc is not None]
            progress(f"pipeline running: {', '.join(running)}")
            others = [r for r in REGIONS if r != SOURCE]
            dbs = [DbTarget(f"{r}/db", config.region(r).mysql) for r in others]
            caches = [CacheTarget(f"{r}/cache", config, r) for r in REGIONS]
            native = DbTarget("native replica", replica.mysql)
            targets = [*dbs, *caches, native]
            with connect(config, SOURCE) as conn, conn.cursor() as cur:
                for row_id in WARMUP_IDS:
                    cur.execute(UPSERT, (row_id, 0, "warm-up"))
            wait_visible(targets, list(WARMUP_IDS), 180.0, pipeline)
            pipeline.freeze()
            replica.check()
            progress("warm-up rows visible everywhere")

            latency = measure_latency(config, targets, args.rate, args.seconds, pipeline)
            for name, figures in latency.items():
                progress(f"  {name}: {figures}")
            behind = pipeline.behind_source()   # each sink's last batch of the steady load
            progress(f"  cdcsync_sink_seconds_behind_source after it: {behind}")

            server_pids = {**run.server_pids(), "replica/mariadbd": replica.pid}
            rest, servers_rest = idle_rate(pipeline, server_pids)
            progress(f"at rest: pipeline {rest * 1e6:,.0f} CPU µs/s, broker {servers_rest.get('broker', 0) * 1e6:,.0f}")
            profiles = Profiles(args.profile, pipeline.pids) if args.profile else None
            servers_before = {name: cpu_seconds(pid) for name, pid in server_pids.items()}
            before = pipeline.cpu()
            if profiles is not None:
                profiles.start()
            burst = run_burst(config, targets, args.burst, timeout_s=max(300.0, args.burst / 50))
            after = wait_idle(pipeline, rest)
            servers_after = {name: cpu_seconds(pid) for name, pid in server_pids.items()}
            profile = profiles.stop() if profiles is not None else None
            profiles = None
            replica.check()
        finally:
            if profiles is not None:    # an error mid-burst: stop the profilers too
                for proc in profiles.procs.values():
                    proc.kill()
                    proc.wait()
            for target in targets:
                target.close()
            if pipeline is not None:
                codes = pipeline.supervisor.stop(timeout_s=60)
                bad = {name: code for name, code in codes.items() if code not in (0, None)}
                if bad:
                    progress(f"components that did not exit cleanly: {bad}")
            replica.stop()

    cpu = cpu_us_per_write({name: after[name] - before[name] for name in before}, burst.writes)
    servers = cpu_us_per_write({name: servers_after[name] - servers_before[name] for name in servers_before},
                               burst.writes)
    region_catchup = max(burst.catchup_s[f"{r}/db"] for r in REGIONS if r != SOURCE)
    regions_done = max(burst.done_at[f"{r}/db"] for r in REGIONS if r != SOURCE)
    db_lat = [v for k, v in latency.items() if k.endswith("/db") and not k.startswith(SOURCE)]
    cache_lat = [v for k, v in latency.items() if k.endswith("/cache") and not k.startswith(SOURCE)]
    ratios = component_ratios() if args.components else None
    result: dict[str, Any] = {
        "bench": "e2e", "regions": REGIONS, "source": SOURCE,
        "burst_writes": burst.writes, "burst_tps": round(burst.writes / burst.seconds),
        "catchup_s": region_catchup, "catchup_by_target_s": burst.catchup_s,
        "native_catchup_s": burst.catchup_s["native replica"],
        "events_per_s": round(burst.writes / (regions_done - burst.first_at)),
        "cpu_us_per_write": cpu, "server_cpu_us_per_write": servers,
        "idle_cpu_us_per_s": round(rest * 1e6),
        "server_idle_cpu_us_per_s": {**{name: round(rate * 1e6) for name, rate in servers_rest.items()},
                                     "total": round(sum(servers_rest.values()) * 1e6)},
        "latency": {"rate_per_s": args.rate, "seconds": args.seconds, "poll_ms": POLL_S * 1000, **latency},
        "behind_source_s_after_latency": behind,
        "goals": goals(catchup_s=region_catchup, burst_tps=burst.writes / burst.seconds,
                       cpu_total_us=cpu["total"],
                       db_p50_ms=max(v["p50_ms"] for v in db_lat), cache_p50_ms=max(v["p50_ms"] for v in cache_lat),
                       p99_ms=max(v["p99_ms"] for v in db_lat + cache_lat), ratios=ratios),
        "overrides": args.set, "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
    }
    for name, goal in result["goals"].items():
        if goal["met"] is not None:
            limit = goal.get("max", goal.get("min"))
            progress(f"goal {name}: {goal['value']} ({'<=' if 'max' in goal else '>='} {limit}): "
                     f"{'met' if goal['met'] else 'NOT met'}")
    results = [{"profile": profile}] if profile is not None else []
    return [*results, result]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=30_000, help="single-row upserts in the burst (30000)")
    parser.add_argument("--rate", type=float, default=20.0, help="writes per second in the latency phase (20)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency phase (20)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: --burst 2000 --seconds 5")
    parser.add_argument("--profile", type=Path, help="py-spy every pipeline process during the burst, files in DIR")
    parser.add_argument("--components", action="store_true",
                        help="also run bench/apply.py and bench/capture.py for their goals (minutes more)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config setting for this run, e.g. sink.batch_max_ms=20, producer.linger_ms=5, "
                             "kafka.extra.fetch.wait.max.ms=10 (repeatable; default: the defaults)")
    args = parser.parse_args()
    if args.quick:
        args.burst, args.seconds = 2000, 5.0
    if args.burst < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--burst, --rate and --seconds must be positive")
    emit(e2e(args))


if __name__ == "__main__":
    main()
