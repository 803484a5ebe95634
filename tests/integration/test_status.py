"""`cdcsync status`: producer checkpoints against the servers, sink-group lag, and a region that is down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from deploy.local.processes import free_port
from schemas.clock_init import init_region
from schemas.config import PipelineConfig, parse_config
from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us")


def setup(sandbox_config: PipelineConfig, unique: str, tmp_path: Path) -> tuple[PipelineConfig, str, Path]:
    db = f"st_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=REGIONS, sink={"batch_max_ms": 50}, snapshot="never")
    create_database(config, REGIONS, db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL)")
    for region in REGIONS:   # both regions write t: without its clock triggers, status would (rightly) fail
        init_region(config, region)
    return config, db, write_config(config, tmp_path / "cdcsync.toml")


def status(path: Path, *extra: str) -> tuple[int, dict[str, dict]]:
    result = subprocess.run([sys.executable, "-m", "cdcsync", "status", "--config", str(path), "--json", *extra],
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip(), result.stderr
    return result.returncode, {r["region"]: r for r in orjson.loads(result.stdout)["regions"]}


def lags(report: dict[str, dict]) -> dict[str, int | None]:
    return {g["group"]: g["lag"] for r in report.values() for g in r["groups"]}


def rows(config: PipelineConfig, region: str, db: str) -> dict[int, str]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, v FROM t")
        return dict(cur.fetchall())


def write(config: PipelineConfig, region: str, db: str, ids: range) -> None:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        for i in ids:
            cur.execute("INSERT INTO t VALUES (%s, %s)", (i, f"{region}-{i}"))


def test_status_reports_checkpoints_and_lag(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    prefix = config.prefix
    groups = {f"{prefix}.{r}.{s}" for r in REGIONS for s in ("db", "cache")}
    procs = [ProducerProcess(path, r, tmp_path / f"producer-{r}.log").start() for r in REGIONS]
    sinks = [SinkProcess(path, r, s, tmp_path / f"{s}-{r}.log").start() for r in REGIONS for s in ("db", "cache")]
    for region in REGIONS:
        wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, what=f"{region} checkpoint")
    write(config, "eu", db, range(0, 20))
    write(config, "us", db, range(100, 120))
    wait_until(lambda: rows(config, "eu", db) == rows(config, "us", db) and len(rows(config, "us", db)) == 40,
               timeout=90, what="both regions converged")

    # -- quiescent: every checkpoint at its server's position, every group caught up ----------------------------
    last: list = []

    def quiescent() -> bool:
        code, report = status(path)
        last[:] = [code, report]
        return (code == 0 and set(lags(report)) == groups and all(v == 0 for v in lags(report).values())
                and all(r["producer_behind"]["transactions"] == 0 for r in report.values()))

    try:
        wait_until(quiescent, timeout=60, interval=1.0, what="zero lag everywhere")
    except AssertionError:
        raise AssertionError(f"not quiescent; last status: {last}") from None
    code, report = status(path)
    for region in REGIONS:
        r = report[region]
        assert r["errors"] == [] and r["checkpoint"] is not None and r["server"] is not None
        assert r["checkpoint"]["gtid_state"] == r["server"]["gtid_state"]
        assert r["checkpoint"]["path"] == str(tmp_path / "checkpoints" / region / f"{region}.json")
        assert r["checkpoint"]["age_s"] >= 0
        if r["checkpoint"]["binlog_file"] == r["server"]["binlog_file"]:
            assert r["producer_behind"]["bytes"] == 0
        groups_of = {g["sink"]: g for g in r["groups"]}
        other = "us" if region == "eu" else "eu"
        # the db group reads the other region's change topic, the cache group its own region's
        assert {p["topic"] for p in groups_of["db"]["partitions"]} == {f"{prefix}.{other}.{db}.t"}
        assert {p["topic"] for p in groups_of["cache"]["partitions"]} == {f"{prefix}.{region}.{db}.t"}
        assert sum(p["high"] for p in groups_of["db"]["partitions"]) == 40   # 20 written there, 20 applied
        assert all(p["committed"] == p["high"] for g in r["groups"] for p in g["partitions"] if p["high"] > 0), r["groups"]
    table = subprocess.run([sys.executable, "-m", "cdcsync", "status", "--config", str(path)], capture_output=True,
                           text=True, timeout=120)
    assert table.returncode == 0 and "cdcsync status" in table.stdout and "partitions with lag" not in table.stdout

    # -- sinks stopped, more writes: the groups fall behind by exactly those messages ----------------------------
    for sink in sinks:
        assert sink.terminate() == 0, sink.output()
    write(config, "eu", db, range(200, 210))
    wait_until(lambda: lags(status(path)[1])[f"{prefix}.us.db"] == 10, timeout=60, interval=1.0,
               what="us.db lag of 10")
    code, report = status(path)
    assert code == 0
    assert lags(report) == {f"{prefix}.us.db": 10, f"{prefix}.eu.cache": 10, f"{prefix}.eu.db": 0,
                            f"{prefix}.us.cache": 0}
    assert report["eu"]["producer_behind"]["transactions"] == 0      # the producer kept publishing
    table = subprocess.run([sys.executable, "-m", "cdcsync", "status", "--config", str(path)], capture_output=True,
                           text=True, timeout=120)
    assert table.returncode == 0 and "partitions with lag" in table.stdout

    # -- a region that cannot be reached is reported in its own row; the others are complete ---------------------
    data = config.model_dump(mode="python")
    for name, r in data["regions"].items():
        r["mysql"]["password"] = config.regions[name].mysql.password.get_secret_value()
    data["regions"]["us"]["mysql"]["port"] = free_port()
    data["regions"]["us"]["mysql"]["connect_timeout"] = 2.0
    data["regions"]["us"]["kafka"] = {"bootstrap": f"127.0.0.1:{free_port()}"}
    broken = write_config(parse_config(data), tmp_path / "broken.toml")
    code, report = status(broken, "--timeout", "3")
    assert code == 1
    us = report["us"]
    assert us["server"] is None and us["checkpoint"] is not None
    assert any(e.startswith("mysql ") for e in us["errors"]) and any(e.startswith("kafka ") for e in us["errors"])
    by_group = {g["group"]: g for g in us["groups"]}
    # us's cache group reads us's own (unreachable) cluster; its db group reads eu's topics on eu's cluster.
    assert by_group[f"{prefix}.us.cache"]["lag"] is None and by_group[f"{prefix}.us.cache"]["error"]
    assert by_group[f"{prefix}.us.db"]["error"] is None and by_group[f"{prefix}.us.db"]["lag"] == 10
    # eu's db group reads us's topics on us's cluster, so it reports that cluster; its cache group is complete.
    assert report["eu"]["server"] is not None
    assert [e for e in report["eu"]["errors"] if not e.startswith("kafka 127.0.0.1:")] == []
    eu_groups = {g["group"]: g for g in report["eu"]["groups"]}
    assert eu_groups[f"{prefix}.eu.cache"]["lag"] == 10 and eu_groups[f"{prefix}.eu.cache"]["error"] is None
    assert eu_groups[f"{prefix}.eu.db"]["error"] is not None

    for proc in procs:
        assert proc.terminate() == 0, proc.output()
