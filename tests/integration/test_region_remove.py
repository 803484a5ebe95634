"""`cdcsync region remove` on real servers: a three-region pipeline (eu, us, ap) writes, with
conflicts, in every region; it stops at quiescence; ap is removed with the two-region config; then
no clock (counters or heads) in eu or us mentions ap, eu's and us's clocks are equal, and a
two-region pipeline keeps converging. Plus the refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cdcsync.tools.clock_init import init_region
from cdcsync.tools.regions.remove import RegionRemoveError, check_preconditions, remove_region
from common.metadata_tables import ROW_CLOCKS
from tests.conftest import REGIONS, config_for_test, connect
from tests.support.producer import pipeline, write_config
from tests.support.quiescence import wait_quiescent
from tests.support.verify import assert_verified

pytestmark = pytest.mark.integration


def configs(sandbox_config, unique: str, tmp_path: Path):
    db = f"rr_{unique}"

    def build(regions: list[str]):
        # region-priority keeps concurrent heads in row_clocks: they carry ap's counters too.
        top = {"meta_db": f"rrm_{unique}",
               "tables": {f"{db}.kv": {"conflict_strategy": "region-priority", "region_priority": [*regions]}}}
        return config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                               regions=regions, sink={"batch_max_ms": 50}, top=top)
    return db, build(["us", "ap", "eu"]), build(["us", "eu"])


def run(config, region: str, db: str, statement: str, rows: list[tuple]) -> None:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.executemany(statement, rows)


def clocks(config, region: str, db: str) -> dict[str, tuple]:
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT pk, counters, hlc_us, deleted, heads FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s",
                    (db,))
        return {pk: (json.loads(c), h, d, json.loads(heads) if heads else None)
                for pk, c, h, d, heads in cur.fetchall()}


def mentions(clock: tuple, region: str) -> bool:
    counters, _, _, heads = clock
    return region in counters or any(region in head["counters"] for head in heads or ())


def test_region_remove_drops_ap_from_every_clock_and_the_two_regions_keep_converging(
        sandbox_config, unique: str, tmp_path: Path) -> None:
    db, three, two = configs(sandbox_config, unique, tmp_path)
    three_path, two_path = write_config(three, tmp_path / "three.toml"), write_config(two, tmp_path / "two.toml")
    for region in REGIONS:
        with connect(three, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.kv (id INT PRIMARY KEY, v VARCHAR(40))")
        init_region(three, region)
    try:
        with pipeline(three, three_path, tmp_path):
            for region in REGIONS:   # the same keys everywhere, before any replication: conflicts
                run(three, region, db, "INSERT INTO kv (id, v) VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                    [(i, f"{region}{i}") for i in range(200)])
            for n, region in enumerate(REGIONS, 1):   # and keys only one region writes
                run(three, region, db, "INSERT INTO kv (id, v) VALUES (%s, %s)",
                    [(i, f"{region}{i}") for i in range(1000 * n, 1000 * n + 100)])
            wait_quiescent(three)
            assert_verified(three, timeout=30)
        before = {region: clocks(three, region, db) for region in ("eu", "us")}
        assert any(mentions(c, "ap") for c in before["eu"].values())
        assert any(c[3] and any("ap" in h["counters"] for h in c[3]) for c in before["eu"].values()), \
            "no head carries ap's counter: the heads rewrite is not exercised"

        with pytest.raises(RegionRemoveError, match="still in the config"):
            check_preconditions(three, "ap")
        done = subprocess.run([sys.executable, "-m", "cdcsync", "region", "remove", "ap", "--config", str(two_path)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr + done.stdout
        assert "lag t" in done.stdout   # the lag was read, not ignored

        eu, us = clocks(two, "eu", db), clocks(two, "us", db)
        assert eu.keys() == before["eu"].keys() and len(eu) == 500
        assert not [pk for pk, c in (*eu.items(), *us.items()) if mentions(c, "ap")]
        assert eu == us
        assert remove_region(two, "ap").counters == {"eu": 0, "us": 0}   # idempotent

        with pipeline(two, two_path, tmp_path):
            run(two, "eu", db, "UPDATE kv SET v = %s WHERE id = %s", [(f"eu-late{i}", i) for i in range(0, 100)])
            run(two, "us", db, "UPDATE kv SET v = %s WHERE id = %s", [(f"us-late{i}", i) for i in range(50, 150)])
            run(two, "us", db, "INSERT INTO kv (id, v) VALUES (%s, %s)", [(i, "new") for i in range(5000, 5050)])
            wait_quiescent(two)
            assert_verified(two, timeout=30)
        eu, us = clocks(two, "eu", db), clocks(two, "us", db)
        assert eu == us and not [pk for pk, c in eu.items() if mentions(c, "ap")]
    finally:
        for region in REGIONS:
            with connect(three, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
                cur.execute(f"DROP DATABASE IF EXISTS {three.meta_db}")


def test_region_remove_refuses_a_region_still_in_the_config_and_unapplied_events(
        sandbox_config, unique: str, tmp_path: Path) -> None:
    db, three, two = configs(sandbox_config, unique, tmp_path)
    path = write_config(three, tmp_path / "three.toml")
    done = subprocess.run([sys.executable, "-m", "cdcsync", "region", "remove", "ap", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "still in the config" in done.stderr, done.stderr
    # ap's change topic holds an event eu's and us's database sinks never read: refused, even with --ignore-lag.
    from confluent_kafka import Producer

    from common.kafka import TopicCreator, client_settings
    from schemas.topics import TopicNames
    topic = TopicNames.of(two).changes("ap", db, "kv")
    TopicCreator(two.kafka).ensure(topic)
    producer = Producer(client_settings(two.kafka))
    producer.produce(topic, b"{}")
    assert producer.flush(10) == 0
    with pytest.raises(RegionRemoveError, match="not applied everywhere"):
        remove_region(two, "ap", ignore_lag=True)


def test_region_remove_refuses_when_the_removed_regions_topics_are_not_found(
        sandbox_config, unique: str, tmp_path: Path) -> None:
    _, _, two = configs(sandbox_config, unique, tmp_path)
    with pytest.raises(RegionRemoveError, match="no change topic of ap"):
        check_preconditions(two, "ap")
