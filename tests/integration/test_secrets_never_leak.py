"""Secrets never leak: a full sandbox pipeline runs with distinctive passwords (MySQL reader and
applier, Redis ACL users, a Kafka SASL password), given inline, through the environment and
through files; it applies writes, dead-letters one and logs a conflict; `status`, `config show`, `config check`,
`dlq list` and a failing producer run too. No output, log, topic payload, checkpoint or metadata
table may contain any of the passwords."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from cdcsync.tools.clock_init import init
from common.redis_connect import redis_client
from schemas.config import PipelineConfig, parse_config
from schemas.config_secrets import plain_data
from tests.conftest import config_for_test, connect, create_database
from tests.support import privileges
from tests.support.producer import pipeline, wait_until, write_config

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us")


def cdcsync(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-m", "cdcsync", *args], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=120)
    return result.returncode, result.stdout + result.stderr


def raw_topic_bytes(bootstrap: str, prefix: str) -> bytes:
    """Keys, values and headers of every message in every topic under `prefix`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=10)
        topics = [t for t in metadata.topics if t.startswith(prefix + ".")]
        consumer.assign([TopicPartition(t, p, 0) for t in topics for p in metadata.topics[t].partitions])
        chunks, idle = [], 0
        while idle < 10:
            batch = consumer.consume(1000, 0.2)
            idle = 0 if batch else idle + 1
            for msg in batch:
                if msg.error() is None:
                    chunks += [msg.key() or b"", msg.value() or b"", repr(msg.headers()).encode()]
        return b"\n".join(chunks)
    finally:
        consumer.close()


def metadata_rows(admin: PipelineConfig, region: str) -> str:
    with connect(admin, region, admin.meta_db) as conn, conn.cursor() as cur:
        text = []
        for table in ("apply_marker", "row_clocks", "conflict_log"):
            cur.execute(f"SELECT * FROM {table}")
            text.append(repr(cur.fetchall()))
        return "\n".join(text)


