"""Start-up checks of the source server. Each problem comes with the statement that fixes it."""

from __future__ import annotations

import logging
import re

import pymysql

from common.mysql import connect
from producers import auto_increment
from schemas.config import MySQLConfig, PipelineConfig

log = logging.getLogger(__name__)


class PreflightError(RuntimeError):
    """The server cannot be captured as configured. The message lists every problem and its fix."""


_GRANT = re.compile(r"^GRANT (.+?) ON (\S+) TO ", re.IGNORECASE)


def _variables(cur: pymysql.cursors.Cursor, names: list[str]) -> dict[str, str]:
    cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN (%s)" % ",".join(["%s"] * len(names)), names)
    return {name.lower(): str(value) for name, value in cur.fetchall()}


def binlog_problems(variables: dict[str, str], flavor: str) -> list[str]:
    """Problems with the server's binlog settings, given SHOW GLOBAL VARIABLES output."""
    problems = []
    if variables.get("log_bin", "OFF").upper() not in ("ON", "1"):
        problems.append("binary logging is off: start the server with log_bin (and a server_id)")
    expected = {"binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}
    for name, want in expected.items():
        got = variables.get(name)
        if got is None:
            problems.append(f"{name} is not available on this server: cdcsync needs MariaDB >= 10.5 or MySQL >= 8.0")
        elif got.upper() != want:
            problems.append(f"{name} is {got}, cdcsync needs {want}: SET GLOBAL {name} = '{want}' "
                            f"(and put it in the server's config)")
    if variables.get("log_bin_compress", "OFF").upper() in ("ON", "1"):
        problems.append("log_bin_compress is ON: the binlog library cannot decode compressed events; "
                        "SET GLOBAL log_bin_compress = OFF")
    if variables.get("binlog_transaction_compression", "OFF").upper() in ("ON", "1"):
        problems.append("binlog_transaction_compression is ON: the binlog library cannot decode compressed "
                        "transactions; SET GLOBAL binlog_transaction_compression = OFF")
    if "PARTIAL_JSON" in variables.get("binlog_row_value_options", "").upper():
        problems.append("binlog_row_value_options is PARTIAL_JSON: updates would lack full JSON images; "
                        "SET GLOBAL binlog_row_value_options = ''")
    return problems


def privilege_problems(grants: list[str], schemas: list[str]) -> list[str]:
    """Missing reader privileges, given SHOW GRANTS output lines."""
    global_privs: set[str] = set()
    select_on: set[str] = set()
    for line in grants:
        match = _GRANT.match(line)
        if not match:
            continue
        privs = {p.strip().upper() for p in match.group(1).split(",")}
        target = match.group(2).replace("`", "")
        if target == "*.*":
            global_privs |= privs
        elif "SELECT" in privs or "ALL PRIVILEGES" in privs:
            select_on.add(target.split(".", 1)[0])
    if "ALL PRIVILEGES" in global_privs:
        return []
    problems = []
    if "REPLICATION SLAVE" not in global_privs and "REPLICATION REPLICA" not in global_privs:
        problems.append("missing REPLICATION SLAVE: GRANT REPLICATION SLAVE ON *.* TO <reader>")
    # MariaDB 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR (the old name is an alias).
    if not global_privs & {"REPLICATION CLIENT", "BINLOG MONITOR"}:
        problems.append("missing REPLICATION CLIENT: GRANT REPLICATION CLIENT ON *.* TO <reader>")
    if "SELECT" not in global_privs:
        lacking = [s for s in schemas if s not in select_on]
        if lacking or not schemas:
            problems.append(f"missing SELECT on {', '.join(lacking) or 'the replicated schemas'}: "
                            f"GRANT SELECT ON <schema>.* TO <reader>")
    return problems


def source_problems(mysql: MySQLConfig, schemas: list[str]) -> list[str]:
    """Every problem of the server's binlog settings and of `mysql.user`'s reader privileges
    (pass `config.reader()`). Raises PreflightError when it cannot connect at all."""
    try:
        conn = connect(mysql, autocommit=False)
    except pymysql.err.OperationalError as err:
        raise PreflightError(f"cannot connect to MySQL at {mysql.host}:{mysql.port} as {mysql.user!r}: "
                             f"{err.args[-1]}") from None
    with conn, conn.cursor() as cur:
        variables = _variables(cur, ["log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata",
                                     "log_bin_compress", "binlog_transaction_compression",
                                     "binlog_row_value_options"])
        cur.execute("SHOW GRANTS FOR CURRENT_USER()")
        grants = [row[0] for row in cur.fetchall()]
    return binlog_problems(variables, mysql.flavor) + privilege_problems(grants, schemas)


def check_source(mysql: MySQLConfig, schemas: list[str]) -> None:
    """Raise PreflightError naming every problem; return quietly when the server is fit for capture."""
    problems = source_problems(mysql, schemas)
    if problems:
        raise PreflightError(f"{mysql.host}:{mysql.port} is not ready for capture:\n  - " + "\n  - ".join(problems))


def check_auto_increment(config: PipelineConfig, region: str, *, peer_timeout_s: float = 3.0) -> None:
    """Refuse (or warn, per `auto_increment_collisions`) when the region's replicated AUTO_INCREMENT
    tables can get ids another region also generates (producers/auto_increment.py). Regions that
    cannot be reached are logged, not waited for: `cdcsync config check` compares them all."""
    finding = auto_increment.inspect(config, region, peer_timeout_s=peer_timeout_s)
    for unread in finding.unread:
        log.warning("auto_increment settings of region %s not compared (run `cdcsync config check`)", unread)
    if not finding.problems:
        return
    message = f"AUTO_INCREMENT ids can collide between regions: {auto_increment.describe(finding)}"
    if config.auto_increment_collisions == "refuse":
        raise PreflightError(message + " (or set auto_increment_collisions = \"warn\" to start anyway)")
    log.warning("%s", message)
