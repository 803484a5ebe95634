"""Capture throughput: cdcsync's producer against a bare python-mysql-replication loop.

What it measures. In a one-region sandbox of its own, two workloads are written to MariaDB, each
in its own database, and the GTID position is recorded before and after each:

    bulk    INSERT transactions of 1000 rows each (40 by default: 40k rows)
    single  single-row UPDATE statements, each its own autocommit transaction (10k by default),
            over rows inserted before the measured range
    clocked single-row upserts (INSERT ... ON DUPLICATE KEY UPDATE), each its own autocommit
            transaction (10k by default), over rows inserted before the measured range, on a table
            with clock triggers (`cdcsync init`): each transaction also writes its row's clock
            row in `<meta_db>.row_clocks`, which the producer pairs with the change (the demo's
            and bench/e2e.py's load)

Each workload's binlog range is then read, in the same process, by

    raw       BinLogStreamReader(is_mariadb=True, auto_position=<start>, blocking=True,
              slave_heartbeat=<as the producer>, only_schemas=<the workload's database; for
              `clocked` the meta database too>) decoding every row (`event.rows`, clock rows
              included) until it has the workload's row count; the library as shipped, no
              cdcsync code. Not blocking=False: on MariaDB the server drops a non-blocking dump
              at the end of the binlog (the client loses the data still in flight), and the
              library reconnects from the original auto_position and reads the range again,
              forever, so rows are counted twice and the loop never ends;
    producer  the real producer code wired as producers/service.py wires it (Publisher,
              TopicCreator, JsonCatalog, Capture, open_stream, its checkpointing every
              `checkpoint_interval_ms`), publishing until the broker acknowledged every event.
              Timed from opening the stream to the end of `publisher.flush()`; topics are created
              before the clock starts. Each run checks that the acknowledged position is the
              workload's end position and that one message per row was published.

All raw runs come first: `open_stream` installs producers/binlog/fixes.py into the library for the
rest of the process, and the raw loop must see the library unpatched. The raw loop is measured once
more after the producer runs, with the fixes installed, and that figure is printed on stderr only.

Each measurement: one warm-up, then `--runs` runs (3 by default); the best run is reported.

How to read the output. Progress goes to stderr: every run with its wall time and the CPU seconds
spent meanwhile by this thread, by this process (librdkafka's threads included), by mariadbd and
by the broker; then, with `--profile`, one producer run per workload under low-overhead timers
around the main library and cdcsync functions, and one under cProfile (its top functions; it
inflates the library's decoding). The last lines of stdout are one JSON object per workload:

    {"workload": "bulk", "raw_rows_per_s": ..., "producer_rows_per_s": ..., "ratio": ...,
     "raw_cpu_us_per_row": ..., "producer_cpu_us_per_row": ..., "cpu_ratio": ...}

`ratio` = producer_rows_per_s / raw_rows_per_s (wall time, best runs): 1.0 means the pipeline keeps up with the bare
library loop, 0.5 that it needs twice its time, 3.0 that it reads the same range in a third of the
library's time (its own row decoder, producers/binlog/fast_rows.py, outruns the library's). For
`single` and `clocked` a row is a transaction (for `clocked` the raw loop decodes its clock row
too, and the producer pairs it). `cpu_ratio` is the same comparison in CPU seconds of this process
(medians of the runs; the producer's include librdkafka's threads): on a shared machine, where
waiting for a core stretches wall times, it is the steadier figure. `*_cpu_us_per_row` are those
CPU seconds per row (per transaction for `single` and `clocked`).

    .venv/bin/python bench/capture.py [--runs N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import itertools
import logging
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import prometheus_client.metrics
import pymysql
from prometheus_client import CollectorRegistry
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import RowsEvent, TableMapEvent

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for `python bench/capture.py`

from bench._common import (Running, Stopwatch, Timing, connect, emit, narrowed_config, progress,  # noqa: E402
                           repeat, sandbox)
from cdcsync.tools.clock_init import init_region  # noqa: E402
from common.checkpoint_store import FileCheckpointStore  # noqa: E402
from common.kafka import TopicCreator  # noqa: E402
from common.mysql import current_position  # noqa: E402
from producers import capture as capture_module  # noqa: E402
from producers import metrics as metrics_module  # noqa: E402
from producers import publisher as publisher_module  # noqa: E402
from producers.binlog import fixes as binlog_fixes, stream as binlog_stream, value_encoding  # noqa: E402
from producers.capture import Capture  # noqa: E402
from producers.metrics import ProducerMetrics  # noqa: E402
from producers.publisher import Publisher  # noqa: E402
from producers.service import Checkpointer, JsonCatalog  # noqa: E402
from producers.service import pump as service_pump  # noqa: E402
from schemas import messages  # noqa: E402
from schemas.config import PipelineConfig  # noqa: E402
from schemas.position import BinlogPosition, MariaGtidState  # noqa: E402
from schemas.topics import TopicNames  # noqa: E402

REGION = "eu"
TABLE = "orders"
TABLE_DDL = f"""CREATE TABLE {TABLE} (
    id          BIGINT        NOT NULL PRIMARY KEY,
    customer_id INT           NOT NULL,
    amount      DECIMAL(12,2) NOT NULL,
    status      VARCHAR(16)   NOT NULL,
    note        VARCHAR(64)   NULL,
    created_at  DATETIME(6)   NOT NULL
)"""
INSERT = f"INSERT INTO {TABLE} (id, customer_id, amount, status, note, created_at) VALUES (%s, %s, %s, %s, %s, %s)"
STATUSES = ("new", "paid", "packed", "shipped", "delivered", "returned", "cancelled")
WORDS = ("express", "gift wrap", "leave at door", "fragile", "call first", "back entrance", "weekend only",
         "invoice attached", "second attempt", "priority")
PASS_TIMEOUT_S = 300.0

log = logging.getLogger("bench.capture")
_reader_ids = itertools.count(5001)  # every binlog connection registers with its own server_id


# -- workloads -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Workload:
    """A binlog range holding `rows` row changes of `db`.`TABLE`, from `start` to `end`."""

    name: str
    db: str
    rows: int
    start: BinlogPosition
    end: BinlogPosition
    meta_db: str | None = None   # clocked: the clock rows in `<meta_db>.row_clocks`, one per row

    @property
    def schemas(self) -> list[str]:
        return [self.db] + ([self.meta_db] if self.meta_db else [])

    @property
    def raw_rows(self) -> int:
        """Rows the bare loop decodes: the row changes, and their clock rows."""
        return self.rows * (2 if self.meta_db else 1)


def _order_rows(rng: random.Random, first_id: int, count: int) -> list[tuple[Any, ...]]:
    epoch = datetime.datetime(2024, 1, 1)
    return [(i, rng.randrange(1, 200_000), Decimal(rng.randrange(100, 10_000_000)) / 100, rng.choice(STATUSES),
             " / ".join(rng.sample(WORDS, rng.randrange(0, 4))) or None,
             epoch + datetime.timedelta(microseconds=rng.randrange(365 * 86_400 * 10**6)))
            for i in range(first_id, first_id + count)]


def _create_table(conn: pymysql.Connection, db: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute(TABLE_DDL)


def _insert_transactions(conn: pymysql.Connection, rng: random.Random, txns: int, rows_per_txn: int) -> None:
    with conn.cursor() as cur:
        for t in range(txns):
            conn.begin()
            cur.executemany(INSERT, _order_rows(rng, 1 + t * rows_per_txn, rows_per_txn))
            conn.commit()


def _position(conn: pymysql.Connection) -> BinlogPosition:
    return current_position(conn, "mariadb")


def write_bulk(config: PipelineConfig, txns: int, rows_per_txn: int) -> Workload:
    """`txns` INSERT transactions of `rows_per_txn` rows each."""
    rng = random.Random(1)
    with connect(config, REGION) as conn:
        _create_table(conn, "bench_bulk")
        start = _position(conn)
        _insert_transactions(conn, rng, txns, rows_per_txn)
        end = _position(conn)
    return Workload("bulk", "bench_bulk", txns * rows_per_txn, start, end)


def write_single(config: PipelineConfig, updates: int) -> Workload:
    """`updates` autocommit single-row UPDATEs, each changing `amount`, over pre-inserted rows."""
    rng = random.Random(2)
    with connect(config, REGION) as conn:
        _create_table(conn, "bench_single")
        _insert_transactions(conn, rng, -(-updates // 1000), 1000)
        ids = list(range(1, updates + 1))
        rng.shuffle(ids)
        start = _position(conn)
        with conn.cursor() as cur:
            for row_id in ids:
                cur.execute(f"UPDATE {TABLE} SET amount = amount + 1.00, status = %s WHERE id = %s",
                            (rng.choice(STATUSES), row_id))
        end = _position(conn)
    return Workload("single", "bench_single", updates, start, end)


def write_clocked(config: PipelineConfig, root: Path, upserts: int) -> Workload:
    """`upserts` autocommit single-row upserts of existing rows (each an update of the row and of its
    clock row), on a table with clock triggers."""
    rng = random.Random(3)
    db = "bench_clocked"
    with connect(config, REGION) as conn:
        _create_table(conn, db)
    init_region(narrowed_config(config, prefix="benchinit", include=[f"{db}.*"], checkpoint_dir=root / "init"),
                REGION)
    with connect(config, REGION) as conn:
        with conn.cursor() as cur:
            cur.execute(f"USE {db}")
        _insert_transactions(conn, rng, -(-upserts // 1000), 1000)
        ids = list(range(1, upserts + 1))
        rng.shuffle(ids)
        start = _position(conn)
        with conn.cursor() as cur:
            for row_id in ids:
                amount, status = Decimal(rng.randrange(100, 10_000_000)) / 100, rng.choice(STATUSES)
                cur.execute(f"{INSERT} ON DUPLICATE KEY UPDATE amount = amount + VALUES(amount), "
                            f"status = VALUES(status)", (row_id, 1, amount, status, None, datetime.datetime(2024, 1, 1)))
        end = _position(conn)
    return Workload("clocked", db, upserts, start, end, meta_db=config.meta_db)


# -- (a) the bare library loop ---------------------------------------------------------------
def raw_pass(config: PipelineConfig, workload: Workload, watch: Stopwatch) -> int:
    """Rows decoded by a bare BinLogStreamReader over the workload's range, timed by `watch`."""
    mysql = config.region(REGION).mysql
    watch.start()
    stream = BinLogStreamReader(connection_settings=binlog_stream.connection_settings(mysql),
                                server_id=next(_reader_ids), is_mariadb=True,
                                auto_position=workload.start.gtid_state, blocking=True,
                                slave_heartbeat=config.region(REGION).producer.heartbeat_s,
                                only_schemas=workload.schemas)
    deadline = time.monotonic() + PASS_TIMEOUT_S
    rows = 0
    try:
        for event in stream:
            if isinstance(event, RowsEvent):
                rows += len(event.rows)
                if rows >= workload.raw_rows:
                    break
            elif time.monotonic() > deadline:
                raise TimeoutError(f"raw {workload.name}: {rows} of {workload.raw_rows} rows after "
                                   f"{PASS_TIMEOUT_S:.0f}s")
    finally:
        stream.close()
    watch.stop()
    if rows != workload.raw_rows:  # the library reconnected and read part of the range twice
        raise RuntimeError(f"raw {workload.name}: decoded {rows} rows, expected {workload.raw_rows}")
    return workload.rows


