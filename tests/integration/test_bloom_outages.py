"""`cdcsync bloom` outlives its MySQL server going away (a restart; the nemesis's kill-mariadb):
it logs one line when proofs stop and one when they resume, keeps running, and its filters still
hold every key, including one written after the restart. A consumer that stops fetching is named
and recreated (docs/lookup.md, "When the stream stalls")."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from consumers.cache.bloom.store import BloomStore
from common.redis_connect import redis_client
from deploy.local import Sandbox
from schemas.config import PipelineConfig
from tests.conftest import config_for_test, connect, create_database
from tests.support.convergence.bloom_check import bloom_problems
from tests.support.producer import CdcsyncProcess, ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def _one_region_with_a_producer(sandbox_config, db: str, unique: str, tmp_path, *, check_interval_s: float | None = None
                                ) -> tuple[PipelineConfig, Path, ProducerProcess]:
    """eu alone, table `db.t`, its producer running and checkpointed: (config, config file, producer)."""
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path, regions=["eu"],
                             snapshot="never", heartbeat_s=1)
    if check_interval_s is not None:
        config = config.model_copy(update={"lookup": config.lookup.model_copy(
            update={"check_interval_s": check_interval_s})})
    create_database(config, ["eu"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    path = write_config(config, tmp_path / "cdcsync.toml")
    producer = ProducerProcess(path, "eu", tmp_path / "producer.log").start()
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=60, what="eu checkpoint")
    return config, path, producer


def test_the_maintainer_outlives_a_mariadb_restart(sandbox: Sandbox, sandbox_config, unique, tmp_path) -> None:
    db = f"bo_{unique}"
    config, path, producer = _one_region_with_a_producer(sandbox_config, db, unique, tmp_path)
    bloom = CdcsyncProcess(["bloom"], path, "eu", tmp_path / "bloom.log").start()
    client = redis_client(config.region("eu").redis)
    store = BloomStore(client, config.prefix, "eu")
    try:
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
        wait_until(lambda: store.fresh_us() > 0, timeout=60, what="a first freshness proof")

        sandbox.restart("eu/mariadbd")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (2)")
        wait_until(lambda: "proving freshness again" in bloom.output(), timeout=60, what="proofs resumed")
        assert bloom.alive(), bloom.output()
        assert bloom.output().count("cannot prove freshness") == 1, bloom.output()
        assert bloom_problems(config, db, timeout_s=60) == []
    finally:
        client.close()
    assert bloom.terminate() == 0, bloom.output()
    assert producer.terminate() == 0, producer.output()


def test_a_maintainer_whose_consumer_stops_fetching_says_so_and_recovers(sandbox_config, unique, tmp_path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The soak's stuck partitions (docs/reliability.md): records past the maintainer's position that
    its consumer never fetches. Here its real consumer is paused, on a real broker, so that it
    fetches nothing more; the next proof times out, names the partition and its positions, recreates
    the consumer at the stored positions, and proofs resume with the new key in the filter."""
    import threading

    from confluent_kafka import TopicPartition as KafkaTP
    from prometheus_client import CollectorRegistry

    from consumers.cache.bloom.maintainer import BloomMaintainer
    from consumers.cache.lookup_metrics import FilterMetrics

    caplog.set_level(logging.INFO, "consumers.cache.bloom.maintainer")
    db = f"bs_{unique}"
    config, path, producer = _one_region_with_a_producer(sandbox_config, db, unique, tmp_path)
    maintainer = BloomMaintainer(config, "eu", metrics=FilterMetrics("eu", CollectorRegistry()), proof_timeout_s=4)
    thread = threading.Thread(target=maintainer.run, daemon=True)
    client = redis_client(config.region("eu").redis)
    store = BloomStore(client, config.prefix, "eu")
    try:
        thread.start()
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
        wait_until(lambda: store.fresh_us() > 0 and maintainer._next, timeout=60, what="a first freshness proof")

        maintainer._consumer.pause([KafkaTP(t, p) for t, p in maintainer._next])     # it fetches no more
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (2)")
        written = store.now_us()
        wait_until(lambda: store.fresh_us() >= written, timeout=60, what="a proof after the consumer stopped fetching")
        lines = [r.getMessage() for r in caplog.records if "hold records past" in r.getMessage()]
        assert len(lines) == 1 and f"{config.prefix}.eu.{db}.t[" in lines[0], lines
        assert "recreating the Kafka consumer" in lines[0] and " of " in lines[0]
        assert thread.is_alive() and maintainer.last_error is None
        assert bloom_problems(config, db, timeout_s=60) == []
    finally:
        maintainer.request_stop()
        thread.join(30)
        client.close()
    assert not thread.is_alive()
    assert producer.terminate() == 0, producer.output()


def test_filters_lost_with_a_restarted_redis_are_built_again(sandbox: Sandbox, sandbox_config, unique,
                                                             tmp_path) -> None:
    """Redis restarted without persistence takes the filters (and the list of filtered tables) with
    it; the soak found a maintainer that never noticed. It now builds them again by itself."""
    db = f"br_{unique}"
    config, path, producer = _one_region_with_a_producer(sandbox_config, db, unique, tmp_path, check_interval_s=1.0)
    bloom = CdcsyncProcess(["bloom"], path, "eu", tmp_path / "bloom.log").start()
    try:
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1), (2)")
        assert bloom_problems(config, db, timeout_s=60) == []

        sandbox.restart("eu/redis-server")          # no persistence: it comes back empty
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (3)")
        assert bloom_problems(config, db, timeout_s=60) == [], bloom.output()
        assert "has no filter in Redis" in bloom.output()
        assert bloom.alive(), bloom.output()
    finally:
        assert bloom.terminate() == 0, bloom.output()
        assert producer.terminate() == 0, producer.output()
