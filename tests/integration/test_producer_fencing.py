"""One producer per region: a second refuses in one line and never fights the first; after `kill -9`
of the holder a new producer starts at once (producers/fence.py)."""

from __future__ import annotations

import pytest

from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def _rows(config, topic: str) -> set[int]:
    return {r.message.pk["id"] for r in read_all(config.kafka.bootstrap, [topic], idle_s=2.0, timeout_s=60)}


def test_second_producer_refuses_and_kill9_frees_the_region(sandbox_config, unique, tmp_path) -> None:
    db, prefix = f"fn_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             checkpoint_interval_ms=100)
    path = write_config(config, tmp_path / "cdcsync.toml")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    topic = f"{prefix}.eu.{db}.t"
    first = ProducerProcess(path, "eu", tmp_path / "first.log").start()
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, what="first checkpoint")

    second = ProducerProcess(path, "eu", tmp_path / "second.log").start()
    assert second.wait(30) == 3
    lines = second.output().strip().splitlines()
    assert len(lines) == 1, second.output()
    assert "another producer is already running for this region" in lines[0]
    assert f"cdcsync.producer.{prefix}.eu" in lines[0]

    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1), (2)")
    wait_until(lambda: _rows(config, topic) == {1, 2}, timeout=60, what="the first producer publishing")
    assert first.alive()

    first.kill9()
    third = ProducerProcess(path, "eu", tmp_path / "third.log").start()
    wait_until(lambda: "resuming from checkpoint" in third.output(), timeout=30, what="the new producer resuming")
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (3)")
    wait_until(lambda: _rows(config, topic) == {1, 2, 3}, timeout=60, what="the new producer publishing")
    assert third.terminate() == 0, third.output()
    assert "another producer" not in third.output()