# -- (b) the producer ------------------------------------------------------------------------
@dataclass(slots=True)
class ProducerParts:
    """One producer's objects, built (and its topics created) before the clock starts."""

    config: PipelineConfig
    publisher: Publisher
    topics: TopicCreator
    catalog: JsonCatalog
    metrics: ProducerMetrics
    registry: CollectorRegistry
    store: FileCheckpointStore


def build_producer(base: PipelineConfig, root: Path, workload: Workload, run: int) -> ProducerParts:
    """What ProducerService.run builds before streaming, for the workload's database only."""
    config = narrowed_config(base, prefix=f"bench{run}", include=[f"{workload.db}.*"],
                             checkpoint_dir=root / "checkpoints" / f"run{run}", snapshot="never")
    settings = config.region(REGION).producer
    kafka = config.kafka_for(REGION)
    publisher = Publisher(kafka, linger_ms=settings.linger_ms, max_in_flight=settings.max_in_flight_events,
                          on_error=lambda msg: log.warning("kafka: %s", msg))
    topics = TopicCreator(kafka)
    names = TopicNames.of(config)
    topics.ensure(names.schema(REGION), names.changes(REGION, workload.db, TABLE))
    registry = CollectorRegistry()
    store = FileCheckpointStore(settings.checkpoint_dir, REGION, config.region(REGION).server_id)
    return ProducerParts(config, publisher, topics, JsonCatalog(config.region(REGION).mysql), ProducerMetrics(registry),
                         registry, store)


