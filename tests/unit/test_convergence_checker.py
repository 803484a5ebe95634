"""The convergence checker's pure parts (tests/support/convergence): shapes, model keys and the
verdict rules, on hand-made histories and region states (the integration test runs it for real)."""

from __future__ import annotations

import random

import pytest

from cdcsync.tools.dlq_reader import DlqEntry, EntryId
from schemas.events import ChangeEvent
from schemas.vclock import VectorClock
from tests.support.convergence.checker import (accounted, check, compare_caches, compare_databases,
                                               unexplained_dead_letters)
from tests.support.convergence.final_state import ClockRow, DeadLetter, Loser, RegionState, clock_model_key
from tests.support.convergence.history import Ack, History, clock_row_key
from tests.support.convergence.schema import TABLES
from tests.support.convergence.shapes import ALL, SHAPES, ClientContext, SharedPool, parse_shapes

KV = TABLES["kv"]
NAMES = TABLES["names"]


def vc(**counters: int) -> VectorClock:
    return VectorClock(counters=counters, hlc_us=sum(counters.values()))


def ack(values: dict | None, clock: VectorClock | None, key: int = 1, region: str = "eu") -> Ack:
    return Ack(region, 0, 1, "plain", "kv", (key,), values, clock)


def state(region: str, rows: dict[int, dict] | None = None, clocks: dict[int, VectorClock] | None = None) -> RegionState:
    s = RegionState(region)
    for k, row in (rows or {}).items():
        s.rows[("kv", (k,))] = row
        s.hex_rows[("kv", (k,))] = tuple(str(v) for v in row.values())
        s.row_clock[("kv", (k,))] = (clocks or {}).get(k)
        s.cache[("kv", (k,))].append((f"p:db.kv:[{k}]", dict(row)))
    for k, clock in (clocks or {}).items():
        if k not in (rows or {}):
            s.clock_rows[("kv", (k,))].append(ClockRow(f"1:{k}", clock, True, region))
    return s


# --- keys ------------------------------------------------------------------------------------

def test_model_key_folds_case_and_trailing_spaces_as_the_default_collation_does() -> None:
    assert NAMES.model_key({"name": "BOB  "}) == NAMES.model_key({"name": "bob"}) == ("bob",)
    assert NAMES.model_key({"name": " bob"}) != ("bob",)          # leading spaces count
    assert TABLES["pairs"].model_key({"a": 2, "b": "X "}) == (2, "x")


def test_clock_rows_of_any_spelling_map_to_the_rows_model_key() -> None:
    assert clock_model_key(NAMES, "4:BOB ") == ("bob",)
    assert clock_model_key(TABLES["pairs"], "1:2,1:Y") == (2, "y")
    assert clock_model_key(KV, clock_row_key(None, KV, {"id": 42})) == (42,)


# --- shapes ----------------------------------------------------------------------------------

def generate(seed: int, name: str, n: int = 30) -> list:
    rng, ctx = random.Random(seed), ClientContext("eu", 0, SharedPool())
    return [txn for _ in range(n) for txn in SHAPES[name](rng, ctx)]


@pytest.mark.parametrize("name", ALL)
def test_every_shape_is_seeded_and_touches_only_known_tables(name: str) -> None:
    first, again = generate(7, name), generate(7, name)
    assert [(t.statements, t.touches) for t in first if not any(callable(s.params) for s in t.statements)] == \
        [(t.statements, t.touches) for t in again if not any(callable(s.params) for s in t.statements)]
    assert first and all(t.touches and t.shape == name for t in first)
    assert {touch.table for t in first for touch in t.touches} <= set(TABLES)


def test_retry_sends_the_same_statement_twice() -> None:
    txns = generate(3, "retry", 5)
    assert any(a is b for a, b in zip(txns, txns[1:]))


def test_shapes_are_chosen_by_name_or_excluded() -> None:
    assert parse_shapes("") == ALL
    assert parse_shapes("noop,odku") == ("noop", "odku")           # in ALL's order
    assert parse_shapes("-fk,unique") == tuple(s for s in ALL if s not in ("fk", "unique"))
    with pytest.raises(ValueError, match="unknown shape.*nope.*the shapes are plain"):
        parse_shapes("odku,nope")


