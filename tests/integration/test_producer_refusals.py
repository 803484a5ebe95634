"""Start-up and stream checks refuse with a message that names the fix, and never lose rows silently.

These use region `ap`, whose binlog they purge or compress, so the other tests' regions stay untouched.
"""

from __future__ import annotations

import time

import pytest

from common.checkpoint_store import FileCheckpointStore
from common.mysql import connect as mysql_connect, current_position
from schemas.position import BinlogPosition
from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, write_config

pytestmark = pytest.mark.integration


def _setup(sandbox_config, unique, tmp_path, **producer):
    db, prefix = f"rf_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, **producer)
    with connect(config, "ap") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, body TEXT)")
    return config, db, prefix


def _run(config, tmp_path, *extra: str) -> ProducerProcess:
    path = write_config(config, tmp_path / "cdcsync.toml")
    return ProducerProcess(path, "ap", tmp_path / "producer.log", *extra).start()


def test_missing_privileges_are_named(sandbox_config, unique, tmp_path) -> None:
    config, db, _ = _setup(sandbox_config, unique, tmp_path)
    user = f"weak_{unique}"
    with connect(config, "ap") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw'")
        cur.execute(f"GRANT SELECT ON {db}.* TO '{user}'@'127.0.0.1'")
    data = config.model_dump(mode="python")
    for name, region in data["regions"].items():
        region["mysql"]["password"] = config.regions[name].mysql.password.get_secret_value()
    data["regions"]["ap"]["mysql"].update(user=user, password="pw")
    weak = type(config).model_validate(data)
    producer = _run(weak, tmp_path)
    assert producer.wait(30) == 1
    out = producer.output()
    assert "missing REPLICATION SLAVE" in out and "missing REPLICATION CLIENT" in out
    assert "GRANT REPLICATION SLAVE ON *.* TO" in out
    assert "Traceback" not in out


def test_purged_position_says_so_and_resnapshot_recovers(sandbox_config, unique, tmp_path) -> None:
    config, db, prefix = _setup(sandbox_config, unique, tmp_path)
    region = config.regions["ap"]
    with connect(config, "ap", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1, 'kept')")
        old = current_position(conn, "mariadb")
        cur.execute("INSERT INTO t VALUES (2, 'purged')")
        # PURGE quietly keeps a file that crash recovery still needs; retry until it is really gone.
        for _ in range(50):
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW MASTER STATUS")
            cur.execute(f"PURGE BINARY LOGS TO '{cur.fetchone()[0]}'")
            cur.execute("SHOW BINARY LOGS")
            if old.file not in {row[0] for row in cur.fetchall()}:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"could not purge {old.file}")
    FileCheckpointStore(region.producer.checkpoint_dir, "ap", region.server_id).save(old)

    producer = _run(config, tmp_path)
    assert producer.wait(30) == 1
    out = producer.output()
    assert "no longer has binlog position" in out and "--resnapshot" in out

    producer = _run(config, tmp_path, "--resnapshot")
    records = read_all(config.kafka.bootstrap, [f"{prefix}.ap.{db}.t"], expect=2)
    assert producer.terminate() == 0, producer.output()
    assert sorted((r.message.op.value, r.message.pk["id"]) for r in records) == [("snapshot", 1), ("snapshot", 2)]


def test_compressed_binlog_events_are_refused(sandbox_config, unique, tmp_path) -> None:
    config, db, _ = _setup(sandbox_config, unique, tmp_path)
    region = config.regions["ap"]
    with mysql_connect(region.mysql, database=db) as conn, conn.cursor() as cur:
        start: BinlogPosition = current_position(conn, "mariadb")
        cur.execute("SET GLOBAL log_bin_compress = ON")
        try:
            cur.execute("INSERT INTO t VALUES (1, %s)", ("x" * 5000,))   # above log_bin_compress_min_len
        finally:
            cur.execute("SET GLOBAL log_bin_compress = OFF")
    FileCheckpointStore(region.producer.checkpoint_dir, "ap", region.server_id).save(start)
    producer = _run(config, tmp_path)
    assert producer.wait(30) == 1
    out = producer.output()
    assert "compressed binlog event" in out and "log_bin_compress" in out
    saved = FileCheckpointStore(region.producer.checkpoint_dir, "ap", region.server_id).load()
    assert saved is not None and saved.position == start     # the checkpoint did not move past the lost rows


def test_compression_switched_on_is_refused_at_start(sandbox_config, unique, tmp_path) -> None:
    config, _, _ = _setup(sandbox_config, unique, tmp_path, snapshot="never")
    with connect(config, "ap") as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL log_bin_compress = ON")
        try:
            producer = _run(config, tmp_path)
            assert producer.wait(30) == 1
        finally:
            cur.execute("SET GLOBAL log_bin_compress = OFF")
    assert "log_bin_compress is ON" in producer.output()
