"""TRUNCATE writes no row events and fires no clock trigger: it is not replicated, and the producer
says so loudly (an error naming the table and the fix, and `cdcsync_producer_errors_total{kind="truncate"}`)
instead of passing it on quietly as if it had been."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from cdcsync.tools.clock_init import init_region
from deploy.local.processes import free_port
from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def test_truncate_of_a_replicated_table_is_reported_as_not_replicated(sandbox_config, unique: str,
                                                                      tmp_path: Path) -> None:
    db = f"trunc_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path, regions=["eu"])
    path = write_config(config, tmp_path / "cdcsync.toml")
    create_database(config, ["eu"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
    init_region(config, "eu")
    port = free_port()
    producer = ProducerProcess(path, "eu", tmp_path / "producer.log", "--metrics-port", str(port)).start()
    try:
        wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=90, what="checkpoint")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
            cur.execute("TRUNCATE TABLE t")
        wait_until(lambda: "is not replicated" in producer.output(), timeout=30, what="the TRUNCATE report")
        out = producer.output()
        assert f"TRUNCATE of {db}.t" in out and f"Use DELETE FROM {db}.t instead" in out
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'cdcsync_producer_errors_total{kind="truncate",region="eu"} 1.0' in metrics
        assert producer.terminate() == 0, producer.output()
    finally:
        if producer.alive():
            producer.kill9()
        with connect(config, "eu") as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.row_clocks WHERE db = %s", (db,))
