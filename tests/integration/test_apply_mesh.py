"""Writes in any region reach every other region's database (mesh and star), and nothing echoes."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.cache.sink import decode_row, redis_client
from schemas.config import KafkaConfig, PipelineConfig
from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import pipeline, wait_until, write_config
from tests.support.verify import assert_verified

pytestmark = pytest.mark.integration

TABLE = "CREATE TABLE {db}.accounts (id INT PRIMARY KEY, owner VARCHAR(32) NOT NULL, balance DECIMAL(12,2) NOT NULL)"


def rows(config: PipelineConfig, region: str, db: str) -> dict[int, tuple]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, owner, balance FROM accounts")
        return {r[0]: (r[1], str(r[2])) for r in cur.fetchall()}


def narrowed(sandbox_config, unique, tmp_path, regions, **top) -> tuple[PipelineConfig, str, Path]:
    db = f"ap_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=regions, sink={"batch_max_ms": 50}, top=top, snapshot="never")
    create_database(config, regions, db, TABLE)
    return config, db, write_config(config, tmp_path / "cdcsync.toml")


def cached(config: PipelineConfig, region: str, db: str) -> dict[int, tuple]:
    client = redis_client(config.region(region).redis)
    result = {}
    for key in client.scan_iter(f"{config.prefix}:{db}.accounts:*"):
        row = decode_row(client.hgetall(key))
        if row is not None:
            result[row["id"]] = (row["owner"], row["balance"])
    return result


def write_everywhere_and_converge(config: PipelineConfig, regions: list[str], db: str,
                                  caches: bool = False) -> None:
    """Each region writes its own accounts; then every database (and cache) must hold all of them."""
    for n, region in enumerate(regions):
        write_some(config, region, db, base=1000 * (n + 1))
    converged(config, regions, db, expected_after_writes(regions), caches=caches)


def converged(config: PipelineConfig, regions: list[str], db: str, expected: dict, caches: bool = False) -> None:
    for region in regions:
        wait_until(lambda r=region: rows(config, r, db) == expected, timeout=60, what=f"{region} converged")
        if caches:
            wait_until(lambda r=region: cached(config, r, db) == expected, timeout=60, what=f"{region} cache")


def expected_after_writes(regions: list[str]) -> dict[int, tuple]:
    expected = {}
    for n, region in enumerate(regions):
        base = 1000 * (n + 1)
        for i in range(base, base + 19):
            expected[i] = (f"{region}-{i}", "11.00" if i < base + 10 else "10.00")
    return expected


def write_some(config: PipelineConfig, region: str, db: str, base: int) -> None:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        for i in range(base, base + 20):
            cur.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (i, f"{region}-{i}", "10.00"))
        cur.execute("UPDATE accounts SET balance = balance + 1 WHERE id BETWEEN %s AND %s", (base, base + 9))
        cur.execute("DELETE FROM accounts WHERE id = %s", (base + 19,))


@pytest.mark.parametrize("regions", [["eu", "us"], ["eu", "us", "ap"]], ids=["two", "three"])
def test_mesh_reaches_every_database(sandbox_config, unique, tmp_path, regions) -> None:
    config, db, path = narrowed(sandbox_config, unique, tmp_path, regions)
    with pipeline(config, path, tmp_path):
        write_everywhere_and_converge(config, regions, db, caches=True)
        assert_verified(config)


def test_star_relays_through_the_hub(sandbox_config, unique, tmp_path) -> None:
    regions = ["eu", "us", "ap"]
    config, db, path = narrowed(sandbox_config, unique, tmp_path, regions, topology={"mode": "star", "hub": "eu"})
    with pipeline(config, path, tmp_path):
        write_everywhere_and_converge(config, regions, db)
        assert_verified(config, timeout=60)


def test_regions_with_their_own_kafka_clusters(sandbox_config, unique, tmp_path) -> None:
    """Production runs one Kafka cluster per region: each database sink reads the other region's
    topics from that region's cluster (`cross_region_reads = "source_cluster"`)."""
    from deploy.local import broker
    from deploy.local.processes import free_port, stop

    port = free_port()
    pid = broker.start(tmp_path / "broker-us", port)
    try:
        regions = ["eu", "us"]
        config, db, _ = narrowed(sandbox_config, unique, tmp_path, regions)
        us = config.regions["us"].model_copy(update={"kafka": KafkaConfig(bootstrap=f"127.0.0.1:{port}")})
        config = config.model_copy(update={"regions": {**config.regions, "us": us}})
        path = write_config(config, tmp_path / "two-clusters.toml")
        with pipeline(config, path, tmp_path):
            write_everywhere_and_converge(config, regions, db)
            assert_verified(config, timeout=60)
        from tests.support.kafka import topics_with_prefix

        assert f"{config.prefix}.us.{db}.accounts" in topics_with_prefix(f"127.0.0.1:{port}", config.prefix)
        assert f"{config.prefix}.us.{db}.accounts" not in topics_with_prefix(config.kafka.bootstrap, config.prefix)
    finally:
        stop(pid, broker.MARKER)
