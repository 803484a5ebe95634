"""The tables every seed writes to, and how their keys compare.

Columns are INT and VARCHAR only: their wire values (what change events, the cache and the conflict
log carry) are the Python values pymysql returns, so the checker compares them without an encoder.
Text columns use the database's default collation, which in the sandbox is the server's default
(`utf8mb4_unicode_ci`: case-insensitive, PAD SPACE), as an application's tables would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ModelKey = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    key: tuple[tuple[str, str], ...]      # (column, wire type) in key order
    columns: tuple[str, ...]              # every column, in table order
    ddl: str                              # CREATE TABLE with `{db}` to fill in

    def key_values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {column: row[column] for column, _ in self.key}

    def model_key(self, row: Mapping[str, Any]) -> ModelKey:
        """The key as the table's collation compares it: two spellings of one row give one model key."""
        return tuple(fold(row[column]) if kind.startswith("varchar") else int(row[column])
                     for column, kind in self.key)


def fold(text: str) -> str:
    """`utf8mb4_unicode_ci` equality for the ASCII keys the shapes write: case-insensitive, and
    PAD SPACE (trailing spaces do not count)."""
    return text.rstrip(" ").casefold()


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("kv", (("id", "int"),), ("id", "v", "n"),
          "CREATE TABLE {db}.kv (id INT PRIMARY KEY, v VARCHAR(40), n INT)"),
    Table("names", (("name", "varchar(32)"),), ("name", "v"),
          "CREATE TABLE {db}.names (name VARCHAR(32) PRIMARY KEY, v VARCHAR(40))"),
    Table("pairs", (("a", "int"), ("b", "varchar(8)")), ("a", "b", "v"),
          "CREATE TABLE {db}.pairs (a INT, b VARCHAR(8), v VARCHAR(40), PRIMARY KEY (a, b))"),
    Table("parent", (("id", "int"),), ("id", "v"),
          "CREATE TABLE {db}.parent (id INT PRIMARY KEY, v VARCHAR(40))"),
    Table("child", (("pid", "int"), ("seq", "int")), ("pid", "seq", "v"),
          "CREATE TABLE {db}.child (pid INT, seq INT, v VARCHAR(40), PRIMARY KEY (pid, seq), "
          "FOREIGN KEY (pid) REFERENCES {db}.parent (id) ON DELETE CASCADE)"),
    Table("auto", (("id", "int"),), ("id", "v"),
          "CREATE TABLE {db}.auto (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40), KEY by_v (v))"),
    Table("uniq", (("id", "int"),), ("id", "email", "v"),
          "CREATE TABLE {db}.uniq (id INT PRIMARY KEY, email VARCHAR(40), v VARCHAR(40), UNIQUE KEY by_email (email))"),
    Table("stock", (("id", "int"),), ("id", "qty", "v"),
          "CREATE TABLE {db}.stock (id INT PRIMARY KEY, qty INT NOT NULL, v VARCHAR(40))"),
    Table("cols", (("id", "int"),), ("id", "a", "b", "n"),
          "CREATE TABLE {db}.cols (id INT PRIMARY KEY, a VARCHAR(40), b VARCHAR(40), n INT)"),
)}

# Delta columns (docs/conflicts.md) in a mesh: the `delta` shape's counters, checked against the sum.
DELTA_COLUMNS: dict[str, tuple[str, ...]] = {"stock": ("qty",)}
STOCK_KEYS = 4          # rows the warm-up inserts (qty 0); the `delta` shape only updates them
# conflict_strategy column-lww (docs/conflicts.md) in a mesh: the `columns` shape's table, checked per
# column against the max-stamped acknowledged write (checker.column_values).
COLUMN_LWW: tuple[str, ...] = ("cols",)
COLS_KEYS = 4


def create_statements(db: str) -> list[str]:
    """The database (default collation: the server's) and every table, parents before children."""
    return [f"CREATE DATABASE {db}", *(t.ddl.format(db=db) for t in TABLES.values())]


def key_text(table: Table, key: ModelKey) -> str:
    """A model key for people: `kv(3)`, `names('bob')`, `pairs(1, 'x')`."""
    return f"{table.name}({', '.join(repr(v) for v in key)})"
