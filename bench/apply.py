"""Apply benchmark: the database and cache sinks against bare client loops doing the same writes.

    .venv/bin/python bench/apply.py [--rows N] [--runs K]

Starts its own two-region sandbox. N change events (inserts from region `eu`, a realistic
six-column row) are published once to `<prefix>.eu.bench.orders`. Then, in the same run:

- db, bare: PyMySQL multi-row `INSERT ... ON DUPLICATE KEY UPDATE` of the same rows into region
  `us`, in batches of `sink.batch_max_events`, one commit per batch, starting from the same wire
  values (converting them to query parameters is timed, as the sink must do it too);
- db, sink: the database sink's real loop (`SinkRunner.step`: consume from Kafka, decode, fold,
  marker-first transaction, commit offsets) applying the N events into the emptied table;
- db_clocked, sink: the same with every event carrying a vector clock, so the sink also locks and
  reads each row and its `row_clocks` row, decides, and writes the clock (the conflict path's cost);
- cache, bare: a redis-py pipeline of one SET per row (the row serialized to JSON, timed),
  executed per batch;
- cache, sink: the cache sink's real loop writing the same rows (Lua compare-and-set). A cache sink
  applies its own region's changes, so both cache runs are in region `eu`, the events' region (a
  cache sink of `us` would skip every one of them as a star hub's forwarded version).

Each sink run uses a fresh consumer group; its clock starts when the first records arrive, so the
group join (a broker property) is not measured. Best of K runs after a warm-up. Prints one JSON
line per sink: {"sink", "bare_rows_per_s", "sink_rows_per_s", "ratio"} (db and db_clocked against the
same bare upsert).
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from pathlib import Path

import orjson
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Running, Stopwatch, connect, emit, progress, repeat, sandbox  # noqa: E402
from common import metadata_tables  # noqa: E402
from common.kafka import TopicCreator, client_settings  # noqa: E402
from consumers.db.params import to_db_param  # noqa: E402
from consumers.dlq import DeadLetterPublisher  # noqa: E402
from consumers.metrics import SinkMetrics  # noqa: E402
from consumers.runner import SinkRunner  # noqa: E402
from consumers.source import KafkaSource  # noqa: E402
from schemas.config import PipelineConfig, parse_config  # noqa: E402
from schemas.version import SCHEMA_VERSION  # noqa: E402

DB, TABLE, SOURCE, TARGET = "bench", "orders", "eu", "us"
TYPES = {"id": "bigint", "customer_id": "int", "amount": "decimal(12,2)", "status": "varchar(16)",
         "note": "varchar(64)", "created_at": "datetime(6)"}
_groups = itertools.count()


def bench_config(base: PipelineConfig) -> PipelineConfig:
    data = base.model_dump(mode="python")
    data["prefix"] = "benchapply"
    data["tables"] = {f"{DB}.{TABLE}": {"cache_format": "json"}}
    for name, region in data["regions"].items():
        region["mysql"]["password"] = base.regions[name].mysql.password.get_secret_value()
    return parse_config(data)


def make_rows(n: int) -> list[dict]:
    rng = random.Random(42)
    statuses = ["new", "paid", "shipped", "cancelled"]
    return [{"id": i, "customer_id": rng.randint(1, 50_000), "amount": f"{rng.uniform(1, 5000):.2f}",
             "status": rng.choice(statuses), "note": f"order {i} for customer", "created_at":
             f"2026-11-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{(i * 37) % 1_000_000:06d}"}
            for i in range(1, n + 1)]


def publish_events(config: PipelineConfig, rows: list[dict], clocked: bool = False) -> str:
    topic = f"{config.prefix}.{SOURCE}.{DB}.{TABLE}" + ("_clocked" if clocked else "")
    kafka = config.kafka_for(SOURCE)
    TopicCreator(kafka).ensure(topic)
    producer = Producer({**client_settings(kafka), "enable.idempotence": True, "linger.ms": 20})
    for i, row in enumerate(rows):
        event = {"schema_version": SCHEMA_VERSION, "kind": "change", "region": SOURCE, "origin": SOURCE,
                 "server_id": 1, "gtid": f"1-1-{i + 10}", "binlog_file": "binlog.000001", "binlog_pos": 1000 + i,
                 "txn_id": f"1-1-{i + 10}", "ts_us": 1_795_000_000_000_000, "db": DB, "table": TABLE,
                 "txn_index": 0, "txn_last": True, "op": "insert", "pk": {"id": row["id"]}, "before": None,
                 "after": row, "types": TYPES,
                 "vclock": {"counters": {SOURCE: 1}, "hlc_us": 1_795_000_000_000_000 + i} if clocked else None}
        producer.produce(topic, orjson.dumps(event), orjson.dumps([row["id"]]))
        if i % 5000 == 0:
            producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("events not acknowledged")
    return topic


def reset_target(config: PipelineConfig, topic: str) -> None:
    with connect(config, TARGET) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {DB}.{TABLE} (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, "
                    "amount DECIMAL(12,2) NOT NULL, status VARCHAR(16) NOT NULL, note VARCHAR(64) NOT NULL, "
                    "created_at DATETIME(6) NOT NULL)")
        cur.execute(f"TRUNCATE TABLE {DB}.{TABLE}")
        metadata_tables.ensure(conn, config.meta_db)
        cur.execute(f"DELETE FROM {config.meta_db}.apply_marker WHERE source_topic = %s", (topic,))
        cur.execute(f"DELETE FROM {config.meta_db}.row_clocks WHERE db = %s AND tbl = %s", (DB, TABLE))


def bare_db(config: PipelineConfig, rows: list[dict], batch: int, topic: str):
    """Starts from the same wire rows the sink receives: converting them is part of the job."""
    columns = list(TYPES)

    def run(watch: Stopwatch) -> int:
        reset_target(config, topic)
        with connect(config, TARGET) as conn, conn.cursor() as cur:
            conn.autocommit(False)
            watch.start()
            for start in range(0, len(rows), batch):
                chunk = [[to_db_param(row[c], TYPES[c]) for c in columns] for row in rows[start:start + batch]]
                one = "(" + ", ".join(["%s"] * len(columns)) + ")"
                sql = (f"INSERT INTO {DB}.{TABLE} ({', '.join(columns)}) VALUES {', '.join([one] * len(chunk))} "
                       f"ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in columns))
                cur.execute(sql, [v for row in chunk for v in row])
                conn.commit()
            watch.stop()
        return len(rows)
    return run


def sink_run(config: PipelineConfig, kind: str, n: int, topic: str, before: callable):
    name = SOURCE if kind == "cache" else TARGET     # a cache sink applies its own region's changes
    region = config.region(name)

    def run(watch: Stopwatch) -> int:
        before()
        metrics = SinkMetrics(name, CollectorRegistry())
        kafka = config.kafka_for(name)
        dead = DeadLetterPublisher(client_settings(kafka), f"{config.prefix}.{name}.dlq", region=name, sink=kind)
        if kind == "db":
            from consumers.db.sink import DatabaseSink
            sink = DatabaseSink(config, TARGET, dead, metrics)
        else:
            from consumers.cache.sink import CacheSink
            sink = CacheSink(config, name, metrics)
        runner: SinkRunner
        source = KafkaSource(client_settings(kafka), f"bench-{kind}-{next(_groups)}",
                             session_timeout_ms=region.sink.session_timeout_ms,
                             on_revoke=lambda parts: runner.on_revoke(parts))
        runner = SinkRunner(source=source, sink=sink, dead_letters=dead, metrics=metrics,
                            batch_max_events=region.sink.batch_max_events, batch_max_ms=region.sink.batch_max_ms,
                            batch_linger_ms=region.sink.batch_linger_ms,
                            commit_interval_ms=region.sink.commit_interval_ms,
                            busy_batch_events=region.sink.busy_batch_events)
        source.subscribe([topic])
        first = []
        while not first:                          # the group join is not what we measure
            first = source.consume(region.sink.batch_max_events, 0.2)
        watch.start()
        runner._pending.extend(first)
        done = runner.flush()
        while done < n:
            done += runner.step()
        watch.stop()
        written = getattr(sink, "last_written", None)
        progress(f"    {kind} sink: {runner.batches} batches" + ("" if written is None else
                                                                 f", last batch wrote {written} keys"))
        source.close()
        sink.close()
        return done
    return run


def bare_cache(config: PipelineConfig, rows: list[dict], batch: int):
    from common.redis_connect import redis_client

    client = redis_client(config.region(SOURCE).redis)

    def run(watch: Stopwatch) -> int:
        client.flushdb()
        watch.start()
        for start in range(0, len(rows), batch):
            pipe = client.pipeline(transaction=False)
            for row in rows[start:start + batch]:     # serializing the row is part of the job
                pipe.set(f"bare:{DB}.{TABLE}:[{row['id']}]", orjson.dumps(row))
            pipe.execute()
        watch.stop()
        return len(rows)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with sandbox([SOURCE, TARGET]) as running:
        run_all(running, args.rows, args.runs)


def run_all(running: Running, n: int, runs: int) -> None:
    config = bench_config(running.config)
    rows = make_rows(n)
    batch = config.region(TARGET).sink.batch_max_events
    progress(f"publishing {n} change events")
    topic = publish_events(config, rows)
    clocked_topic = publish_events(config, rows, clocked=True)
    others = {k: v for k, v in running.server_pids().items()
              if k.startswith(TARGET) or k == "broker" or k == f"{SOURCE}/redis-server"}
    from common.redis_connect import redis_client

    flush_cache = redis_client(config.region(SOURCE).redis).flushdb
    results = []
    db_bare = repeat("db bare upsert", bare_db(config, rows, batch, topic), runs=runs, others=others)
    db_sink = repeat("db sink", sink_run(config, "db", n, topic, lambda: reset_target(config, topic)), runs=runs,
                     others=others)
    results.append({"sink": "db", "bare_rows_per_s": round(db_bare.best_rate, 1),
                    "sink_rows_per_s": round(db_sink.best_rate, 1),
                    "ratio": round(db_sink.best_rate / db_bare.best_rate, 3)})
    db_clocked = repeat("db sink, clocked events", sink_run(config, "db", n, clocked_topic,
                                                             lambda: reset_target(config, clocked_topic)),
                        runs=runs, others=others)
    results.append({"sink": "db_clocked", "bare_rows_per_s": round(db_bare.best_rate, 1),
                    "sink_rows_per_s": round(db_clocked.best_rate, 1),
                    "ratio": round(db_clocked.best_rate / db_bare.best_rate, 3)})
    cache_bare = repeat("cache bare SET pipeline", bare_cache(config, rows, batch), runs=runs, others=others)
    cache_sink = repeat("cache sink", sink_run(config, "cache", n, topic, flush_cache), runs=runs, others=others)
    results.append({"sink": "cache", "bare_rows_per_s": round(cache_bare.best_rate, 1),
                    "sink_rows_per_s": round(cache_sink.best_rate, 1),
                    "ratio": round(cache_sink.best_rate / cache_bare.best_rate, 3)})
    for timing in (db_bare, db_sink, db_clocked, cache_bare, cache_sink):
        progress(timing.describe())
    emit(results)


if __name__ == "__main__":
    main()
