"""Poison events land in the target region's dead-letter topic, the stream continues behind them, and
`cdcsync dlq replay` applies an entry once its cause is fixed.

Poison of every class: an undecodable payload and an unknown schema_version (produced straight into
a source change topic), a table missing in the target, a column missing in the target, and
constraints only the target has (a CHECK, and a UNIQUE key that collides with another row); the
bad-input matrix for both sinks (not JSON, not a change event, unknown version, a value of the wrong
type); and a poison flood, which stops a sink at `sink.max_consecutive_dead_letters`.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from cdcsync.tools.dlq_reader import DlqEntry, read_dead_letters
from common import metadata_tables
from common.kafka import TopicCreator, client_settings
from schemas.cache_layout import cache_key, decode_row
from common.redis_connect import redis_client
from consumers.db.sink import DatabaseSink
from consumers.dlq import DeadLetterPublisher
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from schemas.codec import decode, encode
from schemas.config import PipelineConfig
from schemas.topics import TopicNames
from tests.conftest import config_for_test, connect, create_database
from tests.support.kafka import CreatingTopicIds, read_all
from tests.support.producer import ProducerProcess, SinkProcess, pipeline, wait_until, write_config

pytestmark = pytest.mark.integration

SOURCE_TABLES = [
    "CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, qty INT NOT NULL)",
    "CREATE TABLE {db}.wide (id INT PRIMARY KEY, v VARCHAR(16) NOT NULL, extra VARCHAR(16) NULL)",
    "CREATE TABLE {db}.only_eu (id INT PRIMARY KEY, v VARCHAR(16) NOT NULL)",
]
TARGET_TABLES = [  # us: a CHECK and a UNIQUE key eu does not have, `wide` without `extra`, no `only_eu`
    "CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, qty INT NOT NULL, "
    "CONSTRAINT qty_not_negative CHECK (qty >= 0), UNIQUE KEY by_name (name))",
    "CREATE TABLE {db}.wide (id INT PRIMARY KEY, v VARCHAR(16) NOT NULL)",
]


def setup(sandbox_config: PipelineConfig, unique: str, tmp_path: Path) -> tuple[PipelineConfig, str, Path]:
    db = f"dq_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=("eu", "us"), sink={"batch_max_ms": 50, "schema_mismatch": "dead_letter"},
                             snapshot="never")
    create_database(config, ["eu"], db, *SOURCE_TABLES)
    create_database(config, ["us"], db, *TARGET_TABLES)
    return config, db, write_config(config, tmp_path / "cdcsync.toml")


def produce_raw(config: PipelineConfig, topic: str, messages: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    """Produce (key, value) pairs and return where each landed: (partition, offset)."""
    producer = Producer({**client_settings(config.kafka_for("eu")), "enable.idempotence": True, "acks": "all"})
    landed: dict[int, tuple[int, int]] = {}
    for n, (key, value) in enumerate(messages):
        producer.produce(topic, value, key,
                         on_delivery=lambda err, msg, n=n: landed.__setitem__(n, (msg.partition(), msg.offset())))
    assert producer.flush(30) == 0 and len(landed) == len(messages)
    return [landed[n] for n in range(len(messages))]


def raw_topic(bootstrap: str, topics: list[str]) -> dict[tuple[str, int, int], bytes]:
    """Every message of `topics` as it is on the broker, by (topic, partition, offset). Reads each
    partition to the broker's EOF (Tansu's ListOffsets answer can be short of the end)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        metadata = consumer.list_topics(timeout=10)
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in metadata.topics[t].partitions])
        pending = {(t, p) for t in topics for p in metadata.topics[t].partitions}
        found: dict[tuple[str, int, int], bytes] = {}

        def read() -> bool:
            for m in consumer.consume(500, 0.2):
                if m.error() is None:
                    found[(m.topic(), m.partition(), m.offset())] = m.value()
                elif m.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard((m.topic(), m.partition()))
            return not pending

        wait_until(read, timeout=30, interval=0, what="source topics read to their end")
        return found
    finally:
        consumer.close()


