"""One MariaDB primary per region, configured for row-based CDC."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pymysql

from deploy.local import processes

MARKER = "mariadbd"


def _binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{name} not found: install Debian's mariadb-server (make deps does)")


@dataclass(frozen=True, slots=True)
class MariaDBSpec:
    home: Path          # the region's mysql/ folder: data, binlogs, socket, log
    port: int
    server_id: int
    gtid_domain_id: int
    auto_increment_increment: int = 1   # the number of regions (at least)
    auto_increment_offset: int = 1      # the region's place, 1..increment
    durable: bool = False               # fsync the redo log and the binlog at every commit

    @property
    def socket(self) -> Path:
        return self.home / "mysqld.sock"

    @property
    def log(self) -> Path:
        return self.home / "mariadbd.log"

    @property
    def cnf(self) -> Path:
        return self.home / "my.cnf"


def render_cnf(spec: MariaDBSpec) -> str:
    template = (Path(__file__).parent / "mariadb.cnf.tmpl").read_text()
    user = "user = root\n" if os.geteuid() == 0 else ""
    return template.format(home=spec.home, port=spec.port, server_id=spec.server_id,
                           gtid_domain_id=spec.gtid_domain_id, user=user,
                           auto_increment_increment=spec.auto_increment_increment,
                           auto_increment_offset=spec.auto_increment_offset,
                           innodb_flush_log_at_trx_commit=1 if spec.durable else 2,
                           sync_binlog=1 if spec.durable else 0)


def install(spec: MariaDBSpec) -> None:
    """Create the data directory once; a second call keeps the existing data."""
    data = spec.home / "data"
    if (data / "mysql").is_dir():
        return
    data.mkdir(parents=True, exist_ok=True)
    (spec.home / "tmp").mkdir(exist_ok=True)
    argv = [_binary("mariadb-install-db"), "--no-defaults", f"--datadir={data}", f"--tmpdir={spec.home / 'tmp'}",
            "--auth-root-authentication-method=socket", "--skip-test-db"]
    if os.geteuid() == 0:
        argv.append("--user=root")
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")


def start(spec: MariaDBSpec, timeout: float = 60.0) -> int:
    """Start mariadbd and wait until it accepts TCP connections. Returns its PID."""
    spec.home.mkdir(parents=True, exist_ok=True)
    (spec.home / "tmp").mkdir(exist_ok=True)
    spec.cnf.write_text(render_cnf(spec))
    install(spec)
    proc = processes.spawn([_binary("mariadbd"), f"--defaults-file={spec.cnf}"], spec.log)
    processes.wait_for_port(spec.port, timeout=timeout, proc=proc, what=f"mariadbd on port {spec.port}",
                            log=spec.log)
    return proc.pid


def root_connect(spec: MariaDBSpec) -> pymysql.Connection:
    """Connect as root over the unix socket (root has no TCP access in the sandbox)."""
    return pymysql.connect(unix_socket=str(spec.socket), user="root", autocommit=True)


def ensure_user(spec: MariaDBSpec, user: str, password: str) -> None:
    """Create the sandbox user that cdcsync connects as; idempotent."""
    with root_connect(spec) as conn, conn.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, password))
            cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (user, host))
