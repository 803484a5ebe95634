"""The cache sink never moves a key backwards, whatever order or how often events are replayed."""

from __future__ import annotations

import pytest

from consumers.cache.sink import CacheSink, decode_row, redis_client
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from prometheus_client import CollectorRegistry
from schemas.codec import encode
from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def test_replayed_and_reordered_events_never_overwrite_newer_values(sandbox_config, unique, tmp_path) -> None:
    db, prefix = f"cs_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    with ProducerProcess(write_config(config, tmp_path / "c.toml"), "eu", tmp_path / "p.log") as producer:
        wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, what="checkpoint")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            for v in range(1, 6):
                cur.execute("INSERT INTO t VALUES (1, %s) ON DUPLICATE KEY UPDATE v = %s", (v, v))
            cur.execute("INSERT INTO t VALUES (2, 1)")
            cur.execute("DELETE FROM t WHERE id = 2")
        topic = f"{prefix}.eu.{db}.t"
        kafka = read_all(config.kafka.bootstrap, [topic], expect=7)
        assert producer.terminate() == 0
    records = [SourceRecord.from_message(r.topic, r.partition, r.offset, r.key, encode(r.message))
               for r in sorted(kafka, key=lambda r: (r.partition, r.offset))]
    sink = CacheSink(config, "eu", SinkMetrics("eu", CollectorRegistry()))
    client = redis_client(config.region("eu").redis)
    key1, key2 = f"{prefix}:{db}.t:[1]", f"{prefix}:{db}.t:[2]"

    sink.write_batch(records)
    assert decode_row(client.hgetall(key1)) == {"id": 1, "v": 5}
    assert decode_row(client.hgetall(key2)) is None and client.hget(key2, "_deleted") == b"1"
    newest = {k: client.hgetall(k) for k in (key1, key2)}

    for replay in (records[:3], records[:1], list(reversed(records)), records):   # old offsets, any order
        for record in replay:
            sink.write_batch([record])
        assert {k: client.hgetall(k) for k in (key1, key2)} == newest
    assert sink.last_written == 0
    assert client.ttl(key2) > 0          # tombstones expire
    sink.close()


