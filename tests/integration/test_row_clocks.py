"""Clock triggers against a real MariaDB: `cdcsync init`, the clock of local writes, the applier's
bypass, the binlog, and the proof that the triggers' key text equals `row_clock_key` of the wire pk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pymysql
import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import GtidEvent, XidEvent
from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent

from cdcsync.tools.clock_init import init_region
from common.metadata_tables import ROW_CLOCKS
from common.table_catalog import json_columns
from producers.binlog import fixes as binlog_fixes
from producers.binlog.value_encoding import TableEncoder
from schemas import key_fold
from schemas.config import PipelineConfig
from schemas.row_clock_key import key_hash, row_clock_key, row_identity
from tests.conftest import config_for_test, connect
from tests.support.kafka import CreatingTopicIds
from tests.support.producer import write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(sandbox_config: PipelineConfig, unique: str, tmp_path: Path):
    db = f"clk_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path)
    conn = connect(config, "eu")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
    try:
        yield config, db, conn
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
        conn.close()


def run(conn: pymysql.Connection, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def clocks(config: PipelineConfig, conn: pymysql.Connection, db: str, table: str) -> dict[str, tuple]:
    """pk text -> (counters, hlc_us, deleted, origin, pk_hash) of every row_clocks row of a table."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT pk, counters, hlc_us, deleted, origin, pk_hash FROM {config.meta_db}.{ROW_CLOCKS} "
                    "WHERE db = %s AND tbl = %s", (db, table))
        return {pk: (json.loads(c), h, d, o, bytes(ph)) for pk, c, h, d, o, ph in cur.fetchall()}


def trigger_definitions(conn: pymysql.Connection, db: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT "
                    "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s ORDER BY TRIGGER_NAME", (db,))
        return list(cur.fetchall())


def test_local_writes_tick_the_clock_and_applier_writes_do_not(setup) -> None:
    config, db, conn = setup
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    report = init_region(config, "eu")
    assert sorted(report.created) == [f"{db}.cdcsync_t_ad", f"{db}.cdcsync_t_ai", f"{db}.cdcsync_t_au"]

    run(conn, "INSERT INTO t VALUES (1, 10)")
    (c1, h1, d1, o1, _), = clocks(config, conn, db, "t").values()
    assert (c1, d1, o1) == ({"eu": 1}, 0, "eu")
    run(conn, "UPDATE t SET v = 11 WHERE id = 1")
    c2, h2, d2, _, _ = clocks(config, conn, db, "t")["1:1"]
    assert (c2, d2) == ({"eu": 2}, 0) and h2 > h1
    run(conn, "DELETE FROM t WHERE id = 1")
    c3, h3, d3, _, _ = clocks(config, conn, db, "t")["1:1"]
    assert (c3, d3) == ({"eu": 3}, 1) and h3 > h2
    run(conn, "INSERT INTO t VALUES (1, 12)")
    c4, h4, d4, _, _ = clocks(config, conn, db, "t")["1:1"]
    assert (c4, d4) == ({"eu": 4}, 0) and h4 > h3

    # A key change tombstones the old key; the new key starts from its own clock, not the old key's.
    run(conn, "UPDATE t SET id = 2 WHERE id = 1")
    after = clocks(config, conn, db, "t")
    assert after["1:1"][0] == {"eu": 5} and after["1:1"][2] == 1
    assert after["1:2"][0] == {"eu": 1} and after["1:2"][2] == 0 and after["1:2"][1] > h4
    # Back onto the tombstoned key: it continues from its tombstone.
    run(conn, "UPDATE t SET id = 1 WHERE id = 2")
    again = clocks(config, conn, db, "t")
    assert again["1:2"][0] == {"eu": 2} and again["1:2"][2] == 1
    assert again["1:1"][0] == {"eu": 6} and again["1:1"][2] == 0   # tombstone 5 + 1

    # The applier's session skips the triggers (it writes the clock row itself).
    before = clocks(config, conn, db, "t")
    run(conn, "SET @cdcsync_applying = 1", "INSERT INTO t VALUES (5, 1)", "UPDATE t SET v = 2 WHERE id = 1",
        "DELETE FROM t WHERE id = 5", "UPDATE t SET id = 6 WHERE id = 1")
    assert clocks(config, conn, db, "t") == before
    run(conn, "SET @cdcsync_applying = 0", "UPDATE t SET v = 3 WHERE id = 6")
    assert clocks(config, conn, db, "t")["1:6"][0] == {"eu": 1}   # a row with no clock starts empty

    # Other regions' counters (as the applier writes them) are kept; a key change does not mix two keys'.
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {config.meta_db}.{ROW_CLOCKS} SET counters = '{{\"eu\": 1, \"us\": 4}}' "
                    "WHERE db = %s AND tbl = 't' AND pk = '1:6'", (db,))
        cur.execute(f"INSERT INTO {config.meta_db}.{ROW_CLOCKS} (db, tbl, pk_hash, pk, counters, hlc_us, deleted, "
                    "origin) VALUES (%s, 't', %s, '1:8', '{\"ap\": 3, \"us\": 9}', 1, 1, 'us')",
                    (db, key_hash("1:8")))
    run(conn, "UPDATE t SET v = 4 WHERE id = 6")
    assert clocks(config, conn, db, "t")["1:6"][0] == {"eu": 2, "us": 4}
    run(conn, "UPDATE t SET id = 8 WHERE id = 6")
    moved = clocks(config, conn, db, "t")
    assert moved["1:6"][0] == {"eu": 3, "us": 4} and moved["1:6"][2] == 1
    assert moved["1:8"][0] == {"ap": 3, "eu": 1, "us": 9} and moved["1:8"][2] == 0


