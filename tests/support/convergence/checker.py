"""The verdict on one seed, from the history and what every region holds at the end.

1. The databases are byte-identical: per key, the HEX of every column (so `'bob'` and `'BOB'`, or
   `'bob '`, differ) is the same in every region, and a key is present in all or in none.
2. Every region's cache holds exactly its database's rows (one live entry per row, equal values).
3. Every acknowledged write is accounted for:
   - final: the final row equals its values (None = absent) and the final clock dominates its clock;
   - superseded: another acknowledged write of the key has a clock strictly after it (it was made
     on top of it, in a region that had it), or is a delete with the same clock (a cascade); or a
     write whose COMMIT had an unknown outcome (the server was killed during it) has such a clock:
     it may have committed (crash recovery keeps what reached the binlog);
   - a logged loser: some region's conflict log lists a losing version of the key with its values
     and a clock that dominates its clock (a delete: a losing tombstone whose clock dominates the
     delete's). Not for a row whose key the server generated (AUTO_INCREMENT): two regions
     generating one id is a collision, never a conflict the application made.
   Not for a column-lww table (schema.COLUMN_LWW in a mesh), whose rows are merged per column:
   there each final row is the one the acknowledged writes define (`column_values`): present when
   its last insert is stamped after its last delete, each column the value of its max-stamped
   acknowledged write, a stamp being the write's (hlc_us, region).
4. Every dead letter is explained: replayed, or its version is dominated, in every region, by the
   key's final clock (a later version replaced it everywhere, so nothing is missing).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from schemas.vclock import Order
from tests.support.convergence.final_state import Loser, RegionState, TableKey
from tests.support.convergence.history import Ack, History
from tests.support.convergence.schema import TABLES, key_text


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str                     # rows differ | cache differs | write lost | column value | dead letter | pipeline
    key: TableKey | None
    detail: str

    def describe(self) -> str:
        where = key_text(TABLES[self.key[0]], self.key[1]) if self.key else "-"
        return f"{self.kind}: {where}: {self.detail}"


def compare_databases(states: list[RegionState]) -> list[Problem]:
    problems = []
    keys = sorted({k for s in states for k in s.hex_rows}, key=repr)
    for key in keys:
        images = {s.region: s.hex_rows.get(key) for s in states}
        if len(set(images.values())) > 1:
            detail = "; ".join(f"{s.region}={s.rows.get(key)}" for s in states)
            problems.append(Problem("rows differ", key, detail))
    return problems


def compare_caches(states: list[RegionState]) -> list[Problem]:
    problems = []
    for s in states:
        for key in sorted(set(s.rows) | set(s.cache), key=repr):
            row, entries = s.rows.get(key), s.cache.get(key, [])
            if len(entries) > 1:
                problems.append(Problem("cache differs", key, f"{s.region}: {len(entries)} live entries for one "
                                                              f"row: {entries}"))
            elif row is None and entries:
                problems.append(Problem("cache differs", key, f"{s.region}: cached {entries[0][1]}, no row"))
            elif row is not None and not entries:
                problems.append(Problem("cache differs", key, f"{s.region}: row {row}, not cached"))
            elif row is not None and entries[0][1] != row:
                problems.append(Problem("cache differs", key, f"{s.region}: row {row}, cached {entries[0][1]}"))
    return problems


def _without(values: dict[str, Any] | None, columns: tuple[str, ...]) -> dict[str, Any] | None:
    return None if values is None else {c: v for c, v in values.items() if c not in columns}


def _ack_without(ack: Ack, columns: tuple[str, ...]) -> Ack:
    return replace(ack, values=_without(ack.values, columns))


def accounted(ack: Ack, acks_of_key: list[Ack], final: RegionState, losers: list[Loser],
              maybe: list[Ack] = (), delta: dict[str, tuple[str, ...]] | None = None) -> str | None:  # type: ignore[assignment]
    """How `ack` is accounted for (final, superseded, a logged loser), or None when it is not.
    `acks_of_key` are every acknowledged write of its key, `losers` every logged loser of its key,
    `maybe` the writes of its key whose COMMIT had an unknown outcome (they may supersede it);
    `delta`: table -> delta columns, compared by `delta_sums` instead."""
    key = (ack.table, ack.key)
    final_row, final_clock = final.rows.get(key), final.final_clock(key)
    if delta and ack.table in delta:
        # Delta columns hold the sum of every write (checked by `delta_sums`), not one write's value.
        final_row, ack = _without(final_row, delta[ack.table]), _ack_without(ack, delta[ack.table])
        losers = [replace(loser, values=_without(loser.values, delta[ack.table])) for loser in losers]
    if ack.clock is None:
        return "final (no clock)" if final_row == ack.values else None
    if final_row == ack.values and final_clock is not None and final_clock.dominates(ack.clock):
        return "final"
    if any(o.clock is not None and o.clock.compare(ack.clock) is Order.AFTER for o in acks_of_key):
        return "superseded"
    if any(o.clock is not None and o.clock.compare(ack.clock) is Order.AFTER for o in maybe):
        return "superseded by a commit of unknown outcome"
    if ack.values is not None and any(o.values is None and o.clock == ack.clock for o in acks_of_key):
        # A delete made by a foreign key's ON DELETE CASCADE: MariaDB runs no trigger for it, so the
        # child's clock stays the one of the version it removed (which came first: a row written
        # after the delete would have a newer clock).
        return "deleted by a cascade"
    if ack.values is not None and any(loser.values == ack.values and loser.clock.dominates(ack.clock)
                                      for loser in losers):
        return "lost, logged"
    if ack.values is None and any(loser.values is None and loser.clock.dominates(ack.clock) for loser in losers):
        return "delete lost, logged"
    return None


def delta_sums(history: History, states: list[RegionState], delta: dict[str, tuple[str, ...]]) -> list[Problem]:
    """Every row of a table with delta columns holds, in each of them, the sum of every acknowledged
    update's `after - before` (the warm-up inserts them at 0). A commit of unknown outcome may or may
    not count: any subset of those is accepted."""
    problems = []
    maybe = history.maybe_by_key()
    final = states[0]
    for key, row in sorted(final.rows.items(), key=lambda kv: repr(kv[0])):
        table = key[0]
        if table not in delta:
            continue
        acks = history.by_key().get(key, [])
        unsure = [a.delta for a in maybe.get(key, []) if a.delta is not None]
        for column in delta[table]:
            expected = sum(a.delta[column] for a in acks if a.delta is not None)
            possible = {expected}
            for extra in unsure[:10]:
                possible |= {p + extra[column] for p in possible}
            if row[column] not in possible:
                problems.append(Problem("delta sum", key, f"{final.region}: {column} = {row[column]}, the "
                                                          f"acknowledged updates sum to {expected}"))
    return problems


Stamp = tuple[int, str]


def column_model(acks: list[Ack]) -> dict[str, Any] | None:
    """The row a column-lww key's writes define (consumers/db/column_merge.py): present when the
    greatest insert stamp is above the greatest delete stamp; each column the value of the
    max-stamped write that changed it."""
    inserted: Stamp | None = None
    deleted: Stamp | None = None
    best: dict[str, tuple[Stamp, Any]] = {}
    for ack in acks:
        if ack.columns is None or ack.clock is None:
            continue
        op, changed = ack.columns
        stamp = (ack.clock.hlc_us, ack.region)
        if op == "delete":
            deleted = stamp if deleted is None else max(deleted, stamp)
            continue
        if op == "insert":
            inserted = stamp if inserted is None else max(inserted, stamp)
        for column in changed:
            if column not in best or stamp > best[column][0]:
                best[column] = (stamp, ack.values[column])   # type: ignore[index]
    if inserted is None or (deleted is not None and deleted > inserted):
        return None
    return {c: v for c, (_, v) in best.items()}


def column_values(history: History, states: list[RegionState], tables: tuple[str, ...]) -> list[Problem]:
    """Every row of a column-lww table is the one its acknowledged writes define (`column_model`). A
    commit of unknown outcome may or may not count: any subset of those (up to 4) is accepted."""
    problems = []
    final = states[0]
    maybe = history.maybe_by_key()
    by_key = history.by_key()
    keys = {k for k in by_key if k[0] in tables} | {k for k in final.rows if k[0] in tables}
    for key in sorted(keys, key=repr):
        acks = by_key.get(key, [])
        unsure = [a for a in maybe.get(key, []) if a.columns is not None][:4]
        possible = [column_model(acks + [a for i, a in enumerate(unsure) if mask >> i & 1])
                    for mask in range(2 ** len(unsure))]
        row = final.rows.get(key)
        if row not in possible:
            problems.append(Problem("column value", key, f"{final.region}: {row}, the acknowledged writes define "
                                                         f"{possible[0]} ({len(acks)} writes)"))
    return problems


def unaccounted(history: History, states: list[RegionState],
                delta: dict[str, tuple[str, ...]] | None = None, per_column: tuple[str, ...] = ()) -> list[Problem]:
    """Checked against the first region's final state (the others are compared with it above)."""
    final = states[0]
    losers: dict[TableKey, list[Loser]] = defaultdict(list)
    for s in states:
        for loser in s.losers:
            losers[(loser.table, loser.key)].append(loser)
    problems = []
    maybe = history.maybe_by_key()
    for key, acks in sorted(history.by_key().items(), key=lambda kv: repr(kv[0])):
        if key[0] in per_column:
            continue      # merged per column: `column_values`
        for ack in acks:
            how = accounted(ack, acks, final, losers.get(key, []), maybe.get(key, []), delta)
            if how is None:
                problems.append(Problem("write lost", key, f"{ack.describe()}; final in {final.region}: "
                                                           f"{final.rows.get(key)} [{_clock(final.final_clock(key))}]"))
            elif how == "lost, logged" and ack.generated_key:
                # The server chose the id: another region's row with the same id is a collision of
                # AUTO_INCREMENT ranges, not a conflict the application made.
                problems.append(Problem("key collision", key, f"{ack.describe()} lost to another region's row "
                                                              f"with the same generated id"))
    return problems