def pump(parts: ProducerParts, workload: Workload) -> None:
    """The service's own loop (`producers.service.pump`, no reconnects), from the workload's start
    until its end is sealed, with its checkpointing every `checkpoint_interval_ms`."""
    region = parts.config.region(REGION)
    settings = region.producer
    end_gtid = str(MariaGtidState(workload.end.gtid_state))
    deadline = time.monotonic() + PASS_TIMEOUT_S
    checkpointer = Checkpointer(parts.store, parts.publisher, parts.metrics, REGION, workload.start,
                                settings.checkpoint_interval_ms / 1000)
    stream = binlog_stream.open_stream(region.mysql, workload.start, reader_server_id=next(_reader_ids),
                                       heartbeat_s=settings.heartbeat_s)
    capture = Capture(config=parts.config, region=REGION, publisher=parts.publisher, topics=parts.topics,
                      catalog=parts.catalog, start=workload.start, metrics=parts.metrics)

    def done() -> bool:
        if time.monotonic() > deadline:
            raise TimeoutError(f"producer {workload.name}: not done after {PASS_TIMEOUT_S:.0f}s")
        return capture.sealed.gtid_state == end_gtid

    try:
        service_pump(stream, capture, checkpointer, parts.metrics, REGION, done)
    finally:
        stream.close()
        checkpointer.close()
    if not done():
        raise RuntimeError(f"producer {workload.name}: the stream ended at {capture.sealed.describe()}")


