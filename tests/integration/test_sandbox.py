"""The sandbox starts real servers, writes its two files, and stops only what it started."""

from __future__ import annotations

import json
import subprocess
import sys

import pymysql
import redis

from deploy.local import Sandbox
from deploy.local.processes import port_open
from schemas.config import load_config


def test_sandbox_contract_and_servers(sandbox: Sandbox) -> None:
    contract = json.loads(sandbox.contract_path.read_text())
    assert set(contract) == {"regions", "kafka", "config"}
    assert set(contract["regions"]) == {"eu", "us", "ap"}
    config = load_config(contract["config"])
    server_ids = set()
    for name, region in contract["regions"].items():
        assert set(region) == {"mysql", "redis"}
        assert set(region["mysql"]) == {"host", "port", "user", "password"}
        m = region["mysql"]
        with pymysql.connect(host=m["host"], port=m["port"], user=m["user"], password=m["password"]) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata,"
                            " @@server_id, @@gtid_domain_id")
                log_bin, fmt, image, metadata, server_id, domain = cur.fetchone()
        assert (log_bin, fmt, image, metadata) == (1, "ROW", "FULL", "FULL")
        assert server_id == config.regions[name].server_id
        server_ids.add((server_id, domain))
        assert redis.Redis(port=region["redis"]["port"]).ping()
    assert len(server_ids) == 3
    assert port_open(int(contract["kafka"]["bootstrap"].rsplit(":", 1)[1]))


def test_second_up_is_harmless_and_status_reports(sandbox: Sandbox) -> None:
    before = {s.name: s.pid for s in sandbox.status()}
    sandbox.up(["eu", "us", "ap"])
    after = {s.name: s.pid for s in sandbox.status()}
    assert before == after
    assert all(s.accepting for s in sandbox.status())


def test_cli_up_status_down_cycle(tmp_path) -> None:
    cli = [sys.executable, "-m", "cdcsync", "sandbox"]
    d = str(tmp_path / "box")
    subprocess.run(cli + ["up", "--regions", "solo", "--dir", d], check=True, capture_output=True)
    box = Sandbox(d)
    ports = [s.port for s in box.status()]
    assert subprocess.run(cli + ["status", "--dir", d], capture_output=True).returncode == 0
    subprocess.run(cli + ["down", "--dir", d], check=True, capture_output=True)
    assert not any(s.running for s in box.status())
    assert not any(port_open(p) for p in ports)
    # Down again, and status: nothing running is reported as a failure, not a crash.
    subprocess.run(cli + ["down", "--dir", d], check=True, capture_output=True)
    assert subprocess.run(cli + ["status", "--dir", d], capture_output=True).returncode == 1


def test_mariadb_temporary_files_stay_in_the_sandbox(sandbox: Sandbox, sandbox_config) -> None:
    # /tmp is shared with other servers and cleaners: a temporary table deleted under mariadbd fails queries.
    for name, region in sandbox_config.regions.items():
        m = region.mysql
        with pymysql.connect(host=m.host, port=m.port, user=m.user, password=m.password.get_secret_value()) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT @@tmpdir")
                assert cur.fetchone()[0] == str(sandbox.root / name / "mysql" / "tmp")
