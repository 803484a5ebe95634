"""A broker stall during the topic id lookup must not leave a marker without the topic id
(docs/reliability.md, "a replay after the broker stall could not be proved"). Real MariaDB and the
sandbox's Tansu broker, stopped with SIGSTOP while the database sink applies a batch: the sink retries
the batch (rolled back) until the broker answers, writes the marker with the topic's id, and a later
replay of the partition is then proven by that id and skipped, not refused."""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from common import metadata_tables
from common.kafka import client_settings
from consumers.db.sink import DatabaseSink
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from consumers.topic_ids import TopicIds
from deploy.local import Sandbox
from schemas.codec import encode
from tests.conftest import config_for_test, connect

pytestmark = pytest.mark.integration

LOOKUP_S = 1.0      # the lookup's timeout, shorter than the tests default


class NoDeadLetters:
    def publish(self, letters) -> None:
        assert not letters, letters


class StalledOnce(TopicIds):
    """The real lookup; the first one asked while the broker is stopped resumes the broker when it ends
    (whatever it returned), so the stall always covers exactly that lookup, however slow the machine."""

    stopped: int | None = None
    stalled = 0

    def _describe(self, topic: str) -> str | None:
        try:
            return super()._describe(topic)
        finally:
            if self.stopped is not None:
                os.kill(self.stopped, signal.SIGCONT)
                self.stopped, self.stalled = None, self.stalled + 1


def record(topic: str, db: str, offset: int) -> SourceRecord:
    """A change of us that no source history can compare (no GTID, as a snapshot row or a hub's
    forwarded version): only the topic id can prove its replay."""
    event = {"schema_version": 1, "kind": "change", "region": "us", "origin": "us", "server_id": 2, "gtid": None,
             "binlog_file": "binlog.000001", "binlog_pos": 4, "txn_id": "s", "ts_us": 0, "db": db, "table": "t",
             "txn_index": 0, "txn_last": True, "op": "insert", "pk": {"id": offset}, "before": None,
             "after": {"id": offset, "v": offset}, "types": {"id": "int", "v": "int"}, "vclock": None}
    return SourceRecord.from_message(topic, 0, offset, f"[{offset}]".encode(), encode(event))


def test_a_stall_during_the_topic_id_lookup_leaves_no_marker_without_the_id(
        sandbox: Sandbox, sandbox_config, unique, tmp_path, caplog) -> None:
    db = f"tis_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"], sink={"retry_max_attempts": 60, "retry_base_ms": 100,
                                                         "retry_max_ms": 500})
    topic = f"{config.prefix}.us.{db}.t"
    settings = client_settings(config.kafka_for("eu"))
    admin = AdminClient(settings)
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(10)
    topic_id = str(admin.describe_topics(TopicCollection([topic]))[topic].result(10).topic_id)
    conn = connect(config, "eu")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    metadata_tables.ensure(conn, config.meta_db)
    metrics = SinkMetrics("eu", CollectorRegistry())
    # ttl 0: every batch asks the broker, as the 30 s cache does once it has expired in a long stall
    lookups = StalledOnce(settings, ttl_s=0.0, timeout_s=LOOKUP_S)
    sink = DatabaseSink(config, "eu", NoDeadLetters(), metrics, topic_ids=lookups)  # type: ignore[arg-type]

    def marker() -> tuple:
        with connect(config, "eu") as c, c.cursor() as cur:
            cur.execute(f"SELECT applied_offset, source_topic_id, applied_count FROM {config.meta_db}.apply_marker "
                        f"WHERE source_topic = %s AND source_partition = 0", (topic,))
            return cur.fetchone()

    try:
        sink.write_batch([record(topic, db, offset) for offset in range(6)])
        assert marker()[:2] == (5, topic_id)

        pid = sandbox.pid("broker")
        assert pid is not None
        lookups.stopped = pid
        os.kill(pid, signal.SIGSTOP)         # resumed by the first lookup that ran during the stall
        try:
            with caplog.at_level(logging.WARNING, logger="common.retry"):
                sink.write_batch([record(topic, db, 6)])      # its topic id is asked during the stall
        finally:
            os.kill(pid, signal.SIGCONT)
        assert lookups.stalled == 1 and lookups.stopped is None
        assert marker()[:2] == (6, topic_id)             # retried until answered: the marker has the id
        assert any("no answer from the cluster" in r.getMessage() for r in caplog.records), caplog.text

        # The group lost its partition before committing: the next member replays from offset 5.
        applied_count = marker()[2]
        sink.write_batch([record(topic, db, 5), record(topic, db, 6)])   # proven by the topic id: skipped
        assert marker() == (6, topic_id, applied_count)
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {db}.t")
            assert cur.fetchone() == (7,)
    finally:
        sink.close()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.apply_marker WHERE source_topic = %s", (topic,))
        conn.close()
        for future in admin.delete_topics([topic]).values():
            future.result(10)


def test_a_stall_longer_than_the_retry_attempts_is_waited_out(sandbox: Sandbox, sandbox_config, unique,
                                                               tmp_path, caplog) -> None:
    """Seed 5001 of the nemesis soak: the broker stopped for 50 s while ap's database sink looked up a
    topic id; its 8 attempts of a 5 s lookup ran out in ~40 s and it exited. Here (short timeouts, the
    same shape): 3 attempts of a 1 s lookup last ~3 s; the broker stays stopped for 6 s. The batch
    must be applied once the broker is back, the outage logged on every retry."""
    db = f"tiw_{unique}"
    config = config_for_test(sandbox_config, prefix=f"w{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"], sink={"retry_max_attempts": 3, "retry_base_ms": 100,
                                                         "retry_max_ms": 500})
    topic = f"{config.prefix}.us.{db}.t"
    admin = AdminClient(client_settings(config.kafka_for("eu")))
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(10)
    conn = connect(config, "eu")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    metadata_tables.ensure(conn, config.meta_db)
    lookups = TopicIds(client_settings(config.kafka_for("eu")), ttl_s=0.0, timeout_s=LOOKUP_S)
    sink = DatabaseSink(config, "eu", NoDeadLetters(), SinkMetrics("eu", CollectorRegistry()),  # type: ignore[arg-type]
                        topic_ids=lookups)
    pid = sandbox.pid("broker")
    assert pid is not None
    try:
        os.kill(pid, signal.SIGSTOP)
        timer = threading.Timer(6.0, os.kill, (pid, signal.SIGCONT))
        timer.start()
        try:
            with caplog.at_level(logging.INFO, logger="common.retry"):
                sink.write_batch([record(topic, db, 0)])      # before the fix: TopicIdUnavailable after ~3 s
        finally:
            timer.cancel()
            os.kill(pid, signal.SIGCONT)
        waits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("broker unreachable for")]
        assert len(waits) >= 3, caplog.text
        assert any(r.getMessage().startswith("the broker answered again after") for r in caplog.records)
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {db}.t")
            assert cur.fetchone() == (1,)
    finally:
        sink.close()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.apply_marker WHERE source_topic = %s", (topic,))
        conn.close()
        for future in admin.delete_topics([topic]).values():
            future.result(10)