def _check_published(parts: ProducerParts, workload: Workload) -> int:
    """Raise unless the broker acknowledged exactly the workload; return the rows published.

    `flush` returned, so every produced message has a delivery report without error. (The topic's
    high watermarks are no check: Tansu's memory storage reports them short of the last offset.)
    """
    acked = parts.publisher.tracker.acked_position()
    if acked != workload.end:
        raise RuntimeError(f"producer {workload.name}: acknowledged up to "
                           f"{acked.describe() if acked else None}, expected {workload.end.describe()}")
    published = parts.registry.get_sample_value("cdcsync_producer_events_total",
                                                {"region": REGION, "db": workload.db, "table": TABLE})
    if published != workload.rows:
        raise RuntimeError(f"producer {workload.name}: published {published} rows, expected {workload.rows}")
    return workload.rows


class ProducerBench:
    """Producer passes over one sandbox; every pass gets its own topic prefix and checkpoint dir."""

    def __init__(self, running: Running) -> None:
        self._running = running
        self._runs = itertools.count(1)

    def run(self, workload: Workload, watch: Stopwatch, profiler: cProfile.Profile | None = None) -> int:
        """Rows published and acknowledged; `watch` times opening the stream to the end of flush."""
        parts = build_producer(self._running.config, self._running.root, workload, next(self._runs))
        if profiler is not None:
            profiler.enable()
        watch.start()
        pump(parts, workload)
        watch.lap("sealed")
        parts.publisher.flush()
        watch.stop()
        if profiler is not None:
            profiler.disable()
        return _check_published(parts, workload)


