"""Opening the binlog stream at a position, and the event types we must refuse."""

from __future__ import annotations

import pymysql
from pymysqlreplication import BinLogStreamReader

from producers import binlog_fixes, table_map_cache
from producers.position import BinlogPosition
from schemas.config import MySQLConfig

# Event types python-mysql-replication does not decode and would hand over as NotImplementedEvent
# (or drop, with an `only_events` filter): their rows would be lost without a word.
COMPRESSED_EVENT_TYPES = {
    0x28: "MySQL TRANSACTION_PAYLOAD_EVENT (binlog_transaction_compression=ON)",
    0xA5: "MariaDB QUERY_COMPRESSED_EVENT (log_bin_compress=ON)",
    0xA6: "MariaDB WRITE_ROWS_COMPRESSED_EVENT_V1 (log_bin_compress=ON)",
    0xA7: "MariaDB UPDATE_ROWS_COMPRESSED_EVENT_V1 (log_bin_compress=ON)",
    0xA8: "MariaDB DELETE_ROWS_COMPRESSED_EVENT_V1 (log_bin_compress=ON)",
    0xA9: "MariaDB WRITE_ROWS_COMPRESSED_EVENT (log_bin_compress=ON)",
    0xAA: "MariaDB UPDATE_ROWS_COMPRESSED_EVENT (log_bin_compress=ON)",
    0xAB: "MariaDB DELETE_ROWS_COMPRESSED_EVENT (log_bin_compress=ON)",
}

# pymysql error codes meaning the requested position no longer exists on the server.
POSITION_GONE_ERRORS = {1236}


def connection_settings(mysql: MySQLConfig) -> dict[str, object]:
    """What the binlog library hands to `pymysql.connect` for its stream and its control
    connection: credentials and TLS. Pass `mysql.reader()` for the reader's user."""
    return mysql.connect_settings()


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


def open_stream(mysql: MySQLConfig, position: BinlogPosition, *, reader_server_id: int,
                heartbeat_s: float) -> BinLogStreamReader:
    """A blocking stream starting at `position`, which must be a transaction boundary.

    MariaDB resumes by GTID (the library ignores file/pos with is_mariadb=True); MySQL by file/pos.
    No `only_events` filter: it matches exact classes and would silently drop partial-JSON
    updates. `filter_non_implemented_events=False`: otherwise event types the library cannot
    decode (compressed ones) vanish without a word instead of reaching the capture's refusal.
    Installs the library patches (binlog_fixes, table_map_cache) for the rest of the process.
    """
    binlog_fixes.install()
    table_map_cache.install()
    common = dict(connection_settings=connection_settings(mysql), server_id=reader_server_id, blocking=True,
                  slave_heartbeat=heartbeat_s, filter_non_implemented_events=False)
    if mysql.flavor == "mariadb":
        return BinLogStreamReader(**common, is_mariadb=True, auto_position=position.gtid_state)
    return BinLogStreamReader(**common, resume_stream=True, log_file=position.file, log_pos=position.pos)


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