# --- the verdict ---------------------------------------------------------------------------

def test_a_write_is_final_when_the_row_holds_it_with_a_dominating_clock() -> None:
    final = state("eu", {1: {"id": 1, "v": "a"}}, {1: vc(eu=2)})
    assert accounted(ack({"id": 1, "v": "a"}, vc(eu=2)), [], final, []) == "final"
    assert accounted(ack({"id": 1, "v": "a"}, vc(eu=3)), [], final, []) is None       # clock not dominated
    assert accounted(ack({"id": 1, "v": "A"}, vc(eu=2)), [], final, []) is None       # spelling counts


def test_a_write_is_superseded_only_by_a_strictly_later_clock() -> None:
    final = state("eu", {1: {"id": 1, "v": "b"}}, {1: vc(eu=1, us=1)})
    old = ack({"id": 1, "v": "a"}, vc(eu=1))
    assert accounted(old, [old, ack({"id": 1, "v": "b"}, vc(eu=1, us=1), region="us")], final, []) == "superseded"
    concurrent = ack({"id": 1, "v": "c"}, vc(us=1), region="us")
    assert accounted(concurrent, [concurrent, old], state("eu", {1: {"id": 1, "v": "a"}}, {1: vc(eu=1)}), []) is None


def test_a_row_deleted_by_a_cascade_is_superseded_by_the_delete_with_its_unchanged_clock() -> None:
    final = state("eu", {}, {1: vc(eu=1)})
    child, cascaded = ack({"id": 1, "v": "a"}, vc(eu=1)), ack(None, vc(eu=1))
    assert accounted(child, [child, cascaded], final, []) == "deleted by a cascade"
    assert accounted(cascaded, [child, cascaded], final, []) == "final"
    assert accounted(child, [child, ack(None, vc(us=1))], final, []) is None


def test_a_lost_write_is_accounted_only_when_a_conflict_log_lists_it() -> None:
    final = state("eu", {1: {"id": 1, "v": "b"}}, {1: vc(eu=1, us=1)})
    lost = ack({"id": 1, "v": "a"}, vc(eu=1))
    logged = Loser("us", 7, "kv", (1,), {"id": 1, "v": "a"}, vc(eu=1), "eu")
    assert accounted(lost, [lost], final, [logged]) == "lost, logged"
    assert accounted(lost, [lost], final, []) is None
    earlier = Loser("us", 6, "kv", (1,), {"id": 1, "v": "a"}, vc(), "eu")      # same values, older version
    assert accounted(lost, [lost], final, [earlier]) is None
    delete = ack(None, vc(eu=2))
    tombstone = Loser("us", 8, "kv", (1,), None, vc(eu=2), "eu")
    assert accounted(delete, [delete], final, [tombstone]) == "delete lost, logged"


def test_a_generated_id_that_lost_to_another_regions_row_is_a_collision() -> None:
    history = History()
    inserted = Ack("eu", 0, 1, "autoinc", "auto", (3,), {"id": 3, "v": "eu0-1"}, vc(eu=1), generated_key=True)
    history.record([inserted])
    final = RegionState("eu")
    final.rows[("auto", (3,))] = {"id": 3, "v": "us0-1"}
    final.hex_rows[("auto", (3,))] = ("3", "us0-1")
    final.row_clock[("auto", (3,))] = vc(eu=1, us=1)
    final.cache[("auto", (3,))].append(("k", {"id": 3, "v": "us0-1"}))
    final.losers.append(Loser("us", 1, "auto", (3,), {"id": 3, "v": "eu0-1"}, vc(eu=1), "eu"))
    assert [p.kind for p in check(history, [final])] == ["key collision"]


def test_a_delete_is_final_when_the_key_is_absent_under_a_dominating_tombstone() -> None:
    final = state("eu", {}, {1: vc(eu=2, us=1)})
    assert accounted(ack(None, vc(eu=2)), [], final, []) == "final"
    assert accounted(ack(None, vc(eu=3)), [], final, []) is None