# -- profile ---------------------------------------------------------------------------------
# (owner, attribute, label): the functions `--profile` times. Module functions are patched where
# the caller looks them up (`capture.encode`, `capture.key_columns`, `messages.change`, ...).
FETCHONE, HANDLE, DECODE = "library: fetchone", "cdcsync: Capture.handle", "library:   RowsEvent._fetch_rows"
TIMED: tuple[tuple[Any, str, str], ...] = (
    (BinLogStreamReader, "fetchone", FETCHONE),
    (TableMapEvent, "__init__", "library:   TableMapEvent.__init__"),
    (Capture, "handle", HANDLE),
    (RowsEvent, "_fetch_rows", DECODE),
    (capture_module, "key_columns", "cdcsync:   capture.key_columns"),
    (Capture, "_begin", "cdcsync:   Capture._begin"),
    (value_encoding.TableEncoder, "encode_row", "cdcsync:   TableEncoder.encode_row"),
    (messages, "change", "cdcsync:   messages.change"),
    (messages, "row_key", "cdcsync:   messages.row_key"),
    (messages, "headers", "cdcsync:   messages.headers"),
    (capture_module, "encode", "cdcsync:   codec.encode (orjson.dumps)"),
    (publisher_module.Publisher, "produce", "cdcsync:   Publisher.produce (librdkafka's included)"),
    (prometheus_client.metrics.Counter, "inc", "cdcsync:   rows Counter.inc"),
    (Capture, "_seal", "cdcsync:   Capture._seal (sends the held message)"),
    (metrics_module.ProducerMetrics, "observed_commit", "cdcsync: metrics.observed_commit"),
    (publisher_module.Publisher, "poll", "cdcsync: Publisher.poll"),
    (publisher_module.Txn, "on_delivery", "cdcsync:   Txn.on_delivery (delivery callback)"),
    (publisher_module.Publisher, "flush", "cdcsync: Publisher.flush"),
)


