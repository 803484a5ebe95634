"""CacheReader and the Bloom filters against real servers: no false negatives (right after an
insert, across reader and maintainer restarts and a rebuild), penetration counted on the database
side, and read-through write-backs that never replace what the cache sink wrote."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from consumers.cache.bloom.maintainer import BloomMaintainer
from consumers.cache.bloom.store import BloomStore
from consumers.cache.lookup_metrics import FilterMetrics, LookupMetrics
from consumers.cache.reader import CacheReader
from consumers.cache.sink import redis_client
from schemas.config import PipelineConfig
from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import CdcsyncProcess, ProducerProcess, SinkProcess, wait_until, write_config

pytestmark = pytest.mark.integration

REGION = "eu"


def lookup_config(base: PipelineConfig, unique: str, tmp: Path, **lookup: object) -> tuple[PipelineConfig, str]:
    db = f"lk_{unique}"
    config = config_for_test(base, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp, regions=[REGION],
                             checkpoint_interval_ms=20, heartbeat_s=0.1,
                             top={"lookup": {"freshness_wait_ms": 5000, **lookup}})
    return config, db


def reader(config: PipelineConfig) -> CacheReader:
    return CacheReader(config, REGION, metrics=LookupMetrics(REGION, CollectorRegistry()))


class RunningMaintainer:
    """A BloomMaintainer on a thread of the test process; `restart` stops it and starts a new one."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.maintainer: BloomMaintainer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> BloomMaintainer:
        self.maintainer = BloomMaintainer(self.config, REGION, metrics=FilterMetrics(REGION, CollectorRegistry()))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self.maintainer

    def _run(self) -> None:
        assert self.maintainer is not None
        try:
            self.maintainer.run()
        except BaseException as err:  # surfaced by the test through last_error
            self.maintainer.last_error = err

    def stop(self) -> None:
        if self.maintainer is not None and self.thread is not None:
            self.maintainer.request_stop()
            self.thread.join(30)
            assert not self.thread.is_alive()

    def restart(self) -> BloomMaintainer:
        self.stop()
        return self.start()


@contextmanager
def pipeline(config: PipelineConfig, tmp: Path, *, cache_sink: bool = False,
             maintainer: bool = True) -> Iterator[RunningMaintainer]:
    """The region's producer (and cache sink) as subprocesses, the maintainer in-process (unless not)."""
    path = write_config(config, tmp / "c.toml")
    procs = [ProducerProcess(path, REGION, tmp / "producer.log").start()]
    if cache_sink:
        procs.append(SinkProcess(path, REGION, "cache", tmp / "cache.log").start())
    running = RunningMaintainer(config)
    try:
        wait_until((tmp / "checkpoints" / REGION / f"{REGION}.json").exists, timeout=60, what="producer checkpoint")
        if maintainer:
            running.start()
        yield running
    finally:
        running.stop()
        for proc in procs:
            if proc.alive():
                proc.terminate()


def wait_ready(running: RunningMaintainer, table: str, timeout: float = 60) -> BloomStore:
    m = running.maintainer
    assert m is not None
    wait_until(lambda: m.store.current(table) is not None and m.proofs > 0 or m.last_error is not None,
               timeout=timeout, what=f"filter of {table} and a freshness proof")
    assert m.last_error is None, m.last_error
    return m.store


def com_select(config: PipelineConfig) -> int:
    with connect(config, REGION) as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Com_select'")
        return int(cur.fetchone()[1])


