"""Opening the binlog stream at a position, and the event types we must refuse."""

from __future__ import annotations

from pymysqlreplication import BinLogStreamReader

from producers.binlog import fixes as binlog_fixes, table_map_cache
from schemas.config import MySQLConfig
from schemas.position import BinlogPosition

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
