"""`cdcsync status`: producer checkpoints against the servers, sink-group lag, and a region that is down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cdcsync.tools.clock_init import init_region
from common.kafka import TopicCreator, client_settings
from consumers.dlq import DeadLetter, DeadLetterPublisher
from consumers.records import SourceRecord
from deploy.local.processes import free_port
from schemas.codec import encode
from schemas.config import PipelineConfig, parse_config
from schemas.topics import TopicNames
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
        # the db group reads the other region's change topic, the cache group its own region's (and its DDL)
        assert {p["topic"] for p in groups_of["db"]["partitions"]} == {f"{prefix}.{other}.{db}.t"}
        assert {p["topic"] for p in groups_of["cache"]["partitions"]} - {f"{prefix}.{region}._schema"} == {
            f"{prefix}.{region}.{db}.t"}
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


def dead_letter(config: PipelineConfig, db: str, sink: str, offset: int, pk: int) -> DeadLetter:
    """A dead letter of a well-formed insert of `t` from eu (so a replay can apply it)."""
    event = {"schema_version": 1, "kind": "change", "region": "eu", "origin": "eu", "server_id": 1,
             "gtid": f"0-1-{offset + 1}", "binlog_file": "b.000001", "binlog_pos": offset, "txn_id": "t",
             "ts_us": 0, "db": db, "table": "t", "txn_index": 0, "txn_last": True, "op": "insert",
             "pk": {"id": pk}, "before": None, "after": {"id": pk, "v": f"replayed-{pk}"},
             "types": {"id": "int", "v": "varchar(32)"}}
    record = SourceRecord.from_message(f"{config.prefix}.eu.{db}.t", 0, offset, f"[{pk}]".encode(), encode(event))
    return DeadLetter(record, "4025: CONSTRAINT failed (made up by the test)", "constraint")


def dlq(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cdcsync", "dlq", args[0], "--config", str(path), "--region", "us",
                           *args[1:]], capture_output=True, text=True, timeout=120)


def test_pending_dead_letters_fail_status_until_replayed_or_discarded(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    procs = [ProducerProcess(path, r, tmp_path / f"producer-{r}.log").start() for r in REGIONS]
    wait_until(lambda: status(path)[0] == 0, timeout=60, interval=1.0, what="status clean (checkpoints written)")
    kafka = config.kafka_for("us")
    dlq_topic = TopicNames.of(config).dlq("us")
    TopicCreator(kafka).ensure(dlq_topic)
    for sink, letters in (("db", [dead_letter(config, db, "db", 0, 1), dead_letter(config, db, "db", 1, 2)]),
                          ("cache", [dead_letter(config, db, "cache", 2, 3)])):
        DeadLetterPublisher(client_settings(kafka), dlq_topic, region="us", sink=sink).publish(letters)

    # -- three wait: status says so per region and sink, and exits 1 ----------------------------------------------
    code, report = status(path)
    assert code == 1 and report["us"]["errors"] == [], report["us"]
    assert report["us"]["dead_letters_pending"] == 3 and report["us"]["dead_letters_by_sink"] == {"db": 2, "cache": 1}
    assert report["eu"]["dead_letters_pending"] == 0 and report["eu"]["errors"] == []
    text = subprocess.run([sys.executable, "-m", "cdcsync", "status", "--config", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert text.returncode == 1
    assert f"us: 3 dead letters wait (neither replayed nor discarded): cdcsync dlq list --config {path} --region us" \
        in " ".join(text.stderr.split()), text.stderr
    entries = {e["source_offset"]: e["entry"] for e in map(orjson.loads, dlq(path, "list", "--json").stdout.splitlines())}
    first, second, cached = entries[0], entries[1], entries[2]

    # -- replay once; a second replay is refused without --force ---------------------------------------------------
    done = dlq(path, "replay", first)
    assert done.returncode == 0 and "1 applied" in done.stdout, done.stdout + done.stderr
    assert rows(config, "us", db) == {1: "replayed-1"}
    again = dlq(path, "replay", first)
    assert again.returncode == 1 and "already handled" in again.stderr and "--force" in again.stderr, again.stderr
    assert again.stderr.count("\n") == 1        # one line
    forced = dlq(path, "replay", first, "--force")
    assert forced.returncode == 0 and "1 applied" in forced.stdout, forced.stdout + forced.stderr

    # -- discard: needs a reason; a discarded entry is neither replayed nor discarded again without --force -------
    assert dlq(path, "discard", second).returncode == 2
    assert dlq(path, "discard", second, "--reason", " ").returncode == 2
    discarded = dlq(path, "discard", second, "--reason", "row fixed by hand")
    assert discarded.returncode == 0 and "1 discarded" in discarded.stdout, discarded.stdout + discarded.stderr
    assert 2 not in rows(config, "us", db)                        # nothing applied
    refused = dlq(path, "replay", second)
    assert refused.returncode == 1 and "discarded" in refused.stderr and "--force" in refused.stderr
    assert dlq(path, "discard", second, "--reason", "twice").returncode == 1
    assert dlq(path, "replay", "--all").stdout.strip() == "nothing to replay"   # --all takes pending db entries only
    code, report = status(path)
    assert code == 1 and report["us"]["dead_letters_by_sink"] == {"cache": 1}

    # -- the last one discarded with --all: status is clean again -------------------------------------------------
    everything = dlq(path, "discard", "--all", "--reason", "cache rebuilt")
    assert everything.returncode == 0 and "1 discarded" in everything.stdout and cached in everything.stdout
    listed = {row["entry"]: row for row in map(orjson.loads, dlq(path, "list", "--json").stdout.splitlines())}
    assert listed[first]["replayed"] and not listed[first]["discarded"]
    assert listed[second]["discard_reason"] == "row fixed by hand" and listed[cached]["discard_reason"] == "cache rebuilt"
    code, report = status(path)
    assert code == 0 and report["us"]["dead_letters_pending"] == 0, report["us"]
    for proc in procs:
        assert proc.terminate() == 0, proc.output()
