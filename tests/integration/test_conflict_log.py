"""The conflict log against real MariaDB: storage (consumers/db/conflict_log.py), `cdcsync conflicts
list|show|stats` with their filters, `--follow`, and `resolve` writing a dominating local write under
the clock triggers of `cdcsync init`."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdcsync.cli import app
from cdcsync.tools.clock_init import init_region
from common import metadata_tables
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from consumers.db import conflict_log
from schemas import key_fold
from schemas.config import PipelineConfig
from schemas.conflict_record import ConflictRecord, VersionImage
from schemas.row_clock_key import key_hash, row_clock_key, row_identity
from schemas.row_version import value_hash
from schemas.vclock import Order, VectorClock
from tests.conftest import config_for_test, connect
from tests.support.producer import write_config

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us")


def at(text: str) -> int:
    """µs since the epoch of a UTC time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1_000_000)


@pytest.fixture
def env(sandbox_config: PipelineConfig, unique: str, tmp_path: Path):
    db = f"cfl_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=REGIONS, top={"meta_db": f"cfm_{unique}"})
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20), d DECIMAL(6,2), j JSON, "
                        "b VARBINARY(4))")
            cur.execute(f"CREATE TABLE {db}.c (k VARCHAR(20), n BIGINT UNSIGNED, v INT, PRIMARY KEY (k, n))")
            metadata_tables.ensure(conn, config.meta_db)
    path = write_config(config, tmp_path / "cdcsync.toml")
    try:
        yield config, db, path
    finally:
        for region in REGIONS:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
                cur.execute(f"DROP DATABASE IF EXISTS {config.meta_db}")


def version(values: dict[str, Any] | None, origin: str, counters: dict[str, int], hlc_us: int = 1) -> VersionImage:
    return VersionImage(values=values, origin=origin, counters=counters, hlc_us=hlc_us, hash=value_hash(values))


def record(region: str, db: str, table: str, pk: dict[str, Any], *, logged: int, strategy: str = "lww",
           local: dict | None = None, remote: dict | None = None) -> ConflictRecord:
    loc = version(local if local is not None else {**pk, "v": "L"}, region, {region: 1}, logged - 2)
    rem = version(remote if remote is not None else {**pk, "v": "R"}, "us" if region != "us" else "eu",
                  {"us" if region != "us" else "eu": 1}, logged - 1)
    result = version(rem.values, rem.origin, {**loc.counters, **rem.counters}, logged - 1)
    return ConflictRecord(logged_at_us=logged, region=region, db=db, table=table, pk=pk, strategy=strategy,
                          winner="remote", local=loc, remote=rem, result=result, losers=[loc],
                          source_topic=f"cdc.{rem.origin}.{db}.{table}", source_partition=2, source_offset=17,
                          source_gtid="0-2-33", local_gtid="0-1-55")


def store(config: PipelineConfig, rec: ConflictRecord, types: dict[str, str]) -> int:
    with connect(config, rec.region) as conn, conn.cursor() as cur:
        conn.begin()
        # the sink's key: the identity, text folded by the column's collation (the sandbox default)
        fold = {c: "utf8mb4_unicode_ci" for c, t in types.items() if t.startswith("varchar")}
        key_fold.ensure(cur, fold)
        new_id = conflict_log.insert(cur, config.meta_db, rec, key=row_identity(rec.pk, types, fold))
        conn.commit()
        return new_id