def test_cache_rebuild_after_flush_keeps_newer_values(sandbox_config, unique, tmp_path) -> None:
    import subprocess
    import sys

    db, prefix = f"cr_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never")
    path = write_config(config, tmp_path / "c.toml")
    with connect(config, "us") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute(f"CREATE TABLE {db}.other (id INT PRIMARY KEY)")
        cur.executemany(f"INSERT INTO {db}.items VALUES (%s, %s)", [(i, f"n{i}") for i in range(250)])
        cur.execute(f"INSERT INTO {db}.other VALUES (1)")
    client = redis_client(config.region("us").redis)
    newer = f"{prefix}:{db}.items:[7]"
    client.hset(newer, mapping={"_v": "9999999999.000000000000.00000000", "id": "7", "name": '"from-the-sink"'})

    result = subprocess.run([sys.executable, "-m", "cdcsync", "cache", "rebuild", "--config", str(path),
                             "--region", "us", "--table", f"{db}.items"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "rebuilt 250 rows in 1 tables" in result.stdout
    assert decode_row(client.hgetall(f"{prefix}:{db}.items:[3]")) == {"id": 3, "name": "n3"}
    assert decode_row(client.hgetall(newer)) == {"id": 7, "name": "from-the-sink"}   # newer version kept
    assert not client.exists(f"{prefix}:{db}.other:[1]")                              # --table respected

    result = subprocess.run([sys.executable, "-m", "cdcsync", "cache", "rebuild", "--config", str(path),
                             "--region", "us", "--table", f"{db}.nope"], capture_output=True, text=True)
    assert result.returncode == 1 and f"{db}.nope" in result.stderr


def test_json_format_and_ttl(sandbox_config, unique, tmp_path) -> None:
    from schemas.config import parse_config

    prefix = f"t{unique}"
    data = sandbox_config.model_dump(mode="python")
    for name, region in data["regions"].items():
        region["mysql"]["password"] = sandbox_config.regions[name].mysql.password.get_secret_value()
    data.update(prefix=prefix, tables={"app.docs": {"cache_format": "json", "cache_ttl_s": 300}})
    config = parse_config(data)
    event = {"schema_version": 1, "kind": "change", "region": "eu", "origin": "us", "server_id": 1, "gtid": "1-1-5",
             "binlog_file": "binlog.000003", "binlog_pos": 10, "txn_id": "1-1-5", "ts_us": 0, "db": "app",
             "table": "docs", "txn_index": 0, "txn_last": True, "op": "insert", "pk": {"id": 1}, "before": None,
             "after": {"id": 1, "body": {"a": [1, 2]}, "price": "9.50"}, "types": {}, "vclock": None}
    sink = CacheSink(config, "eu", SinkMetrics("eu", CollectorRegistry()))
    sink.write_batch([SourceRecord.from_message("t", 0, 0, b"[1]", encode(event))])
    client = redis_client(config.region("eu").redis)
    key = f"{prefix}:app.docs:[1]"
    stored = client.hgetall(key)
    assert set(stored) == {b"_v", b"_json"} and stored[b"_v"] == b"0000000003.000000000010.00000000"
    assert decode_row(stored) == {"id": 1, "body": {"a": [1, 2]}, "price": "9.50"}
    assert 0 < client.ttl(key) <= 300
    sink.close()


# --- vector clocks in the cache (`_c`) -------------------------------------------------------------

def change(op: str, pos: int, key: int = 1, v: str | None = None, counters: dict[str, int] | None = None,
           db: str = "app", table: str = "items") -> SourceRecord:
    """A change event of the sink's own region at binlog position `pos`, with clock `counters` (None: no clock)."""
    after = None if op == "delete" else {"id": key, "v": v}
    event = {"schema_version": 1, "kind": "change", "region": "eu", "origin": "eu", "server_id": 1,
             "gtid": f"0-1-{pos}", "binlog_file": "binlog.000002", "binlog_pos": pos, "txn_id": f"0-1-{pos}",
             "ts_us": 0, "db": db, "table": table, "txn_index": 0, "txn_last": True, "op": op, "pk": {"id": key},
             "before": {"id": key, "v": "?"} if op != "insert" else None, "after": after,
             "types": {"id": "int", "v": "varchar(20)"},
             "vclock": None if counters is None else {"counters": counters, "hlc_us": pos}}
    return SourceRecord.from_message("t", 0, pos, f"[{key}]".encode(), encode(event))


@pytest.fixture
def clock_sink(sandbox_config, unique, tmp_path):
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=["app.*"], tmp=tmp_path)
    sink = CacheSink(config, "eu", SinkMetrics("eu", CollectorRegistry()))
    client = redis_client(config.region("eu").redis)
    yield config, sink, client, f"{config.prefix}:app.items:[1]"
    sink.close()


def write_one(sink: CacheSink, record: SourceRecord) -> int:
    sink.write_batch([record])
    return sink.last_written


def test_a_clock_before_or_equal_to_the_cached_one_never_overwrites_whatever_its_binlog_version(clock_sink) -> None:
    _, sink, client, key = clock_sink
    assert write_one(sink, change("insert", 100, v="a", counters={"us": 1, "eu": 2})) == 1
    assert client.hget(key, "_c") == b'{"eu":2,"us":1}'                    # compact, sorted keys
    assert write_one(sink, change("update", 200, v="older", counters={"eu": 1, "us": 1})) == 0   # before
    assert write_one(sink, change("update", 300, v="same", counters={"eu": 2, "us": 1})) == 0    # equal
    assert decode_row(client.hgetall(key)) == {"id": 1, "v": "a"}
    assert client.hget(key, "_v") == b"0000000002.000000000100.00000000"

    # strictly after: written although its binlog version is smaller
    assert write_one(sink, change("update", 50, v="b", counters={"eu": 3, "us": 1})) == 1
    assert decode_row(client.hgetall(key)) == {"id": 1, "v": "b"}
    assert client.hget(key, "_c") == b'{"eu":3,"us":1}' and client.hget(key, "_v") == b"0000000002.000000000050.00000000"

    # concurrent clocks: the binlog version decides
    assert write_one(sink, change("update", 40, v="c", counters={"eu": 1, "us": 5})) == 0
    assert write_one(sink, change("update", 400, v="d", counters={"eu": 1, "us": 5})) == 1
    assert decode_row(client.hgetall(key)) == {"id": 1, "v": "d"}
    assert client.hget(key, "_c") == b'{"eu":1,"us":5}'

    # a clock on only one side: the binlog version decides
    assert write_one(sink, change("update", 390, v="e")) == 0
    assert write_one(sink, change("update", 500, v="f")) == 1
    assert client.hget(key, "_c") is None                              # its version has no clock
    assert write_one(sink, change("update", 450, v="g", counters={"eu": 9, "us": 9})) == 0
    assert write_one(sink, change("update", 600, v="h", counters={"eu": 9, "us": 9})) == 1
    assert decode_row(client.hgetall(key)) == {"id": 1, "v": "h"}


def test_a_batch_is_pipelined_and_decided_per_key(clock_sink) -> None:
    config, sink, client, _ = clock_sink
    keys = [f"{config.prefix}:app.items:[{k}]" for k in (1, 2, 3)]
    sink.write_batch([change("insert", 100, k, "old", {"eu": 2}) for k in (1, 2, 3)])
    assert sink.last_written == 3
    sink.write_batch([change("update", 200, 1, "x", {"eu": 1}), change("update", 200, 2, "y", {"eu": 3}),
                      change("update", 200, 3, "z", {"eu": 2})])
    assert sink.last_written == 1
    assert [decode_row(client.hgetall(k))["v"] for k in keys] == ["old", "y", "old"]


def test_tombstones_keep_their_clock(clock_sink) -> None:
    config, sink, client, key = clock_sink
    assert write_one(sink, change("insert", 100, v="a", counters={"eu": 1})) == 1
    assert write_one(sink, change("delete", 200, counters={"eu": 2, "us": 1})) == 1
    stored = client.hgetall(key)
    assert stored == {b"_v": b"0000000002.000000000200.00000000", b"_deleted": b"1", b"_c": b'{"eu":2,"us":1}'}
    assert 0 < client.ttl(key) <= config.cache_tombstone_ttl_s
    # a version the delete replaced cannot come back, even with a greater binlog version
    assert write_one(sink, change("update", 900, v="zombie", counters={"eu": 2})) == 0
    assert write_one(sink, change("insert", 901, v="zombie", counters={"eu": 2, "us": 1})) == 0
    assert decode_row(client.hgetall(key)) is None
    # a re-insert on top of the tombstone's clock
    assert write_one(sink, change("insert", 150, v="back", counters={"eu": 3, "us": 1})) == 1
    assert decode_row(client.hgetall(key)) == {"id": 1, "v": "back"} and client.ttl(key) == -1


def test_read_through_fills_only_absent_keys_or_over_an_older_clock(clock_sink) -> None:
    config, sink, client, key = clock_sink
    writer, table = sink.writer, config.table("app", "items")

    def fill(k: str, counters: dict[str, int] | None, row: dict | None) -> int:
        pipe = writer.pipeline()
        writer.queue_read_through(pipe, k, counters, row, table)
        return pipe.execute()[0]

    assert fill(key, {"eu": 2}, {"id": 1, "v": "db"}) == 1                      # absent
    assert client.hgetall(key) == {b"_v": b"", b"_c": b'{"eu":2}', b"id": b"1", b"v": b'"db"'}
    assert fill(key, {"eu": 2}, {"id": 1, "v": "equal"}) == 0                   # equal
    assert fill(key, {"eu": 1}, {"id": 1, "v": "before"}) == 0                  # before
    assert fill(key, {"us": 1}, {"id": 1, "v": "concurrent"}) == 0              # concurrent
    assert fill(key, None, {"id": 1, "v": "no clock"}) == 0                     # no clock: only into an absent key
    assert fill(key, {"eu": 3}, {"id": 1, "v": "after"}) == 1                   # strictly after
    assert decode_row(client.hgetall(key)) == {"id": 1, "v": "after"}

    # the sink's version of the same clock (or an older one) does not replace the fill; a newer one does
    assert write_one(sink, change("update", 100, v="after", counters={"eu": 3})) == 0
    assert write_one(sink, change("update", 110, v="sink", counters={"eu": 4})) == 1
    assert fill(key, {"eu": 3}, {"id": 1, "v": "stale read"}) == 0              # a fill that raced the sink loses

    # never over an entry without `_c`, whatever the clock
    assert write_one(sink, change("update", 120, v="unclocked")) == 1
    assert fill(key, {"eu": 99}, {"id": 1, "v": "x"}) == 0
    assert decode_row(client.hgetall(key)) == {"id": 1, "v": "unclocked"}

    # a missing row fills a tombstone with its clock; a clockless sink change replaces any fill ("" < _v)
    gone = f"{config.prefix}:app.items:[2]"
    assert fill(gone, {"eu": 5}, None) == 1
    assert client.hgetall(gone) == {b"_v": b"", b"_c": b'{"eu":5}', b"_deleted": b"1"}
    assert 0 < client.ttl(gone) <= config.cache_tombstone_ttl_s
    assert write_one(sink, change("insert", 1, key=2, v="older clock", counters={"eu": 4})) == 0
    assert write_one(sink, change("insert", 1, key=2, v="no clock")) == 1
    assert decode_row(client.hgetall(gone)) == {"id": 2, "v": "no clock"}


def test_rebuild_writes_each_rows_clock_and_verify_ignores_it(sandbox_config, unique, tmp_path) -> None:
    from cdcsync.tools.cache_rebuild import rebuild_cache
    from cdcsync.tools.verify import verify
    from cdcsync.tools.clock_init import init_region

    db, meta = f"crc_{unique}", f"crcm_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["us"], top={"meta_db": meta})
    with connect(config, "us") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute(f"CREATE TABLE {db}.loose (a INT, b INT)")                 # keyless: no clocks
        cur.execute(f"INSERT INTO {db}.items VALUES (1, 'before init')")      # no clock row: the empty clock
        cur.execute(f"INSERT INTO {db}.loose VALUES (1, 2)")
    try:
        init_region(config, "us")
        with connect(config, "us", db) as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO items VALUES (%s, %s)", [(2, "two"), (3, "three"), (5, "five")])
            cur.execute("UPDATE items SET name = 'three!' WHERE id = 3")
            cur.execute("UPDATE items SET name = 'one' WHERE id = 1")
            cur.execute("INSERT INTO items VALUES (6, 'gone')")
            cur.execute("DELETE FROM items WHERE id = 6")
        client = redis_client(config.region("us").redis)
        key = lambda i: f"{config.prefix}:{db}.items:[{i}]"
        # the sink already cached a later version of 5 (its clock after the database's), at a small `_v`
        client.hset(key(5), mapping={"_v": "0000000000.000000000001.00000000", "_c": '{"us":2}', "id": "5",
                                     "name": '"newer"'})

        assert rebuild_cache(config, "us") == {f"{db}.items": 4, f"{db}.loose": 1}
        assert client.hget(key(1), "_c") == b'{"us":1}'
        assert client.hget(key(2), "_c") == b'{"us":1}'
        assert client.hget(key(3), "_c") == b'{"us":2}'
        assert decode_row(client.hgetall(key(3))) == {"id": 3, "name": "three!"}
        assert client.hget(key(2), "_v") == client.hget(key(3), "_v") > b"0000000000.000000000001.00000000"
        assert decode_row(client.hgetall(key(5))) == {"id": 5, "name": "newer"}   # clock after the snapshot's: kept
        assert not client.exists(key(6))
        loose = [client.hgetall(k) for k in client.scan_iter(f"{config.prefix}:{db}.loose:*")]
        assert len(loose) == 1 and b"_c" not in loose[0] and b"_v" in loose[0]

        with connect(config, "us") as conn, conn.cursor() as cur:   # a row older than every clock: `{}`
            cur.execute(f"DELETE FROM {meta}.row_clocks WHERE db = %s AND pk = '1:2'", (db,))
        client.delete(key(2))
        rebuild_cache(config, "us", table=f"{db}.items")
        assert client.hget(key(2), "_c") == b"{}"

        # verify compares columns only: `_v`, `_c` are not columns; the one real difference is row 5
        report = verify(config, check_cache=True)
        assert report.tables and sum(t.cache_differences for t in report.tables) == 1, report.to_json()
        (diff,) = report.cache_details
        assert diff.key == key(5) and diff.kind == "differs"
        assert diff.columns == {"name": {"database": "five", "cache": "newer"}}
    finally:
        with connect(config, "us") as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"DROP DATABASE IF EXISTS {meta}")