def test_lookup_right_after_insert_commits_finds_the_row(sandbox_config, unique, tmp_path) -> None:
    config, db = lookup_config(sandbox_config, unique, tmp_path)
    create_database(config, [REGION], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))",
                    "INSERT INTO {db}.t VALUES " + ", ".join(f"({i}, 'v{i}')" for i in range(100)))
    table = f"{db}.t"
    with pipeline(config, tmp_path) as running, reader(config) as r, connect(config, REGION, db) as conn:
        wait_ready(running, table)
        assert r.get(table, 5) == {"id": 5, "v": "v5"}
        layers = []
        for k in range(1000, 1040):
            with conn.cursor() as cur:
                cur.execute("INSERT INTO t VALUES (%s, %s)", (k, f"new{k}"))   # autocommit: committed here
            answer = r.lookup_many(table, [k])[0]
            assert answer.row == {"id": k, "v": f"new{k}"}, (k, answer)
            layers.append(answer.layer)
        # The filter had not seen these inserts yet: the database answered, because the filter could
        # not prove it covered the lookup's start (or the key was already in it: `filter_positive`).
        assert "db_hit" in layers
        # A key that never existed is answered absent by the filter once a proof covers the lookup.
        answers = r.lookup_many(table, list(range(5000, 5200)))
        assert all(a.row is None for a in answers)
        assert sum(a.layer == "filter_rejected" for a in answers) >= 190, [a.layer for a in answers]
        assert running.maintainer.last_error is None

        # One maintainer per region: a second one does not start while the first holds the lease.
        other = BloomMaintainer(config, REGION, metrics=FilterMetrics(REGION, CollectorRegistry()), lease_wait_s=1)
        with pytest.raises(RuntimeError, match="lease"):
            other.start()
        other.close()

        # The operator's view of the same thing.
        result = subprocess.run([sys.executable, "-m", "cdcsync", "lookup", "--config", str(tmp_path / "c.toml"),
                                 "--region", REGION, "--table", table, "--key", "1000", "--key", "777777",
                                 "--explain"], capture_output=True, text=True, timeout=60)
        lines = [orjson.loads(line) for line in result.stdout.splitlines()]
        assert result.returncode == 3, result.stderr              # 3: some key was not found
        assert lines[0]["found"] and lines[0]["row"] == {"id": 1000, "v": "new1000"}
        assert lines[0]["layer"] in ("cache_hit", "db_hit")
        assert lines[1] == {**lines[1], "key": 777777, "found": False, "row": None}
        assert lines[1]["layer"] in ("filter_rejected", "db_miss")


def test_absent_keys_rarely_reach_the_database(sandbox_config, unique, tmp_path) -> None:
    """100k lookups of keys that never existed: at most fp_rate * 100k * 1.5 SELECTs on the server.
    The maintainer runs as `cdcsync bloom`, as in production, and exits 0 on SIGTERM."""
    fp_rate = 0.01
    config, db = lookup_config(sandbox_config, unique, tmp_path, fp_rate=fp_rate, headroom=1.0)
    create_database(config, [REGION], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    with connect(config, REGION, db) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, i) for i in range(5000)])
    table = f"{db}.t"
    with pipeline(config, tmp_path, maintainer=False) as _, reader(config) as r, \
            CdcsyncProcess(["bloom"], tmp_path / "c.toml", REGION, tmp_path / "bloom.log") as bloom:
        store = r.store
        wait_until(lambda: store.current(table) is not None and store.fresh_us() > 0 or not bloom.alive(),
                   timeout=60, what="the filter and a proof from `cdcsync bloom`")
        assert bloom.alive(), bloom.output()
        assert r.get(table, 10) == {"id": 10, "v": 10}        # table metadata loaded before counting
        before = com_select(config)
        absent = 0
        for start in range(1_000_000, 1_100_000, 5000):
            absent += sum(row is None for row in r.get_many(table, list(range(start, start + 5000))))
        queries = com_select(config) - before
        assert absent == 100_000
        print("db queries for 100k absent keys:", queries)
        assert queries <= fp_rate * 100_000 * 1.5, queries
        assert queries >= fp_rate * 100_000 * 0.5, queries   # the counter does see this reader
        stats = store.stats(table)
        assert stats is not None and stats.rejected >= 100_000 - queries * 2
        assert stats.observed_fp_rate is not None and stats.observed_fp_rate <= fp_rate * 1.5
        assert bloom.terminate() == 0, bloom.output()