T_TYPES = {"id": "int"}
C_TYPES = {"k": "varchar(20)", "n": "bigint unsigned"}


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["conflicts", *args], env={"COLUMNS": "1000"})   # no wrapped messages


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_insert_runs_in_the_callers_transaction_and_reads_back_equal(env) -> None:
    config, db, _ = env
    # pk in an order that is not sorted (a table keyed (n, k)); the key text is the caller's, as the sink has it
    rec = record("eu", db, "c", {"n": 18446744073709551615, "k": "a,1:"}, logged=at("2020-01-01 10:00:00"))
    key = "20:18446744073709551615,4:a,1:"
    with connect(config, "eu") as conn, conn.cursor() as cur:
        conn.begin()
        rolled_back = conflict_log.insert(cur, config.meta_db, rec, key=key)
        conn.rollback()
        assert conflict_log.get(conn, config.meta_db, rolled_back) is None   # no commit of its own
        conn.begin()
        new_id = conflict_log.insert(cur, config.meta_db, rec, key=key)
        conn.commit()
        stored = conflict_log.get(conn, config.meta_db, new_id)
        assert stored == rec.model_copy(update={"id": new_id})
        assert list(stored.pk) == ["n", "k"]                       # key order as given
        cur.execute(f"SELECT pk, pk_hash FROM {config.meta_db}.{CONFLICT_LOG} WHERE id = %s", (new_id,))
        pk_text, pk_hash = cur.fetchone()
        assert pk_text == '{"n":18446744073709551615,"k":"a,1:"}'
        assert bytes(pk_hash) == key_hash(key)


