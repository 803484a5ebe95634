"""kill -9 at random points under a steady write load loses nothing and keeps per-key commit order."""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration

KEYS = 25


class Writer(threading.Thread):
    """Single-row upserts, one transaction each; records (key, value) after each commit returns."""

    def __init__(self, config, db: str) -> None:
        super().__init__(daemon=True)
        self.config, self.db = config, db
        self.committed: list[tuple[int, int]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with connect(self.config, "eu", self.db) as conn, conn.cursor() as cur:
                value = 0
                while not self.stop.is_set():
                    value += 1
                    key = value % KEYS
                    cur.execute("INSERT INTO work (k, v) VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                                (key, value))
                    self.committed.append((key, value))
                    time.sleep(0.002)
        except BaseException as err:  # surfaced by the test
            self.error = err


def test_kill9_resume_loses_nothing(sandbox_config, unique, tmp_path) -> None:
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    db, prefix = f"k9_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             checkpoint_interval_ms=100)
    path = write_config(config, tmp_path / "cdcsync.toml")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.work (k INT PRIMARY KEY, v BIGINT NOT NULL)")
    log = tmp_path / "producer.log"
    producer = ProducerProcess(path, "eu", log).start()
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, what="first checkpoint")
    writer = Writer(config, db)
    writer.start()
    kills = 0
    try:
        for _ in range(4):
            time.sleep(rnd.uniform(0.5, 2.0))
            producer.kill9()
            kills += 1
            time.sleep(rnd.uniform(0.0, 0.5))
            producer = ProducerProcess(path, "eu", log).start()
        time.sleep(1.0)
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.error is None, writer.error
    assert kills == 4 and len(writer.committed) > 200, f"seed={seed}: too little load to prove anything"

    topic = f"{prefix}.eu.{db}.work"
    records = read_all(config.kafka.bootstrap, [topic], idle_s=4.0, timeout_s=120)
    assert producer.terminate() == 0, producer.output()

    seen: dict[int, list[int]] = {}
    partitions: dict[int, set[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        key, value = r.message.pk["k"], r.message.after["v"]
        partitions.setdefault(key, set()).add(r.partition)
        if value not in seen.setdefault(key, []):
            seen[key].append(value)     # first occurrence; later ones are re-deliveries
    expected: dict[int, list[int]] = {}
    for key, value in writer.committed:
        expected.setdefault(key, []).append(value)
    missing = {k: sorted(set(v) - set(seen.get(k, []))) for k, v in expected.items()}
    assert not any(missing.values()), f"seed={seed}: committed changes missing from Kafka: {missing}"
    assert seen == expected, f"seed={seed}: per-key order differs from commit order"
    assert all(len(p) == 1 for p in partitions.values())
    duplicates = len(records) - len(writer.committed)
    print(f"seed={seed} committed={len(writer.committed)} published={len(records)} re-deliveries={duplicates}")
