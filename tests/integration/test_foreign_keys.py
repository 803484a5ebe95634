"""Foreign keys across replicated tables (issue 10, case 7), on the real pipeline.

- Transactions that insert an order and its items in three regions at once reach every region
  whole: per-table topics are applied in no common order, so the sinks apply without foreign-key
  checks, and nothing is dead-lettered.
- ON DELETE CASCADE and SET NULL in one region change the children in every region, through a
  chain too: the cascade triggers of `cdcsync init` make the children's changes ordinary, clocked
  binlog events (InnoDB's own cascade writes none).
- A child insert delivered after its parent's delete is applied and then removed by the child's
  own delete, whose tombstone stays.
- Actions that cannot be made visible (ON UPDATE CASCADE, delete cycles) are refused by `init` and
  `config check`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from cdcsync.tools.clock_init import ForeignKeyRefused, init_region
from cdcsync.tools.dlq_reader import read_dead_letters
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from consumers.db.sink import DatabaseSink
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from schemas.codec import encode
from tests.conftest import REGIONS, config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, pipeline, wait_until, write_config
from tests.support.quiescence import wait_quiescent
from tests.support.verify import assert_verified

pytestmark = pytest.mark.integration

SCHEMA = (
    "CREATE TABLE {db}.customers (id INT PRIMARY KEY, name VARCHAR(20))",
    "CREATE TABLE {db}.orders (id INT PRIMARY KEY, customer_id INT NULL, note VARCHAR(20), "
    "FOREIGN KEY (customer_id) REFERENCES {db}.customers (id) ON DELETE CASCADE)",
    "CREATE TABLE {db}.items (id INT PRIMARY KEY, order_id INT NOT NULL, qty INT, "
    "FOREIGN KEY (order_id) REFERENCES {db}.orders (id) ON DELETE CASCADE)",
    "CREATE TABLE {db}.notes (id INT PRIMARY KEY, order_id INT NULL, text VARCHAR(20), "
    "FOREIGN KEY (order_id) REFERENCES {db}.orders (id) ON DELETE SET NULL)",
)
ORDERS_PER_REGION = 40
BASE = {"eu": 100_000, "us": 200_000, "ap": 300_000}   # disjoint keys per region


def create(config, db: str, regions=REGIONS) -> None:
    for region in regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            for statement in SCHEMA:
                cur.execute(statement.format(db=db))
        init_region(config, region)


def drop(config, db: str, regions=REGIONS) -> None:
    for region in regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
            cur.execute(f"DELETE FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s", (db,))


def rows(config, region: str, db: str, table: str) -> set[tuple]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        return set(cur.fetchall())


def clocks(config, region: str, db: str, table: str) -> dict[str, tuple[dict, int]]:
    """Canonical key -> (counters, deleted) of the table's row_clocks rows."""
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT pk, counters, deleted FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s AND tbl = %s",
                    (db, table))
        return {pk: (json.loads(c), d) for pk, c, d in cur.fetchall()}


def write_orders(config, region: str, db: str, errors: list) -> None:
    """Each order with its two items in one transaction, as an application writes them."""
    try:
        with connect(config, region, db) as conn, conn.cursor() as cur:
            base = BASE[region]
            cur.execute("INSERT INTO customers VALUES (%s, %s)", (base, region))
            for n in range(ORDERS_PER_REGION):
                conn.begin()
                order = base + 1 + n
                cur.execute("INSERT INTO orders VALUES (%s, %s, %s)", (order, base, f"{region}-{n}"))
                cur.executemany("INSERT INTO items VALUES (%s, %s, %s)",
                                [(order * 10 + 1, order, 1), (order * 10 + 2, order, 2)])
                cur.execute("INSERT INTO notes VALUES (%s, %s, %s)", (order, order, "note"))
                conn.commit()
    except BaseException as err:  # noqa: BLE001 - reported by the test thread
        errors.append(err)


