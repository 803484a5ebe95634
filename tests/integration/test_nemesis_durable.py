"""The nemesis's `kill -9` faults of a server and of the Bloom maintainer (docs/reliability.md).

1. A region's MariaDB killed with `kill -9` under load, in a sandbox of its own started with
   `sync_binlog=1` and `innodb_flush_log_at_trx_commit=1`, started again on the same port and
   datadir (crash recovery), while every region's Bloom maintainer runs and is itself killed with
   `kill -9`: the checker's verdict is unchanged (no acknowledged write lost or applied twice,
   databases identical, caches equal), and the Bloom verdict holds (every present key "maybe
   present" in its region's filter, never answered absent by `CacheReader`).
2. The Bloom verdict is not vacuous: clearing one present key's bits after quiescence fails it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.cache.bloom.format import offsets
from schemas.codec import canonical_pk
from consumers.cache.bloom.store import BloomStore
from common.redis_connect import redis_client
from deploy.local import Sandbox
from schemas.config import PipelineConfig, load_config
from tests.conftest import connect
from tests.support.convergence.history import History
from tests.support.convergence.nemesis import schedule
from tests.support.convergence.run import run_seed
from tests.support.convergence.shapes import parse_shapes

pytestmark = pytest.mark.integration

DURABLE_REGIONS = ["eu", "us"]     # two regions: a third MariaDB adds start-up time, not coverage


@pytest.fixture(scope="module")
def durable_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("durable"), durable=True)
    try:
        box.up(DURABLE_REGIONS)
        yield box
    finally:
        box.down()


def _variables(config: PipelineConfig, region: str) -> dict[str, str]:
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('sync_binlog', 'innodb_flush_log_at_trx_commit')")
        return dict(cur.fetchall())


def test_kill9_of_mariadb_and_of_the_bloom_maintainer_loses_nothing(durable_sandbox: Sandbox,
                                                                    tmp_path: Path) -> None:
    config = load_config(durable_sandbox.config_path)
    for region in DURABLE_REGIONS:
        assert _variables(config, region) == {"sync_binlog": "1", "innodb_flush_log_at_trx_commit": "1"}
    seed = 12
    must = ("kill-mariadb", "kill-bloom")
    # One of each: a restarted maintainer first waits for the killed one's lease (15 s).
    faults = schedule(seed, must, DURABLE_REGIONS, count=2, span_s=8.0, must=must)
    result = run_seed(config, seed, topology="mesh", shapes=parse_shapes(""), tmp=tmp_path, txns_per_client=50,
                      faults=faults, sandbox=durable_sandbox, bloom=True)
    print(json.dumps(result.summary()))
    schedule_text = "\n".join(f.describe() for f in faults)
    assert result.ok, f"{result.report}\nfaults injected: {json.dumps(result.faults)}\nschedule:\n{schedule_text}"
    assert result.fault_counts().get("kill-mariadb", 0) >= 1 and result.fault_counts().get("kill-bloom", 0) >= 1, \
        f"a fault of the schedule was not injected: {result.faults}"
    assert result.history.acks, "the workload acknowledged nothing: it proves nothing"
    # The restarted servers are still the durable ones (the setting survives Sandbox.crash).
    for region in DURABLE_REGIONS:
        assert _variables(config, region) == {"sync_binlog": "1", "innodb_flush_log_at_trx_commit": "1"}


def _clear_one_key(config: PipelineConfig, db: str, history: History) -> None:
    """After quiescence: clear every bit of one present key in eu's filter of `kv` (a false negative)."""
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM kv ORDER BY id LIMIT 1")
        (key,) = cur.fetchone()
    client = redis_client(config.region("eu").redis)
    try:
        store = BloomStore(client, config.prefix, "eu")
        generation = store.current(f"{db}.kv")
        assert generation is not None, "eu has no filter of kv to break"
        for offset in offsets(generation.sizing, canonical_pk([key])):
            client.setbit(store.keys.bits(f"{db}.kv", generation.gen), offset, 0)
    finally:
        client.close()


def test_the_bloom_verdict_finds_a_false_negative(sandbox: Sandbox, sandbox_config: PipelineConfig,
                                                  tmp_path: Path) -> None:
    result = run_seed(sandbox_config, 14, topology="mesh", shapes=parse_shapes("plain"), tmp=tmp_path,
                      txns_per_client=5, bloom=True, after_quiescence=_clear_one_key)
    bloom = [p.describe() for p in result.problems if p.kind == "bloom"]
    assert any("eu:" in p and "false negatives" in p for p in bloom), result.report
