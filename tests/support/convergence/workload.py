"""Concurrent clients in every region run the shapes and record what the databases acknowledged.

Each client has its own connection and its own `random.Random(f"{seed}-{region}-{client}")`, so a
seed always generates the same transactions per client; how they interleave with each other and
with the pipeline is up to the machine (a seed reproduces the workload, not the schedule).

Per transaction, inside it: lock and read the touched rows (`SELECT ... FOR UPDATE`), run the
statements, read the touched rows again and each key's `row_clocks` clock, commit. Only a commit
that succeeded is recorded. A duplicate key, a missing parent (1062, 1452: the application's write
is refused), a lock wait timeout or a deadlock (1205, 1213) rolls back and records nothing.

A lost connection (the nemesis restarts or kills a region's MariaDB) before COMMIT is a rollback
too; during COMMIT its outcome is unknown: counted apart (`History.unknown`), never acknowledged,
its would-be writes kept as `History.maybe` (it may have committed, and then superseded a write). The client
then reconnects, retrying until the server is back, and goes on with its next transaction.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.cursors

from tests.support.convergence.history import Ack, History, read_clock
from tests.support.convergence.schema import COLUMN_LWW, DELTA_COLUMNS, TABLES, ModelKey
from tests.support.convergence.shapes import SHAPES, ClientContext, SharedPool, Touch, Txn

RETRYABLE = {1205: "lock wait timeout", 1213: "deadlock"}
# The server went away: shut down, restarting, or the connection was cut (CR_* client errors, and
# 1053 / 1927 the server sends to its sessions when it shuts down).
CONNECTION_LOST = {2003, 2006, 2013, 2055, 1053, 1927}
UNKNOWN = "unknown outcome"
LOST = "connection lost"
REFUSED = {1062: "duplicate key", 1452: "no parent row", 1451: "child rows"}


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    seed: int
    shapes: tuple[str, ...]
    clients_per_region: int = 2
    txns_per_client: int = 40
    pause_ms: int = 0           # at most, between two transactions of a client (PAUSE_MS by default)


# Writes spread over a few seconds, longer than the pipeline takes to replicate, so that later writes
# land on replicated and resolved versions too, not only on each region's own (with no pause the
# workload ends before the first sink batch and every key conflicts once per pair of regions).
PAUSE_MS = 120

Connect = Callable[[str], pymysql.Connection]   # region -> a connection to the seed's database


def _rows(cur: Any, touch: Touch) -> list[dict[str, Any]]:
    cur.execute(f"SELECT * FROM {touch.table} WHERE {touch.where} FOR UPDATE", touch.params)
    return list(cur.fetchall())


def _touched(cur: Any, touches: tuple[Touch, ...]) -> dict[tuple[str, ModelKey], dict[str, Any]]:
    found: dict[tuple[str, ModelKey], dict[str, Any]] = {}
    for touch in touches:
        table = TABLES[touch.table]
        for row in _rows(cur, touch):
            found[(table.name, table.model_key(row))] = row
    return found


def _columns(old: dict[str, Any] | None, row: dict[str, Any] | None) -> tuple[str, tuple[str, ...]]:
    """What a transaction did to a column-lww row: insert (every column), update (the columns whose
    values changed), delete."""
    if row is None:
        return ("delete", ())
    if old is None:
        return ("insert", tuple(row))
    return ("update", tuple(c for c in row if row[c] != old.get(c)))


def _lost(err: Exception) -> bool:
    return isinstance(err, pymysql.err.InterfaceError) or bool(err.args) and err.args[0] in CONNECTION_LOST


def run_txn(conn: pymysql.Connection, txn: Txn, *, region: str, client: int, number: int,
            meta_db: str, db: str, attempted: list[Ack] | None = None) -> list[Ack] | str:
    """Run one transaction; its acks when it committed, or why it did not (LOST, UNKNOWN: the
    connection is gone, reconnect). `attempted` receives the acks it sends COMMIT with (what an
    UNKNOWN outcome may have committed)."""
    committing = False
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            before = _touched(cur, txn.touches)
            for statement in txn.statements:
                params = statement.params(cur) if callable(statement.params) else statement.params
                if params is not None:
                    cur.execute(statement.sql, params)
            after = _touched(cur, txn.touches)
            acks = []
            for table_name, key in sorted(set(before) | set(after), key=repr):
                table = TABLES[table_name]
                row = after.get((table_name, key))
                spelled = row if row is not None else before[(table_name, key)]
                old = before.get((table_name, key))
                delta = ({c: row[c] - old[c] for c in DELTA_COLUMNS[table_name]}
                         if table_name in DELTA_COLUMNS and row is not None and old is not None else None)
                acks.append(Ack(region, client, number, txn.shape, table_name, key, row,
                                read_clock(cur, meta_db, db, table, spelled), txn.generated_key, delta,
                                _columns(old, row) if table_name in COLUMN_LWW else None))
        committing = True
        if attempted is not None:
            attempted[:] = acks
        conn.commit()
        return acks
    except pymysql.err.IntegrityError as err:
        conn.rollback()
        return REFUSED.get(err.args[0], f"integrity error {err.args[0]}")
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as err:
        if _lost(err):
            # Before COMMIT the server rolls back the session it lost; during COMMIT nobody knows.
            return UNKNOWN if committing else LOST
        conn.rollback()
        if err.args[0] in RETRYABLE:
            return RETRYABLE[err.args[0]]
        raise


def _reconnect(connect: Connect, region: str, timeout_s: float = 120.0) -> pymysql.Connection:
    """A new connection once the region's server accepts again (a restart takes a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = connect(region)
            conn.autocommit(False)
            return conn
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def client_loop(connect: Connect, spec: WorkloadSpec, region: str, client: int, shared: SharedPool,
                history: History, *, meta_db: str, db: str) -> None:
    rng = random.Random(f"{spec.seed}-{region}-{client}")
    ctx = ClientContext(region, client, shared)
    conn = _reconnect(connect, region)     # the nemesis may be restarting this region's server already
    number = 0
    try:
        for _ in range(spec.txns_per_client):
            for txn in SHAPES[rng.choice(spec.shapes)](rng, ctx):
                number += 1
                attempted: list[Ack] = []
                outcome = run_txn(conn, txn, region=region, client=client, number=number, meta_db=meta_db, db=db,
                                  attempted=attempted)
                if outcome in (LOST, UNKNOWN):
                    history.unknown_outcome(attempted) if outcome == UNKNOWN else history.refuse(outcome)
                    conn.close()
                    conn = _reconnect(connect, region)
                elif isinstance(outcome, str):
                    history.refuse(outcome)
                else:
                    history.record(outcome)
            time.sleep(rng.random() * spec.pause_ms / 1000)
    finally:
        conn.close()


def run_workload(connect: Connect, spec: WorkloadSpec, regions: list[str], *, meta_db: str, db: str,
                 timeout_s: float = 300.0) -> History:
    """Every region's clients at once; returns when all are done. A client's unexpected error is raised."""
    history = History()
    errors: list[BaseException] = []
    pools = {region: SharedPool() for region in regions}

    def guarded(region: str, client: int) -> None:
        try:
            client_loop(connect, spec, region, client, pools[region], history, meta_db=meta_db, db=db)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(err)

    threads = [threading.Thread(target=guarded, args=(region, client), name=f"client-{region}-{client}")
               for region in regions for client in range(spec.clients_per_region)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise AssertionError(f"workload clients still running after {timeout_s}s")
    if errors:
        raise errors[0]
    return history