def test_no_output_contains_a_configured_secret(sandbox_config, unique, tmp_path, monkeypatch) -> None:
    db = f"sec_{unique}"
    admin = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                            regions=list(REGIONS), sink={"batch_max_ms": 50, "schema_mismatch": "dead_letter"},
                            snapshot="never")
    create_database(admin, ["eu"], db, "CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(32), note TEXT)")
    # us lacks `note`: eu's rows are dead-lettered there (the DLQ payload is checked too).
    create_database(admin, ["us"], db, "CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(32))")
    init(admin, None)   # clock triggers: concurrent versions of a row become logged conflicts
    with connect(admin, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (10, 'eu-ten', NULL)")
    with connect(admin, "us", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (10, 'us-ten')")   # neither region sees the other's (no snapshot)
    secrets = {name: f"Zq{name}{unique}X" for name in
               ("readereu", "readerus", "appliereu", "applierus", "rediseu", "redisus", "kafkasasl", "kafkakey")}
    users = {role: f"{role[0]}{unique}" for role in ("reader", "applier", "cache")}
    for region in REGIONS:
        privileges.create_reader(admin, region, users["reader"], secrets[f"reader{region}"], [db])
        privileges.create_applier(admin, region, users["applier"], secrets[f"applier{region}"], [db])
        privileges.create_redis_user(redis_client(admin.region(region).redis), users["cache"], admin.prefix,
                                     secrets[f"redis{region}"])
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    (secret_dir / "reader-eu").write_text(secrets["readereu"] + "\n")
    (secret_dir / "kafka").write_text(secrets["kafkasasl"] + "\n")
    data = plain_data(admin)
    data["kafka"]["extra"] = {"sasl.mechanism": "PLAIN", "sasl.username": "cdcsync",
                              "ssl.key.password": secrets["kafkakey"]}   # inline, in the file
    data["kafka"]["extra_files"] = {"sasl.password": str(secret_dir / "kafka")}
    for region in REGIONS:
        data["regions"][region]["mysql"].update(user=users["applier"], reader_user=users["reader"])
        data["regions"][region]["redis"].update(username=users["cache"], password=secrets[f"redis{region}"])
    data["regions"]["eu"]["mysql"].update(password=secrets["appliereu"],
                                          reader_password_file=str(secret_dir / "reader-eu"))
    data["regions"]["us"]["mysql"].update(password="overridden-by-env", reader_password=secrets["readerus"])
    # us's applier password comes from the environment, for every process started below.
    monkeypatch.setenv("CDCSYNC_REGIONS__US__MYSQL__PASSWORD", secrets["applierus"])
    monkeypatch.setenv("CDCSYNC_LOG_LEVEL", "debug")
    config = parse_config(data)
    path = write_config(config, tmp_path / "cdcsync.toml")
    outputs: list[str] = []
    try:
        with pipeline(config, path, tmp_path):
            with connect(admin, "eu", db) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO items VALUES (1, 'a', NULL), (2, 'b', 'dead letter in us')")
            with connect(admin, "us", db) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO items VALUES (3, 'c')")
                cur.execute("UPDATE items SET name = 'us-ten-2' WHERE id = 10")   # concurrent with eu's version
            wait_until(lambda: _ids(admin, "us", db) == {3, 10} and _ids(admin, "eu", db) == {1, 2, 3, 10},
                       timeout=60, what="writes applied")
            wait_until(lambda: _conflicts(admin, "eu") > 0, timeout=60, what="a logged conflict")
            wait_until(lambda: "missing_column" in cdcsync("dlq", "list", "--config", str(path), "--region", "us",
                                                            "--json")[1], timeout=60, what="the dead letter")
            for args in (["status", "--config", str(path)], ["status", "--config", str(path), "--json"],
                         ["config", "show", "--config", str(path)],
                         ["config", "check", "--config", str(path), "--timeout", "3"],
                         ["dlq", "list", "--config", str(path), "--region", "us", "--json"]):
                code, out = cdcsync(*args)
                outputs.append(out)
            assert '"missing_column"' in outputs[-1]
        # A run that fails on credentials: its error names the user, never the password.
        code, out = cdcsync("producer", "--config", str(path), "--region", "us",
                            env={"CDCSYNC_REGIONS__US__MYSQL__READER_PASSWORD": secrets["readerus"] + "wrong"})
        assert code == 1 and "Access denied" in out, out
        outputs.append(out)
        corpus = "\n".join(outputs)
        corpus += "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
        corpus += "\n".join(p.read_text() for p in (tmp_path / "checkpoints").rglob("*.json"))
        corpus += "\n".join(metadata_rows(admin, region) for region in REGIONS)
        topics = raw_topic_bytes(admin.kafka.bootstrap, admin.prefix).decode(errors="replace")
        assert "dead letter in us" not in topics or "missing_column" in topics   # the payloads were read
        corpus += topics
        assert len(list(tmp_path.glob("*.log"))) == 6
        leaked = [name for name, secret in secrets.items() if secret in corpus]
        assert leaked == [], f"secrets leaked: {leaked}"
    finally:
        for region in REGIONS:
            for user in (users["reader"], users["applier"]):
                privileges.drop_mysql_user(admin, region, user)
            privileges.drop_redis_user(redis_client(admin.region(region).redis), users["cache"])


def _conflicts(config: PipelineConfig, region: str) -> int:
    with connect(config, region, config.meta_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM conflict_log")
        return cur.fetchone()[0]


def _ids(config: PipelineConfig, region: str, db: str) -> set[int]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM items")
        return {row[0] for row in cur.fetchall()}


def test_the_check_itself_would_see_a_leak(tmp_path: Path) -> None:
    """Guard for the test above: the same secret printed by a command IS found in its output."""
    path = tmp_path / "c.toml"
    path.write_text('[regions.eu]\nserver_id = 1\n[regions.eu.mysql]\npassword = "ZqVisible1"\n')
    code, out = cdcsync("config", "show", "--config", str(path))
    assert code == 0 and "ZqVisible1" not in out and "**********" in out
    assert "ZqVisible1" in path.read_text()