def test_rows_that_differ_in_a_keys_spelling_are_reported() -> None:
    eu, us = state("eu", {1: {"id": 1, "v": "a"}}), state("us", {1: {"id": 1, "v": "a"}})
    assert compare_databases([eu, us]) == []
    us.hex_rows[("kv", (1,))] = ("1", "41")
    assert [p.kind for p in compare_databases([eu, us])] == ["rows differ"]
    del us.hex_rows[("kv", (1,))]
    assert [p.kind for p in compare_databases([eu, us])] == ["rows differ"]       # missing in one region


def test_caches_must_hold_exactly_their_databases_rows() -> None:
    s = state("eu", {1: {"id": 1, "v": "a"}, 2: {"id": 2, "v": "b"}})
    assert compare_caches([s]) == []
    s.cache[("kv", (1,))].append(("p:db.kv:[\"1\"]", {"id": 1, "v": "a"}))        # a second entry
    s.cache[("kv", (2,))][0] = ("p:db.kv:[2]", {"id": 2, "v": "old"})
    s.cache[("kv", (3,))].append(("p:db.kv:[3]", {"id": 3, "v": "gone"}))
    details = [p.detail for p in compare_caches([s])]
    assert len(details) == 3 and "2 live entries" in details[0] and "cached" in details[1] and "no row" in details[2]


def letter(region: str, clock: VectorClock, replayed: bool = False) -> DeadLetter:
    event = ChangeEvent(region="us", origin="us", server_id=2, gtid="2-2-9", binlog_file="b.1", binlog_pos=4,
                        txn_id="2-2-9", ts_us=1, db="d", table="kv", txn_index=0, txn_last=True, op="insert",
                        pk={"id": 1}, before=None, after={"id": 1, "v": "x"}, types={"id": "int"}, vclock=clock)
    entry = DlqEntry(EntryId(0, 3), "constraint", "1452", sink="db", replayed_at_us=1 if replayed else None)
    return DeadLetter(region, entry, event)


def test_a_dead_letter_is_explained_by_a_replay_or_a_dominating_final_clock_everywhere() -> None:
    eu, us = state("eu", {1: {"id": 1, "v": "a"}}, {1: vc(us=2)}), state("us", {1: {"id": 1, "v": "a"}}, {1: vc(us=2)})
    eu.dead_letters.append(letter("eu", vc(us=1)))
    assert unexplained_dead_letters([eu, us]) == []
    eu.dead_letters[0] = letter("eu", vc(us=3))
    assert [p.kind for p in unexplained_dead_letters([eu, us])] == ["dead letter"]
    eu.dead_letters[0] = letter("eu", vc(us=3), replayed=True)
    assert unexplained_dead_letters([eu, us]) == []


def test_check_combines_every_rule() -> None:
    history = History()
    history.record([ack({"id": 1, "v": "a"}, vc(eu=1)), ack({"id": 2, "v": "b"}, vc(eu=1), key=2)])
    eu = state("eu", {1: {"id": 1, "v": "a"}}, {1: vc(eu=1)})
    us = state("us", {1: {"id": 1, "v": "a"}}, {1: vc(eu=1)})
    problems = check(history, [eu, us])
    assert [(p.kind, p.key) for p in problems] == [("write lost", ("kv", (2,)))]


def test_a_commit_of_unknown_outcome_may_supersede_but_is_never_required() -> None:
    a = ack({"id": 1, "v": "a"}, vc(eu=1))
    maybe = ack({"id": 1, "v": "u"}, vc(eu=2))           # COMMIT lost with the server: it did commit
    final = state("eu", {1: {"id": 1, "v": "u"}}, {1: vc(eu=2)})
    history = History()
    history.record([a])
    assert [p.kind for p in check(history, [final])] == ["write lost"]   # without it: a false loss
    history.unknown_outcome([maybe])
    assert check(history, [final]) == [] and history.unknown == 1
    assert accounted(a, [a], final, [], [maybe]) == "superseded by a commit of unknown outcome"
    # Never required: the same unknown commit that did not happen leaves the final state of `a`.
    assert check(history, [state("eu", {1: {"id": 1, "v": "a"}}, {1: vc(eu=1)})]) == []


# --- delta columns ---------------------------------------------------------------------------

