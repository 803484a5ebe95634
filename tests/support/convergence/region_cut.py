"""A region cut off from the others, then healed (nemesis kinds `cut-region`, `cut-region-mid-txn`).

What crosses regions in the sandbox is the broker, and only it: each region's producer reads its
own MariaDB, its database sink writes its own MariaDB, its cache sink its own Redis; another
region's changes come only through Kafka (`source_kafka_for`: no component opens a connection to
another region's MariaDB or Redis). So a region is cut off when its components' connections to
the broker are: its producer cannot publish its writes (the others stop seeing them) and its sinks
cannot fetch the others' (it stops seeing theirs), both directions at once.

The mechanism is a `BrokerFront`: one TCP proxy (tests/support/tcp_proxy.py) that the broker
*advertises* as its address (Tansu's `--advertised-listener-url`; it forwards to the broker's real
listener). A Kafka client connects to the bootstrap address, then to whatever the broker advertises
in its metadata, so with a proxy only at the bootstrap address a client would reach the broker
directly after its first request; with the proxy as the advertised address every connection goes
through it. Each connection is put in its region's group when accepted: the kernel's socket table
names the process that opened it, and its `--region` argument the region (a component, or
`cdcsync cache rebuild`). Connections of the test itself (the checker, `status`) are in no group
and never cut: the observer stands outside the partition.

`cut-region` silences (blackhole: no byte either way, nothing closed; two times in three) or resets
the region's connections for the fault's duration, then heals: held connections resume, or are
reset (half of the blackholes), as after a partition that TCP outlived or did not.
`cut-region-mid-txn` first commits a large multi-table transaction in the region and one in the
next region, and cuts the moment the next region's is partly applied in the cut region (its
database sink in the middle of consuming it), or, once that one is all there, the moment the cut
region's own is partly applied in the next region (its producer in the middle of publishing it). Both transactions are acknowledged writes the checker accounts for.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pymysql

from deploy.local import broker, processes
from schemas.config import PipelineConfig
from tests.conftest import connect
from tests.support import process_table
from tests.support.convergence.history import History
from tests.support.convergence.shapes import Statement, Touch, Txn
from tests.support.convergence.workload import UNKNOWN, run_txn
from tests.support.tcp_proxy import TcpProxy

if TYPE_CHECKING:
    from tests.support.convergence.nemesis import Fault

CUTS = ("cut-region", "cut-region-mid-txn")
BIG_KV_BASE = 10_000_000          # the mid-transaction variant's kv ids: far from every shape's keys


class BrokerFront:
    """The broker's advertised address: a proxy that can cut one region's connections."""

    def __init__(self) -> None:
        self.proxy = TcpProxy(classify=self._region)

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def bootstrap(self) -> str:
        return self.proxy.address

    def forward_to(self, port: int) -> None:
        self.proxy.upstream = ("127.0.0.1", port)

    def start(self) -> "BrokerFront":
        self.proxy.start()
        return self

    def close(self) -> None:
        self.proxy.close()

    def _region(self, peer: tuple[str, int]) -> str | None:
        among = [pid for pid, (_, line) in process_table.processes().items() if " --region " in line]
        pid = process_table.socket_owner(peer[1], self.port, among)
        return process_table.region_of(pid) if pid is not None else None


@contextmanager
def fronted_broker(home: Path) -> Iterator[BrokerFront]:
    """A broker of its own behind a `BrokerFront` (the CI test; a soak fronts the sandbox's broker)."""
    front = BrokerFront().start()
    port = processes.free_port()
    pid = broker.start(home, port, advertised_port=front.port)
    front.forward_to(port)
    try:
        yield front
    finally:
        processes.stop(pid, broker.MARKER)
        front.close()


def big_txn(db: str, region: str, number: int, rows: int) -> tuple[Txn, int, str]:
    """`rows` new rows in each of kv, names and pairs, in one transaction; keys of their own (the
    region and the number keep them apart). Returns the transaction, its first kv id and its names'
    prefix (what `applied` counts)."""
    low = BIG_KV_BASE + number * 100_000
    prefix = f"cut{number}{region}-"
    statements = []
    for start in range(0, rows, 250):
        chunk = range(start, min(rows, start + 250))
        statements.append(Statement(f"INSERT INTO {db}.kv (id, v, n) VALUES " + ", ".join(["(%s, %s, 0)"] * len(chunk)),
                                    tuple(v for i in chunk for v in (low + i, f"{region}-big-{i}"))))
        statements.append(Statement(f"INSERT INTO {db}.names (name, v) VALUES " + ", ".join(["(%s, %s)"] * len(chunk)),
                                    tuple(v for i in chunk for v in (f"{prefix}{i:05d}", f"{region}-big-{i}"))))
        statements.append(Statement(f"INSERT INTO {db}.pairs (a, b, v) VALUES " + ", ".join(["(%s, 'cut', %s)"] * len(chunk)),
                                    tuple(v for i in chunk for v in (low + i, f"{region}-big-{i}"))))
    touches = (Touch("kv", "id BETWEEN %s AND %s", (low, low + rows - 1)),
               Touch("names", "name LIKE %s", (f"{prefix}%",)),
               Touch("pairs", "a BETWEEN %s AND %s AND b = 'cut'", (low, low + rows - 1)))
    return Txn("bigtxn", tuple(statements), touches), low, prefix


def applied(conn: pymysql.Connection, db: str, low: int, prefix: str, rows: int) -> int:
    """How many rows of one big transaction a region's database holds (0 .. 3 x rows)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT (SELECT COUNT(*) FROM {db}.kv WHERE id BETWEEN %s AND %s)"
                    f" + (SELECT COUNT(*) FROM {db}.names WHERE name LIKE %s)"
                    f" + (SELECT COUNT(*) FROM {db}.pairs WHERE a BETWEEN %s AND %s AND b = 'cut')",
                    (low, low + rows - 1, f"{prefix}%", low, low + rows - 1))
        return int(cur.fetchone()[0])


@dataclass
class RegionCutter:
    """The nemesis's hand on a `BrokerFront`, for one seed (its config and database)."""

    front: BrokerFront
    config: PipelineConfig
    db: str
    rows: int = 500                   # per table, in each transaction of the mid-transaction variant
    history: History = field(default_factory=History)    # the big transactions' acknowledged writes
    _numbers: int = 0

    def inject(self, fault: Fault, stop: threading.Event) -> str:
        # The mode comes from the fault, so a seed replays the same cuts.
        draw = random.Random(f"{fault.kind}-{fault.target}-{fault.at_s}")
        mode = "reset" if draw.random() < 1 / 3 else "blackhole"
        drop = mode == "blackhole" and draw.random() < 0.5
        if fault.kind == "cut-region-mid-txn":
            return self._cut_mid_txn(fault, stop, mode, drop)
        return self._cut(fault, stop, mode, drop, "")

    def _cut(self, fault: Fault, stop: threading.Event, mode: str, drop: bool, note: str,
             at_heal: Callable[[], str] | None = None) -> str:
        taken = self.front.proxy.cut(mode, group=fault.target)  # type: ignore[arg-type]
        try:
            stop.wait(fault.duration_s)
            seen = at_heal() if at_heal is not None else ""
        finally:
            healed = self.front.proxy.heal(fault.target, drop=drop)
        heal = "reset" if mode == "reset" else ("dropped" if drop else "resumed")
        return f"{mode}: {taken} connections cut, {healed} {heal} at the heal{note}{seen}"

    def _cut_mid_txn(self, fault: Fault, stop: threading.Event, mode: str, drop: bool) -> str:
        regions = list(self.config.regions)
        here = fault.target
        there = regions[(regions.index(here) + 1) % len(regions)]
        txns, numbers = {}, {}
        for region in (here, there):
            self._numbers += 1
            numbers[region] = self._numbers
            txns[region] = big_txn(self.db, region, self._numbers, self.rows)
        errors: list[str] = []

        def commit(region: str) -> None:
            txn = txns[region][0]
            try:
                with connect(self.config, region, self.db) as conn:
                    conn.autocommit(False)
                    acks = run_txn(conn, txn, region=region, client=99, number=numbers[region],
                                   meta_db=self.config.meta_db, db=self.db)
            except Exception as err:  # noqa: BLE001 - reported by the fault
                errors.append(f"{region}: {type(err).__name__}: {err}")
                return
            if isinstance(acks, list):
                self.history.record(acks)
            elif acks == UNKNOWN:
                self.history.unknown_outcome()
            else:
                self.history.refuse(acks)
                errors.append(f"{region}: the big transaction was not committed ({acks})")

        full = 3 * self.rows
        with connect(self.config, here, self.db) as at_here, connect(self.config, there, self.db) as at_there:
            def counts() -> tuple[int, int]:
                """(rows of here's transaction applied there, rows of there's applied here)."""
                return (applied(at_there, self.db, *txns[here][1:], self.rows),
                        applied(at_here, self.db, *txns[there][1:], self.rows))

            threads = [threading.Thread(target=commit, args=(r,), daemon=True) for r in (here, there)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 120
            mid = False
            outbound = inbound = 0
            while time.monotonic() < deadline and not stop.is_set():
                outbound, inbound = counts()
                # First choice: the cut region's database sink in the middle of applying the other
                # transaction (it holds fetched events it can neither forward nor commit offsets
                # for); else its producer in the middle of publishing its own.
                if 0 < inbound < full or (inbound == full and 0 < outbound < full):
                    mid = True
                    break
                if outbound == inbound == full or errors:
                    break
                time.sleep(0.01)

            def seen() -> str:
                out_now, in_now = counts()
                return f"; at the heal: {here}'s {out_now}/{full} in {there}, {there}'s {in_now}/{full} in {here}"

            when = "mid-delivery" if mid else "not mid-delivery (no partial state seen)"
            note = (f"; cut {when}: {here}'s transaction {outbound}/{full} rows in {there}, "
                    f"{there}'s {inbound}/{full} in {here}")
            try:
                return self._cut(fault, stop, mode, drop, note, seen)
            finally:
                for thread in threads:
                    thread.join(120)
                if errors:
                    raise RuntimeError("; ".join(errors))