def test_init_is_idempotent_and_picks_up_new_and_changed_tables(setup, tmp_path: Path) -> None:
    config, db, conn = setup
    run(conn, "CREATE TABLE a (id INT PRIMARY KEY)", "CREATE TABLE nokey (v INT)")
    first = init_region(config, "eu")
    assert len(first.created) == 3 and any("nokey" in w for w in first.warnings)
    definitions = trigger_definitions(conn, db)
    second = init_region(config, "eu")
    assert (second.created, second.replaced, second.dropped) == ([], [], [])
    assert len(second.unchanged) == 3
    assert trigger_definitions(conn, db) == definitions

    run(conn, "CREATE TABLE b (k VARCHAR(20), n BIGINT UNSIGNED, PRIMARY KEY (k, n))")
    # A changed definition (here: an operator's edit) is replaced; the new table gets its triggers.
    run(conn, f"CREATE OR REPLACE TRIGGER {db}.cdcsync_a_ai AFTER INSERT ON {db}.a FOR EACH ROW SET @x = 1")
    third = init_region(config, "eu")
    assert sorted(third.created) == [f"{db}.cdcsync_b_ad", f"{db}.cdcsync_b_ai", f"{db}.cdcsync_b_au"]
    assert third.replaced == [f"{db}.cdcsync_a_ai"]
    assert trigger_definitions(conn, db)[:3] == definitions
    run(conn, "INSERT INTO b VALUES ('k,1:', 18446744073709551615)")
    assert list(clocks(config, conn, db, "b")) == ["4:k,1:,20:18446744073709551615"]

    # The command prints what it did; a second run changes nothing.
    path = write_config(config, tmp_path / "cdcsync.toml")
    out = subprocess.run([sys.executable, "-m", "cdcsync", "init", "--config", str(path), "--region", "eu"],
                         capture_output=True, text=True, check=True)
    assert "0 created, 0 replaced, 6 unchanged, 0 dropped" in out.stdout
    assert "nokey: no primary key" in out.stderr

    # A table leaving the selection loses its triggers; a changed key gets new ones.
    narrowed = config.model_copy(update={"regions": {**config.regions, "eu": config.regions["eu"].model_copy(
        update={"producer": config.regions["eu"].producer.model_copy(update={"exclude": (f"{db}.a",)})})}})
    run(conn, "ALTER TABLE b MODIFY k VARBINARY(20) NOT NULL")
    fourth = init_region(narrowed, "eu")
    assert sorted(fourth.dropped) == [f"{db}.cdcsync_a_ad", f"{db}.cdcsync_a_ai", f"{db}.cdcsync_a_au"]
    assert len(fourth.replaced) == 3 and not fourth.created
    assert [name for name, *_ in trigger_definitions(conn, db)] == ["cdcsync_b_ad", "cdcsync_b_ai", "cdcsync_b_au"]


