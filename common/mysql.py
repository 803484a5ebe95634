"""Opening a MySQL/MariaDB connection with the configured credentials and TLS, and reading the
server's binlog position. Every component opens its connections here."""

from __future__ import annotations

import pymysql

from schemas.config import MySQLConfig
from schemas.position import BinlogPosition


# Settings a caller may not override: they name the server and the user, and carry TLS. Overriding
# them is how a hand-built connection used to drop TLS and send the password in clear.
_FIXED = frozenset({"host", "port", "user", "password", "passwd", "unix_socket", "ssl", "ssl_ca", "ssl_cert",
                    "ssl_key", "ssl_verify_cert", "ssl_verify_identity", "ssl_disabled"})


def connect(mysql: MySQLConfig, **kwargs: object) -> pymysql.Connection:
    """THE way cdcsync opens a MySQL connection: as `mysql.user` (pass `mysql.reader()` for the
    reader), always with the config's TLS settings; autocommit unless `autocommit=False`.

    `kwargs` are further PyMySQL options (`database`, `autocommit`, `read_timeout`, ...);
    `connect_timeout` may only shorten the configured one. Identity and TLS options are refused.
    """
    fixed = sorted(_FIXED.intersection(kwargs))
    if fixed:
        raise TypeError(f"connect(): {', '.join(fixed)} come from the MySQLConfig; change the config instead")
    settings = mysql.connect_settings()
    timeout = kwargs.pop("connect_timeout", None)
    if timeout is not None:
        settings["connect_timeout"] = min(settings["connect_timeout"], float(timeout))  # type: ignore[arg-type]
    kwargs.setdefault("autocommit", True)
    return pymysql.connect(**settings, **kwargs)


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
