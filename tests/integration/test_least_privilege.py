"""Least privilege, in the sandbox: the producer runs as a reader with only REPLICATION SLAVE,
REPLICATION CLIENT and SELECT on the replicated schema; the database sink as an applier with only
DML on the replicated schema and cdcsync's metadata tables; the cache sink as a Redis ACL user
limited to the key prefix. `config check` passes for that config."""

from __future__ import annotations

import subprocess
import sys

import pymysql
import pytest
import redis

from cdcsync.tools.clock_init import init
from consumers.cache.sink import decode_row, redis_client
from schemas.config import parse_config
from schemas.config_secrets import plain_data
from tests.conftest import config_for_test, connect, create_database
from tests.support import privileges
from tests.support.producer import pipeline, wait_until, write_config

pytestmark = pytest.mark.integration

TABLE = "CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL)"


@pytest.fixture
def least(sandbox_config, unique, tmp_path):
    """The eu/us pipeline config with least-privilege users; drops them afterwards."""
    db = f"lp_{unique}"
    admin = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                            regions=["eu", "us"], sink={"batch_max_ms": 50})
    create_database(admin, ["eu", "us"], db, TABLE)
    init(admin, None)   # metadata tables and clock triggers, once, as the admin (docs/deployment/security.md)
    users = {"reader": f"r_{unique}", "applier": f"a_{unique}", "cache": f"c_{unique}"}
    pw = {k: f"{k}-pw-{unique}" for k in users}
    for region in ("eu", "us"):
        privileges.create_reader(admin, region, users["reader"], pw["reader"], [db])
        privileges.create_applier(admin, region, users["applier"], pw["applier"], [db])
    cache_admin = redis_client(admin.region("eu").redis)
    privileges.create_redis_user(cache_admin, users["cache"], admin.prefix, pw["cache"])
    data = plain_data(admin)
    for region in ("eu", "us"):
        data["regions"][region]["mysql"].update(user=users["applier"], password=pw["applier"],
                                                reader_user=users["reader"], reader_password=pw["reader"])
    data["regions"]["eu"]["redis"].update(username=users["cache"], password=pw["cache"])
    try:
        yield admin, parse_config(data), db
    finally:
        for region in ("eu", "us"):
            for user in (users["reader"], users["applier"]):
                privileges.drop_mysql_user(admin, region, user)
        privileges.drop_redis_user(cache_admin, users["cache"])
        cache_admin.close()


def items(config, region, db) -> dict[int, str]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name FROM items")
        return dict(cur.fetchall())


def test_users_really_are_limited(least) -> None:
    admin, config, db = least
    reader = config.region("eu").mysql.reader()
    with pymysql.connect(**reader.connect_settings(), database=db) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError, match="INSERT command denied"):
            cur.execute("INSERT INTO items VALUES (1, 'x')")
    with connect(config, "us", db) as conn, conn.cursor() as cur:   # the applier
        with pytest.raises(pymysql.err.OperationalError, match="CREATE command denied"):
            cur.execute("CREATE TABLE t2 (id INT PRIMARY KEY)")
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            cur.execute("SET SESSION gtid_domain_id = 77")
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            cur.execute("SHOW MASTER STATUS")
    cache = redis_client(config.region("eu").redis)
    with pytest.raises(redis.exceptions.NoPermissionError):
        cache.set("elsewhere:key", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        cache.flushall()
    cache.close()


def test_pipeline_runs_with_least_privilege(least, tmp_path) -> None:
    admin, config, db = least
    with connect(admin, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (1, 'before-start')")   # reaches us through the snapshot
    path = write_config(config, tmp_path / "cdcsync.toml")
    check = subprocess.run([sys.executable, "-m", "cdcsync", "config", "check", "--config", str(path), "--json"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert '"check":"mysql reader","outcome":"ok"' in check.stdout
    assert '"check":"mysql applier","outcome":"ok"' in check.stdout
    with pipeline(config, path, tmp_path):
        with connect(admin, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (2, 'eu'), (3, 'eu')")
            cur.execute("UPDATE items SET name = 'eu-updated' WHERE id = 3")
        with connect(admin, "us", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (4, 'us')")
        expected = {1: "before-start", 2: "eu", 3: "eu-updated", 4: "us"}
        for region in ("eu", "us"):
            wait_until(lambda r=region: items(admin, r, db) == expected, timeout=60, what=f"{region} converged")
        cache = redis_client(admin.region("eu").redis)

        def cached() -> dict[int, str]:
            rows = [decode_row(cache.hgetall(k)) for k in cache.scan_iter(f"{config.prefix}:{db}.items:*")]
            return {row["id"]: row["name"] for row in rows if row is not None}

        wait_until(lambda: cached() == expected, timeout=60, what="eu cache written by the ACL user")
        cache.close()