def test_list_filters_by_region_table_key_and_time(env) -> None:
    config, db, path = env
    ids = {
        "eu1": store(config, record("eu", db, "t", {"id": 1}, logged=at("2020-01-01 10:00:00")), T_TYPES),
        "eu2": store(config, record("eu", db, "t", {"id": 2}, logged=at("2020-01-01 11:00:00")), T_TYPES),
        "euc": store(config, record("eu", db, "c", {"k": "a,b", "n": 7}, logged=at("2020-01-01 11:30:00")), C_TYPES),
        "us1": store(config, record("us", db, "t", {"id": 1}, logged=at("2020-01-01 12:00:00")), T_TYPES),
    }

    def listed(*args: str) -> list[tuple[str, int]]:
        result = cli("list", "--config", str(path), "--json", *args)
        assert result.exit_code == 0, result.output
        return [(r["region"], r["id"]) for r in json_lines(result.stdout)]

    everything = [("eu", ids["eu1"]), ("eu", ids["eu2"]), ("eu", ids["euc"]), ("us", ids["us1"])]
    assert listed() == everything                                        # all regions, by time
    assert listed("--region", "us") == [("us", ids["us1"])]
    assert listed("--region", "eu", "--region", "us") == everything
    assert listed("--table", f"{db}.c") == [("eu", ids["euc"])]
    assert listed("--table", f"{db}.t", "--key", "[1]") == [("eu", ids["eu1"]), ("us", ids["us1"])]
    assert listed("--table", f"{db}.t", "--key", "id=1", "--region", "eu") == [("eu", ids["eu1"])]
    assert listed("--table", f"{db}.t", "--key", "[3]") == []
    assert listed("--table", f"{db}.c", "--key", "n=7,k=a,b") == [("eu", ids["euc"])]
    assert listed("--table", f"{db}.c", "--key", '["a,b", 8]') == []
    assert listed("--since", "2020-01-01T10:30:00", "--until", "2020-01-01T12:00:00") == \
        [("eu", ids["eu2"]), ("eu", ids["euc"])]
    assert listed("--since", "2020-01-01T13:00:00+01:00") == [("us", ids["us1"])]
    assert listed("--limit", "1") == [("eu", ids["euc"]), ("us", ids["us1"])]   # the newest per region
    now_id = store(config, record("us", db, "t", {"id": 5}, logged=time.time_ns() // 1000), T_TYPES)
    assert listed("--since", "10m") == [("us", now_id)]

    full = json_lines(cli("list", "--config", str(path), "--json", "--region", "us", 
                            "--until", "2020-01-01T12:00:01").stdout)
    assert full == [record("us", db, "t", {"id": 1}, logged=at("2020-01-01 12:00:00"))
                    .model_copy(update={"id": ids["us1"]}).model_dump(mode="json")]

    table = cli("list", "--config", str(path), "--table", f"{db}.c")
    assert table.exit_code == 0, table.output
    assert f"{db}.c" in table.stdout and "k=a,b,n=7" in table.stdout and "2020-01-01 11:30:00.000" in table.stdout
    assert "1 records from 2 of 2 regions" in table.stderr

    for args, problem in [(["--key", "[1]"], "--key needs --table"), (["--since", "soon"], "--since 'soon'"),
                          (["--table", "nodot"], "expected db.table"),
                          (["--table", f"{db}.t", "--key", "id=x"], "'x' is not an integer"),
                          (["--region", "mars"], "mars")]:
        bad = cli("list", "--config", str(path), *args)
        assert bad.exit_code == 2 and problem in bad.stderr, (args, bad.output)
    gone = cli("list", "--config", str(path), "--table", f"{db}.nope", "--key", "[1]")
    assert gone.exit_code == 1 and "nope" in gone.stderr


def test_show_prints_the_whole_record(env) -> None:
    config, db, path = env
    rec = record("eu", db, "t", {"id": 1}, logged=at("2020-01-01 10:00:00"),
                 local={"id": 1, "v": "mine", "d": "1.50"}, remote={"id": 1, "v": "theirs", "d": "2.00"})
    new_id = store(config, rec, T_TYPES)
    shown = cli("show", str(new_id), "--config", str(path), "--region", "eu")
    assert shown.exit_code == 0, shown.output
    for text in ("conflict", str(new_id), f"{db}.t", "id=1", "lww", "winner", "remote",
                 f"cdc.us.{db}.t[2]@17", "0-2-33", "0-1-55", '"mine"', '"theirs"', '"1.50"', '"2.00"',
                 "eu:1", "us:1", "loser 1", "2020-01-01 10:00:00.000"):
        assert text in shown.stdout, text
    as_json = cli("show", str(new_id), "--config", str(path), "--region", "eu", "--json")
    assert json.loads(as_json.stdout) == rec.model_copy(update={"id": new_id}).model_dump(mode="json")
    missing = cli("show", str(new_id + 100), "--config", str(path), "--region", "eu")
    assert missing.exit_code == 1 and f"no conflict record {new_id + 100} in region eu" in missing.stderr
    elsewhere = cli("show", str(new_id), "--config", str(path), "--region", "us")
    assert elsewhere.exit_code == 1


def test_stats_counts_per_bucket_table_and_strategy(env) -> None:
    config, db, path = env
    for region, table, pk, when, strategy in [
        ("eu", "t", {"id": 1}, "2020-01-01 10:00:10", "lww"),
        ("eu", "t", {"id": 2}, "2020-01-01 10:00:50", "lww"),
        ("eu", "t", {"id": 3}, "2020-01-01 10:01:20", "lww"),
        ("eu", "c", {"k": "x", "n": 1}, "2020-01-01 10:01:30", "custom"),
        ("eu", "t", {"id": 4}, "2020-01-01 10:01:40", "region-priority"),
        ("us", "t", {"id": 1}, "2020-01-01 10:00:20", "lww"),
        ("eu", "t", {"id": 5}, "2020-01-01 12:00:00", "lww"),
    ]:
        store(config, record(region, db, table, pk, logged=at(when), strategy=strategy),
              T_TYPES if table == "t" else C_TYPES)

    def counted(*args: str) -> list[tuple]:
        result = cli("stats", "--config", str(path), "--json", *args)
        assert result.exit_code == 0, result.output
        return [(r["bucket_start"][11:16], r["region"], r["table"].split(".")[1], r["strategy"], r["count"])
                for r in json_lines(result.stdout)]

    assert counted("--bucket", "1m", "--until", "2020-01-01T11:00:00") == [
        ("10:00", "eu", "t", "lww", 2), ("10:00", "us", "t", "lww", 1),
        ("10:01", "eu", "c", "custom", 1), ("10:01", "eu", "t", "lww", 1),
        ("10:01", "eu", "t", "region-priority", 1)]
    assert counted("--bucket", "1h", "--region", "eu", "--table", f"{db}.t") == [
        ("10:00", "eu", "t", "lww", 3), ("10:00", "eu", "t", "region-priority", 1), ("12:00", "eu", "t", "lww", 1)]
    assert counted("--bucket", "1d", "--since", "2020-01-01T10:01:00", "--region", "eu") == [
        ("00:00", "eu", "c", "custom", 1), ("00:00", "eu", "t", "lww", 2),
        ("00:00", "eu", "t", "region-priority", 1)]
    table = cli("stats", "--config", str(path), "--bucket", "1h")
    assert table.exit_code == 0 and "2020-01-01 10:00:00.000" in table.stdout and "7 records" in table.stderr
    bad = cli("stats", "--config", str(path), "--bucket", "1w")
    assert bad.exit_code == 2 and "--bucket '1w'" in bad.stderr


def _reader(stream, lines: Queue) -> None:
    for line in stream:
        lines.put(line)


def test_follow_prints_records_logged_after_it_started_and_stops_on_sigterm(env) -> None:
    config, db, path = env
    first = store(config, record("eu", db, "t", {"id": 1}, logged=at("2020-01-01 10:00:00")), T_TYPES)
    proc = subprocess.Popen([sys.executable, "-m", "cdcsync", "conflicts", "list", "--config", str(path), "--json",
                             "--follow", "--interval", "0.2", "--table", f"{db}.t"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: Queue = Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        assert json.loads(lines.get(timeout=30))["id"] == first
        store(config, record("eu", db, "c", {"k": "x", "n": 1}, logged=time.time_ns() // 1000), C_TYPES)  # filtered
        us_id = store(config, record("us", db, "t", {"id": 2}, logged=time.time_ns() // 1000), T_TYPES)
        eu_id = store(config, record("eu", db, "t", {"id": 3}, logged=time.time_ns() // 1000 + 1), T_TYPES)
        seen = [json.loads(lines.get(timeout=15)) for _ in range(2)]
        assert [(r["region"], r["id"]) for r in seen] == [("us", us_id), ("eu", eu_id)]
        time.sleep(0.6)
        with pytest.raises(Empty):     # printed once, though re-queried until it settles
            lines.get_nowait()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_follow_timeout_and_sigint_end_cleanly(env) -> None:
    config, db, path = env
    store(config, record("eu", db, "t", {"id": 1}, logged=at("2020-01-01 10:00:00")), T_TYPES)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cdcsync", "conflicts", "list", "--config", str(path),
                           "--follow", "--follow-timeout", "1", "--interval", "0.2"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"eu #1 2020-01-01 10:00:00.000 resolution {db}.t id=1 lww winner=remote" in done.stdout
    assert time.monotonic() - started < 30
    proc = subprocess.Popen([sys.executable, "-m", "cdcsync", "conflicts", "list", "--config", str(path), "--json",
                             "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: Queue = Queue()
        threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
        lines.get(timeout=30)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- resolve -------------------------------------------------------------------------------------


def row(config: PipelineConfig, db: str, pk: int) -> tuple | None:
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, v, d, j, b FROM {db}.t WHERE id = %s", (pk,))
        return cur.fetchone()


def stored_clock(config: PipelineConfig, db: str, table: str, key: str) -> tuple[VectorClock, int] | None:
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT counters, hlc_us, deleted FROM {config.meta_db}.{ROW_CLOCKS} "
                    "WHERE db = %s AND tbl = %s AND pk_hash = %s", (db, table, key_hash(key)))
        found = cur.fetchone()
    return None if found is None else (VectorClock(counters=orjson.loads(found[0]), hlc_us=found[1]), found[2])


def conflict_on_row(config: PipelineConfig, db: str, pk: int, *, sink_merged_clock: bool = True) -> int:
    """Region eu holds row `pk` as the sink left it after resolving a local write ({eu: 1}) against a
    concurrent remote one ({us: 1}): the remote values, and (as the sink writes it) the merged clock."""
    local = {"id": pk, "v": "local", "d": "1.50", "j": {"a": [1, "x"]}, "b": base64.b64encode(b"\x00\x01").decode()}
    remote = {"id": pk, "v": "remote", "d": "2.25", "j": None, "b": None}
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.t (id, v) VALUES (%s, 'local')", (pk,))     # a local write: {eu: 1}
        cur.execute("SET @cdcsync_applying = 1")                                   # the sink applies remote
        cur.execute(f"UPDATE {db}.t SET v = 'remote', d = 2.25 WHERE id = %s", (pk,))
        if sink_merged_clock:
            cur.execute(f"UPDATE {config.meta_db}.{ROW_CLOCKS} SET counters = '{{\"eu\": 1, \"us\": 1}}' "
                        "WHERE db = %s AND tbl = 't' AND pk_hash = %s", (db, key_hash(f"{len(str(pk))}:{pk}")))
    rec = ConflictRecord(
        logged_at_us=time.time_ns() // 1000, region="eu", db=db, table="t", pk={"id": pk}, strategy="lww",
        winner="remote", local=version(local, "eu", {"eu": 1}), remote=version(remote, "us", {"us": 1}),
        result=version(remote, "us", {"eu": 1, "us": 1}), losers=[version(local, "eu", {"eu": 1})])
    return store(config, rec, T_TYPES)


def resolve(path: Path, record_id: int, *args: str) -> Any:
    return cli("resolve", str(record_id), "--config", str(path), "--region", "eu", *args)


def assert_dominates_both(config: PipelineConfig, db: str, pk: int, deleted: int = 0) -> VectorClock:
    clock, is_deleted = stored_clock(config, db, "t", f"{len(str(pk))}:{pk}")
    for side in (VectorClock(counters={"eu": 1}), VectorClock(counters={"us": 1})):
        assert clock.compare(side) is Order.AFTER
    assert is_deleted == deleted
    return clock


def conflict_log_record(config: PipelineConfig, record_id: int) -> ConflictRecord:
    with connect(config, "eu") as conn:
        return conflict_log.get(conn, config.meta_db, record_id)


def overrides(config: PipelineConfig, record_id: int) -> list[ConflictRecord]:
    with connect(config, "eu") as conn:
        return [r for r in conflict_log.query(conn, config.meta_db) if r.overrides == record_id]


def test_resolve_writes_a_dominating_local_write_and_logs_the_override(env) -> None:
    config, db, path = env
    assert init_region(config, "eu").created                       # the clock triggers on t and c
    first = conflict_on_row(config, db, 1)

    took = resolve(path, first, "--take", "local")
    assert took.exit_code == 0, took.output
    assert row(config, db, 1) == (1, "local", Decimal("1.50"), '{"a":[1,"x"]}', b"\x00\x01")
    clock = assert_dominates_both(config, db, 1)
    assert clock.counters == {"eu": 2, "us": 1}                     # the trigger ticked the merged clock
    [override] = overrides(config, first)
    assert (override.kind, override.strategy, override.winner, override.region) == ("override", "override",
                                                                                    "local", "eu")
    assert override.result.values == {"id": 1, "v": "local", "d": "1.50", "j": {"a": [1, "x"]}, "b": "AAE="}
    assert (override.result.counters, override.result.hlc_us) == (clock.counters, clock.hlc_us)
    assert override.local == conflict_log_record(config, first).local
    assert [loser.values["v"] for loser in override.losers] == ["remote"]   # what the override replaced
    assert override.losers[0].counters == {"eu": 1, "us": 1}
    assert override.local_gtid
    assert f"override logged as record {override.id} in eu" in took.stdout and "eu:2 us:1" in took.stdout

    took = resolve(path, first, "--take", "json", "--value", '{"v": "operator", "j": [true]}')
    assert took.exit_code == 0, took.output
    assert row(config, db, 1)[:2] == (1, "operator") and row(config, db, 1)[3] == "[true]"
    assert assert_dominates_both(config, db, 1).counters == {"eu": 3, "us": 1}
    assert [r.winner for r in overrides(config, first)] == ["local", "merged"]

    took = resolve(path, first, "--take", "remote")
    assert took.exit_code == 0, took.output
    assert row(config, db, 1) == (1, "remote", Decimal("2.25"), None, None)
    assert assert_dominates_both(config, db, 1).counters == {"eu": 4, "us": 1}

    # eu already holds it (a write there would change nothing, publish nothing): written in us, which
    # differs (no pipeline runs here), with a clock above every region's; eu's row and clock stay.
    again = resolve(path, first, "--take", "remote")
    assert again.exit_code == 0 and "us does not, so the override is written there" in again.stdout, again.output
    assert assert_dominates_both(config, db, 1).counters == {"eu": 4, "us": 1}
    with connect(config, "us") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT v FROM {db}.t WHERE id = 1")
        assert cur.fetchone() == ("remote",)
    assert overrides(config, first)[-1].result.origin == "us"
    assert overrides(config, first)[-1].result.counters == {"eu": 4, "us": 2}
    assert len(overrides(config, first)) == 4

    gone = resolve(path, first, "--take", "json", "--value", "null")
    assert gone.exit_code == 0 and "deleted" in gone.stdout, gone.output
    assert row(config, db, 1) is None
    assert assert_dominates_both(config, db, 1, deleted=1).counters == {"eu": 5, "us": 1}
    assert overrides(config, first)[-1].result.values is None
    with connect(config, "eu") as conn:   # stats counts overrides under their own strategy
        assert [(r.strategy, r.count) for r in conflict_log.stats(conn, config.meta_db, bucket_s=10**9)] == \
            [("lww", 1), ("override", 5)]


def test_resolve_refuses_without_triggers_record_or_a_dominating_clock(env) -> None:
    config, db, path = env
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.t (id, v) VALUES (1, 'remote')")
    no_triggers = store(config, ConflictRecord(
        logged_at_us=1, region="eu", db=db, table="t", pk={"id": 1}, strategy="lww", winner="remote",
        local=version({"id": 1, "v": "local"}, "eu", {"eu": 1}), remote=version({"id": 1, "v": "remote"}, "us",
                                                                                  {"us": 1}),
        result=version({"id": 1, "v": "remote"}, "us", {"eu": 1, "us": 1})), T_TYPES)
    refused = resolve(path, no_triggers, "--take", "local")
    assert refused.exit_code == 1
    assert f"{db}.t has no cdcsync clock triggers" in refused.stderr and "cdcsync init" in refused.stderr
    assert row(config, db, 1)[1] == "remote" and overrides(config, no_triggers) == []

    missing = resolve(path, no_triggers + 100, "--take", "local")
    assert missing.exit_code == 1 and f"no conflict record {no_triggers + 100} in region eu" in missing.stderr

    init_region(config, "eu")
    # The sink never stored the merged clock: a write on top of {eu: 1} cannot dominate {us: 1}.
    undominated = conflict_on_row(config, db, 2, sink_merged_clock=False)
    refused = resolve(path, undominated, "--take", "local")
    assert refused.exit_code == 1 and "does not dominate the remote version" in refused.stderr, refused.output
    assert row(config, db, 2)[1] == "remote" and overrides(config, undominated) == []
    assert stored_clock(config, db, "t", "1:2")[0].counters == {"eu": 1}      # rolled back

    for args, problem in [(["--take", "json"], "--take json needs --value"),
                          (["--take", "local", "--value", "{}"], "--value goes with --take json"),
                          (["--take", "mine"], "--take 'mine'"),
                          (["--take", "json", "--value", "{bad"], "not valid JSON")]:
        bad = resolve(path, undominated, *args)
        assert bad.exit_code == 2 and problem in bad.stderr, (args, bad.output)
    wrong_column = resolve(path, undominated, "--take", "json", "--value", '{"nope": 1}')
    assert wrong_column.exit_code == 1 and "no column 'nope'" in wrong_column.stderr
    too_long = resolve(path, undominated, "--take", "json", "--value", '{"v": "' + "x" * 21 + '"}')
    assert too_long.exit_code == 1 and "Data too long for column 'v'" in too_long.stderr, too_long.output
    assert "nothing written" in too_long.stderr and row(config, db, 2)[1] == "remote"
