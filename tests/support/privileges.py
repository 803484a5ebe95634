"""Least-privilege users in the sandbox: a MySQL binlog reader, a MySQL applier, a Redis ACL user.

Created through the sandbox's admin user and dropped by `drop()`; the grants are exactly the ones
docs/deployment/security.md documents.
"""

from __future__ import annotations

from common import metadata_tables
from schemas.config import PipelineConfig
from tests.conftest import connect

HOST = "127.0.0.1"   # cdcsync connects over TCP to 127.0.0.1


def create_reader(admin: PipelineConfig, region: str, user: str, password: str, schemas: list[str]) -> None:
    with connect(admin, region) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, HOST, password))
        cur.execute("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO %s@%s", (user, HOST))
        for schema in schemas:
            cur.execute(f"GRANT SELECT ON `{schema}`.* TO %s@%s", (user, HOST))


def create_applier(admin: PipelineConfig, region: str, user: str, password: str, schemas: list[str]) -> None:
    """DML on the replicated schemas and on the metadata tables (created here as the admin)."""
    with connect(admin, region) as conn, conn.cursor() as cur:
        metadata_tables.ensure(conn, admin.meta_db)
        cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, HOST, password))
        for schema in schemas:
            cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{schema}`.* TO %s@%s", (user, HOST))
        for table in metadata_tables.TABLES:
            cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{admin.meta_db}`.`{table}` TO %s@%s",
                        (user, HOST))


def drop_mysql_user(admin: PipelineConfig, region: str, user: str) -> None:
    with connect(admin, region) as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS %s@%s", (user, HOST))


def redis_acl_rules(prefix: str, password: str) -> list[str]:
    """The cache user's ACL: its keys only, the commands the cache sink uses (hashes, TTLs,
    scripts, pipelines), no pub/sub channels."""
    return ["on", f">{password}", "resetkeys", f"~{prefix}:*", "resetchannels", "-@all",
            "+@connection", "+@read", "+@write", "+@scripting", "-@dangerous"]


def create_redis_user(client, user: str, prefix: str, password: str) -> None:
    client.execute_command("ACL", "SETUSER", user, "reset", *redis_acl_rules(prefix, password))


def drop_redis_user(client, user: str) -> None:
    client.execute_command("ACL", "DELUSER", user)
