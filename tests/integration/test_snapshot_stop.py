"""SIGINT during a snapshot is acknowledged at once and stops it at a chunk boundary (exit 0, no
checkpoint); the next start takes the snapshot again and every row reaches the topic. A deleted
checkpoint is named in one WARNING before the new snapshot (producers/service.py)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration

ROWS = 20_000


def test_sigint_mid_snapshot_then_restart_publishes_every_row(sandbox_config, unique, tmp_path) -> None:
    db, prefix = f"ss_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="initial",
                             snapshot_chunk_rows=2)   # 10,000 SELECTs: a snapshot of seconds
    path = write_config(config, tmp_path / "cdcsync.toml")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL)")
        cur.execute(f"INSERT INTO {db}.t SELECT seq, CONCAT('row-', seq) FROM {db}.seq_1_to_{ROWS}")
    checkpoint = tmp_path / "checkpoints" / "eu" / "eu.json"
    topic = f"{prefix}.eu.{db}.t"

    first = ProducerProcess(path, "eu", tmp_path / "first.log").start()
    wait_until(lambda: f"created topic {topic}" in first.output(), timeout=60, what="the snapshot under way")
    time.sleep(0.3)
    first.proc.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    assert first.wait(10) == 0, first.output()
    assert time.monotonic() - signalled < 3.0, first.output()
    out = first.output()
    assert "SIGINT received: stopping at the next snapshot chunk" in out
    assert "no checkpoint written: the next start takes the snapshot again" in out
    assert f"snapshot of {db}.t:" not in out and "snapshot done" not in out, "the snapshot was not interrupted"
    assert not checkpoint.exists()

    second = ProducerProcess(path, "eu", tmp_path / "second.log").start()
    wait_until(checkpoint.exists, timeout=120, what="the restarted snapshot's checkpoint")
    assert f"no checkpoint found at {checkpoint}: taking a new snapshot" in second.output()
    assert f"snapshot of {db}.t: {ROWS} rows" in second.output()
    ids = {r.message.pk["id"] for r in read_all(config.kafka.bootstrap, [topic], idle_s=3.0, timeout_s=120)}
    assert ids == set(range(1, ROWS + 1))
    assert second.terminate() == 0, second.output()

    # A restart with the checkpoint in place resumes without the warning; with it deleted, it warns again.
    third = ProducerProcess(path, "eu", tmp_path / "third.log").start()
    wait_until(lambda: "resuming from checkpoint" in third.output(), timeout=30, what="the resume")
    assert "no checkpoint found" not in third.output()
    assert third.terminate() == 0