def test_local_write_and_its_clock_share_one_binlog_transaction(setup, unique: str) -> None:
    config, db, conn = setup
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    init_region(config, "eu")
    with conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        (start,) = cur.fetchone()
    run(conn, "INSERT INTO t VALUES (7, 1)")
    transactions = read_transactions(config, start, [db, config.meta_db], 200_000 + int(unique, 16) % 2**30)
    assert len(transactions) == 1
    (only,) = transactions
    assert [(schema, table, kind) for schema, table, kind, _ in only] == [
        (db, "t", "WriteRowsEvent"), (config.meta_db, ROW_CLOCKS, "WriteRowsEvent")]
    clock_row = only[1][3]
    assert clock_row["pk"] == "1:7" and json.loads(clock_row["counters"]) == {"eu": 1}


def read_transactions(config: PipelineConfig, start: str, schemas: list[str], server_id: int) -> list[list[tuple]]:
    """Row events since `start`, grouped by transaction: (schema, table, event class, row values)."""
    m = config.region("eu").mysql
    settings = {"host": m.host, "port": m.port, "user": m.user, "passwd": m.password.get_secret_value()}
    stream = BinLogStreamReader(connection_settings=settings, server_id=server_id, is_mariadb=True, blocking=False,
                                auto_position=start, only_schemas=schemas)
    transactions: list[list[tuple]] = []
    current: list[tuple] | None = None
    try:
        for event in stream:
            if isinstance(event, GtidEvent) or event.__class__.__name__ == "MariadbGtidEvent":
                current = []
            elif isinstance(event, XidEvent) and current is not None:
                if current:
                    transactions.append(current)
                current = None
            elif isinstance(event, (WriteRowsEvent, UpdateRowsEvent)) and current is not None:
                for row in event.rows:
                    values = row.get("values", row.get("after_values"))
                    current.append((event.schema, event.table, type(event).__name__, values))
    finally:
        stream.close()
    return transactions


# -- the key proof ------------------------------------------------------------------------------
# Each table: PK column definition and SQL literals of many values. Session: ALLOW_INVALID_DATES.
KEY_TYPES: dict[str, tuple[str, list[str]]] = {
    "ti": ("TINYINT", ["-128", "-1", "0", "1", "127"]),
    "tiu": ("TINYINT UNSIGNED", ["0", "1", "200", "255"]),
    "mi": ("MEDIUMINT", ["-8388608", "8388607", "42"]),
    "i": ("INT", ["-2147483648", "-7", "0", "2147483647"]),
    "iu": ("INT UNSIGNED", ["0", "4294967295"]),
    "bi": ("BIGINT", ["-9223372036854775808", "-1", "0", "9223372036854775807"]),
    "biu": ("BIGINT UNSIGNED", ["0", "9223372036854775808", "18446744073709551615"]),
    "vc": ("VARCHAR(200)", ["''", "'a'", "'A b'", "'é'", "'😀x'", "'日本語'", "'it''s'", "'back\\\\slash'",
                            "'comma,colon:9:'", "'trail  '", "'tab\\tnl\\n'", "'nul\\0byte'", "'" + "ü" * 150 + "'"]),
    "ch": ("CHAR(10)", ["''", "'x'", "'trail  '", "'é😀'", "' lead'", "'0123456789'"]),
    "l1": ("VARCHAR(20) CHARACTER SET latin1", ["'abc'", "'é'", "'Ünï'", "X'80e9'"]),
    "bn": ("BINARY(4)", ["X'00000000'", "X'ffffffff'", "X'6162'", "X'00ff80'"]),
    "vb": ("VARBINARY(300)", ["X''", "X'00'", "X'00ff'", "X'" + bytes(range(256)).hex() + "'", "X'2c3a'"]),
    "dm": ("DECIMAL(10,2)", ["-99999999.99", "-0.01", "0", "0.01", "12.3", "99999999.99"]),
    "df": ("DECIMAL(5,5)", ["-0.99999", "0", "0.00001", "0.5"]),
    "dz": ("DECIMAL(20,0)", ["-99999999999999999999", "0", "99999999999999999999"]),
    "dw": ("DECIMAL(65,30)", ["-" + "9" * 35 + "." + "9" * 30, "0." + "0" * 29 + "1", "1.5"]),
    "d": ("DATE", ["'0001-01-01'", "'9999-12-31'", "'2024-02-29'", "'0000-00-00'", "'2024-05-00'",
                   "'2024-02-30'"]),
    "dt0": ("DATETIME", ["'0001-01-01 00:00:00'", "'9999-12-31 23:59:59'", "'2024-02-29 12:34:56'",
                         "'0000-00-00 00:00:00'", "'2024-05-00 10:11:12'"]),
    "dt3": ("DATETIME(3)", ["'2024-02-29 12:34:56.789'", "'2024-02-29 12:34:56'", "'9999-12-31 23:59:59.999'",
                            "'0000-00-00 00:00:00.000'", "'2024-00-15 00:00:00.5'"]),
    "dt6": ("DATETIME(6)", ["'2024-02-29 12:34:56.000001'", "'0001-01-01 00:00:00'",
                            "'9999-12-31 23:59:59.999999'", "'0000-00-00 00:00:00'"]),
}


