"""Opening a MySQL/MariaDB connection with the configured credentials and TLS, and reading the
server's binlog position. Every component opens its connections here."""

from __future__ import annotations

import pymysql

from schemas.config import MySQLConfig
from schemas.position import BinlogPosition


def connect(mysql: MySQLConfig, **kwargs: object) -> pymysql.Connection:
    """A connection as `mysql.user` (pass `mysql.reader()` for the reader), autocommit by default."""
    kwargs.setdefault("autocommit", True)
    return pymysql.connect(**mysql.connect_settings(), **kwargs)


def current_position(conn: pymysql.Connection, flavor: str) -> BinlogPosition:
    """The server's binlog position right now (a transaction boundary)."""
    with conn.cursor() as cur:
        try:
            cur.execute("SHOW MASTER STATUS")
        except pymysql.err.ProgrammingError:  # MySQL 8.4 removed it
            cur.execute("SHOW BINARY LOG STATUS")
        row = cur.fetchone()
        if row is None:
            raise RuntimeError("binary logging is off (SHOW MASTER STATUS is empty): set log_bin")
        file, pos = row[0], int(row[1])
        if flavor == "mariadb":
            cur.execute("SELECT @@gtid_binlog_pos")
            gtid = cur.fetchone()[0] or ""
        else:
            gtid = row[4] if len(row) > 4 else ""
    return BinlogPosition(gtid_state=gtid, file=file, pos=pos)