def test_cached_clocks_equal_the_databases_row_clocks_end_to_end(sandbox_config, unique, tmp_path) -> None:
    """Real producers and sinks in two regions with the clock triggers: local writes, applied remote
    versions, deletes and a (most likely) conflict. Once settled, every cache entry holds its
    database's row, with a clock never after the database's; after a last write of every key, the
    cache's `_c` is exactly the row's `row_clocks` counters."""
    import orjson

    from consumers.cache.sink import cache_key, clock_json
    from cdcsync.tools.clock_init import init_region
    from schemas.vclock import Order, VectorClock
    from tests.conftest import create_database
    from tests.support.producer import pipeline
    from tests.support.verify import assert_verified

    regions = ["eu", "us"]
    db, meta = f"cce_{unique}", f"ccem_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=regions, sink={"batch_max_ms": 50}, top={"meta_db": meta}, snapshot="never")
    create_database(config, regions, db, "CREATE TABLE {db}.items (id INT PRIMARY KEY, v VARCHAR(20))")
    for region in regions:
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")

    def execute(region: str, *statements: str) -> None:
        with connect(config, region, db) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def rows(region: str) -> dict[int, str]:
        with connect(config, region, db) as conn, conn.cursor() as cur:
            cur.execute("SELECT id, v FROM items")
            return dict(cur.fetchall())

    def mismatches(region: str, exact: bool) -> list[tuple]:
        """(id, database clock, cached clock, database row, cached row) wherever the cache does not hold
        the database's row, or its clock is not the database's (`exact`) or is after or concurrent to it."""
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT pk, counters, deleted FROM {meta}.row_clocks WHERE db = %s AND tbl = 'items'", (db,))
            clocks = {int(pk.split(":", 1)[1]): (orjson.loads(c), bool(d)) for pk, c, d in cur.fetchall()}
        current = rows(region)
        assert set(current) <= set(clocks)                       # every row was written under the triggers
        client = redis_client(config.region(region).redis)
        found = []
        for key_id, (counters, deleted) in sorted(clocks.items()):
            stored = client.hgetall(cache_key(config.prefix, db, "items", [key_id]))
            expected = None if key_id not in current else {"id": key_id, "v": current[key_id]}
            cached = orjson.loads(stored[b"_c"]) if b"_c" in stored else None
            if cached is None or decode_row(stored) != expected or deleted != (expected is None):
                clock_ok = False
            elif exact:
                clock_ok = stored[b"_c"].decode() == clock_json(counters)
            else:
                clock_ok = VectorClock(counters=cached).compare(VectorClock(counters=counters)) in (Order.BEFORE,
                                                                                                   Order.EQUAL)
            if not clock_ok:
                found.append((key_id, counters, cached, expected, decode_row(stored)))
        return found

    def settled(exact: bool) -> None:
        for region in regions:
            try:
                wait_until(lambda r=region: not mismatches(r, exact), timeout=60, what=f"{region} cache settled")
            except AssertionError:
                raise AssertionError(f"{region}: (id, database clock, cached clock, database row, cached row): "
                                     f"{mismatches(region, exact)}") from None

    with pipeline(config, path, tmp_path):
        execute("eu", *(f"INSERT INTO items VALUES ({i}, 'eu{i}')" for i in range(1, 6)),
                "UPDATE items SET v = 'eu1b' WHERE id = 1", "UPDATE items SET v = 'eu2b' WHERE id = 2")
        wait_until(lambda: len(rows("us")) == 5, timeout=60, what="eu's rows in us")
        execute("us", "UPDATE items SET v = 'us2' WHERE id = 2", "UPDATE items SET v = 'us3' WHERE id = 3",
                "DELETE FROM items WHERE id = 4")
        # written in both regions before either sees the other's: most likely a conflict
        execute("eu", "INSERT INTO items VALUES (10, 'eu10') ON DUPLICATE KEY UPDATE v = 'eu10'")
        execute("us", "INSERT INTO items VALUES (10, 'us10') ON DUPLICATE KEY UPDATE v = 'us10'")
        wait_until(lambda: rows("eu") == rows("us") and rows("eu").get(2) == "us2", timeout=60,
                   what="databases converged")
        # a resolution that keeps the local value changes only the clock row: no change event, so
        # that cache keeps the local version's clock (before the merged one) until the next write
        settled(exact=False)
        with connect(config, "eu") as conn, conn.cursor() as cur:
            cur.execute(f"SELECT counters FROM {meta}.row_clocks WHERE db = %s AND pk = '1:2'", (db,))
            assert orjson.loads(cur.fetchone()[0]) == {"eu": 2, "us": 1}   # clocks crossed regions

        execute("us", "UPDATE items SET v = CONCAT(v, '+')")
        wait_until(lambda: rows("eu") == rows("us") and rows("eu").get(10, "").endswith("+"), timeout=60,
                   what="last writes converged")
        settled(exact=True)
        assert_verified(config, timeout=30)
