"""The producer publishes every committed row change to the region's topics, keyed by PK, in order."""

from __future__ import annotations

import orjson
import pytest

from schemas.events import ChangeEvent
from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all, topics_with_prefix
from tests.support.producer import ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def stream_setup(sandbox_config, unique, tmp_path):
    db = f"ps_{unique}"
    prefix = f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)")
        cur.execute(f"CREATE TABLE {db}.pairs (a INT, b VARCHAR(5), v INT, PRIMARY KEY (b, a))")
        cur.execute(f"CREATE TABLE {db}.nokey (x INT, y INT)")
    yield config, db, prefix, write_config(config, tmp_path / "cdcsync.toml")


def _changes(records):
    return [r for r in records if isinstance(r.message, ChangeEvent)]


def test_changes_reach_region_topics_in_order(stream_setup, tmp_path) -> None:
    config, db, prefix, path = stream_setup
    bootstrap = config.kafka.bootstrap
    with ProducerProcess(path, "eu", tmp_path / "producer.log") as producer:
        wait_until(lambda: (tmp_path / "checkpoints" / "eu" / "eu.json").exists(), what="first checkpoint")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            conn.begin()
            cur.execute("INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2)")
            cur.execute("UPDATE items SET qty = 10 WHERE id = 1")
            conn.commit()
            cur.execute("DELETE FROM items WHERE id = 2")
            cur.execute("UPDATE items SET id = 3 WHERE id = 1")        # a key change
            cur.execute("INSERT INTO pairs VALUES (7, 'k', 1)")
            cur.execute("INSERT INTO nokey VALUES (1, 1)")              # skipped: no primary key
            cur.execute("INSERT INTO nokey VALUES (2, 2)")              # ... with one warning only
        records = read_all(bootstrap, [f"{prefix}.eu.{db}.items", f"{prefix}.eu.{db}.pairs"], expect=7)
        assert producer.terminate() == 0, producer.output()
    assert producer.output().count(f"{db}.nokey has no primary key") == 1, producer.output()
    assert f"{prefix}.eu.{db}.nokey" not in topics_with_prefix(bootstrap, prefix)

    changes = _changes(records)
    items = sorted((r for r in changes if r.message.table == "items"), key=lambda r: (int(r.message.gtid.rsplit("-", 1)[1]), r.message.txn_index))
    ops = [(r.message.op.value, r.message.pk) for r in items]
    assert ops == [("insert", {"id": 1}), ("insert", {"id": 2}), ("update", {"id": 1}),
                   ("delete", {"id": 2}), ("delete", {"id": 1}), ("insert", {"id": 3})]
    first_txn = [r.message for r in items[:3]]
    assert len({m.txn_id for m in first_txn}) == 1
    assert [m.txn_index for m in first_txn] == [0, 1, 2]
    assert [m.txn_last for m in first_txn] == [False, False, True]
    update = items[2].message
    assert update.before == {"id": 1, "name": "a", "qty": 1}
    assert update.after == {"id": 1, "name": "a", "qty": 10}
    assert update.types == {"id": "int", "name": "varchar(20)", "qty": "int"}
    for r in items:
        m = r.message
        assert (m.region, m.origin, m.server_id, m.db) == ("eu", "eu", config.regions["eu"].server_id, db)
        assert m.gtid and m.gtid.startswith(f"{config.regions['eu'].server_id}-")
        assert m.binlog_file.startswith("binlog.") and m.binlog_pos > 0
        assert m.ts_us > 1_600_000_000_000_000
        assert r.key == orjson.dumps(list(m.pk.values()))
        assert r.headers["cdcsync-origin"] == b"eu" and r.headers["cdcsync-kind"] == b"change"
    # Every change of one key is on one partition.
    by_key = {}
    for r in items:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    pair = next(r for r in changes if r.message.table == "pairs")
    assert list(pair.message.pk.items()) == [("b", "k"), ("a", 7)]   # key order, not column order
    # a VARCHAR key in the default utf8mb4_unicode_ci: named by its fold (schemas/key_fold.py)
    assert pair.message.pk_fold == {"b": "0F21"} and pair.key == b'["0F21",7]'


def test_sigterm_flushes_and_checkpoints(stream_setup, tmp_path) -> None:
    config, db, prefix, path = stream_setup
    checkpoint = tmp_path / "checkpoints" / "eu" / "eu.json"
    with ProducerProcess(path, "eu", tmp_path / "producer.log") as producer:
        wait_until(checkpoint.exists, what="first checkpoint")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            for i in range(50):
                cur.execute("INSERT INTO items VALUES (%s, 'x', %s)", (i, i))
            cur.execute("SELECT @@gtid_binlog_pos")
            end_gtid = cur.fetchone()[0]
        records = read_all(config.kafka.bootstrap, [f"{prefix}.eu.{db}.items"], expect=50)
        assert len(records) == 50
        assert producer.terminate() == 0, producer.output()
    saved = orjson.loads(checkpoint.read_bytes())
    assert saved["gtid_state"] == end_gtid


def test_per_region_topic_and_tables_keyed_by_all_columns(sandbox_config, unique, tmp_path) -> None:
    import urllib.request

    from deploy.local.processes import free_port

    db, prefix = f"pr_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             no_primary_key="all_columns")
    config = config.model_copy(update={"topic_mode": "per_region"})
    path = write_config(config, tmp_path / "c.toml")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.a (id INT PRIMARY KEY)")
        cur.execute(f"CREATE TABLE {db}.nokey (x INT, y VARCHAR(3))")
    port = free_port()
    with ProducerProcess(path, "eu", tmp_path / "p.log", "--metrics-port", str(port)) as producer:
        wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, what="checkpoint")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO a VALUES (1)")
            cur.execute("INSERT INTO nokey VALUES (5, 'z')")
        records = read_all(config.kafka.bootstrap, [f"{prefix}.eu.changes"], expect=2)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert producer.terminate() == 0, producer.output()
    keys = sorted(r.key for r in records)
    assert keys == [f"{db}.a:[1]".encode(), f"{db}.nokey:[5,\"z\"]".encode()]
    nokey = next(r.message for r in records if r.message.table == "nokey")
    assert nokey.pk == {"x": 5, "y": "z"}
    assert "keying it by all columns" in producer.output()
    for name in ("cdcsync_producer_events_total", "cdcsync_producer_lag_seconds",
                 "cdcsync_producer_checkpoint_timestamp_seconds", "cdcsync_producer_errors_total"):
        assert name in metrics, name
    assert f'cdcsync_producer_events_total{{db="{db}",region="eu",table="a"}} 1.0' in metrics
