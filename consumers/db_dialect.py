"""SQL for the database sink, in MariaDB's and MySQL 8's dialects."""

from __future__ import annotations

from collections.abc import Sequence


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def upsert(flavor: str, db: str, table: str, columns: Sequence[str], rows: int) -> str:
    """A multi-row INSERT ... ON DUPLICATE KEY UPDATE of `rows` rows.

    MariaDB has `VALUES(col)` and no row alias; MySQL 8.0.20+ deprecates `VALUES()` in favour of
    the `AS new` alias.
    """
    cols = ", ".join(quote(c) for c in columns)
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    values = ", ".join([one] * rows)
    target = f"{quote(db)}.{quote(table)}"
    if flavor == "mysql":
        updates = ", ".join(f"{quote(c)} = new.{quote(c)}" for c in columns)
        return f"INSERT INTO {target} ({cols}) VALUES {values} AS new ON DUPLICATE KEY UPDATE {updates}"
    updates = ", ".join(f"{quote(c)} = VALUES({quote(c)})" for c in columns)
    return f"INSERT INTO {target} ({cols}) VALUES {values} ON DUPLICATE KEY UPDATE {updates}"


def delete(db: str, table: str, key_columns: Sequence[str], rows: int) -> str:
    """A batched DELETE by primary key: `WHERE (k1, k2) IN ((...), (...))`."""
    target = f"{quote(db)}.{quote(table)}"
    if len(key_columns) == 1:
        return f"DELETE FROM {target} WHERE {quote(key_columns[0])} IN ({', '.join(['%s'] * rows)})"
    one = "(" + ", ".join(["%s"] * len(key_columns)) + ")"
    keys = "(" + ", ".join(quote(c) for c in key_columns) + ")"
    return f"DELETE FROM {target} WHERE {keys} IN ({', '.join([one] * rows)})"
