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


def present_keys(flavor: str, db: str, table: str, key_columns: Sequence[str], rows: int) -> str:
    """Which of `rows` candidate keys exist (locked): returns the candidates' 0-based indexes.

    Parameters: for each candidate, its index then its key values. The comparison happens in SQL,
    so the database's own type rules apply (no Python-side value matching).
    """
    width = len(key_columns) + 1
    row = ", ".join(["%s"] * width)
    values = ", ".join([f"ROW({row})" if flavor == "mysql" else f"({row})"] * rows)
    names = ", ".join(["i", *(f"k{n}" for n in range(len(key_columns)))])
    join = " AND ".join(f"t.{quote(c)} = v.k{n}" for n, c in enumerate(key_columns))
    return (f"WITH v({names}) AS (VALUES {values}) SELECT v.i FROM v JOIN {quote(db)}.{quote(table)} t "
            f"ON {join} FOR UPDATE")


def insert(db: str, table: str, columns: Sequence[str], rows: int) -> str:
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return (f"INSERT INTO {quote(db)}.{quote(table)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES {', '.join([one] * rows)}")


def update_by_key(db: str, table: str, columns: Sequence[str], key_columns: Sequence[str]) -> str:
    sets = ", ".join(f"{quote(c)} = %s" for c in columns)
    where = " AND ".join(f"{quote(c)} = %s" for c in key_columns)
    return f"UPDATE {quote(db)}.{quote(table)} SET {sets} WHERE {where}"