def wire(row: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(row, option=orjson.OPT_PASSTHROUGH_DATETIME))


def test_trigger_key_equals_row_clock_key_of_the_wire_pk(setup, unique: str) -> None:
    config, db, conn = setup
    binlog_fixes.install()
    run(conn, "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
    for name, (definition, _) in KEY_TYPES.items():
        run(conn, f"CREATE TABLE {name} (k {definition} NOT NULL PRIMARY KEY, seq INT)")
    first, second = list(KEY_TYPES["vc"][1][:3]), list(KEY_TYPES["dt3"][1][:3])
    run(conn, "CREATE TABLE combo (a VARCHAR(20), b INT UNSIGNED, c DATETIME(3), PRIMARY KEY (b, a, c))")
    report = init_region(config, "eu")
    assert not report.warnings and len(report.created) == 3 * (len(KEY_TYPES) + 1)
    with conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        (start,) = cur.fetchone()
    for name, (_, values) in KEY_TYPES.items():
        for n, value in enumerate(values):
            run(conn, f"INSERT INTO {name} VALUES ({value}, {n})")
    for n, (a, c) in enumerate(zip(first, second)):
        run(conn, f"INSERT INTO combo VALUES ({a}, {n}, {c})")

    m = config.region("eu").mysql
    settings = {"host": m.host, "port": m.port, "user": m.user, "passwd": m.password.get_secret_value()}
    stream = BinLogStreamReader(connection_settings=settings, server_id=300_000 + int(unique, 16) % 2**30,
                                is_mariadb=True, blocking=False, auto_position=start, only_schemas=[db],
                                only_events=[WriteRowsEvent])
    expected: dict[str, dict[str, str]] = {}
    try:
        for event in stream:
            encoder = TableEncoder(event.columns, json_columns(conn, db, event.table))
            order = ["b", "a", "c"] if event.table == "combo" else ["k"]
            # text keys are hashed by their identity: folded by the column's collation (key_fold)
            fold = key_fold.folding({c.name: c.collation_name for c in event.columns if c.name in order
                                     and encoder.types[c.name].startswith(("char", "varchar"))}, event.table)
            with conn.cursor() as cur:
                key_fold.ensure(cur, fold)
            for row in event.rows:
                values = wire(encoder.encode_row(row["values"], row["none_sources"]))
                pk = {column: values[column] for column in order}
                key = row_clock_key(pk, encoder.types)
                expected.setdefault(event.table, {})[key] = key_hash(row_identity(pk, encoder.types, fold))
    finally:
        stream.close()

    assert len(expected) == len(KEY_TYPES) + 1
    assert {t: len(keys) for t, keys in expected.items()} == {**{t: len(v) for t, (_, v) in KEY_TYPES.items()},
                                                               "combo": 3}
    for table, keys in expected.items():
        stored = clocks(config, conn, db, table)
        assert {pk: h for pk, (_, _, _, _, h) in stored.items()} == keys, table
    assert "8:00000000" in expected["bn"] and "6:616200" not in expected["bn"] and "8:61620000" in expected["bn"]
    assert "10:2024-05-00" in expected["d"] and "23:2024-02-29 12:34:56.789" in expected["dt3"]
    assert "5:12.30" in expected["dm"] and "5:trail" in expected["ch"] and "7:trail  " in expected["vc"]


def test_producer_publishes_local_writes_with_their_clocks(sandbox_config: PipelineConfig, unique: str,
                                                           tmp_path: Path) -> None:
    """The clock rows ride in the writers' transactions; the producer attaches each to its row change
    as `vclock` (a key change: the old key's tombstone clock and the new key's clock) and never
    publishes meta_db itself."""
    from tests.support.kafka import read_all, topics_with_prefix
    from tests.support.producer import ProducerProcess, wait_until

    db, prefix = f"clkp_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path)
    path = write_config(config, tmp_path / "cdcsync.toml")
    with connect(config, "eu") as conn:
        run(conn, f"CREATE DATABASE {db}", f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
        init_region(config, "eu")
        try:
            with ProducerProcess(path, "eu", tmp_path / "producer.log") as producer:
                wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=60, what="checkpoint")
                run(conn, f"INSERT INTO {db}.t VALUES (1, 1)", f"UPDATE {db}.t SET v = 2 WHERE id = 1",
                    f"UPDATE {db}.t SET id = 2 WHERE id = 1", f"DELETE FROM {db}.t WHERE id = 2")
                records = read_all(config.kafka.bootstrap, [f"{prefix}.eu.{db}.t"], expect=5, idle_s=3.0)
                assert producer.terminate() == 0, producer.output()
            events = [r.message for r in sorted(records, key=lambda r: (r.message.binlog_file, r.message.binlog_pos,
                                                                           r.message.txn_index))]
            assert [(e.op, e.pk, e.origin) for e in events] == [
                ("insert", {"id": 1}, "eu"), ("update", {"id": 1}, "eu"), ("delete", {"id": 1}, "eu"),
                ("insert", {"id": 2}, "eu"), ("delete", {"id": 2}, "eu")]
            assert [e.vclock.counters for e in events] == [{"eu": 1}, {"eu": 2}, {"eu": 3}, {"eu": 1}, {"eu": 2}]
            stamps = [e.vclock.hlc_us for e in events]
            assert stamps[0] < stamps[1] < stamps[2] and stamps[1] < stamps[3] < stamps[4]
            assert not [t for t in topics_with_prefix(config.kafka.bootstrap, prefix) if ROW_CLOCKS in t]
            final = clocks(config, conn, db, "t")
            assert (final["1:1"][0], final["1:1"][2], final["1:2"][0], final["1:2"][2]) == ({"eu": 3}, 1, {"eu": 2}, 1)
        finally:
            run(conn, f"DROP DATABASE {db}", f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = '{db}'")


def test_database_sink_writes_do_not_tick_local_clocks(setup) -> None:
    """The sink's session marks itself as the applier, so installed triggers leave its writes alone."""
    from prometheus_client import CollectorRegistry

    from consumers.db.sink import DatabaseSink
    from consumers.metrics import SinkMetrics
    from consumers.records import SourceRecord
    from common import metadata_tables
    from schemas.codec import encode

    config, db, conn = setup
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    init_region(config, "eu")
    metadata_tables.ensure(conn, config.meta_db)
    event = {"schema_version": 1, "kind": "change", "region": "us", "origin": "us", "server_id": 2, "gtid": "2-2-9",
             "binlog_file": "binlog.000001", "binlog_pos": 99, "txn_id": "2-2-9", "ts_us": 0, "db": db, "table": "t",
             "txn_index": 0, "txn_last": True, "op": "insert", "pk": {"id": 7}, "before": None,
             "after": {"id": 7, "v": 1}, "types": {"id": "int", "v": "int"}, "vclock": None}
    record = SourceRecord.from_message(f"{config.prefix}.us.{db}.t", 0, 0, b"[7]", encode(event))

    class NoDeadLetters:
        def publish(self, letters) -> None:
            assert not letters, letters

    sink = DatabaseSink(config, "eu", NoDeadLetters(), SinkMetrics("eu", CollectorRegistry()),  # type: ignore[arg-type]
                        topic_ids=CreatingTopicIds(config.kafka_for("eu")))
    sink.write_batch([record])
    sink.close()
    with conn.cursor() as cur:
        cur.execute("SELECT v FROM t WHERE id = 7")
        assert cur.fetchone() == (1,)                      # applied
    assert clocks(config, conn, db, "t") == {}           # and not counted as a local write of eu
