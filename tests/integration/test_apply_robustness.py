"""Nothing is lost or applied twice when sinks crash, restart or rebalance, and nothing echoes.

"Applied twice" is counted in the target's own binlog: every write carries a unique value, and the
target's producer publishes each applied change with its origin. A value seen twice there was
applied twice. (A sink may fold several changes of one key in one batch into the last, so a value
can also be seen zero times; the final state proves none was lost.)
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from schemas.config import PipelineConfig
from tests.conftest import config_for_test, connect, create_database
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config
from tests.support.verify import assert_verified

pytestmark = pytest.mark.integration


def setup(sandbox_config, unique, tmp_path, regions, **sink) -> tuple[PipelineConfig, str]:
    db = f"ar_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=regions, sink={"batch_max_ms": 50, **sink}, snapshot="never")
    create_database(config, regions, db, "CREATE TABLE {db}.w (k INT PRIMARY KEY, v VARCHAR(40) NOT NULL)")
    return config, db


class Writer(threading.Thread):
    def __init__(self, config: PipelineConfig, region: str, db: str, keys: range, pause: float = 0.003) -> None:
        super().__init__(daemon=True)
        self.config, self.region, self.db, self.keys, self.pause = config, region, db, keys, pause
        self.stop = threading.Event()
        self.written: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        rnd = random.Random(self.region)
        try:
            with connect(self.config, self.region, self.db) as conn, conn.cursor() as cur:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    value = f"{self.region}-{n}"
                    cur.execute("INSERT INTO w VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                                (rnd.choice(self.keys), value))
                    self.written.append(value)
                    time.sleep(self.pause)
        except BaseException as err:
            self.error = err


def table(config: PipelineConfig, region: str, db: str) -> dict[int, str]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT k, v FROM w")
        return dict(cur.fetchall())


def applied_counts(config: PipelineConfig, region: str, db: str, origin: str) -> Counter:
    """How often each value written in `origin` appears in `region`'s binlog (via its topic)."""
    records = read_all(config.kafka.bootstrap, [f"{config.prefix}.{region}.{db}.w"], idle_s=3.0, timeout_s=120)
    return Counter(r.message.after["v"] for r in records
                   if r.message.origin == origin and r.message.after is not None)


def stop_all(writers: list[Writer]) -> None:
    for w in writers:
        w.stop.set()
    for w in writers:
        w.join(10)
        assert w.error is None, w.error


def test_echo_each_change_applied_at_most_once_and_never_back(sandbox_config, unique, tmp_path) -> None:
    regions = ["eu", "us", "ap"]
    config, db = setup(sandbox_config, unique, tmp_path, regions)
    path = write_config(config, tmp_path / "c.toml")
    for region in regions:
        ProducerProcess(path, region, tmp_path / f"p-{region}.log").start()
        SinkProcess(path, region, "db", tmp_path / f"db-{region}.log").start()
    for region in regions:
        wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, what=f"{region} checkpoint")
    writers = [Writer(config, r, db, range(100 * i, 100 * i + 30)) for i, r in enumerate(regions)]
    for w in writers:
        w.start()
    time.sleep(6)
    stop_all(writers)
    source_state = {}
    for region in regions:
        source_state.update({k: v for k, v in table(config, region, db).items() if v.startswith(region + "-")})
    for region in regions:
        wait_until(lambda r=region: table(config, r, db) == source_state, timeout=90, what=f"{region} converged")
    assert_verified(config, check_cache=False)   # no cache sinks run here
    for target in regions:
        for w in writers:
            counts = applied_counts(config, target, db, w.region)
            twice = {v: c for v, c in counts.items() if c > 1}
            assert not twice, f"applied more than once in {target}: {twice}"
            assert set(counts) <= set(w.written)
            if target == w.region:
                # the region's own writes appear exactly once in its own binlog: nothing came back
                assert counts == Counter(w.written)


def test_kill9_sinks_under_load(sandbox_config, unique, tmp_path) -> None:
    rnd = random.Random()
    config, db = setup(sandbox_config, unique, tmp_path, ["eu", "us"], batch_max_events=200)
    path = write_config(config, tmp_path / "c.toml")
    for region in ("eu", "us"):
        ProducerProcess(path, region, tmp_path / f"p-{region}.log").start()
        wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, what=f"{region} checkpoint")
    writer = Writer(config, "eu", db, range(0, 40), pause=0.001)
    writer.start()
    log = tmp_path / "db-us.log"
    sink = SinkProcess(path, "us", "db", log).start()
    for _ in range(5):
        time.sleep(rnd.uniform(1.0, 3.0))
        sink.kill9()
        sink = SinkProcess(path, "us", "db", log).start()
    stop_all([writer])
    assert len(writer.written) > 500
    expected = table(config, "eu", db)
    wait_until(lambda: table(config, "us", db) == expected, timeout=120, what="us equals eu")
    assert_verified(config, check_cache=False)
    counts = applied_counts(config, "us", db, "eu")
    assert not {v: c for v, c in counts.items() if c > 1}, "a change was applied twice after a kill -9"
    assert set(counts) <= set(writer.written)


def test_rebalance_two_members_one_leaves_mid_load(sandbox_config, unique, tmp_path) -> None:
    config, db = setup(sandbox_config, unique, tmp_path, ["eu", "us"], batch_max_events=100)
    path = write_config(config, tmp_path / "c.toml")
    for region in ("eu", "us"):
        ProducerProcess(path, region, tmp_path / f"p-{region}.log").start()
        wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, what=f"{region} checkpoint")
    first = SinkProcess(path, "us", "db", tmp_path / "db-us-1.log").start()
    second = SinkProcess(path, "us", "db", tmp_path / "db-us-2.log").start()
    writer = Writer(config, "eu", db, range(0, 60), pause=0.001)
    writer.start()
    wait_until(lambda: "assigned" in second.output() and "assigned" in first.output(), timeout=60,
               what="both members assigned")
    time.sleep(2.0)
    assert second.terminate() == 0, second.output()      # stops in the middle of the load (no LeaveGroup)
    time.sleep(3.0)
    stop_all([writer])
    expected = table(config, "eu", db)
    wait_until(lambda: table(config, "us", db) == expected, timeout=120, what="us equals eu")
    assert_verified(config, check_cache=False)
    # The first member took over the second's partitions once its session timed out.
    assert first.output().count("consumers.source: assigned") >= 2, first.output()
    counts = applied_counts(config, "us", db, "eu")
    assert not {v: c for v, c in counts.items() if c > 1}, "a change was applied twice across the rebalance"
    assert first.terminate() == 0, first.output()
