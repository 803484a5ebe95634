"""`cdcsync tombstones purge` on the three sandbox regions: a tombstone goes only when every region
holds it with the identical clock, without the row, old enough, and with no database sink lagging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cdcsync.tools import tombstones
from common import metadata_tables
from schemas.config import PipelineConfig
from schemas.row_clock_key import key_hash, row_clock_key
from tests.conftest import REGIONS, config_for_test, connect, create_database
from tests.support.producer import write_config

pytestmark = pytest.mark.integration


def setup(sandbox_config: PipelineConfig, unique: str, tmp_path: Path) -> tuple[PipelineConfig, str, Path]:
    db = f"tp_{unique}"
    # Its own meta_db: no other test's tombstones are seen, and none of them is touched.
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             top={"meta_db": f"m_{unique}", "cache_tombstone_ttl_s": 1})
    create_database(config, REGIONS, db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL)",
                    "CREATE TABLE {db}.old (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL)")
    for region in REGIONS:
        with connect(config, region) as conn:
            metadata_tables.ensure(conn, config.meta_db)
    return config, db, write_config(config, tmp_path / "cdcsync.toml")


def key(i: int) -> str:
    return row_clock_key({"id": i}, {"id": "int"})


def clock_row(config: PipelineConfig, region: str, db: str, table: str, i: int, counters: str, hlc_us: int, *,
              deleted: int = 1, age_s: int = 5) -> None:
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{config.meta_db}`.row_clocks (db, tbl, pk_hash, pk, counters, hlc_us, deleted, "
                    f"origin, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 'eu', NOW(6) - INTERVAL %s SECOND)",
                    (db, table, key_hash(key(i)), key(i), counters, hlc_us, deleted, age_s))


def everywhere(config: PipelineConfig, db: str, table: str, i: int, counters: str = '{"eu": 2, "us": 1}',
               hlc_us: int = 1_000, **kw) -> None:
    for region in REGIONS:
        clock_row(config, region, db, table, i, counters, hlc_us, **kw)


def clock_keys(config: PipelineConfig, region: str, db: str, table: str) -> dict[int, tuple[str, int, int]]:
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT pk, counters, hlc_us, deleted FROM `{config.meta_db}`.row_clocks "
                    f"WHERE db = %s AND tbl = %s", (db, table))
        return {int(pk.split(":", 1)[1]): (c, h, d) for pk, c, h, d in cur.fetchall()}


def cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cdcsync", "tombstones", "purge", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=180)


def seed_cases(config: PipelineConfig, db: str) -> None:
    everywhere(config, db, "t", 1)                                             # purged
    everywhere(config, db, "t", 2)
    with connect(config, "ap") as conn, conn.cursor() as cur:                  # ap: another hlc
        cur.execute(f"UPDATE `{config.meta_db}`.row_clocks SET hlc_us = 1001 WHERE pk_hash = %s", (key_hash(key(2)),))
    for region in REGIONS:                                                     # us: other counters
        clock_row(config, region, db, "t", 3, '{"eu": 2, "us": 2}' if region == "us" else '{"eu": 2, "us": 1}',
                  1_000)
    for region in ("eu", "us"):                                                # ap has no tombstone
        clock_row(config, region, db, "t", 4, '{"eu": 2}', 1_000)
    everywhere(config, db, "t", 5)                                             # us has the row
    with connect(config, "us", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (5, 'back')")
    for region in REGIONS:                                                     # eu: a live clock, not deleted
        clock_row(config, region, db, "t", 6, '{"eu": 3}', 1_000, deleted=0 if region == "eu" else 1)
    for region in REGIONS:                                                     # same clock, other JSON text
        clock_row(config, region, db, "t", 7, '{"us":1,"eu":2,"ap":0}' if region == "ap" else '{"eu": 2, "us": 1}',
                  1_000)


def test_purges_only_identical_tombstones_everywhere(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    seed_cases(config, db)
    before = {r: clock_keys(config, r, db, "t") for r in REGIONS}

    dry = cli(path, "--min-age", "1s", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{db}.t: 7 tombstones, 3 seen everywhere, would purge 2, kept 5" in dry.stdout
    assert {r: clock_keys(config, r, db, "t") for r in REGIONS} == before   # a dry run changes nothing

    result = cli(path, "--min-age", "1s")
    assert result.returncode == 0, result.stderr
    assert f"{db}.t: 7 tombstones, 3 seen everywhere, purged 2, kept 5" in result.stdout
    for region in REGIONS:
        after = clock_keys(config, region, db, "t")
        assert 1 not in after and 7 not in after
        assert {i: v for i, v in before[region].items() if i not in (1, 7)} == after

    again = cli(path, "--min-age", "1s")
    assert f"{db}.t: 5 tombstones, 1 seen everywhere, purged 0, kept 5" in again.stdout


def test_min_age_holds_in_every_region_and_table_filter(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    everywhere(config, db, "old", 1, age_s=7200)                              # old everywhere: purged
    for region in REGIONS:                                                     # young in us: kept
        clock_row(config, region, db, "old", 2, '{"eu": 1}', 5, age_s=60 if region == "us" else 7200)
    everywhere(config, db, "t", 1, age_s=7200)                                 # other table: untouched

    young = cli(path, "--min-age", "3h", "--table", f"{db}.old")
    assert young.returncode == 0, young.stderr
    assert f"{db}.old: 2 tombstones, 0 seen everywhere, purged 0, kept 2" in young.stdout

    result = cli(path, "--min-age", "1h", "--table", f"{db}.old")
    assert result.returncode == 0, result.stderr
    assert f"{db}.old: 2 tombstones, 1 seen everywhere, purged 1, kept 1" in result.stdout
    assert f"{db}.t:" not in result.stdout
    for region in REGIONS:
        assert set(clock_keys(config, region, db, "old")) == {2}
        assert set(clock_keys(config, region, db, "t")) == {1}


def test_a_tombstone_replaced_before_the_locks_is_kept(sandbox_config, unique, tmp_path, monkeypatch) -> None:
    config, db, _ = setup(sandbox_config, unique, tmp_path)
    everywhere(config, db, "t", 1)
    everywhere(config, db, "t", 2)

    def late_write(cfg: PipelineConfig, **kw) -> None:
        # Between the read of the candidates and the locked re-check, us applies a newer version of key 2.
        with connect(config, "us") as conn, conn.cursor() as cur:
            cur.execute(f"UPDATE `{config.meta_db}`.row_clocks SET counters = %s, hlc_us = 2000, deleted = 0 "
                        f"WHERE pk_hash = %s", (orjson.dumps({"eu": 3, "us": 1}).decode(), key_hash(key(2))))

    monkeypatch.setattr(tombstones, "check_lag", late_write)
    report = tombstones.purge(config, min_age_s=1)
    assert [(t.name, t.candidates, t.purged) for t in report.tables] == [(f"{db}.t", 2, 1)]
    assert set(clock_keys(config, "eu", db, "t")) == {2} and set(clock_keys(config, "ap", db, "t")) == {2}
    assert clock_keys(config, "us", db, "t")[2] == ('{"eu":3,"us":1}', 2000, 0)


def test_refuses_while_a_database_sink_lags(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    everywhere(config, db, "t", 1)
    # A change topic of eu with one record that us's and ap's database sinks have not applied.
    bootstrap = config.kafka.bootstrap
    topic = f"{config.prefix}.eu.{db}.t"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, b"{}")
    producer.flush(30)

    refused = cli(path, "--min-age", "1s")
    assert refused.returncode == 1
    assert "refusing to purge" in refused.stderr and f"{config.prefix}.us.db: 1 change(s) not applied" in refused.stderr
    assert set(clock_keys(config, "eu", db, "t")) == {1}

    forced = cli(path, "--min-age", "1s", "--ignore-lag")
    assert forced.returncode == 0, forced.stderr
    assert f"{db}.t: 1 tombstones, 1 seen everywhere, purged 1, kept 0" in forced.stdout
    assert all(not clock_keys(config, r, db, "t") for r in REGIONS)


def test_min_age_below_the_cache_tombstone_ttl_is_refused(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    everywhere(config, db, "t", 1)
    refused = cli(path, "--min-age", "0s")
    assert refused.returncode == 1
    assert "--min-age 0s is shorter than cache_tombstone_ttl_s (1s)" in refused.stderr
    assert set(clock_keys(config, "eu", db, "t")) == {1}