class Timers:
    """Wall-clock timers around the TIMED functions, while the context is active.

    Unlike cProfile, whose per-call cost triples the library's decoding time, these add about a
    third of a microsecond per timed call; that cost is measured and subtracted from every timer
    around it, so the figures are close to an unprofiled run's.
    """

    def __init__(self, targets: tuple[tuple[Any, str, str], ...]) -> None:
        self._targets = targets
        self.seconds: dict[str, float] = {label: 0.0 for _, _, label in targets}
        self.calls: dict[str, int] = {label: 0 for _, _, label in targets}
        self._entered = 0  # timed calls so far, to know how many ran inside a given one
        self._overhead = 0.0

    def _timed(self, function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            entered = self._entered = self._entered + 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds[label] += elapsed - (self._entered - entered) * self._overhead
                self.calls[label] += 1
        return timed

    def _calibrate(self) -> None:
        probe = self._timed(lambda: None, "calibration")
        self.seconds["calibration"], self.calls["calibration"] = 0.0, 0
        started = time.perf_counter()
        for _ in range(100_000):
            probe()
        self._overhead = (time.perf_counter() - started) / 100_000
        del self.seconds["calibration"], self.calls["calibration"]

    @contextmanager
    def active(self) -> Iterator["Timers"]:
        self._calibrate()
        originals = [(owner, name, vars(owner)[name]) for owner, name, _ in self._targets]
        try:
            for (owner, name, label), (_, _, function) in zip(self._targets, originals):
                setattr(owner, name, self._timed(function, label))
            yield self
        finally:
            for owner, name, function in originals:
                setattr(owner, name, function)

    def report(self, rows: int, wall_s: float) -> None:
        """One line per timer; an indented label's time is part of the unindented one above it."""
        print(f"    (timer cost {1e6 * self._overhead:.2f} us a call, subtracted)", file=sys.stderr)
        for label, seconds in self.seconds.items():
            print(f"    {label:<64} {seconds:7.3f}s {100 * seconds / wall_s:5.1f}% "
                  f"{1e6 * seconds / rows:7.2f} us/row  {self.calls[label]:>6} calls", file=sys.stderr)


def profile_producer(bench: "ProducerBench", workload: Workload, servers: dict[str, int], top: int) -> None:
    """Print to stderr where a producer run spends its time: timers, then cProfile's hot spots."""
    timers = Timers(TIMED)
    watch = Stopwatch(servers)
    with timers.active():
        bench.run(workload, watch)
    progress(f"profile of producer {workload.name} ({workload.rows} rows), timers: {watch.seconds:.2f}s wall, "
             f"{1e6 * watch.seconds / workload.rows:.1f} us/row")
    timers.report(workload.rows, watch.seconds)
    seconds = timers.seconds
    derived = (("cdcsync: Capture.handle without row decoding", seconds[HANDLE] - seconds[DECODE]),
               ("rest: pump loop, checkpoints, opening the stream", watch.seconds - sum(
                   t for label, t in seconds.items() if not label.startswith(("library:  ", "cdcsync:  ")))))
    for label, value in derived:
        print(f"    {label:<64} {value:7.3f}s {100 * value / watch.seconds:5.1f}% "
              f"{1e6 * value / workload.rows:7.2f} us/row", file=sys.stderr)
    profiler = cProfile.Profile()
    watch = Stopwatch(servers)
    bench.run(workload, watch, profiler)
    progress(f"profile of producer {workload.name}, cProfile: {watch.seconds:.2f}s wall (library decoding inflated "
             f"most); top {top} functions by own time")
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(top)


# -- main ------------------------------------------------------------------------------------
def _median_cpu(timing: Timing) -> float:
    """Median CPU seconds of this process over the runs (librdkafka's threads included)."""
    return statistics.median(sample.cpu["process"] for sample in timing.samples)


def result(workload: Workload, raw: Timing, producer: Timing) -> dict[str, Any]:
    raw_cpu, producer_cpu = _median_cpu(raw), _median_cpu(producer)
    return {"workload": workload.name, "raw_rows_per_s": round(raw.best_rate, 1),
            "producer_rows_per_s": round(producer.best_rate, 1),
            "ratio": round(producer.best_rate / raw.best_rate, 3),
            "raw_cpu_us_per_row": round(1e6 * raw_cpu / workload.rows, 1),
            "producer_cpu_us_per_row": round(1e6 * producer_cpu / workload.rows, 1),
            "cpu_ratio": round(raw_cpu / producer_cpu, 3)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--bulk-txns", type=int, default=40, help="INSERT transactions in `bulk` (default 40)")
    parser.add_argument("--rows-per-txn", type=int, default=1000, help="rows per `bulk` transaction (default 1000)")
    parser.add_argument("--single-updates", type=int, default=10_000,
                        help="single-row UPDATE transactions in `single` (default 10000)")
    parser.add_argument("--clocked-upserts", type=int, default=10_000,
                        help="single-row upsert transactions in `clocked` (default 10000; 0 leaves it out)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per measurement; best reported (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded runs first (default 1)")
    parser.add_argument("--profile", action="store_true",
                        help="then profile a producer run per workload (timers and cProfile)")
    parser.add_argument("--profile-top", type=int, default=20, help="cProfile functions listed (default 20)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    progress(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with sandbox([REGION]) as running:
        progress("writing workloads")
        workloads = [write_bulk(running.config, args.bulk_txns, args.rows_per_txn),
                     write_single(running.config, args.single_updates)]
        if args.clocked_upserts:
            workloads.append(write_clocked(running.config, running.root, args.clocked_upserts))
        for w in workloads:
            progress(f"  {w.name}: {w.rows} rows in {w.db}, {w.start.describe()} -> {w.end.describe()}")

        servers = {name: pid for name, pid in running.server_pids().items() if "redis" not in name}
        if binlog_fixes._installed:
            raise RuntimeError("binlog_fixes is installed already: the raw loop must run on the library as shipped")
        raw = {w.name: repeat(f"raw {w.name}", lambda watch, w=w: raw_pass(running.config, w, watch),
                              runs=args.runs, warmup=args.warmup, others=servers) for w in workloads}
        bench = ProducerBench(running)
        producer = {w.name: repeat(f"producer {w.name}", lambda watch, w=w: bench.run(w, watch),
                                   runs=args.runs, warmup=args.warmup, others=servers) for w in workloads}
        patched = {w.name: repeat(f"raw+binlog_fixes {w.name}", lambda watch, w=w: raw_pass(running.config, w, watch),
                                  runs=args.runs, warmup=0, others=servers) for w in workloads}
        for w in workloads:
            for timing in (raw[w.name], producer[w.name], patched[w.name]):
                progress(timing.describe())

        if args.profile:
            for w in workloads:
                profile_producer(bench, w, servers, args.profile_top)
    progress(f"load average {os.getloadavg()[0]:.2f}")
    emit(result(w, raw[w.name], producer[w.name]) for w in workloads)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