def test_no_false_negatives_across_churn_restarts_and_rebuild(sandbox_config, unique, tmp_path) -> None:
    """Random inserts, deletes and re-inserts while a reader looks every key up after each step; the
    reader and the maintainer restart, and the filter is rebuilt and swapped, in the middle."""
    config, db = lookup_config(sandbox_config, unique, tmp_path, rebuild_stale_ratio=0.05, check_interval_s=0.5)
    create_database(config, [REGION], db, "CREATE TABLE {db}.t (a VARCHAR(10), b INT, v INT, PRIMARY KEY (a, b))")
    universe = [[f"k{i % 7}", i] for i in range(60)]
    existing = {tuple(k) for k in universe[:20]}
    with connect(config, REGION, db) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, %s, 0)", sorted(existing))
    table = f"{db}.t"
    rng = random.Random(5)
    with pipeline(config, tmp_path, cache_sink=True) as running, connect(config, REGION, db) as conn:
        store = wait_ready(running, table)
        first_gen = store.current(table).gen
        r = reader(config)
        seen_layers: set[str] = set()
        for step in range(60):
            key = tuple(rng.choice(universe))
            with conn.cursor() as cur:
                if key in existing and rng.random() < 0.6:
                    cur.execute("DELETE FROM t WHERE a = %s AND b = %s", key)
                    existing.discard(key)
                elif key not in existing:
                    cur.execute("INSERT INTO t VALUES (%s, %s, %s)", (*key, step))
                    existing.add(key)
                else:
                    cur.execute("UPDATE t SET v = %s WHERE a = %s AND b = %s", (step, *key))
            answers = r.lookup_many(table, [list(k) for k in universe])   # right after the commit
            for k, answer in zip(universe, answers):
                # Never a false negative. (A deleted row may still be served from the cache until the
                # cache sink applies the delete: the cache is eventually consistent for positives.)
                if tuple(k) in existing:
                    assert answer.row is not None, (step, k, answer)
                seen_layers.add(answer.layer)
            if step == 20:
                r.close()
                r = reader(config)                                    # reader restart
            if step == 35:
                running.restart()                                     # maintainer restart: resumes from Redis
        # Deletes passed rebuild_stale_ratio: the filter was rebuilt and swapped while lookups ran.
        wait_until(lambda: store.current(table).gen != first_gen, timeout=30, what="a rebuilt filter")
        expected = [tuple(k) in existing for k in universe]
        wait_until(lambda: [a.row is not None for a in r.lookup_many(table, [list(k) for k in universe])] == expected,
                   timeout=30, what="lookups to agree with the database once the cache sink caught up")
        r.close()
        assert running.maintainer.last_error is None
        assert {"filter_rejected", "cache_hit"} <= seen_layers, seen_layers

        # The table is no longer captured: its changes stop, so a restarted maintainer drops its filter.
        running.stop()
        narrowed = config_for_test(config, prefix=config.prefix, include=[f"{db}.other"], tmp=tmp_path,
                                   regions=[REGION])
        maintainer = BloomMaintainer(narrowed, REGION, metrics=FilterMetrics(REGION, CollectorRegistry()))
        maintainer.start()
        maintainer.close()
        assert store.current(table) is None and table not in store.tables()


@pytest.mark.parametrize("clocks", [True, False], ids=["with-clocks", "without-clocks"])
def test_read_through_never_overwrites_a_newer_sink_value(sandbox_config, unique, tmp_path, clocks) -> None:
    from consumers.cache.sink import cache_key, decode_row
    from cdcsync.tools.clock_init import init_region

    config, db = lookup_config(sandbox_config, unique, tmp_path)
    create_database(config, [REGION], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    if clocks:
        init_region(config, REGION)
    with connect(config, REGION, db) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, 1)", [(1,), (2,)])
    table, client = f"{db}.t", redis_client(config.region(REGION).redis)
    key1, key2 = (cache_key(config.prefix, db, "t", [i]) for i in (1, 2))

    class Interleaved(CacheReader):
        """Between its database read and its write-back, the row changes and the sink caches it."""
        def _select(self, info, pks):
            found = super()._select(info, pks)
            if pks == [[1]]:
                with connect(config, REGION, db) as conn, conn.cursor() as cur:
                    cur.execute("UPDATE t SET v = 2 WHERE id = 1")
                wait_until(lambda: decode_row(client.hgetall(key1)) == {"id": 1, "v": 2}, what="the sink's v=2")
            return found

    with pipeline(config, tmp_path, cache_sink=True) as running:
        wait_ready(running, table)
        wait_until(lambda: client.exists(key1) and client.exists(key2), timeout=30, what="the sink's entries")
        client.delete(key1, key2)                   # evicted: the next lookups read through
        r = Interleaved(config, REGION, metrics=LookupMetrics(REGION, CollectorRegistry()))
        assert r.get(table, 1) == {"id": 1, "v": 1}               # what it read, before the update
        assert decode_row(client.hgetall(key1)) == {"id": 1, "v": 2}   # the sink's newer value stayed
        assert r.get(table, 2) == {"id": 2, "v": 1}
        written = client.hgetall(key2)                             # an absent key is written back
        assert decode_row(written) == {"id": 2, "v": 1}
        # With its clock; without clocks, none (or the empty clock, if another test created row_clocks).
        assert orjson.loads(written.get(b"_c", b"{}")) == ({REGION: 1} if clocks else {})
        # ... and the sink's next change of that row replaces the read-through entry.
        with connect(config, REGION, db) as conn, conn.cursor() as cur:
            cur.execute("UPDATE t SET v = 3 WHERE id = 2")
        wait_until(lambda: r.get(table, 2) == {"id": 2, "v": 3}, timeout=30, what="the sink to replace the entry")
        r.close()