def items(config: PipelineConfig, region: str, db: str, table: str = "items") -> dict[int, tuple]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        return {r[0]: tuple(r[1:]) for r in cur.fetchall()}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cdcsync", *args], capture_output=True, text=True, timeout=180)


def dlq_list(path: Path, region: str) -> dict[str, dict]:
    result = cli("dlq", "list", "--config", str(path), "--region", region, "--json")
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {row["entry"]: row for row in rows}


def marker(config: PipelineConfig, topic: str, partition: int) -> tuple[int, int, str]:
    with connect(config, "us") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT applied_offset, applied_count, origin FROM `{config.meta_db}`.apply_marker "
                    f"WHERE source_topic = %s AND source_partition = %s", (topic, partition))
        row = cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), row[2]


def by_kind(entries: list[DlqEntry]) -> dict[str, list[DlqEntry]]:
    result: dict[str, list[DlqEntry]] = {}
    for entry in entries:
        result.setdefault(entry.kind, []).append(entry)
    return result


def pk_of(entry: DlqEntry) -> int:
    return decode(entry.payload).pk["id"]  # type: ignore[union-attr]


def test_poison_is_dead_lettered_the_stream_continues_and_replay_applies_after_the_fix(
        sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    prefix = config.prefix
    items_topic, wide_topic, only_topic = (f"{prefix}.eu.{db}.{t}" for t in ("items", "wide", "only_eu"))
    TopicCreator(config.kafka_for("eu")).ensure(items_topic)
    undecodable = b"\x00\x01 this is not a change event"
    future = encode({"schema_version": 99, "kind": "change", "region": "eu", "origin": "eu", "db": db,
                     "table": "items", "op": "insert", "pk": {"id": 3}, "after": {"id": 3, "hologram": True}})

    with pipeline(config, path, tmp_path, sinks=("db",)):
        # (a), (b): keyed like row 3, so they sit on row 3's partition, before its insert.
        poison_at = produce_raw(config, items_topic, [(b"[3]", undecodable), (b"[3]", future)])
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (1, 'apple', 5), (2, 'pear', -1)")     # (e) 2 breaks the CHECK
            cur.execute("INSERT INTO only_eu VALUES (1, 'x'), (2, 'y')")                # (c) no such table in us
            cur.execute("INSERT INTO wide VALUES (1, 'a', 'e1'), (2, 'b', 'e2')")       # (d) no `extra` in us
            cur.execute("INSERT INTO items VALUES (3, 'plum', 2), (10, 'a', 1), (11, 'b', 1)")
        wait_until(lambda: items(config, "us", db) == {1: ("apple", 5), 3: ("plum", 2), 10: ("a", 1), 11: ("b", 1)},
                   timeout=90, what="good items applied in us")
        wait_until(lambda: len(read_dead_letters(config, "us")) >= 7, timeout=60, interval=1.0, what="seven dead letters")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("UPDATE items SET name = 'a' WHERE id = 11")   # (e) us: row 10 already has name 'a'
            cur.execute("UPDATE items SET qty = 3 WHERE id = 2")       # good, on the poison row's own partition
            cur.execute("INSERT INTO items VALUES (4, 'fig', 7)")
        expected_items = {1: ("apple", 5), 2: ("pear", 3), 3: ("plum", 2), 4: ("fig", 7), 10: ("a", 1),
                          11: ("b", 1)}
        wait_until(lambda: items(config, "us", db) == expected_items, timeout=90, what="items after the poison")
        wait_until(lambda: len(read_dead_letters(config, "us")) >= 8, timeout=60, interval=1.0, what="eight dead letters")

        # -- every poison event is in us's dead-letter topic, with why and exactly where from ---------------------
        entries = read_dead_letters(config, "us")
        kinds = by_kind(entries)
        assert {k: len(v) for k, v in kinds.items()} == {"undecodable": 1, "unsupported_version": 1, "constraint": 2,
                                                         "missing_table": 2, "missing_column": 2}, entries
        source = raw_topic(config.kafka.bootstrap, [items_topic, wide_topic, only_topic])
        for entry in entries:
            assert entry.region == "us" and entry.sink == "db" and entry.error and not entry.replayed
            assert entry.dead_at_us is not None
            assert entry.source is not None and source[entry.source] == entry.payload, entry
        [bad_bytes], [bad_version] = kinds["undecodable"], kinds["unsupported_version"]
        assert (bad_bytes.source_partition, bad_bytes.source_offset) == poison_at[0]
        assert bad_bytes.payload == undecodable and bad_bytes.key == b"[3]" and "not JSON" in bad_bytes.error
        assert (bad_version.source_partition, bad_version.source_offset) == poison_at[1]
        assert "schema_version 99" in bad_version.error
        assert all(e.source_topic == items_topic for e in kinds["undecodable"] + kinds["unsupported_version"])
        check, collision = sorted(kinds["constraint"], key=pk_of)
        assert pk_of(check) == 2 and check.error.startswith("4025") and decode(check.payload).after["qty"] == -1
        assert pk_of(collision) == 11 and collision.error.startswith("1062")
        assert sorted(map(pk_of, kinds["missing_table"])) == [1, 2]
        assert {e.source_topic for e in kinds["missing_table"]} == {only_topic}
        assert all(e.error.startswith("1146") for e in kinds["missing_table"])
        assert sorted(map(pk_of, kinds["missing_column"])) == [1, 2]
        assert {e.source_topic for e in kinds["missing_column"]} == {wide_topic}
        assert all(e.error.startswith("1054") and "extra" in e.error for e in kinds["missing_column"])
        # the stream went on behind the poison, on the same partitions
        later = {decode(v).pk["id"]: (t, p, o) for (t, p, o), v in source.items()
                 if t == items_topic and (t, p, o) not in {e.source for e in entries}}
        assert later[3][1] == poison_at[0][0] and later[3][2] > poison_at[1][1]
        assert later[2][1] == check.source_partition and later[2][2] > check.source_offset
        assert read_dead_letters(config, "eu") == []          # nothing came back to eu

        # -- show -------------------------------------------------------------------------------------------------
        shown = cli("dlq", "show", "--config", str(path), "--region", "us", str(bad_bytes.id))
        assert shown.returncode == 0, shown.stderr
        detail = orjson.loads(shown.stdout)
        assert detail["payload_encoding"] == "base64" and detail["kind"] == "undecodable"
        wide_entries = sorted(kinds["missing_column"], key=pk_of)
        shown = orjson.loads(cli("dlq", "show", "--config", str(path), "--region", "us", str(wide_entries[0].id)).stdout)
        assert shown["payload_encoding"] == "json" and shown["payload"]["after"] == {"id": 1, "v": "a", "extra": "e1"}
        assert shown["source_topic"] == wide_topic and shown["error"].startswith("1054")

        # -- replay before the fix: fails again, stays in the DLQ, unmarked -----------------------------------------
        ids = [str(e.id) for e in wide_entries]
        again = cli("dlq", "replay", "--config", str(path), "--region", "us", *ids)
        assert again.returncode == 1, again.stdout + again.stderr
        assert "2 not applied" in again.stdout and "missing_column" in again.stdout
        assert not any(dlq_list(path, "us")[i]["replayed"] for i in ids)

        # -- fix the cause, replay: applied through the sink, marker first, marker offset kept -------------------
        before = {e.source_partition: marker(config, wide_topic, e.source_partition) for e in wide_entries}
        with connect(config, "us", db) as conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE wide ADD COLUMN extra VARCHAR(16) NULL")
        done = cli("dlq", "replay", "--config", str(path), "--region", "us", *ids)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2 applied, 0 not applied" in done.stdout
        assert items(config, "us", db, "wide") == {1: ("a", "e1"), 2: ("b", "e2")}
        for partition, (offset, count, _) in before.items():
            after = marker(config, wide_topic, partition)
            assert after[0] == offset and after[1] > count and after[2] == "eu"
        listed = dlq_list(path, "us")
        assert all(listed[i]["replayed"] and listed[i]["replayed_at_us"] for i in ids)
        assert sum(1 for row in listed.values() if row["replayed"]) == 2
        # loop prevention: us's producer published the replayed rows with origin eu, so eu never re-applies them
        replayed = read_all(config.kafka.bootstrap, [f"{prefix}.us.{db}.wide"], expect=2)
        assert sorted((r.message.pk["id"], r.message.origin) for r in replayed) == [(1, "eu"), (2, "eu")]

        # -- --all: what is fixed applies, what is not stays, and the command says so ----------------------------
        with connect(config, "us", db) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE only_eu (id INT PRIMARY KEY, v VARCHAR(16) NOT NULL)")
        everything = cli("dlq", "replay", "--config", str(path), "--region", "us", "--all")
        assert everything.returncode == 1, everything.stdout + everything.stderr
        assert "2 applied, 4 not applied" in everything.stdout
        assert items(config, "us", db, "only_eu") == {1: ("x",), 2: ("y",)}
        listed = dlq_list(path, "us")
        replayed_kinds = sorted(row["kind"] for row in listed.values() if row["replayed"])
        assert replayed_kinds == ["missing_column", "missing_column", "missing_table", "missing_table"]
        assert items(config, "us", db) == expected_items       # the failed replays changed nothing
        table = cli("dlq", "list", "--config", str(path), "--region", "us", "--limit", "3")
        assert table.returncode == 0 and "8 entries" not in table.stderr and "3 entries" in table.stderr


def test_a_unique_key_collision_with_another_row_is_dead_lettered(sandbox_config, unique, tmp_path) -> None:
    config, db, _ = setup(sandbox_config, unique, tmp_path)
    topic = f"{config.prefix}.eu.{db}.items"
    dlq_topic = TopicNames.of(config).dlq("us")
    kafka = config.kafka_for("us")
    TopicCreator(kafka).ensure(dlq_topic)
    with connect(config, "us") as conn:
        metadata_tables.ensure(conn, config.meta_db)

    def record(offset: int, pk: int, name: str) -> SourceRecord:
        event = {"schema_version": 1, "kind": "change", "region": "eu", "origin": "eu", "server_id": 1,
                 "gtid": f"1-1-{offset + 1}", "binlog_file": "b.000001", "binlog_pos": offset, "txn_id": "t",
                 "ts_us": 0, "db": db, "table": "items", "txn_index": 0, "txn_last": True, "op": "insert",
                 "pk": {"id": pk}, "before": None, "after": {"id": pk, "name": name, "qty": 1},
                 "types": {"id": "int", "name": "varchar(32)", "qty": "int"}}
        return SourceRecord.from_message(topic, 0, offset, f"[{pk}]".encode(), encode(event))

    sink = DatabaseSink(config, "us", DeadLetterPublisher(client_settings(kafka), dlq_topic, region="us", sink="db"),
                        SinkMetrics("us", CollectorRegistry()), topic_ids=CreatingTopicIds(config.kafka_for("us")))
    try:
        sink.write_batch([record(0, 10, "a")])
        sink.write_batch([record(1, 11, "a")])     # eu has no UNIQUE(name); us does
    finally:
        sink.close()
    assert items(config, "us", db) == {10: ("a", 1)}
    assert [e.kind for e in read_dead_letters(config, "us")] == ["constraint"]


def change_event(db: str, pk: int, after: dict, gtid_seq: int) -> bytes:
    """A well-formed insert envelope of `items` from eu, with whatever values `after` holds."""
    return encode({"schema_version": 1, "kind": "change", "region": "eu", "origin": "eu", "server_id": 1,
                   "gtid": f"0-1-{gtid_seq}", "binlog_file": "b.000001", "binlog_pos": gtid_seq, "txn_id": "raw",
                   "ts_us": 0, "db": db, "table": "items", "txn_index": 0, "txn_last": True, "op": "insert",
                   "pk": {"id": pk}, "before": None, "after": after,
                   "types": {"id": "int", "name": "varchar(32)", "qty": "int"}})


def cached(config: PipelineConfig, region: str, db: str, pk: int) -> dict | None:
    return decode_row(redis_client(config.region(region).redis).hgetall(
        cache_key(config.prefix, db, "items", [pk])))


def test_bad_input_is_dead_lettered_by_both_sinks_with_its_reason_and_the_stream_goes_on(
        sandbox_config, unique, tmp_path) -> None:
    """The bad-input matrix, consumer side: a payload that is not JSON, one that is JSON but not a
    change event, an unknown schema_version, and a valid envelope with a string in an INT column
    (`"three"`, and `"12"`, which a database would cast silently). eu's own topic is read by us's
    database sink and by eu's cache sink: each dead-letters all four, and applies what follows."""
    config, db, path = setup(sandbox_config, unique, tmp_path)
    topic = f"{config.prefix}.eu.{db}.items"
    TopicCreator(config.kafka_for("eu")).ensure(topic)
    bad = [b"\xff\xfe not json", b'{"hello": "world"}',
           encode({"schema_version": 7, "kind": "change", "db": db, "table": "items"}),
           change_event(db, 3, {"id": 3, "name": "plum", "qty": "three"}, 900),
           change_event(db, 3, {"id": 3, "name": "plum", "qty": "12"}, 901)]

    with pipeline(config, path, tmp_path, sinks=("db", "cache")):
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (1, 'apple', 5)")
        wait_until(lambda: items(config, "us", db) == {1: ("apple", 5)}, timeout=90, what="row 1 in us")
        poison_at = produce_raw(config, topic, [(b"[3]", value) for value in bad])
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (3, 'plum', 2)")   # behind the poison, on its partition
            cur.execute("UPDATE items SET qty = 6 WHERE id = 1")
        expected = {1: ("apple", 6), 3: ("plum", 2)}
        wait_until(lambda: items(config, "us", db) == expected, timeout=90, what="us past the poison")
        wait_until(lambda: cached(config, "eu", db, 3) == {"id": 3, "name": "plum", "qty": 2}
                   and cached(config, "eu", db, 1) == {"id": 1, "name": "apple", "qty": 6},
                   timeout=90, what="eu's cache past the poison")
        wait_until(lambda: len(read_dead_letters(config, "us")) >= 5 and len(read_dead_letters(config, "eu")) >= 5,
                   timeout=60, interval=1.0, what="five dead letters in us and in eu")

    source = raw_topic(config.kafka.bootstrap, [topic])
    [row3] = [(p, o) for (_, p, o), v in source.items() if (p, o) not in poison_at and decode(v).pk["id"] == 3]
    assert row3[0] == poison_at[0][0] and row3[1] > poison_at[-1][1]      # the insert came behind the poison
    for region, sink in (("us", "db"), ("eu", "cache")):
        entries = read_dead_letters(config, region)
        assert len(entries) == 5 and {e.sink for e in entries} == {sink}, entries
        by_offset = {(e.source_partition, e.source_offset): e for e in entries}
        assert set(by_offset) == set(poison_at)
        for (where, entry), payload in zip(sorted(by_offset.items()), bad):
            assert entry.payload == payload and entry.source_topic == topic and entry.key == b"[3]"
        not_json, not_event, version, three, twelve = (by_offset[w] for w in poison_at)
        assert (not_json.kind, not_event.kind) == ("undecodable", "undecodable")
        assert "not JSON" in not_json.error, not_json
        assert not_event.error == "payload is not a cdcsync message: a JSON object without schema_version (keys: hello)"
        assert version.kind == "unsupported_version" and "schema_version 7" in version.error
        assert (three.kind, twelve.kind) == ("wrong_type", "wrong_type")
        assert three.error == f"{db}.items: column 'qty' (after) is int, but the value is the JSON str 'three'"
        assert twelve.error == f"{db}.items: column 'qty' (after) is int, but the value is the JSON str '12'"
    assert items(config, "us", db) == expected                         # nothing else changed


def committed(config: PipelineConfig, region: str, sink: str, topic: str, partition: int) -> int | None:
    from cdcsync.tools.status import sink_group_lag

    lag = sink_group_lag(config, region, sink)
    assert lag.error is None, lag.error
    found = [p.committed for p in lag.partitions if (p.topic, p.partition) == (topic, partition)]
    return found[0] if found else None


@pytest.mark.parametrize(("sink", "region"), [("db", "us"), ("cache", "eu")])
def test_a_poison_flood_stops_the_sink_at_the_limit_and_commits_nothing_after_it(
        sandbox_config, unique, tmp_path, sink, region) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    data = config.model_dump(mode="python")
    for name, r in data["regions"].items():
        r["mysql"]["password"] = config.regions[name].mysql.password.get_secret_value()
        r["sink"]["max_consecutive_dead_letters"] = 5
    config = PipelineConfig.model_validate(data)
    path = write_config(config, tmp_path / "limited.toml")
    unlimited = data | {"regions": {n: r | {"sink": r["sink"] | {"max_consecutive_dead_letters": 0}}
                                    for n, r in data["regions"].items()}}
    unlimited_path = write_config(PipelineConfig.model_validate(unlimited), tmp_path / "unlimited.toml")
    topic = f"{config.prefix}.eu.{db}.items"
    TopicCreator(config.kafka_for("eu")).ensure(topic)

    def applied(pk: int) -> bool:
        return pk in items(config, "us", db) if sink == "db" else cached(config, "eu", db, pk) is not None

    producer = ProducerProcess(path, "eu", tmp_path / "producer-eu.log").start()
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=90, what="eu checkpoint")
    log = tmp_path / f"{sink}-{region}.log"
    consumer = SinkProcess(path, region, sink, log).start()
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (1, 'apple', 5)")
    wait_until(lambda: applied(1), timeout=90, what="row 1 applied")
    poison_at = produce_raw(config, topic, [(b"[3]", b"\x00 flood %d" % n) for n in range(20)])
    partition = poison_at[0][0]
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (3, 'plum', 2)")        # behind the flood, on its partition

    # -- stops with one line; nothing behind the dead letters it published is committed ---------------------------
    assert consumer.wait(90) == 1, consumer.output()
    lines = [line for line in consumer.output().splitlines() if "max_consecutive_dead_letters" in line]
    assert len(lines) == 1 and "Traceback" not in consumer.output(), consumer.output()
    assert f"{sink} sink of region {region}:" in lines[0] and "more than sink.max_consecutive_dead_letters = 5" \
        in lines[0] and "raise the limit" in lines[0] and "last reason: undecodable: payload is not JSON" in lines[0], \
        lines[0]
    dead = read_dead_letters(config, region)
    assert len(dead) <= 5 and all(e.kind == "undecodable" for e in dead)
    position = committed(config, region, sink, topic, partition)
    # None: nothing ever committed on that partition (row 1 went to another)
    assert position is None or position <= poison_at[len(dead)][1], (position, poison_at, dead)
    assert not applied(3)

    # -- a restart resumes inside the flood and stops again ------------------------------------------------------
    again = SinkProcess(path, region, sink, log).start()
    assert again.wait(90) == 1, again.output()
    assert len([line for line in again.output().splitlines() if "max_consecutive_dead_letters" in line]) == 2
    assert not applied(3) and len(read_dead_letters(config, region)) <= len(dead) + 5

    # -- with no limit, the whole flood is dead-lettered, and what follows it applies: nothing was lost ----------
    drained = SinkProcess(unlimited_path, region, sink, tmp_path / f"{sink}-{region}-drained.log").start()
    wait_until(lambda: applied(3), timeout=90, what="row 3 applied behind the flood")
    wait_until(lambda: {(e.source_partition, e.source_offset) for e in read_dead_letters(config, region)}
               == set(poison_at), timeout=60, interval=1.0, what="every flood message dead-lettered")
    assert drained.terminate() == 0, drained.output()
    assert producer.terminate() == 0, producer.output()
