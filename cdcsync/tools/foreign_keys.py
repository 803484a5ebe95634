"""Foreign keys whose referential actions change rows behind cdcsync's back, and what to do about them.

InnoDB runs `ON DELETE CASCADE` / `SET NULL` (and `ON UPDATE ...`) inside the storage engine: the
rows it changes in the child table are not written to the binlog and fire no trigger (checked on
MariaDB 10.11). The producer never sees them, the child clocks stay live, and the database sinks,
which apply with `foreign_key_checks = 0` (docs/apply.md), do not cascade either: the other
regions would keep the children.

So `cdcsync init` makes the delete actions visible: a BEFORE DELETE trigger on the parent
(cdcsync/tools/cascade_triggers.py) deletes, or sets to NULL, the child rows itself before InnoDB would.
Those are ordinary statements: they reach the binlog, the children's own clock triggers tick, and
the changes are published like any other. Chains work the same way (the child's delete fires the
child's own cascade trigger). What cannot be emulated is refused (`cascade_problems`):

- `ON UPDATE CASCADE` / `SET NULL` into a replicated child: a BEFORE UPDATE trigger cannot point the
  children at a parent key that does not exist yet, and an AFTER trigger comes after InnoDB did it
  silently;
- a cycle of delete actions (a table referencing itself, or A -> B -> A): a trigger may not change
  a table its own statement uses (error 1442).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pymysql

# The delete actions that change child rows (InnoDB refuses SET DEFAULT).
CHANGING = ("CASCADE", "SET NULL")


@dataclass(frozen=True, slots=True)
class ForeignKey:
    name: str
    child_db: str
    child_table: str
    child_columns: tuple[str, ...]
    parent_db: str
    parent_table: str
    parent_columns: tuple[str, ...]
    on_delete: str       # CASCADE, SET NULL, RESTRICT, NO ACTION
    on_update: str

    @property
    def child(self) -> tuple[str, str]:
        return self.child_db, self.child_table

    @property
    def parent(self) -> tuple[str, str]:
        return self.parent_db, self.parent_table

    def describe(self) -> str:
        return (f"{self.child_db}.{self.child_table} constraint {self.name} "
                f"({', '.join(self.child_columns)}) -> {self.parent_db}.{self.parent_table}")


def read_foreign_keys(cur: pymysql.cursors.Cursor, excluded_schemas: Iterable[str]) -> list[ForeignKey]:
    """Every foreign key of the server outside `excluded_schemas`, columns in constraint order."""
    excluded = tuple(excluded_schemas)
    cur.execute("SELECT rc.CONSTRAINT_SCHEMA, rc.CONSTRAINT_NAME, rc.TABLE_NAME, k.REFERENCED_TABLE_SCHEMA, "
                "rc.REFERENCED_TABLE_NAME, rc.DELETE_RULE, rc.UPDATE_RULE, k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME "
                "FROM information_schema.REFERENTIAL_CONSTRAINTS rc JOIN information_schema.KEY_COLUMN_USAGE k "
                "ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME "
                "AND k.TABLE_NAME = rc.TABLE_NAME "
                f"WHERE rc.CONSTRAINT_SCHEMA NOT IN ({', '.join(['%s'] * len(excluded))}) "
                "ORDER BY rc.CONSTRAINT_SCHEMA, rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION", excluded)
    grouped: dict[tuple[str, str, str], list[tuple]] = defaultdict(list)
    for row in cur.fetchall():
        grouped[(row[0], row[2], row[1])].append(row)
    keys = []
    for (db, table, name), rows in grouped.items():
        first = rows[0]
        keys.append(ForeignKey(name=name, child_db=db, child_table=table, child_columns=tuple(r[7] for r in rows),
                               parent_db=first[3], parent_table=first[4], parent_columns=tuple(r[8] for r in rows),
                               on_delete=first[5].upper(), on_update=first[6].upper()))
    return keys


def emulated(keys: list[ForeignKey], replicated: Callable[[str, str], bool]) -> list[ForeignKey]:
    """The delete actions the cascade triggers must perform: those whose child table is replicated,
    or cascades on (through tables that may themselves be unreplicated) into a replicated one."""
    cascades: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for fk in keys:
        if fk.on_delete == "CASCADE":
            cascades[fk.parent].append(fk.child)
    memo: dict[tuple[str, str], bool] = {}

    def relevant(table: tuple[str, str], seen: frozenset[tuple[str, str]]) -> bool:
        if table not in memo:
            memo[table] = replicated(*table) or any(
                relevant(child, seen | {table}) for child in cascades[table] if child not in seen)
        return memo[table]

    return [fk for fk in keys if fk.on_delete in CHANGING and relevant(fk.child, frozenset())]


def _cycles(edges: list[ForeignKey]) -> list[list[tuple[str, str]]]:
    """Cycles of parent -> child edges (a self reference is a cycle of one table)."""
    children: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for fk in edges:
        children[fk.parent].add(fk.child)
    found: list[list[tuple[str, str]]] = []
    seen_cycles: set[frozenset[tuple[str, str]]] = set()

    def walk(table: tuple[str, str], path: list[tuple[str, str]]) -> None:
        for child in sorted(children[table]):
            if child in path:
                cycle = path[path.index(child):]
                if frozenset(cycle) not in seen_cycles:
                    seen_cycles.add(frozenset(cycle))
                    found.append(cycle)
            else:
                walk(child, path + [child])

    for start in sorted(children):
        walk(start, [start])
    return found


def cascade_problems(keys: list[ForeignKey], replicated: Callable[[str, str], bool]) -> list[str]:
    """Referential actions that would change replicated rows invisibly and cannot be emulated; each
    message names the constraint and the fix."""
    problems = []
    for fk in keys:
        if fk.on_update in CHANGING and replicated(*fk.child):
            problems.append(
                f"{fk.describe()} has ON UPDATE {fk.on_update}: InnoDB changes the child rows without binlog events "
                f"or triggers, so other regions would keep the old values. Declare it ON UPDATE RESTRICT (and "
                f"update the children in the application), or exclude {fk.child_db}.{fk.child_table}")
    for cycle in _cycles(emulated(keys, replicated)):
        names = " -> ".join(f"{db}.{t}" for db, t in cycle + [cycle[0]])
        problems.append(
            f"ON DELETE CASCADE/SET NULL cycle {names}: a trigger may not change a table its own statement "
            f"uses, so these deletes cannot be made visible to cdcsync. Declare the constraint ON DELETE "
            f"RESTRICT and delete the rows in the application, or exclude the tables")
    return problems
