"""SQL for the database sink, in MariaDB's and MySQL 8's dialects."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.identifiers import quote_name


def upsert(flavor: str, db: str, table: str, columns: Sequence[str], rows: int) -> str:
    """A multi-row INSERT ... ON DUPLICATE KEY UPDATE of `rows` rows.

    MariaDB has `VALUES(col)` and no row alias; MySQL 8.0.20+ deprecates `VALUES()` in favour of
    the `AS new` alias.
    """
    cols = ", ".join(quote_name(c) for c in columns)
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    values = ", ".join([one] * rows)
    target = f"{quote_name(db)}.{quote_name(table)}"
    if flavor == "mysql":
        updates = ", ".join(f"{quote_name(c)} = new.{quote_name(c)}" for c in columns)
        return f"INSERT INTO {target} ({cols}) VALUES {values} AS new ON DUPLICATE KEY UPDATE {updates}"
    updates = ", ".join(f"{quote_name(c)} = VALUES({quote_name(c)})" for c in columns)
    return f"INSERT INTO {target} ({cols}) VALUES {values} ON DUPLICATE KEY UPDATE {updates}"


def delete(db: str, table: str, key_columns: Sequence[str], rows: int) -> str:
    """A batched DELETE by primary key: `WHERE (k1, k2) IN ((...), (...))`."""
    target = f"{quote_name(db)}.{quote_name(table)}"
    if len(key_columns) == 1:
        return f"DELETE FROM {target} WHERE {quote_name(key_columns[0])} IN ({', '.join(['%s'] * rows)})"
    one = "(" + ", ".join(["%s"] * len(key_columns)) + ")"
    keys = "(" + ", ".join(quote_name(c) for c in key_columns) + ")"
    return f"DELETE FROM {target} WHERE {keys} IN ({', '.join([one] * rows)})"


def present_keys(flavor: str, db: str, table: str, key_columns: Sequence[str], rows: int) -> str:
    """Which of `rows` candidate keys exist (locked): returns the candidates' 0-based indexes.

    Parameters: for each candidate, its index then its key values. The comparison happens in SQL,
    so the database's own type rules apply (no Python-side value matching).
    """
    width = len(key_columns) + 1
    row = ", ".join(["%s"] * width)
    values = ", ".join([f"ROW({row})" if flavor == "mysql" else f"({row})"] * rows)
    names = ", ".join(["i", *(f"k{n}" for n in range(len(key_columns)))])
    join = " AND ".join(f"t.{quote_name(c)} = v.k{n}" for n, c in enumerate(key_columns))
    return (f"WITH v({names}) AS (VALUES {values}) SELECT v.i FROM v JOIN {quote_name(db)}.{quote_name(table)} t "
            f"ON {join} FOR UPDATE")


def insert(db: str, table: str, columns: Sequence[str], rows: int) -> str:
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return (f"INSERT INTO {quote_name(db)}.{quote_name(table)} ({', '.join(quote_name(c) for c in columns)}) "
            f"VALUES {', '.join([one] * rows)}")


def update_by_key(db: str, table: str, columns: Sequence[str], key_columns: Sequence[str]) -> str:
    sets = ", ".join(f"{quote_name(c)} = %s" for c in columns)
    where = " AND ".join(f"{quote_name(c)} = %s" for c in key_columns)
    return f"UPDATE {quote_name(db)}.{quote_name(table)} SET {sets} WHERE {where}"


def gtid_state(flavor: str) -> str:
    """The statement reading the server's executed GTID set (for the conflict log's `local_gtid`)."""
    return "SELECT @@gtid_binlog_pos" if flavor == "mariadb" else "SELECT @@GLOBAL.gtid_executed"
