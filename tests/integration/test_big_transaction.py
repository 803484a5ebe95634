"""One huge local transaction goes out as it pairs with its clock rows: the producer's memory stays
flat, it logs its progress, and every row change is published once with its clock (issue 11: an
850k-row transaction took the producer to ~6 GB with no log line for 95 s). `bench/big_transaction.py`
runs the same with 1M rows."""

from __future__ import annotations

import re
import time

import orjson
import pytest

from cdcsync.tools.clock_init import init_region
from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, rss_mb, wait_until, write_config

pytestmark = pytest.mark.integration

ROWS = 50_000


def test_a_huge_transaction_streams_with_flat_memory_and_progress(sandbox_config, unique, tmp_path) -> None:
    db, prefix = f"big_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             progress_log_s=0.5)
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)")
    init_region(config, "eu")
    path = write_config(config, tmp_path / "cdcsync.toml")
    checkpoint = tmp_path / "checkpoints" / "eu" / "eu.json"
    with ProducerProcess(path, "eu", tmp_path / "producer.log") as producer:
        wait_until(lambda: checkpoint.exists(), what="first checkpoint")
        pid = producer.proc.pid  # type: ignore[union-attr]
        before = rss_mb(pid)
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            conn.begin()
            cur.execute(f"INSERT INTO t SELECT seq, CONCAT('row-', seq) FROM seq_1_to_{ROWS}")
            conn.commit()
            cur.execute("SELECT @@gtid_binlog_pos")
            gtid = cur.fetchone()[0]
        peak, deadline = before, time.monotonic() + 180
        while orjson.loads(checkpoint.read_bytes())["gtid_state"] != gtid:   # every event acknowledged
            assert producer.alive() and time.monotonic() < deadline, producer.output()
            peak = max(peak, rss_mb(pid))
            time.sleep(0.02)
        records = read_all(config.kafka.bootstrap, [f"{prefix}.eu.{db}.t"], expect=ROWS, timeout_s=120)
        assert producer.terminate() == 0, producer.output()
    # Buffered whole, 50k messages held ~350 MB more; streamed, the window holds a few.
    assert peak - before < 60, f"RSS grew from {before:.0f} MB to {peak:.0f} MB"
    progress = re.findall(rf"transaction {re.escape(gtid)} open for \d+ s: (\d+) row changes so far \(now {db}\.t\)",
                          producer.output())
    assert f"transaction {gtid} committed: {ROWS} row changes published" in producer.output()
    assert len(progress) >= 2 and [int(n) for n in progress] == sorted(int(n) for n in progress)
    messages = [r.message for r in records]
    assert len(messages) == ROWS and {m.pk["id"] for m in messages} == set(range(1, ROWS + 1))
    assert all(m.vclock is not None and m.vclock.counters == {"eu": 1} for m in messages)
    assert [m.txn_index for m in messages if m.txn_last] == [ROWS - 1]
    assert {m.txn_id for m in messages} == {gtid}
