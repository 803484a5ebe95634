"""Schema changes in a multi-active mesh (docs/schema-changes.md): drift is detected by
`cdcsync schema diff`, `config check` and `status`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cdcsync.tools.clock_init import init_region
from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import write_config

pytestmark = pytest.mark.integration


def cdcsync(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cdcsync", *args], capture_output=True, text=True, timeout=120)


def test_schema_diff_names_each_difference_and_exits_1(sandbox_config, unique: str, tmp_path: Path) -> None:
    db = f"drift_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"])
    path = write_config(config, tmp_path / "cdcsync.toml")
    create_database(config, ["eu", "us"], db, "CREATE TABLE {db}.users (id INT PRIMARY KEY, name VARCHAR(20))")
    try:
        for region in config.regions:
            init_region(config, region)
        same = cdcsync("schema", "diff", "--config", str(path))
        assert same.returncode == 0 and "no schema drift" in same.stdout, same.stdout + same.stderr
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE users ADD COLUMN phone VARCHAR(20) NULL, ADD UNIQUE KEY by_name (name)")
        found = cdcsync("schema", "diff", "--config", str(path), "--json")
        assert found.returncode == 1, found.stdout + found.stderr
        drift = {(d["aspect"], d["name"]): d["values"] for d in orjson.loads(found.stdout)["drift"]}
        assert drift[("column", "phone")]["us"] == "(absent)"
        assert drift[("column", "phone")]["eu"].startswith("varchar(20) NULL")
        assert drift[("key", "by_name")] == {"eu": "(name)", "us": "(absent)"}
        assert drift[("clock triggers", "")] == {"eu": "stale", "us": "current"}
        table = cdcsync("schema", "diff", "--config", str(path))
        assert table.returncode == 1 and "phone" in table.stdout and "by_name" in table.stdout
        checked = cdcsync("config", "check", "--config", str(path), "--json", "--timeout", "3")
        [result] = [r for r in map(orjson.loads, checked.stdout.splitlines()) if r["check"] == "schema drift"]
        assert result["outcome"] == "fail" and f"{db}.users: column phone differs" in result["detail"]
    finally:
        for region in config.regions:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
