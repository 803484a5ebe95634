"""SQL identifiers: the one place that quotes a database, table, column or trigger name."""

from __future__ import annotations


def quote_name(name: str) -> str:
    """`name` as a MySQL/MariaDB quoted identifier (backticks, inner backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"