def unexplained_dead_letters(states: list[RegionState]) -> list[Problem]:
    problems = []
    for s in states:
        for letter in s.dead_letters:
            if letter.entry.replayed:
                continue
            where = f"{s.region} {letter.entry.sink} dlq {letter.entry.id} ({letter.entry.kind}: {letter.entry.error})"
            key = letter.table_key
            if key is None or letter.event is None or letter.event.vclock is None:
                problems.append(Problem("dead letter", key, f"{where}, no clocked change of a known table"))
                continue
            behind = [r.region for r in states
                      if (c := r.final_clock(key)) is None or not c.dominates(letter.event.vclock)]
            if behind:
                problems.append(Problem("dead letter", key, f"{where}: its version "
                                        f"{letter.event.vclock.counters} is not dominated in {', '.join(behind)}"))
    return problems


def check(history: History, states: list[RegionState], delta: dict[str, tuple[str, ...]] | None = None,
          per_column: tuple[str, ...] = ()) -> list[Problem]:
    """`delta`: the tables configured with delta columns (schema.DELTA_COLUMNS in a mesh);
    `per_column`: the tables configured with column-lww (schema.COLUMN_LWW in a mesh)."""
    return [*compare_databases(states), *compare_caches(states), *unaccounted(history, states, delta, per_column),
            *delta_sums(history, states, delta or {}), *column_values(history, states, per_column),
            *unexplained_dead_letters(states)]


def _clock(clock: Any) -> str:
    return "no clock" if clock is None else f"{clock.counters} hlc={clock.hlc_us}"
