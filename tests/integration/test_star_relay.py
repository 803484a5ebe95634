"""A star hub forwards every clocked version it consumes, even one that leaves its database as it
was, and spokes take those forwarded versions instead of the hub's applied state. Without this a
spoke can miss a version that decided a conflict at the hub (a delete winning over a delete writes
no row event) and end with another value."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from cdcsync.tools.clock_init import init_region
from common import metadata_tables
from common.kafka import client_settings
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from consumers.db.forwarder import Forwarder
from consumers.db.sink import DatabaseSink
from consumers.metrics import SinkMetrics
from schemas.config import PipelineConfig
from tests.conftest import config_for_test, connect
from tests.integration.test_clocked_apply import NoDeadLetters, event, row
from tests.support.kafka import CreatingTopicIds, read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def star(sandbox_config: PipelineConfig, unique: str, tmp_path: Path):
    db = f"star_{unique}"
    config = config_for_test(sandbox_config, prefix=f"s{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             top={"topology": {"mode": "star", "hub": "eu"}})
    for region in ("eu", "ap"):
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
            metadata_tables.ensure(conn, config.meta_db)
        init_region(config, region)
    try:
        yield config, db
    finally:
        for region in ("eu", "ap"):
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
                cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
                cur.execute(f"DELETE FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s", (db,))


def sink(config: PipelineConfig, region: str, forwarder: Forwarder | None = None) -> DatabaseSink:
    return DatabaseSink(config, region, NoDeadLetters(), SinkMetrics(region, CollectorRegistry()),  # type: ignore[arg-type]
                        forwarder=forwarder, topic_ids=CreatingTopicIds(config.kafka_for(region)))


def with_prefix(record, config: PipelineConfig, region: str):
    """The test event as read from `region`'s topic of this test's prefix."""
    from dataclasses import replace

    return replace(record, topic=f"{config.prefix}.{region}.{record.event.db}.t")


def test_hub_forwards_a_version_that_leaves_its_row_unchanged(star) -> None:
    config, db = star
    kafka = config.kafka_for("eu")
    hub = sink(config, "eu", Forwarder(config, "eu", kafka, client_settings(kafka)))
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (3, 'x')")
        cur.execute("DELETE FROM t WHERE id = 3")           # the hub's own delete: a tombstone {eu: 2}
    # us's concurrent delete: the hub resolves it (delete over delete), and its row does not change.
    hub.write_batch([with_prefix(event(db, "us", "delete", 3, None, {"us": 1}, 10), config, "us")])
    hub.close()
    (forwarded,) = [r.message for r in read_all(kafka.bootstrap, [f"{config.prefix}.eu.{db}.t"], expect=1)]
    assert (forwarded.region, forwarded.origin, forwarded.op, forwarded.vclock.counters) == ("us", "us", "delete",
                                                                                            {"us": 1})


def test_spoke_takes_forwarded_versions_not_the_hubs_applied_state(star) -> None:
    config, db = star
    spoke = sink(config, "ap")
    forwarded = with_prefix(event(db, "us", "insert", 5, "from-us", {"us": 1}, 10), config, "eu")
    applied_state = with_prefix(event(db, "us", "update", 5, "hub-state", {"us": 1, "eu": 1}, 20), config, "eu")
    applied_state = type(applied_state).from_message(
        applied_state.topic, 0, applied_state.offset, applied_state.key,
        applied_state.payload.replace(b'"region":"us"', b'"region":"eu"'))
    spoke.write_batch([applied_state])
    assert row(connect(config, "ap"), db, 5) is None                 # skipped: relayed state
    spoke.write_batch([forwarded])
    assert row(connect(config, "ap"), db, 5) == "from-us"            # the version itself
    spoke.close()
