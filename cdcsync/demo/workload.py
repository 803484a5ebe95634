"""A concurrent workload with deliberate conflicts: several writer threads in every region, all on
the same small key space of every demo table.

Each writer has its own autocommit connection to its region's primary and, until it is stopped,
its write budget is spent or the deadline passes, repeatedly picks a table and a key and makes one
change, with a short random pause:

- `upsert` (45%): `INSERT ... ON DUPLICATE KEY UPDATE` of some value columns: an insert when the
  key is absent (a first insert, or a re-insert after a delete anywhere), otherwise an update;
- `update` (35%): `UPDATE` of a random non-empty subset of value columns (concurrent versions then
  mix columns of several writers);
- `delete` (20%).

With a few dozen keys and writers in three regions, versions of one row cross in flight all the
time: insert-insert, update-update, update-delete and delete-delete conflicts. Values name their
writer (`eu-w1#17`), so a conflict-log entry shows whose write survived.

Deadlocks and lock-wait timeouts between a writer, another writer and the database sink (all of
them lock the row and its clock row) are retried; any other database error is counted and the
writer goes on with a new connection. Counters are per region and read by the live view.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pymysql

from cdcsync.demo.tables import TABLES, DemoTable, delta_columns
from common.mysql import connect
from schemas.config import PipelineConfig

RETRYABLE = {1205, 1213}    # lock wait timeout, deadlock


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    writers_per_region: int = 3
    keys_per_table: int = 12
    writes_per_writer: int = 150         # bound on count ...
    duration_s: float = 25.0             # ... and on time, whichever comes first
    pause_s: float = 0.08                # mean pause between two writes of one writer
    seed: int = 7


@dataclass(slots=True)
class RegionCounts:
    """What a region's writers did; guarded by the workload's lock."""

    ops: Counter = field(default_factory=Counter)   # insert, update, delete, unchanged (no row, same values)
    on_hand: int = 0                                 # the sum of the stock changes this region's writers made
    retries: int = 0
    errors: int = 0
    last_error: str | None = None

    @property
    def writes(self) -> int:
        """Acknowledged statements that changed a row."""
        return self.ops["insert"] + self.ops["update"] + self.ops["delete"]


class ConflictWorkload:
    """Owns its writer threads. `start()`, then `stop()` (or let the bounds end it), then `join()`."""

    def __init__(self, config: PipelineConfig, spec: WorkloadSpec) -> None:
        self.config = config
        self.spec = spec
        self.counts = {region: RegionCounts() for region in config.regions}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at: float | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        deadline = self.started_at + self.spec.duration_s
        for r, region in enumerate(self.config.regions):
            for w in range(self.spec.writers_per_region):
                rnd = random.Random(self.spec.seed * 1000 + r * 100 + w)
                thread = threading.Thread(target=self._writer, args=(region, f"{region}-w{w}", rnd, deadline),
                                          name=f"demo-writer-{region}-{w}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def snapshot(self) -> dict[str, RegionCounts]:
        """A copy of the counters, consistent across regions."""
        with self._lock:
            return {r: RegionCounts(Counter(c.ops), retries=c.retries, errors=c.errors, last_error=c.last_error,
                                    on_hand=c.on_hand)
                    for r, c in self.counts.items()}

    # -- one writer -------------------------------------------------------------------------------
    def _writer(self, region: str, name: str, rnd: random.Random, deadline: float) -> None:
        conn: pymysql.Connection | None = None
        done = 0
        try:
            while done < self.spec.writes_per_writer and time.monotonic() < deadline and not self._stop.is_set():
                table = rnd.choice(TABLES)
                key = table.key_value(rnd.randrange(self.spec.keys_per_table))
                statement = self._statement(table, key, rnd, f"{name}#{done}")
                try:
                    if conn is None:
                        conn = connect(self.config.region(region).mysql)
                    outcome = self._execute(conn, statement)
                except pymysql.MySQLError as err:
                    code = err.args[0] if err.args else None
                    with self._lock:
                        if code in RETRYABLE:
                            self.counts[region].retries += 1
                        else:
                            self.counts[region].errors += 1
                            self.counts[region].last_error = f"{name}: {err}"
                    if code not in RETRYABLE and conn is not None:
                        conn.close()
                        conn = None
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.counts[region].ops[outcome] += 1
                    if delta_columns(table) and outcome == "update":
                        self.counts[region].on_hand += statement[2][0]
                done += 1
                self._stop.wait(rnd.uniform(0, 2 * self.spec.pause_s))
        finally:
            if conn is not None:
                conn.close()

    @staticmethod
    def _execute(conn: pymysql.Connection, statement: tuple[str, str, list]) -> str:
        op, sql, params = statement
        with conn.cursor() as cur:
            changed = cur.execute(sql, params)
        if op == "upsert":   # affected rows: 1 inserted, 2 updated, 0 unchanged
            return {1: "insert", 2: "update"}.get(changed, "unchanged")
        return op if changed else "unchanged"

    @staticmethod
    def _statement(table: DemoTable, key: object, rnd: random.Random, tag: str) -> tuple[str, str, list]:
        if delta_columns(table):   # a counter: only changed by a delta, the first parameter
            change = rnd.choice((-3, -2, -1, -1, -1, 1, 5))
            if rnd.random() < 0.5:
                return "update", f"UPDATE {table.qualified} SET on_hand = on_hand + %s WHERE {table.key} = %s", \
                    [change, key]
            return "update", (f"UPDATE {table.qualified} SET on_hand = on_hand + %s, note = %s "
                              f"WHERE {table.key} = %s"), [change, tag, key]
        columns = list(table.columns)
        some = rnd.sample(columns, rnd.randint(1, len(columns)))
        roll = rnd.random()
        if roll < 0.45:
            values = [table.value(c, rnd, tag) for c in columns]
            updates = ", ".join(f"{c} = VALUES({c})" for c in some)
            sql = (f"INSERT INTO {table.qualified} ({table.key}, {', '.join(columns)}) "
                   f"VALUES ({', '.join(['%s'] * (len(columns) + 1))}) ON DUPLICATE KEY UPDATE {updates}")
            return "upsert", sql, [key, *values]
        if roll < 0.80:
            sets = ", ".join(f"{c} = %s" for c in some)
            return "update", f"UPDATE {table.qualified} SET {sets} WHERE {table.key} = %s", \
                [*(table.value(c, rnd, tag) for c in some), key]
        return "delete", f"DELETE FROM {table.qualified} WHERE {table.key} = %s", [key]