def concurrently(config, db: str, target) -> None:
    errors: list[BaseException] = []
    threads = [threading.Thread(target=target, args=(config, region, db, errors)) for region in REGIONS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors


def assert_same_everywhere(config, db: str) -> dict[str, set[tuple]]:
    tables = {table: rows(config, "eu", db, table) for table in ("customers", "orders", "items", "notes")}
    for region in REGIONS[1:]:
        for table, expected in tables.items():
            assert rows(config, region, db, table) == expected, (region, table)
    return tables


def assert_no_dead_letters(config) -> None:
    for region in REGIONS:
        assert read_dead_letters(config, region) == [], region


def test_order_and_items_in_three_regions_then_cascades_converge(sandbox_config, unique, tmp_path) -> None:
    db = f"fk_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             sink={"batch_max_ms": 50})
    path = write_config(config, tmp_path / "cdcsync.toml")
    create(config, db)
    try:
        with pipeline(config, path, tmp_path):
            concurrently(config, db, write_orders)
            wait_quiescent(config)
            assert_verified(config, timeout=30)
            assert_no_dead_letters(config)
            tables = assert_same_everywhere(config, db)
            assert len(tables["orders"]) == 3 * ORDERS_PER_REGION
            assert len(tables["items"]) == 6 * ORDERS_PER_REGION

            # Deletes in each region, also of other regions' orders: every 4th order (its items go
            # with it, its note loses its order), and ap's customer (a chain: its orders, their items).
            def delete_some(config, region: str, db: str, errors: list) -> None:
                try:
                    with connect(config, region, db) as conn, conn.cursor() as cur:
                        other = BASE[REGIONS[(REGIONS.index(region) + 1) % 3]]
                        for n in range(0, ORDERS_PER_REGION, 4):
                            cur.execute("DELETE FROM orders WHERE id = %s", (other + 1 + n,))
                        if region == "us":
                            cur.execute("DELETE FROM customers WHERE id = %s", (BASE["ap"],))
                except BaseException as err:  # noqa: BLE001
                    errors.append(err)

            concurrently(config, db, delete_some)
            wait_quiescent(config)
            assert_verified(config, timeout=30)
            assert_no_dead_letters(config)
            tables = assert_same_everywhere(config, db)
        gone = {BASE[r] + 1 + n for r in ("eu", "us") for n in range(0, ORDERS_PER_REGION, 4)}
        gone |= {BASE["ap"] + 1 + n for n in range(ORDERS_PER_REGION)}
        kept = {BASE[r] + 1 + n for r in REGIONS for n in range(ORDERS_PER_REGION)} - gone
        assert {o[0] for o in tables["orders"]} == kept
        assert {i[1] for i in tables["items"]} == kept and len(tables["items"]) == 2 * len(kept)
        assert {n[0] for n in tables["notes"] if n[1] is None} == gone     # SET NULL, everywhere
        assert {c[0] for c in tables["customers"]} == {BASE["eu"], BASE["us"]}
        for region in REGIONS:   # every removed child has a tombstone, not a live clock
            item_clocks = clocks(config, region, db, "items")
            dead = {pk for pk, (_, deleted) in item_clocks.items() if deleted}
            assert dead == {f"7:{o * 10 + k}" for o in gone for k in (1, 2)}, region
    finally:
        drop(config, db)


def test_child_insert_delivered_after_its_parents_delete_is_removed(sandbox_config, unique, tmp_path) -> None:
    """eu inserts an order with items, then deletes the order (the items cascade). us's sink gets the
    order's topic first (insert, delete), then the items' (insert, delete): the items are applied
    without their parent, then deleted; nothing is dead-lettered and the tombstones match eu's."""
    db, prefix = f"fkd_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"], snapshot="never")
    create(config, db, ["eu", "us"])
    try:
        with ProducerProcess(write_config(config, tmp_path / "c.toml"), "eu", tmp_path / "p.log") as producer:
            wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, what="checkpoint")
            with connect(config, "eu", db) as conn, conn.cursor() as cur:
                conn.begin()
                cur.execute("INSERT INTO orders VALUES (1, NULL, 'o')")
                cur.executemany("INSERT INTO items VALUES (%s, 1, 1)", [(11,), (12,)])
                conn.commit()
                cur.execute("DELETE FROM orders WHERE id = 1")
            orders = read_all(config.kafka.bootstrap, [f"{prefix}.eu.{db}.orders"], expect=2)
            items = read_all(config.kafka.bootstrap, [f"{prefix}.eu.{db}.items"], idle_s=3.0)
            assert producer.terminate() == 0, producer.output()
        assert sorted((r.message.op, r.message.pk["id"]) for r in items) == [
            ("delete", 11), ("delete", 12), ("insert", 11), ("insert", 12)]
        letters: list = []

        class Collect:
            def publish(self, batch) -> None:
                letters.extend(batch)

        sink = DatabaseSink(config, "us", Collect(), SinkMetrics("us", CollectorRegistry()))  # type: ignore[arg-type]
        try:
            for record in [*sorted(orders, key=lambda r: r.offset),
                           *sorted(items, key=lambda r: (r.partition, r.offset))]:
                sink.write_batch([SourceRecord.from_message(record.topic, record.partition, record.offset,
                                                            record.key, encode(record.message))])
        finally:
            sink.close()
        assert letters == []
        assert rows(config, "us", db, "orders") == set() and rows(config, "us", db, "items") == set()
        assert clocks(config, "us", db, "items") == clocks(config, "eu", db, "items")
        assert {pk: deleted for pk, (_, deleted) in clocks(config, "eu", db, "items").items()} == {"2:11": 1, "2:12": 1}
    finally:
        drop(config, db, ["eu", "us"])


@pytest.mark.parametrize("statements, refused", [
    (["CREATE TABLE {db}.tree (id INT PRIMARY KEY, parent INT NULL, "
      "FOREIGN KEY (parent) REFERENCES {db}.tree (id) ON DELETE CASCADE)"], "cycle"),
    (["CREATE TABLE {db}.p (id INT PRIMARY KEY)",
      "CREATE TABLE {db}.c (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES {db}.p (id) ON UPDATE CASCADE)"],
     "ON UPDATE CASCADE"),
])
def test_init_and_config_check_refuse_actions_they_cannot_make_visible(sandbox_config, unique, tmp_path,
                                                                        statements, refused) -> None:
    db = f"fkr_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path, regions=["eu"])
    path = write_config(config, tmp_path / "cdcsync.toml")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        for statement in statements:
            cur.execute(statement.format(db=db))
    try:
        with pytest.raises(ForeignKeyRefused, match=refused):
            init_region(config, "eu")
        done = subprocess.run([sys.executable, "-m", "cdcsync", "init", "--config", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and refused in " ".join(done.stderr.split()), done.stdout + done.stderr
        with connect(config, "eu") as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (db,))
            assert cur.fetchone() == (0,)                       # refused before changing anything
        check = subprocess.run([sys.executable, "-m", "cdcsync", "config", "check", "--config", str(path), "--json"],
                               capture_output=True, text=True, timeout=120)
        results = [json.loads(line) for line in check.stdout.splitlines() if line.startswith("{")]
        fk = [r for r in results if r["check"] == "foreign keys"]
        assert check.returncode == 1 and fk and fk[0]["outcome"] == "fail" and refused in fk[0]["detail"], check.stdout + check.stderr
    finally:
        drop(config, db, ["eu"])