def test_delta_columns_must_add_up_and_are_left_out_of_the_write_accounting() -> None:
    from tests.support.convergence.checker import delta_sums
    key = ("stock", (1,))
    history = History()
    warm = Ack("eu", 0, 0, "warmup", "stock", (1,), {"id": 1, "qty": 0, "v": "w"}, vc(eu=1))
    a = Ack("eu", 0, 1, "delta", "stock", (1,), {"id": 1, "qty": -3, "v": "w"}, vc(eu=2), delta={"qty": -3})
    b = Ack("us", 0, 1, "delta", "stock", (1,), {"id": 1, "qty": 2, "v": "w"}, vc(eu=1, us=1), delta={"qty": 2})
    history.record([warm, a, b])
    final = RegionState("eu")
    final.rows[key] = {"id": 1, "qty": -1, "v": "w"}
    final.row_clock[key] = vc(eu=2, us=1)
    assert delta_sums(history, [final], {"stock": ("qty",)}) == []
    assert accounted(a, [warm, a, b], final, [], delta={"stock": ("qty",)}) == "final"
    assert accounted(a, [warm, a, b], final, []) is None      # without the delta rule: qty differs
    final.rows[key] = {"id": 1, "qty": 2, "v": "w"}            # the eu decrement lost
    problems = delta_sums(history, [final], {"stock": ("qty",)})
    assert [(p.kind, p.key) for p in problems] == [("delta sum", key)]
    history.maybe.append(Ack("eu", 1, 9, "delta", "stock", (1,), None, None, delta={"qty": 3}))
    final.rows[key] = {"id": 1, "qty": 2, "v": "w"}            # -1 + 3 of a commit of unknown outcome
    assert delta_sums(history, [final], {"stock": ("qty",)}) == []


# --- column-lww ------------------------------------------------------------------------------------

def test_column_lww_rows_are_each_columns_max_stamped_write_and_left_out_of_the_write_accounting() -> None:
    from tests.support.convergence.checker import column_values, unaccounted
    key = ("cols", (1,))
    row = {"id": 1, "a": "i", "b": "i", "n": 0}
    history = History()
    insert = Ack("eu", 0, 1, "columns", "cols", (1,), row, VectorClock(counters={"eu": 1}, hlc_us=10),
                 columns=("insert", ("id", "a", "b", "n")))
    a = Ack("eu", 0, 2, "columns", "cols", (1,), dict(row, a="eu"), VectorClock(counters={"eu": 2}, hlc_us=20),
            columns=("update", ("a",)))
    b = Ack("us", 0, 1, "columns", "cols", (1,), dict(row, b="us"), VectorClock(counters={"eu": 1, "us": 1},
                                                                                hlc_us=21), columns=("update", ("b",)))
    a2 = Ack("us", 0, 2, "columns", "cols", (1,), dict(row, a="us", b="us"),
             VectorClock(counters={"eu": 1, "us": 2}, hlc_us=19), columns=("update", ("a",)))
    history.record([insert, a, b, a2])
    final = RegionState("eu")
    final.rows[key] = {"id": 1, "a": "eu", "b": "us", "n": 0}     # a: eu's (20) beats us's (19)
    final.row_clock[key] = VectorClock(counters={"eu": 2, "us": 2}, hlc_us=21)
    assert column_values(history, [final], ("cols",)) == []
    assert unaccounted(history, [final], per_column=("cols",)) == []
    assert {p.kind for p in unaccounted(history, [final])} == {"write lost"}   # the row is no single write
    final.rows[key] = {"id": 1, "a": "us", "b": "us", "n": 0}
    assert [p.kind for p in column_values(history, [final], ("cols",))] == ["column value"]
    # A delete stamped after the insert removes the row, whatever updates came later.
    history.record([Ack("ap", 0, 1, "columns", "cols", (1,), None, VectorClock(counters={"eu": 1, "ap": 1},
                                                                               hlc_us=15), columns=("delete", ()))])
    del final.rows[key]
    assert column_values(history, [final], ("cols",)) == []


def test_the_columns_shape_writes_the_column_lww_table() -> None:
    txns = [t for i in range(30) for t in SHAPES["columns"](random.Random(i), ClientContext("eu", 0, SharedPool()))]
    assert {t.touches[0].table for t in txns} == {"cols"}
    assert {t.statements[0].sql.split()[0] for t in txns} == {"UPDATE", "INSERT", "DELETE"}
