"""What information_schema knows about a table and the binlog does not."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pymysql

# MariaDB's JSON is LONGTEXT plus this (column-level) check constraint.
_JSON_VALID = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    data_type: str    # information_schema.COLUMNS.DATA_TYPE, e.g. `int`, `longtext`
    column_type: str  # COLUMN_TYPE, e.g. `int(10) unsigned`, `enum('a','b')`
    ordinal: int      # 1-based, the order of the columns in the binlog
    collation: str | None = None  # COLLATION_NAME (text columns), how the server compares the values


@dataclass(frozen=True, slots=True)
class TableColumns:
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]  # in key order; empty when the table has none
    json_columns: frozenset[str] = frozenset()  # see json_columns()

    def key_collations(self) -> dict[str, str]:
        """Primary-key column -> collation, for the key's text columns (schemas/key_fold.py)."""
        return {c.name: c.collation for c in self.columns
                if c.name in self.primary_key and c.collation is not None and c.data_type in ("char", "varchar")}


def is_mariadb(conn: pymysql.Connection) -> bool:
    return "mariadb" in conn.get_server_info().lower()


def json_columns(conn: pymysql.Connection, db: str, table: str) -> frozenset[str]:
    """Columns declared JSON: DATA_TYPE 'json' on MySQL, `json_valid(col)` checks on MariaDB."""
    with conn.cursor() as cur:
        if not is_mariadb(conn):
            cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS"
                        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND DATA_TYPE = 'json'", (db, table))
            return frozenset(name for (name,) in cur.fetchall())
        cur.execute("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                    " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s", (db, table))
        names = set()
        for (clause,) in cur.fetchall():
            match = _JSON_VALID.fullmatch(clause.strip())
            if match:
                names.add(match.group(1).replace("``", "`"))
        return frozenset(names)


def snapshot_columns(conn: pymysql.Connection, db: str, table: str) -> TableColumns:
    """The columns in binlog order, the primary key and the JSON columns, for `SnapshotEncoder`."""
    with conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, ORDINAL_POSITION, COLLATION_NAME"
                    " FROM information_schema.COLUMNS"
                    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (db, table))
        columns = tuple(ColumnInfo(name, data_type.lower(), column_type, int(ordinal), collation)
                        for name, data_type, column_type, ordinal, collation in cur.fetchall())
        cur.execute("SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s"
                    " AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX", (db, table))
        primary_key = tuple(name for (name,) in cur.fetchall())
    if not columns:
        raise LookupError(f"table {db}.{table} not found")
    return TableColumns(columns, primary_key, json_columns(conn, db, table))