def test_write_back_compare_and_set(sandbox_config, unique) -> None:
    """The write-back rule the reader relies on, on a real Redis: absent, or holding a clock strictly
    before ours."""
    from consumers.cache.sink import CacheWriter
    from schemas.config import TableConfig

    writer = CacheWriter(sandbox_config, REGION)
    client = writer.client
    row = {"id": 1, "v": "read"}

    def attempt(existing: dict | None, clock: dict | None) -> bool:
        key = f"t{unique}:db.t:[{random.randrange(10**9)}]"
        if existing is not None:
            client.hset(key, mapping={"v": '"sink"', **existing})
        pipe = client.pipeline(transaction=False)
        writer.queue_read_through(pipe, key, clock, row, TableConfig())
        return pipe.execute()[0] == 1

    assert attempt(None, None) and attempt(None, {"eu": 1})                       # absent: written
    assert attempt({"_c": '{"eu": 1}'}, {"eu": 2})                                # strictly older: replaced
    assert attempt({"_c": '{}'}, {"eu": 1})
    assert not attempt({"_c": '{"eu": 2}'}, {"eu": 2})                            # equal: kept
    assert not attempt({"_c": '{"eu": 3}'}, {"eu": 2})                            # newer: kept
    assert not attempt({"_c": '{"eu": 1, "us": 2}'}, {"eu": 2, "us": 1})          # concurrent: kept
    assert not attempt({"_c": '{"eu": 1}', "_deleted": "1"}, {"eu": 1})           # the delete's tombstone: kept
    assert not attempt({"_v": "0000000001.000000000004.00000000"}, {"eu": 9})     # no clock to compare: kept
    assert not attempt({"_c": '{"eu": 1}'}, None)                                 # we have no clock: kept


def _calls(client, *commands: str) -> dict[str, int]:
    stats = client.info("commandstats")
    return {c: stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in commands}


def test_a_cache_hit_is_one_command_in_either_format_and_a_tombstone_is_a_miss(sandbox_config, unique,
                                                                              tmp_path) -> None:
    """`get` answers a cached row with one command (HGET of `_json`, or HGETALL of a `hash` table)
    and `get_many` with one pipeline, no lookup script; both count cache hits. A tombstone, and a
    row cached in the other format, still go through the full lookup."""
    from consumers.cache.sink import CacheWriter, cache_key
    from schemas.config import TableConfig

    db = f"lk_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=[REGION], top={"tables": {f"{db}.j": {"cache_format": "json"}}})
    create_database(config, [REGION], db, "CREATE TABLE {db}.j (id INT PRIMARY KEY, v VARCHAR(8))",
                    "CREATE TABLE {db}.h (id INT PRIMARY KEY, v VARCHAR(8))",
                    "INSERT INTO {db}.j VALUES (1, 'db'), (3, 'db')", "INSERT INTO {db}.h VALUES (1, 'db')")
    writer = CacheWriter(config, REGION)
    pipe = writer.client.pipeline(transaction=False)
    for name in ("j", "h"):
        table = config.table(db, name)
        writer.queue_set(pipe, cache_key(config.prefix, db, name, [1]), "1", {"id": 1, "v": "cached"}, table)
        writer.queue_delete(pipe, cache_key(config.prefix, db, name, [2]), "1")
    # Row 3 of the json table cached in the hash format (as before a cache_format change).
    writer.queue_set(pipe, cache_key(config.prefix, db, "j", [3]), "1", {"id": 3, "v": "old"}, TableConfig())
    pipe.execute()

    with reader(config) as r:
        for name, command in (("j", "hget"), ("h", "hgetall")):
            table = f"{db}.{name}"
            before = _calls(r.redis, command, "evalsha")
            assert r.get(table, 1) == {"id": 1, "v": "cached"}
            assert r.get_many(table, [1, 1]) == [{"id": 1, "v": "cached"}] * 2
            after = _calls(r.redis, command, "evalsha")
            assert after == {command: before[command] + 3, "evalsha": before["evalsha"]}
            assert r.metrics.lookups.labels(REGION, table, "cache_hit")._value.get() == 3
            queries = r.db_queries
            assert r.get(table, 2) is None and r.get_many(table, [2, 1]) == [None, {"id": 1, "v": "cached"}]
            assert r.db_queries == queries + 2                      # the tombstone was a miss both times
            assert r.metrics.lookups.labels(REGION, table, "cache_hit")._value.get() == 4
        assert r.get(f"{db}.j", 3) == {"id": 3, "v": "old"}
        assert r.get_many(f"{db}.j", [3]) == [{"id": 3, "v": "old"}]
        assert r.metrics.lookups.labels(REGION, f"{db}.j", "cache_hit")._value.get() == 6
