"""`cdcsync verify` against the real sandbox: rows written directly in three regions, caches filled by
`cache rebuild`, then differences made by hand in one region's database or cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from cdcsync.tools.cache_rebuild import rebuild_cache
from cdcsync.tools.verify import verify
from consumers.cache.sink import redis_client
from deploy.local.processes import free_port
from schemas.config import PipelineConfig, parse_config
from tests.conftest import REGIONS, config_for_test, connect
from tests.support.producer import write_config

pytestmark = pytest.mark.integration


def setup(sandbox_config: PipelineConfig, unique: str, tmp_path: Path, *, tables: dict[str, dict] | None = None,
          **producer: Any) -> tuple[PipelineConfig, str, Path]:
    db = f"vf_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path, **producer)
    if tables:
        data = config.model_dump(mode="python")
        for name, region in data["regions"].items():
            region["mysql"]["password"] = config.regions[name].mysql.password.get_secret_value()
        data["tables"] = {f"{db}.{t}": settings for t, settings in tables.items()}
        config = parse_config(data)
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
    return config, db, write_config(config, tmp_path / "cdcsync.toml")


def execute(config: PipelineConfig, db: str, statement: str, rows: list[tuple] | None = None,
            regions: tuple[str, ...] = tuple(REGIONS)) -> None:
    for region in regions:
        with connect(config, region, db) as conn, conn.cursor() as cur:
            if rows is None:
                cur.execute(statement)
            else:
                cur.executemany(statement, rows)


def rebuild_caches(config: PipelineConfig) -> None:
    for region in REGIONS:
        rebuild_cache(config, region)


def cli(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cdcsync", "verify", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=300)


def cli_json(path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli(path, "--json", *args)
    assert result.stdout.strip(), result.stderr
    return result.returncode, orjson.loads(result.stdout)


TYPED = """CREATE TABLE typed (
  id BIGINT UNSIGNED PRIMARY KEY, amount DECIMAL(20,6), at DATETIME(6), ts TIMESTAMP(3) NULL, d DATE, tm TIME(2),
  f FLOAT, dbl DOUBLE, name VARCHAR(40), note TEXT NULL, raw VARBINARY(16), body BLOB, e ENUM('a','b'),
  s SET('x','y','z'), bits BIT(5), y YEAR, doc JSON)"""


def typed_rows(n: int) -> list[tuple]:
    return [(i * 1_000_003 if i < n else 18446744073709551615, f"{'-' if i % 2 else ''}{i}.000001",
             f"2024-02-{i % 28 + 1:02d} 10:00:00.{i:06d}", None if i % 3 == 0 else "2024-03-01 00:00:00.123",
             "2024-01-01", f"-{i}:00:00.50", i / 3, i / 7, f"näme-{i}", None if i % 2 else "", bytes([i, 0, 255]),
             b"\x00" * i, "ab"[i % 2], "x,z", i % 32, 2000 + i, '{"k": [1, 2.5], "s": "é"}') for i in range(1, n + 1)]


def test_identical_regions_and_caches_match(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path, tables={"docs": {"cache_format": "json"}})
    execute(config, db, TYPED)
    execute(config, db, "INSERT INTO typed VALUES (" + ", ".join(["%s"] * 17) + ")", typed_rows(30))
    execute(config, db, "CREATE TABLE docs (id INT PRIMARY KEY, body JSON)")
    execute(config, db, "INSERT INTO docs VALUES (%s, %s)", [(i, f'{{"n": {i}, "tags": ["a"]}}') for i in range(12)])
    execute(config, db, "UPDATE docs SET body = '{\"tags\":[\"a\"],\"n\":0}' WHERE id = 0", regions=("us",))
    execute(config, db, "CREATE TABLE nokey (a INT, b VARCHAR(5))")   # not replicated (no_primary_key = skip)
    execute(config, db, "INSERT INTO nokey VALUES (1, 'us')", regions=("us",))
    rebuild_caches(config)

    report = verify(config, chunk_rows=7)
    assert report.ok, report.to_json()
    typed, docs = (next(t for t in report.tables if t.table == f"{db}.{name}") for name in ("typed", "docs"))
    assert typed.regions == tuple(REGIONS) and typed.reference == "eu"
    assert typed.rows == {"eu": 30, "us": 30, "ap": 30} and typed.chunks == 5 and typed.differing_chunks == 0
    assert typed.cache_checked == tuple(REGIONS) and docs.cache_checked == tuple(REGIONS)
    assert docs.rows == {"eu": 12, "us": 12, "ap": 12} and docs.chunks == 2
    # us stores doc 0's JSON with its keys in another order: the checksums differ, the wire values do not
    assert docs.differing_chunks == 1 and docs.row_differences == 0

    code, data = cli_json(path, "--chunk-rows", "7")       # stdout is the JSON alone: the progress bar is on stderr
    assert code == 0 and data["ok"] is True and data["row_differences"] == 0 and data["cache_differences"] == 0
    assert {t["table"]: t["matched"] for t in data["tables"]} == {f"{db}.typed": True, f"{db}.docs": True,
                                                                  f"{db}.nokey": False}
    result = cli(path)   # a keyless table is not compared, and never counted as a match
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: 2 tables match in eu, us, ap; 1 not compared (no primary key): {db}.nokey" in result.stdout
    result = cli(path, "--table", f"{db}.typed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 1 tables match in eu, us, ap" in result.stdout


def test_row_differences_are_reported_by_key_and_region(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    execute(config, db, "CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(32) NOT NULL, "
                        "balance DECIMAL(12,2) NOT NULL, at DATETIME(6) NOT NULL, note VARCHAR(20) NULL)")
    execute(config, db, "INSERT INTO accounts VALUES (%s, %s, %s, %s, NULL)",
            [(i, f"owner-{i}", f"{i}0.00", "2024-05-01 12:00:00.000001") for i in range(1, 41)])
    execute(config, db, "DELETE FROM accounts WHERE id = 7", regions=("ap",))
    execute(config, db, "INSERT INTO accounts VALUES (5000, 'late', 1, '2024-05-02', NULL), "   # above every eu key
                        "(-1, 'early', 1, '2024-05-02', NULL)", regions=("us",))               # below every eu key
    execute(config, db, "UPDATE accounts SET balance = '30.01' WHERE id = 3", regions=("us",))
    execute(config, db, "UPDATE accounts SET at = '2024-05-01 12:00:00.000002' WHERE id = 4", regions=("ap",))
    execute(config, db, "UPDATE accounts SET note = '' WHERE id = 5", regions=("eu",))
    rebuild_caches(config)   # each cache equals its own database: only the databases differ

    code, data = cli_json(path, "--chunk-rows", "5")
    assert code == 1 and data["ok"] is False
    [table] = data["tables"]
    assert table["rows"] == {"eu": 40, "us": 42, "ap": 39}
    assert table["chunks"] == 8                                   # eu's 40 keys cut every 5: (-inf, 6) ... [36, +inf)
    assert table["differing_chunks"] == 3                         # (-inf, 6), [6, 11), [36, +inf)
    assert table["row_differences"] == 6 and table["cache_differences"] == 0
    details = {d["key"]["id"]: d for d in data["row_details"]}
    presence = {k: (d["kind"], d["present_in"], d["absent_from"]) for k, d in details.items() if d["kind"] != "differs"}
    assert presence == {
        7: ("missing", ["eu", "us"], ["ap"]),
        5000: ("extra", ["us"], ["eu", "ap"]),
        -1: ("extra", ["us"], ["eu", "ap"]),
    }
    assert details[3]["columns"] == {"balance": {"eu": "30.00", "us": "30.01", "ap": "30.00"}}
    assert details[4]["columns"] == {"at": {"eu": "2024-05-01 12:00:00.000001", "us": "2024-05-01 12:00:00.000001",
                                            "ap": "2024-05-01 12:00:00.000002"}}
    assert details[5]["columns"] == {"note": {"eu": "", "us": None, "ap": None}}

    result = cli(path, "--chunk-rows", "5", "--no-cache")
    assert result.returncode == 1
    for line in ("id=7: missing in ap", "id=5000: extra in us", "id=-1: extra in us",
                 'balance: eu="30.00", us="30.01", ap="30.00"', 'note: eu="", us=null, ap=null'):
        assert line in result.stdout, result.stdout


def test_cache_differences_are_reported_per_region(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    execute(config, db, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2))")
    execute(config, db, "INSERT INTO items VALUES (%s, %s, %s)", [(i, f"n{i}", "1.50") for i in range(1, 21)])
    rebuild_caches(config)
    assert verify(config).ok

    key = {i: f"{config.prefix}:{db}.items:[{i}]" for i in range(1, 21)}
    eu, us, ap = (redis_client(config.region(r).redis) for r in REGIONS)
    us.hset(key[2], "name", orjson.dumps("changed"))                 # differs from us's database
    execute(config, db, "DELETE FROM items WHERE id = 3")             # deleted everywhere...
    us.delete(key[3])
    us.hset(key[3], mapping={"_v": "9999999999.000000000000.00000000", "_deleted": "1"})   # ...us: a tombstone
    ap.delete(key[3])                                                 # ...ap: gone; eu: still cached
    ap.delete(key[4])                                                 # missing from ap's cache

    report = verify(config)
    assert not report.ok and report.row_differences == 0 and report.cache_differences == 3
    found = {(d.region, d.key, d.kind): d for d in report.cache_details}
    assert set(found) == {("us", key[2], "differs"), ("eu", key[3], "extra"), ("ap", key[4], "missing")}
    assert found["us", key[2], "differs"].columns == {"name": {"database": "n2", "cache": "changed"}}
    assert found["eu", key[3], "extra"].row == {"id": 3, "name": "n3", "price": "1.50"}
    assert found["ap", key[4], "missing"].row == {"id": 4, "name": "n4", "price": "1.50"}

    result = cli(path)
    assert result.returncode == 1
    assert f"eu {key[3]}: cache entry without a database row" in result.stdout, result.stdout
    assert cli(path, "--no-cache").returncode == 0


def test_composite_keys_over_many_chunks(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path, no_primary_key="all_columns")
    execute(config, db, "CREATE TABLE events (tenant VARCHAR(8), seq INT, payload VARCHAR(20), amount DECIMAL(10,3), "
                        "PRIMARY KEY (tenant, seq))")
    execute(config, db, "INSERT INTO events VALUES (%s, %s, %s, %s)",
            [(tenant, seq, f"{tenant}{seq}", f"{seq}.125") for tenant in "abc" for seq in range(50)])
    execute(config, db, "CREATE TABLE log (a INT, b VARCHAR(5))")   # keyless, keyed by all columns
    execute(config, db, "INSERT INTO log VALUES (1, 'x'), (1, 'x'), (2, NULL)")
    execute(config, db, "UPDATE events SET amount = '25.126' WHERE tenant = 'b' AND seq = 25", regions=("ap",))
    execute(config, db, "DELETE FROM events WHERE tenant = 'c' AND seq = 49", regions=("us",))
    execute(config, db, "INSERT INTO events VALUES ('a', -1, 'only-eu', 0)", regions=("eu",))
    execute(config, db, "INSERT INTO events VALUES ('zz', 1, 'only-us', 0)", regions=("us",))
    execute(config, db, "INSERT INTO log VALUES (1, 'x')", regions=("us",))
    rebuild_caches(config)

    report = verify(config, chunk_rows=8)
    events = next(t for t in report.tables if t.table == f"{db}.events")
    log = next(t for t in report.tables if t.table == f"{db}.log")
    assert events.rows == {"eu": 151, "us": 150, "ap": 150}
    assert events.chunks == 19                                  # eu's 151 keys cut every 8
    assert events.differing_chunks == 3 and events.row_differences == 4   # ('c', 49) and ('zz', 1) share the last
    assert log.chunks == 1 and log.row_differences == 1
    assert report.cache_differences == 0
    diffs = {(tuple(d.key.values()), d.kind, d.present_in, d.absent_from): d.columns for d in report.row_details}
    assert diffs == {
        (("b", 25), "differs", ("eu", "us", "ap"), ()): {"amount": {"eu": "25.125", "us": "25.125", "ap": "25.126"}},
        (("c", 49), "missing", ("eu", "ap"), ("us",)): {},
        (("a", -1), "extra", ("eu",), ("us", "ap")): {},
        (("zz", 1), "extra", ("us",), ("eu", "ap")): {},
        ((1, "x"), "differs", ("eu", "us", "ap"), ()): {"(occurrences)": {"eu": 2, "us": 3, "ap": 2}},
    }
    code, data = cli_json(path, "--table", f"{db}.events", "--chunk-rows", "8")
    assert code == 1 and [t["table"] for t in data["tables"]] == [f"{db}.events"]
    assert data["row_differences"] == 4


def test_unreachable_region_or_unknown_table_exits_2(sandbox_config, unique, tmp_path) -> None:
    config, db, path = setup(sandbox_config, unique, tmp_path)
    result = cli(path, "--table", f"{db}.nope")
    assert result.returncode == 2 and f"{db}.nope" in result.stderr

    data = config.model_dump(mode="python")
    for name, region in data["regions"].items():
        region["mysql"]["password"] = config.regions[name].mysql.password.get_secret_value()
    data["regions"]["ap"]["redis"]["port"] = free_port()
    no_redis = write_config(parse_config(data), tmp_path / "no-redis.toml")
    result = cli(no_redis)
    assert result.returncode == 2 and "region ap: Redis" in result.stderr, result.stderr
    assert cli(no_redis, "--no-cache").returncode == 0           # --no-cache never reaches Redis

    data["regions"]["us"]["mysql"]["port"] = free_port()
    result = cli(write_config(parse_config(data), tmp_path / "no-mysql.toml"))
    assert result.returncode == 2 and "region us: MySQL" in result.stderr, result.stderr


def test_an_emptied_cache_gets_a_hint_naming_the_rebuild_command(sandbox_config, unique, tmp_path) -> None:
    """A Redis restarted without persistence is empty while its database is full: verify names the fix."""
    config, db, path = setup(sandbox_config, unique, tmp_path)
    execute(config, db, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
    execute(config, db, "INSERT INTO items VALUES (%s, %s)", [(i, f"n{i}") for i in range(1, 301)])
    rebuild_caches(config)
    assert verify(config).ok
    redis_client(config.region("us").redis).flushall()      # what a restart without persistence leaves

    result = cli(path)
    assert result.returncode == 1
    command = f"cdcsync cache rebuild --config {path} --region us"
    hints = [line for line in result.stderr.splitlines() if "rows missing from the cache" in line]
    assert hints == [f"us: 300 rows missing from the cache (Redis restarted or flushed?); refill it with: {command}"], \
        result.stderr
    code, report = cli_json(path)
    assert code == 1 and report["missing_from_cache"] == {"us": 300}

    rebuilt = subprocess.run([sys.executable, "-m", *command.split()],
                             capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr
    result = cli(path)
    assert result.returncode == 0 and "rows missing from the cache" not in result.stderr, result.stdout + result.stderr
