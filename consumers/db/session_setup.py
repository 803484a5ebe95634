"""How a session that reads or writes rows for cdcsync is set up: one statement per purpose.

`APPLY`: the database sink, `cdcsync region add`'s copy and `cdcsync dlq replay` write other
regions' versions. TIMESTAMPs travel in UTC. The SQL mode is strict, so a value the target
cannot hold (a narrower column, a NULL in a NOT NULL column, a schema that drifted) is refused
and dead-lettered, never truncated or replaced by a default; `ALLOW_INVALID_DATES` without
`NO_ZERO_DATE` stores the zero and invalid dates a non-strict source wrote; `NO_AUTO_VALUE_ON_ZERO`
keeps an AUTO_INCREMENT column given 0 at 0. `@cdcsync_applying = 1` makes the clock triggers skip
these writes (they are not local writes); `foreign_key_checks = 0`: per-table topics reach the sink
in no common order and every row of a cascade arrives as its own event (docs/apply.md).

The one value a non-strict source stores that strict mode refuses whatever the binding: the
invalid ENUM value `''` (index 0), which a non-strict session writes for a label the column does
not have. A row holding it is written alone inside `enum_zero` (strict mode off for that one
statement), and any warning of that statement other than the expected one on those columns is
raised as the error strict mode would have raised, so the rest of the row stays strict.

`OPERATOR_WRITE`: `cdcsync conflicts resolve` writes values an operator typed: strict, UTC, and
the clock triggers on (the override is a local write; it sets `@cdcsync_applying` itself where
it writes the clock). `READ`: sessions that read rows as wire values (TIMESTAMPs in UTC).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import pymysql

from common.clock_triggers import APPLYING

APPLY_SQL_MODE = "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION"
# APPLY_SQL_MODE without STRICT_ALL_TABLES: only inside `enum_zero`, warnings checked.
_ENUM_ZERO_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION"

APPLY = (f"SET SESSION time_zone = '+00:00', sql_mode = '{APPLY_SQL_MODE}', "
         f"foreign_key_checks = 0, {APPLYING} = 1")
OPERATOR_WRITE = f"SET SESSION time_zone = '+00:00', sql_mode = '{APPLY_SQL_MODE}'"
READ = "SET SESSION time_zone = '+00:00'"

DATA_TRUNCATED = 1265


@lru_cache(maxsize=4096)
def enum_labels(sql_type: str) -> tuple[str, ...] | None:
    """The labels of an `enum(...)` type as the wire's `types` map writes it (quotes doubled),
    None for any other type. Labels keep their other escapes: only emptiness matters here."""
    if not sql_type.startswith("enum("):
        return None
    labels, i, text = [], len("enum("), sql_type
    while i < len(text) and text[i] == "'":
        i += 1
        label = []
        while i < len(text):
            if text[i] == "'" and text[i + 1:i + 2] == "'":
                label.append("'")
                i += 2
            elif text[i] == "'":
                i += 1
                break
            else:
                label.append(text[i])
                i += 1
        labels.append("".join(label))
        if text[i:i + 1] == ",":
            i += 1
    return tuple(labels)


def enum_zero_columns(types: Mapping[str, str], image: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns of `image` holding an ENUM's invalid value `''` (index 0, not one of its labels)."""
    found = []
    for column, value in image.items():
        if value == "":
            labels = enum_labels(types.get(column, ""))
            if labels is not None and "" not in labels:
                found.append(column)
    return tuple(found)


@contextmanager
def enum_zero(cur: pymysql.cursors.Cursor, columns: tuple[str, ...]) -> Iterator[None]:
    """Run the body's LAST statement, which writes one row holding the invalid ENUM value in
    `columns`, without strict mode; then refuse it as strict mode would if it warned of anything
    but `''` stored into those columns. Restores `APPLY_SQL_MODE` in every case."""
    cur.execute(f"SET SESSION sql_mode = '{_ENUM_ZERO_SQL_MODE}'")
    try:
        yield
        cur.execute("SHOW WARNINGS")
        for _level, code, message in cur.fetchall():
            expected = code == DATA_TRUNCATED and any(f"column '{c}' " in message for c in columns)
            if not expected:
                raise pymysql.err.DataError(code, message)
    finally:
        cur.execute(f"SET SESSION sql_mode = '{APPLY_SQL_MODE}'")
