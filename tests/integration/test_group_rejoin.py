"""A sink group never wedges, and a sink never sits silently without partitions (issue 11, the open
bug of the supervised soak: docs/reliability.md, "Found by the nemesis").

On the sandbox broker (Tansu 0.6) a member that sent LeaveGroup while a rebalance was in flight
stayed the group's leader for good: every later member's SyncGroup failed with
REBALANCE_IN_PROGRESS, and no sink of the group got a partition again. `cdcsync run` stopping its
children (a supervisor killed, a MariaDB restart) sent exactly that LeaveGroup.

- A sink stopped in the middle of a rebalance must not wedge its group: it is a static member
  (consumers/source.py) and leaves no LeaveGroup behind, so the next sink gets the partitions.
- A sink whose group is wedged anyway (here by a plain librdkafka consumer doing what the old sink
  did) must say so in one line and exit non-zero within its limit (consumers/assignment_watchdog.py),
  so a supervisor restarts it and `status` and the logs show why, instead of sitting unassigned.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def _rows(config, db: str, table: str) -> set[int]:
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {table}")
        return {row[0] for row in cur.fetchall()}


def _insert(config, db: str, table: str, *ids: int) -> None:
    with connect(config, "us", db) as conn, conn.cursor() as cur:
        for i in ids:
            cur.execute(f"INSERT INTO {table} VALUES ({i})")


def _setup(sandbox_config, unique: str, tmp_path: Path, session_timeout_ms: int, *, debug: bool = False):
    db = f"rj_{unique}"
    kafka = sandbox_config.kafka.model_dump(mode="python")
    if debug:   # librdkafka's group log, to see the sink's rejoin
        kafka["extra"] = {**kafka.get("extra", {}), "debug": "cgrp"}
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"], snapshot="never", top={"kafka": kafka},
                             sink={"batch_max_ms": 50, "session_timeout_ms": session_timeout_ms})
    create_database(config, ["eu", "us"], db, "CREATE TABLE {db}.t1 (id INT PRIMARY KEY)")
    path = write_config(config, tmp_path / "cdcsync.toml")
    ProducerProcess(path, "us", tmp_path / "producer.log").start()
    wait_until((tmp_path / "checkpoints" / "us" / "us.json").exists, timeout=60, what="us checkpoint")
    return config, db, path


def test_a_sink_stopped_mid_rebalance_leaves_its_group_usable(sandbox_config, unique, tmp_path) -> None:
    config, db, path = _setup(sandbox_config, unique, tmp_path, 8000, debug=True)
    first = SinkProcess(path, "eu", "db", tmp_path / "sink-1.log", "--log-level", "debug").start()
    _insert(config, db, "t1", 1)
    wait_until(lambda: _rows(config, db, "t1") == {1}, timeout=60, what="the first row applied")
    seen = len(first.output())
    # A new table is a new topic: the sink's subscription matches it and the sink rejoins its group.
    for region in ("eu", "us"):
        with connect(config, region, db) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t2 (id INT PRIMARY KEY)")
    _insert(config, db, "t2", 1)
    wait_until(lambda: "Joining group" in first.output()[seen:], timeout=30, interval=0.05,
               what="the sink rejoining its group for the new topic")
    # Stopped while its JoinGroup is in flight (the broker holds it about half a session timeout).
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait(60) == 0, first.output()[-3000:]

    second = SinkProcess(path, "eu", "db", tmp_path / "sink-2.log").start()
    _insert(config, db, "t1", 2, 3)
    _insert(config, db, "t2", 2)
    wait_until(lambda: _rows(config, db, "t1") == {1, 2, 3} and _rows(config, db, "t2") == {1, 2}, timeout=60,
               what=f"the next sink to get the partitions and apply the rows; its log:\n{second.output()[-2000:]}")
    assert second.terminate() == 0, second.output()


def _wedge(bootstrap: str, group: str, topics: list[str], new_topic: str) -> None:
    """What a dynamic member leaving mid-rebalance does to a Tansu group: join alone (so it leads),
    then close while the rejoin that a new topic causes is in flight."""
    rejoins: list[str] = []

    class Joins(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Joining group" in record.getMessage():
                rejoins.append(record.getMessage())

    log = logging.getLogger(f"wedge-{uuid.uuid4().hex[:6]}")
    log.addHandler(Joins())
    log.setLevel(logging.DEBUG)
    log.propagate = False
    assigned: list[object] = []
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                         "topic.metadata.refresh.interval.ms": 1000, "debug": "cgrp", "logger": log,
                         "partition.assignment.strategy": "cooperative-sticky"})
    consumer.subscribe([f"^{topics[0].rsplit('.', 1)[0]}\\..*"], on_assign=lambda c, ps: assigned.extend(ps))
    deadline = time.monotonic() + 60
    while not assigned and time.monotonic() < deadline:
        consumer.consume(10, 0.2)
    assert assigned, "the wedging consumer never got its partitions"
    joined = len(rejoins)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(new_topic, 3, 1)])[new_topic].result()
    while len(rejoins) == joined and time.monotonic() < deadline:
        consumer.consume(10, 0.1)
    assert len(rejoins) > joined, "the wedging consumer never rejoined"
    consumer.close()      # LeaveGroup while its JoinGroup is in flight


def test_a_sink_without_partitions_while_its_group_lags_says_so_and_exits(sandbox_config, unique,
                                                                           tmp_path) -> None:
    config, db, path = _setup(sandbox_config, unique, tmp_path, 2000)
    _insert(config, db, "t1", 1, 2, 3)        # lag for the group: nobody has applied these
    topic = f"{config.prefix}.us.{db}.t1"
    admin = AdminClient({"bootstrap.servers": config.kafka.bootstrap})
    wait_until(lambda: topic in admin.list_topics(timeout=10).topics, timeout=30, what="the change topic")
    group = f"{config.prefix}.eu.db"
    _wedge(config.kafka.bootstrap, group, [topic], f"{config.prefix}.us.{db}.zz")

    sink = SinkProcess(path, "eu", "db", tmp_path / "sink.log").start()
    started = time.monotonic()
    # The limit is ten session timeouts (20 s here), counted from when the group was seen stuck.
    code = sink.wait(90)
    assert code != 0 and time.monotonic() - started > 15, sink.output()[-3000:]
    lines = [line for line in sink.output().splitlines() if "no partition" in line]
    assert len(lines) == 1, sink.output()[-3000:]
    assert group in lines[0] and "lag" in lines[0] and "restart" in lines[0], lines[0]
    assert "Traceback" not in sink.output()
    assert _rows(config, db, "t1") == set()


def test_closing_a_sink_consumer_caught_in_a_rebalance_returns(sandbox_config, unique) -> None:
    """Destroying the client without consumer close, between a SyncGroup answer and the assignment
    handed to the application, waits forever in librdkafka 2.16: the soak's cache sink never exited
    on SIGTERM. `KafkaSource.close` must return all the same (the process exits without the client)."""
    from consumers.source import KafkaSource

    bootstrap, prefix = sandbox_config.kafka.bootstrap, f"t{unique}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(f"{prefix}.a", 3, 1)])[f"{prefix}.a"].result()
    rejoins: list[str] = []

    class Joins(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Joining group" in record.getMessage():
                rejoins.append(record.getMessage())

    log = logging.getLogger(f"close-{unique}")
    log.addHandler(Joins())
    log.setLevel(logging.DEBUG)
    log.propagate = False
    source = KafkaSource({"bootstrap.servers": bootstrap, "debug": "cgrp", "logger": log}, f"{prefix}.g",
                         session_timeout_ms=6000, on_revoke=lambda partitions: None)
    source.subscribe([f"^{prefix}\\..*"])
    deadline = time.monotonic() + 60
    while not source.assigned and time.monotonic() < deadline:
        source.consume(10, 0.2)
    assert source.assigned, "never assigned"
    joined = len(rejoins)
    admin.create_topics([NewTopic(f"{prefix}.b", 3, 1)])[f"{prefix}.b"].result()
    while len(rejoins) == joined and time.monotonic() < deadline:
        source.consume(10, 0.1)
    assert len(rejoins) > joined, "never rejoined for the new topic"
    time.sleep(3.5)     # not polling: the broker answers the JoinGroup (half a session), the SyncGroup follows
    closing = threading.Thread(target=source.close, kwargs={"timeout_s": 5.0}, daemon=True)
    closing.start()
    closing.join(20)
    assert not closing.is_alive(), "KafkaSource.close() hung in the middle of a rebalance"
