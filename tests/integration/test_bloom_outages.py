"""`cdcsync bloom` outlives its MySQL server going away (a restart; the nemesis's kill-mariadb):
it logs one line when proofs stop and one when they resume, keeps running, and its filters still
hold every key, including one written after the restart (docs/lookup.md)."""

from __future__ import annotations

import pytest

from consumers.cache.bloom.store import BloomStore
from consumers.cache.sink import redis_client
from deploy.local import Sandbox
from tests.conftest import config_for_test, connect, create_database
from tests.support.convergence.bloom_check import bloom_problems
from tests.support.producer import CdcsyncProcess, ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def test_the_maintainer_outlives_a_mariadb_restart(sandbox: Sandbox, sandbox_config, unique, tmp_path) -> None:
    db = f"bo_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path, regions=["eu"],
                             snapshot="never", heartbeat_s=1)
    create_database(config, ["eu"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    path = write_config(config, tmp_path / "cdcsync.toml")
    producer = ProducerProcess(path, "eu", tmp_path / "producer.log").start()
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=60, what="eu checkpoint")
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
