"""The BEFORE DELETE trigger that makes a parent's ON DELETE CASCADE / SET NULL visible (pure SQL).

`cdcsync_<parent>_bd` deletes the child rows (CASCADE), or sets their foreign-key columns to NULL
(SET NULL), itself, before InnoDB would do it invisibly (cdcsync/tools/foreign_keys.py says why). By the
time InnoDB runs the action there is nothing left for it to change. The statements are the trigger's
own, so they are written to the binlog, fire the children's clock triggers (a tombstone, or a tick,
per child row) and, for a child that is itself a parent, its own cascade trigger.

Like the clock triggers it skips the database sink's writes (`@cdcsync_applying`): the sink applies
with foreign-key checks off, so no action runs there, and the children's own events arrive anyway.
"""

from __future__ import annotations

from cdcsync.tools.foreign_keys import ForeignKey
from common.clock_triggers import APPLYING, Trigger, trigger_name
from schemas.identifiers import quote_name


def _statement(fk: ForeignKey) -> str:
    child = f"{quote_name(fk.child_db)}.{quote_name(fk.child_table)}"
    match = " AND ".join(f"{quote_name(c)} = OLD.{quote_name(p)}" for c, p in zip(fk.child_columns, fk.parent_columns))
    if fk.on_delete == "CASCADE":
        return f"DELETE FROM {child} WHERE {match};"
    nulls = ", ".join(f"{quote_name(c)} = NULL" for c in fk.child_columns)
    return f"UPDATE {child} SET {nulls} WHERE {match};"


def cascade_triggers(keys: list[ForeignKey]) -> list[Trigger]:
    """One BEFORE DELETE trigger per parent table of `keys` (the emulated actions), its statements in
    a fixed order so that a second `init` finds the same body."""
    by_parent: dict[tuple[str, str], list[ForeignKey]] = {}
    for fk in sorted(keys, key=lambda k: (k.parent, k.child, k.name)):
        by_parent.setdefault(fk.parent, []).append(fk)
    result = []
    for (db, table), fks in by_parent.items():
        statements = "\n    ".join(_statement(fk) for fk in fks)
        body = f"BEGIN\n  IF COALESCE({APPLYING}, 0) = 0 THEN\n    {statements}\n  END IF;\nEND"
        result.append(Trigger(trigger_name(table, "BEFORE DELETE"), "DELETE", db, table, body, timing="BEFORE"))
    return result
