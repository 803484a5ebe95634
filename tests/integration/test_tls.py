"""TLS with a CA and client certificates. MySQL: a MariaDB of its own (the shared sandbox has no
TLS), a user that REQUIRES X509, and cdcsync's connections (PyMySQL and the binlog reader).
Redis: a TLS-only redis-server that requires client certificates, and the cache sink's client."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pymysql
import redis
import pytest
from pymysqlreplication.row_event import WriteRowsEvent

from common.mysql import connect as mysql_connect, current_position
from consumers.cache.sink import redis_client
from deploy.local import mariadb, processes
from producers import preflight
from producers.binlog import stream as binlog_stream
from schemas.config import MySQLConfig, RedisConfig

pytestmark = pytest.mark.integration


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    folder.mkdir(parents=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cdcsync-test-ca",
             "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=folder)
    (folder / "san.cnf").write_text("subjectAltName = IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}-key.pem",
                 "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                 "-days", "2", "-extfile", "san.cnf", "-out", f"{name}.pem", cwd=folder)
    return {name: folder / f"{name}.pem" for name in ("ca", "server", "server-key", "client", "client-key")}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    certs = make_certs(root / "certs")
    spec = mariadb.MariaDBSpec(home=root / "mysql", port=processes.free_port(), server_id=91, gtid_domain_id=91)
    spec.home.mkdir(parents=True)
    mariadb.install(spec)
    spec.cnf.write_text(mariadb.render_cnf(spec) + f"ssl_ca = {certs['ca']}\nssl_cert = {certs['server']}\n"
                                                   f"ssl_key = {certs['server-key']}\n")
    proc = processes.spawn([mariadb._binary("mariadbd"), f"--defaults-file={spec.cnf}"], spec.log)
    try:
        processes.wait_for_port(spec.port, timeout=60, proc=proc, what="TLS mariadbd", log=spec.log)
        with mariadb.root_connect(spec) as conn, conn.cursor() as cur:
            cur.execute("CREATE USER 'tlsuser'@'127.0.0.1' IDENTIFIED BY 'pw' REQUIRE X509")
            cur.execute("GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, INSERT, CREATE ON *.* "
                        "TO 'tlsuser'@'127.0.0.1'")
        yield spec, certs
    finally:
        processes.stop(proc.pid, mariadb.MARKER)


def test_client_certificate_connections(tls_server) -> None:
    spec, certs = tls_server
    plain = MySQLConfig(port=spec.port, user="tlsuser", password="pw")
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        pymysql.connect(**plain.connect_settings())
    mysql = plain.model_copy(update={"ssl_ca": certs["ca"], "ssl_cert": certs["client"],
                                     "ssl_key": certs["client-key"]})
    with pymysql.connect(**mysql.connect_settings()) as conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cur.fetchone()[1]
        cur.execute("CREATE DATABASE tlsdb")
        cur.execute("CREATE TABLE tlsdb.t (id INT PRIMARY KEY)")
    assert preflight.source_problems(mysql, ["tlsdb"]) == []
    # The binlog reader connects with the same TLS settings (the user cannot connect without them).
    with mysql_connect(mysql) as conn:
        start = current_position(conn, "mariadb")
        with conn.cursor() as cur:
            cur.execute("INSERT INTO tlsdb.t VALUES (7)")
    stream = binlog_stream.open_stream(mysql, start, reader_server_id=1091, heartbeat_s=0.5)
    try:
        rows = next(e for e in stream if isinstance(e, WriteRowsEvent))
        assert rows.rows[0]["values"]["id"] == 7
    finally:
        stream.close()
    # A CA that did not sign the server's certificate is refused.
    other = make_certs(certs["ca"].parent.parent / "other")
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(**mysql.model_copy(update={"ssl_ca": other["ca"]}).connect_settings())


def test_redis_tls_with_client_certificate(tmp_path) -> None:
    certs = make_certs(tmp_path / "certs")
    port = processes.free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = processes.spawn([binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                            "--tls-cert-file", str(certs["server"]), "--tls-key-file", str(certs["server-key"]),
                            "--tls-ca-cert-file", str(certs["ca"]), "--tls-auth-clients", "yes", "--save", "",
                            "--requirepass", "redis-pw"], tmp_path / "redis.log")
    try:
        processes.wait_for_port(port, timeout=20, proc=proc, what="TLS redis-server", log=tmp_path / "redis.log")
        cfg = RedisConfig(port=port, password="redis-pw", ssl=True, ssl_ca=certs["ca"], ssl_cert=certs["client"],
                          ssl_key=certs["client-key"])
        client = redis_client(cfg)
        assert client.set("cdcsync:k", "v") and client.get("cdcsync:k") == b"v"
        client.close()
        for broken in ({"ssl": False}, {"ssl_cert": None, "ssl_key": None}):
            bad = redis_client(cfg.model_copy(update=broken))
            with pytest.raises((redis.RedisError, OSError)):
                bad.ping()
            bad.close()
    finally:
        processes.stop(proc.pid, "redis-server")


def test_operator_commands_connect_with_the_regions_tls_settings(tls_server) -> None:
    """`cdcsync conflicts` and `cdcsync tombstones purge` open their own connections: with the
    region's TLS settings, or the password would cross the network in clear (the user here cannot
    connect without its certificate, so a connection that drops the settings is refused)."""
    from cdcsync.commands import conflicts
    from cdcsync.tools import tombstones
    from schemas.config import parse_config

    spec, certs = tls_server
    mysql = {"host": "127.0.0.1", "port": spec.port, "user": "tlsuser", "password": "pw",
             "ssl_ca": str(certs["ca"]), "ssl_cert": str(certs["client"]), "ssl_key": str(certs["client-key"])}
    config = parse_config({"kafka": {"bootstrap": "192.0.2.1:9092"},
                           "regions": {"eu": {"server_id": 1, "mysql": mysql}}})
    for opened in (conflicts._connect(config, "eu"), tombstones._connect(config, "eu", autocommit=True)):
        with opened as conn, conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            assert cur.fetchone()[1]
