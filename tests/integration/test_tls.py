"""TLS with a CA and client certificates. MySQL: a MariaDB of its own (the shared sandbox has no
TLS), a user that REQUIRES X509, and cdcsync's connections (PyMySQL and the binlog reader); then
EVERY `cdcsync` command that connects to MySQL, run as an operator runs it against regions whose
servers refuse any connection without TLS (tests/integration/tls_commands.py).
Redis: a TLS-only redis-server that requires client certificates, and the cache sink's client."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import redis
import pytest
from pymysqlreplication.row_event import WriteRowsEvent

from cdcsync.tools.dlq_reader import read_dead_letters
from common.mysql import connect as mysql_connect, current_position
from schemas.cache_layout import cache_key
from common.redis_connect import redis_client
from deploy.local import mariadb, processes
from producers import preflight
from producers.binlog import stream as binlog_stream
from schemas.config import MySQLConfig, PipelineConfig, RedisConfig, parse_config
from schemas.topics import TopicNames
from tests.support.kafka import read_all
from tests.support.producer import CdcsyncProcess, wait_until, write_config

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
        mysql_connect(plain)
    mysql = plain.model_copy(update={"ssl_ca": certs["ca"], "ssl_cert": certs["client"],
                                     "ssl_key": certs["client-key"]})
    with mysql_connect(mysql) as conn, conn.cursor() as cur:
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
        mysql_connect(mysql.model_copy(update={"ssl_ca": other["ca"]}))


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


# -- every command that connects to MySQL --------------------------------------------------------
# Regions eu and us (and ap, for `region add`) on MariaDBs of their own with `require_secure_transport
# = ON` and a user that REQUIRES X509: a connection without the region's TLS settings is refused,
# so a command that opens one fails. Kafka and Redis are the shared sandbox's. Each case runs the
# real command line and must succeed AND have connected (the servers' `Connections` counters grow):
# with secure transport required, every such connection was TLS. The commands are found in the CLI
# itself: one added later fails `test_every_command_is_classified` until it gets a case here.

TLS_REGIONS = ("eu", "us", "ap")
PASSWORD = "tls-pw"
NO_MYSQL = {   # commands that open no MySQL connection, and why
    "schema export": "writes JSON Schemas", "config reference": "prints the settings",
    "config show": "prints the config", "dlq list": "reads the dead-letter topic",
    "dlq show": "reads the dead-letter topic", "dlq discard": "writes marks to the dead-letter topic",
    "sandbox up": "the local sandbox's root over its unix socket, no config",
    "sandbox down": "stops processes", "sandbox status": "checks processes and ports",
    "demo": "starts its own TLS-less sandbox; its connections go through the one opener "
            "(tests/unit/test_one_mysql_opener.py)",
}


def _cli_commands() -> set[str]:
    import typer.main

    from cdcsync.cli import app

    def walk(command, prefix: str) -> set[str]:
        if not hasattr(command, "commands"):
            return {prefix}
        return set().union(*(walk(c, f"{prefix} {name}".strip()) for name, c in command.commands.items()))

    return walk(typer.main.get_command(app), "")


@dataclass
class TlsWorld:
    """The regions, their config file, and what the cases have done so far."""

    root: Path
    db: str
    specs: dict[str, mariadb.MariaDBSpec]
    config: PipelineConfig     # eu and us
    path: Path
    with_ap: Path              # the config with ap too (for `region add`)
    procs: list = field(default_factory=list)
    done: set[str] = field(default_factory=set)

    def root_sql(self, region: str, *statements: str) -> list[tuple]:
        with mariadb.root_connect(self.specs[region]) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return list(cur.fetchall())

    def connections(self) -> dict[str, int]:
        return {r: int(self.root_sql(r, "SHOW GLOBAL STATUS LIKE 'Connections'")[0][1]) for r in self.specs}

    def rows(self, region: str, table: str = "t") -> list[tuple]:
        return self.root_sql(region, f"SELECT * FROM {self.db}.{table} ORDER BY 1")

    def cli(self, *args: str, config: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "cdcsync", *args, "--config", str(config or self.path)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def start(self, command: str, region: str, *extra: str) -> CdcsyncProcess:
        """`cdcsync COMMAND --config ... --region REGION EXTRA...` in the background."""
        log = self.root / f"{command}-{region}{''.join(extra)}.log"
        proc = CdcsyncProcess([command], self.path, region, log, *extra).start()
        self.procs.append(proc)
        return proc


def _tls_mariadb(root: Path, certs: dict[str, Path], region: str, index: int) -> tuple[mariadb.MariaDBSpec, int]:
    spec = mariadb.MariaDBSpec(home=root / region, port=processes.free_port(), server_id=index + 1,
                               gtid_domain_id=index + 1, auto_increment_increment=len(TLS_REGIONS),
                               auto_increment_offset=index + 1)
    spec.home.mkdir(parents=True)
    (spec.home / "tmp").mkdir()
    mariadb.install(spec)
    spec.cnf.write_text(mariadb.render_cnf(spec) + f"ssl_ca = {certs['ca']}\nssl_cert = {certs['server']}\n"
                                                   f"ssl_key = {certs['server-key']}\nrequire_secure_transport = ON\n")
    proc = processes.spawn([mariadb._binary("mariadbd"), f"--defaults-file={spec.cnf}"], spec.log)
    processes.wait_for_port(spec.port, timeout=60, proc=proc, what=f"TLS mariadbd {region}", log=spec.log)
    with mariadb.root_connect(spec) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER 'cdcsync'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}' REQUIRE X509")
        cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'cdcsync'@'127.0.0.1' WITH GRANT OPTION")
    return spec, proc.pid


@pytest.fixture(scope="module")
def tls_world(sandbox_config: PipelineConfig, tmp_path_factory) -> Iterator[TlsWorld]:
    root = tmp_path_factory.mktemp("tls-commands")
    certs = make_certs(root / "certs")
    specs, pids = {}, []
    unique = uuid.uuid4().hex[:8]
    db = f"tls_{unique}"
    try:
        for index, region in enumerate(TLS_REGIONS):
            specs[region], pid = _tls_mariadb(root, certs, region, index)
            pids.append(pid)
        data = sandbox_config.model_dump(mode="python")
        data["prefix"] = f"tls{unique}"
        for region in TLS_REGIONS:
            r = data["regions"][region]
            r["mysql"] = {"host": "127.0.0.1", "port": specs[region].port, "user": "cdcsync", "password": PASSWORD,
                          "flavor": "mariadb", "ssl_ca": str(certs["ca"]), "ssl_cert": str(certs["client"]),
                          "ssl_key": str(certs["client-key"])}
            r["server_id"] = TLS_REGIONS.index(region) + 1
            r["producer"].update(include=[f"{db}.*"], checkpoint_dir=str(root / "checkpoints" / region))
            r["sink"].update(batch_max_ms=50)
        with_ap = parse_config(data)
        data["regions"] = {r: v for r, v in data["regions"].items() if r in ("eu", "us")}
        config = parse_config(data)
        for region in TLS_REGIONS:
            with mariadb.root_connect(specs[region]) as conn, conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db}")
                cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
                if region != "us":   # us lacks it: its database sink dead-letters eu's row (for `dlq replay`)
                    cur.execute(f"CREATE TABLE {db}.only_eu (id INT PRIMARY KEY)")
                if region == "eu":
                    cur.execute(f"INSERT INTO {db}.t VALUES (1, 'one')")
        world = TlsWorld(root, db, specs, config, write_config(config, root / "cdcsync.toml"),
                         write_config(with_ap, root / "with-ap.toml"))
        yield world
        for proc in world.procs:
            if proc.alive():
                proc.kill9()
    finally:
        for pid in pids:
            processes.stop(pid, mariadb.MARKER)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _stop(proc: CdcsyncProcess) -> None:
    code = proc.terminate(timeout=60)
    assert code == 0, proc.output()[-4000:]


def _eu_topic(w: TlsWorld, table: str = "t") -> str:
    return TopicNames.of(w.config).changes("eu", w.db, table)


def case_init(w: TlsWorld) -> None:
    out = _ok(w.cli("init"))
    assert "eu" in out and "us" in out, out


def case_config_check(w: TlsWorld) -> None:
    _ok(w.cli("config", "check"))


def case_schema_diff(w: TlsWorld) -> None:
    out = _ok(w.cli("schema", "diff"))
    assert "no schema drift" in out, out


def case_producer(w: TlsWorld) -> None:
    procs = [w.start("producer", region) for region in ("eu", "us")]
    for region in ("eu", "us"):
        wait_until((w.root / "checkpoints" / region / f"{region}.json").exists, timeout=90,
                   what=f"{region} checkpoint")
    w.root_sql("eu", f"INSERT INTO {w.db}.t VALUES (2, 'two')", f"INSERT INTO {w.db}.only_eu VALUES (5)")
    found = read_all(w.config.kafka.bootstrap, [_eu_topic(w), _eu_topic(w, "only_eu")], expect=3, timeout_s=90)
    assert sorted(r.message.pk["id"] for r in found) == [1, 2, 5], found
    for proc in procs:
        _stop(proc)


def case_consumer_db(w: TlsWorld) -> None:
    proc = w.start("consumer", "us", "--sink", "db")
    wait_until(lambda: w.rows("us") == [(1, "one"), (2, "two")], timeout=90, what="eu's rows in us")
    wait_until(lambda: len(read_dead_letters(w.config, "us")) == 1, timeout=60, interval=1.0,
               what="only_eu's row dead-lettered in us")
    _stop(proc)


def case_consumer_cache(w: TlsWorld) -> None:
    proc = w.start("consumer", "eu", "--sink", "cache")
    client = redis_client(w.config.region("eu").redis)
    key = cache_key(w.config.prefix, w.db, "t", [2])
    wait_until(lambda: client.exists(key), timeout=90, what="row 2 in eu's cache")
    client.close()
    _stop(proc)


def case_dlq_replay(w: TlsWorld) -> None:
    w.root_sql("us", f"CREATE TABLE {w.db}.only_eu (id INT PRIMARY KEY)")
    _ok(w.cli("init", "--region", "us"))    # the new table's clock triggers
    _ok(w.cli("dlq", "replay", "--region", "us", "--all"))
    assert w.rows("us", "only_eu") == [(5,)]


def case_status(w: TlsWorld) -> None:
    out = _ok(w.cli("status", "--json"))
    assert '"eu"' in out and '"us"' in out


def case_verify(w: TlsWorld) -> None:
    _ok(w.cli("verify", "--no-cache"))


def case_lookup(w: TlsWorld) -> None:
    out = _ok(w.cli("lookup", "--region", "eu", "--table", f"{w.db}.t", "--key", "1", "--explain"))
    assert '"one"' in out, out


def case_bloom(w: TlsWorld) -> None:
    proc = w.start("bloom", "eu")
    client = redis_client(w.config.region("eu").redis)
    wait_until(lambda: any(client.scan_iter(f"{w.config.prefix}:*bloom*", count=1000)), timeout=90,
               what="a Bloom filter of eu in Redis")
    client.close()
    _stop(proc)


def case_cache_rebuild(w: TlsWorld) -> None:
    _ok(w.cli("cache", "rebuild", "--region", "eu"))


def _conflict(w: TlsWorld) -> int:
    from consumers.db import conflict_log
    from schemas.conflict_record import ConflictRecord, VersionImage
    from schemas.row_version import value_hash
    from schemas.row_clock_key import row_identity

    def version(values: dict, origin: str, counters: dict) -> VersionImage:
        return VersionImage(values=values, origin=origin, counters=counters, hlc_us=1, hash=value_hash(values))

    local, remote = {"id": 1, "v": "local"}, {"id": 1, "v": "one"}
    record = ConflictRecord(logged_at_us=time.time_ns() // 1000, region="eu", db=w.db, table="t", pk={"id": 1},
                            strategy="lww", winner="remote", local=version(local, "eu", {"eu": 1}),
                            remote=version(remote, "us", {"us": 1}),
                            result=version(remote, "us", {"eu": 1, "us": 1}), losers=[version(local, "eu", {"eu": 1})])
    with mysql_connect(w.config.region("eu").mysql) as conn, conn.cursor() as cur:
        return conflict_log.insert(cur, w.config.meta_db, record, key=row_identity(record.pk, {"id": "int"}, None))


def case_conflicts_list(w: TlsWorld) -> None:
    _ok(w.cli("conflicts", "list"))


def case_conflicts_stats(w: TlsWorld) -> None:
    _ok(w.cli("conflicts", "stats"))


def case_conflicts_show(w: TlsWorld) -> None:
    out = _ok(w.cli("conflicts", "show", str(_conflict(w)), "--region", "eu", "--json"))
    assert '"local"' in out, out


def case_conflicts_resolve(w: TlsWorld) -> None:
    # As the sink leaves a resolved row: a local write ({eu: n}), then the merged clock of both versions
    # (set out of the binlog: the producer rightly refuses a clock written by hand).
    w.root_sql("eu", f"UPDATE {w.db}.t SET v = 'uno' WHERE id = 1", "SET SESSION sql_log_bin = 0",
               f"UPDATE {w.config.meta_db}.row_clocks SET counters = '{{\"eu\": 1, \"us\": 1}}' "
               f"WHERE db = '{w.db}' AND tbl = 't' AND pk_hash = UNHEX(SHA2('1:1', 256))")
    _ok(w.cli("conflicts", "resolve", str(_conflict(w)), "--region", "eu", "--take", "local"))
    assert (1, "local") in w.rows("eu")


def case_tombstones_purge(w: TlsWorld) -> None:
    _ok(w.cli("tombstones", "purge", "--ignore-lag"))


def case_markers_rebase(w: TlsWorld) -> None:
    _ok(w.cli("markers", "rebase", "--region", "us", "--topic", _eu_topic(w)))


def case_region_add(w: TlsWorld) -> None:
    _ok(w.cli("region", "add", "ap", "--seed-from", "eu", config=w.with_ap, timeout=300))
    assert w.rows("ap") == w.rows("eu")


def case_region_remove(w: TlsWorld) -> None:
    _ok(w.cli("region", "remove", "ap", "--ignore-lag"))


def case_run(w: TlsWorld) -> None:
    argv = [sys.executable, "-m", "cdcsync", "run", "--config", str(w.path), "--regions", "eu,us",
            "--log-dir", str(w.root / "run-logs")]
    with open(w.root / "run.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        w.root_sql("eu", f"INSERT INTO {w.db}.t VALUES (10, 'ten')")
        wait_until(lambda: (10, "ten") in w.rows("us"), timeout=120, what="row 10 in us through `run`")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (w.root / "run.log").read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()


# Each case, and the cases whose state it needs (run first when the case runs alone, `-k`).
COMMANDS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "init": (case_init, ()),
    "producer": (case_producer, ("init",)),
    "consumer": (case_consumer_db, ("producer",)),          # --sink db, and --sink cache below
    "consumer --sink cache": (case_consumer_cache, ("producer",)),
    "dlq replay": (case_dlq_replay, ("consumer",)),
    "config check": (case_config_check, ("dlq replay",)),   # once us has only_eu too: no schema drift
    "schema diff": (case_schema_diff, ("dlq replay",)),
    "status": (case_status, ("dlq replay", "consumer --sink cache")),
    "verify": (case_verify, ("dlq replay",)),
    "lookup": (case_lookup, ("init",)),
    "bloom": (case_bloom, ("producer",)),
    "cache rebuild": (case_cache_rebuild, ("init",)),
    "conflicts list": (case_conflicts_list, ("init",)),
    "conflicts stats": (case_conflicts_stats, ("init",)),
    "conflicts show": (case_conflicts_show, ("init",)),
    "conflicts resolve": (case_conflicts_resolve, ("verify",)),
    "tombstones purge": (case_tombstones_purge, ("init",)),
    "markers rebase": (case_markers_rebase, ("consumer",)),
    "region add": (case_region_add, ("verify",)),
    "region remove": (case_region_remove, ("region add",)),
    "run": (case_run, ("region remove",)),
}


def _run_case(w: TlsWorld, name: str) -> dict[str, int]:
    """Run `name` (after what it needs) and return how many connections each server accepted meanwhile."""
    case, needs = COMMANDS[name]
    for need in needs:
        if need not in w.done:
            _run_case(w, need)
    before = w.connections()
    case(w)
    w.done.add(name)
    after = w.connections()
    return {r: after[r] - before[r] for r in after}


def test_every_command_is_classified() -> None:
    commands = _cli_commands()
    assert commands == set(COMMANDS) - {"consumer --sink cache"} | set(NO_MYSQL), (
        f"classify: {sorted(commands - set(COMMANDS) - set(NO_MYSQL))}; gone: "
        f"{sorted((set(COMMANDS) - {'consumer --sink cache'} | set(NO_MYSQL)) - commands)}")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_command_connects_with_tls_or_not_at_all(tls_world: TlsWorld, command: str) -> None:
    opened = _run_case(tls_world, command)
    assert sum(opened.values()) > 0, f"`cdcsync {command}` opened no MySQL connection: {opened}"
