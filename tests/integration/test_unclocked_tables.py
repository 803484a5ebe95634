"""A replicated table without clock triggers (no `cdcsync init`, or a table created later) diverges
silently when two regions write one row. It is reported everywhere, continuously, unless the config
declares it single-writer: `config check` and `status` fail, the producer names it at start and on
every write (log and metric), the database sink counts and logs the changes it applies blind."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest

from cdcsync.tools.clock_init import init_region
from deploy.local.processes import free_port
from schemas.config import PipelineConfig, parse_config
from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us")


def cli(path: Path, *args: str) -> tuple[int, list[dict]]:
    done = subprocess.run([sys.executable, "-m", "cdcsync", *args, "--config", str(path), "--json"],
                          capture_output=True, text=True, timeout=180)
    lines = [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, lines


def clock_checks(path: Path) -> tuple[int, dict[str, dict]]:
    code, results = cli(path, "config", "check", "--timeout", "5")
    return code, {r["region"]: r for r in results if r["check"] == "clock triggers"}


def status(path: Path) -> tuple[int, dict[str, dict]]:
    code, (report,) = cli(path, "status", "--timeout", "5")
    return code, {r["region"]: r for r in report["regions"]}


def single_writer(config: PipelineConfig, table: str) -> PipelineConfig:
    data = config.model_dump(mode="python")
    for name, region in data["regions"].items():
        region["mysql"]["password"] = config.regions[name].mysql.password.get_secret_value()
    data["tables"] = {table: {"single_writer": True}}
    return parse_config(data)


def test_a_table_without_clock_triggers_is_reported_until_init_or_declared_single_writer(
        sandbox_config, unique: str, tmp_path: Path) -> None:
    db = f"uncl_{unique}"
    table = f"{db}.t"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path, regions=REGIONS,
                             sink={"batch_max_ms": 50})
    path = write_config(config, tmp_path / "cdcsync.toml")
    create_database(config, REGIONS, db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")

    code, checks = clock_checks(path)
    assert code == 1
    for region in REGIONS:
        assert checks[region]["outcome"] == "fail", checks
        assert table in checks[region]["detail"] and f'tables."{table}".single_writer = true' in checks[region]["detail"]
        assert "cdcsync init" in checks[region]["detail"]

    port = free_port()
    producer = ProducerProcess(path, "eu", tmp_path / "producer-eu.log", "--metrics-port", str(port)).start()
    others = [ProducerProcess(path, "us", tmp_path / "producer-us.log").start(),
              SinkProcess(path, "us", "db", tmp_path / "db-us.log").start()]
    try:
        for region in REGIONS:
            wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, timeout=90,
                       what=f"{region} checkpoint")
        assert "without clock triggers" in producer.output() and table in producer.output()   # named at start

        code, report = status(path)
        assert code == 1
        assert {r: (report[r]["unclocked_tables"], report[r]["errors"]) for r in REGIONS} == \
            {r: ([table], []) for r in REGIONS}

        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1, 'eu-1')")
            cur.execute("UPDATE t SET v = 'eu-2' WHERE id = 1")
        wait_until(lambda: "carries no clock" in producer.output(), timeout=30, what="the producer's report")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert f'cdcsync_producer_unclocked_events_total{{db="{db}",region="eu",table="t"}} 2.0' in metrics
        assert producer.output().count("carries no clock") == 1        # one log line per table per minute
        wait_until(lambda: "carry no clock" in others[1].output(), timeout=60, what="the us db sink's report")

        # Declared single-writer: no longer reported.
        declared = write_config(single_writer(config, table), tmp_path / "declared.toml")
        code, checks = clock_checks(declared)
        assert {r: checks[r]["outcome"] for r in REGIONS} == {"eu": "ok", "us": "ok"}
        assert {r: v["unclocked_tables"] for r, v in status(declared)[1].items()} == {"eu": [], "us": []}
        for proc in (producer, *others):
            assert proc.terminate() == 0, proc.output()
    finally:
        for proc in (producer, *others):
            if proc.alive():
                proc.kill9()

    # With its triggers (`cdcsync init`), the table passes too.
    for region in REGIONS:
        init_region(config, region)
    code, checks = clock_checks(path)
    assert {r: checks[r]["outcome"] for r in REGIONS} == {"eu": "ok", "us": "ok"}
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
