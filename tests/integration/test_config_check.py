"""`cdcsync config check`: every connection tested, each failure named, exit 1 on any."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from deploy.local import processes
from schemas.config import parse_config
from schemas.config_secrets import plain_data
from tests.conftest import config_for_test, connect, create_database
from tests.support import privileges
from tests.support.producer import write_config

pytestmark = pytest.mark.integration


def run_check(path) -> tuple[int, list[dict], str]:
    result = subprocess.run([sys.executable, "-m", "cdcsync", "config", "check", "--config", str(path), "--json",
                             "--timeout", "3"], capture_output=True, text=True)
    return result.returncode, [orjson.loads(line) for line in result.stdout.splitlines()], result.stderr


def test_sandbox_config_passes(sandbox_config, unique, tmp_path) -> None:
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"cc_{unique}.*"], tmp=tmp_path)
    code, results, _ = run_check(write_config(config, tmp_path / "c.toml"))
    assert code == 0
    assert {(r["region"], r["check"]) for r in results} >= {
        (region, check) for region in config.regions for check in ("mysql reader", "mysql applier", "redis", "kafka")}
    assert all(r["outcome"] in ("ok", "warn") for r in results)
    # Fresh prefix: the region topics do not exist yet, which is a warning, not a failure.
    assert [r["outcome"] for r in results if r["check"] == "kafka"] == ["warn"] * 3


def test_each_broken_connection_is_reported(sandbox_config, unique, tmp_path) -> None:
    db = f"cc_{unique}"
    admin = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                            regions=["eu", "us"])
    create_database(admin, ["eu"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    reader = f"r_{unique}"
    with connect(admin, "eu") as conn, conn.cursor() as cur:
        cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY 'pw'", (reader,))
        cur.execute("GRANT REPLICATION SLAVE ON *.* TO %s@'127.0.0.1'", (reader,))   # no CLIENT, no SELECT
    data = plain_data(admin)
    data["regions"]["eu"]["mysql"].update(reader_user=reader, reader_password="pw")
    data["regions"]["us"]["mysql"]["password"] = "wrong-password"
    data["regions"]["us"]["redis"].update(username=f"nobody_{unique}", password="wrong-redis")
    data["regions"]["us"]["kafka"] = {"bootstrap": f"127.0.0.1:{processes.free_port()}"}
    try:
        code, results, stderr = run_check(write_config(parse_config(data), tmp_path / "c.toml"))
    finally:
        privileges.drop_mysql_user(admin, "eu", reader)
    by = {(r["region"], r["check"]): r for r in results}
    assert code == 1 and "checks failed" in stderr
    eu_reader = by[("eu", "mysql reader")]
    assert eu_reader["outcome"] == "fail"
    assert "missing REPLICATION CLIENT" in eu_reader["detail"] and f"missing SELECT on {db}" in eu_reader["detail"]
    assert by[("eu", "mysql applier")]["outcome"] == "ok" and by[("eu", "redis")]["outcome"] == "ok"
    for check in ("mysql reader", "mysql applier"):
        assert by[("us", check)]["outcome"] == "fail" and "Access denied" in by[("us", check)]["detail"]
    assert by[("us", "redis")]["outcome"] == "fail"
    assert by[("us", "kafka")]["outcome"] == "fail"
    assert by[("eu", "kafka")]["outcome"] != "fail"
    # us's db sink reads eu's topics from eu's cluster, which is reachable.
    assert by[("us", "kafka (source eu)")]["outcome"] == "ok"
    for secret in ("wrong-password", "wrong-redis"):
        assert secret not in orjson.dumps(results).decode() + stderr
