"""column-lww (consumers/db/column_merge.py): regions converge, column by column, to the value of each
column's max-stamped write, whatever the delivery order, with replays; a row exists when its last
insert is stamped after its last delete. Plus one test per rule."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.db.column_merge import (LOWEST, ColumnState, ColumnStampsError, Stamp, changed_columns, merge,
                                       parse_state, state_json, write_stamp)
from consumers.db.local_versions import remote_version
from consumers.db.resolution import Action
from schemas.events import ChangeEvent, Op
from schemas.row_version import RowVersion
from schemas.vclock import VectorClock

REGIONS = ("eu", "us", "ap")
COLUMNS = ("a", "b", "c")
TYPES = {"id": "int", "a": "int", "b": "varchar(8)", "c": "int"}


def event(op: Op, origin: str, clock: VectorClock, before: dict | None, after: dict | None) -> ChangeEvent:
    return ChangeEvent(region=origin, origin=origin, server_id=1, gtid=None, binlog_file="b.000001", binlog_pos=4,
                       txn_id="x", ts_us=0, db="shop", table="items", txn_index=0, txn_last=True, op=op,
                       pk={"id": 1}, before=before, after=after, types=TYPES, vclock=clock)


@dataclass
class Region:
    """One region's row, its clock and col_stamps as the triggers and the database sink keep them."""

    name: str
    values: dict[str, Any] | None = None
    clock: VectorClock = field(default_factory=VectorClock)
    state: ColumnState = field(default_factory=ColumnState)
    published: list[ChangeEvent] = field(default_factory=list)

    def write(self, op: Op, values: dict[str, Any] | None, now: int) -> ChangeEvent:
        """A local write under the clock triggers (common/clock_triggers.py: insert, update, delete stamps)."""
        clock = self.clock.increment(self.name, now)
        stamp = (clock.hlc_us, self.name)
        new = event(op, self.name, clock, self.values, values)
        s = self.state
        if op is Op.INSERT:
            self.state = ColumnState({}, stamp, s.deleted, {})
        elif op is Op.DELETE:
            self.state = ColumnState(dict(s.columns), s.inserted, stamp, {})
        else:
            self.state = ColumnState({**s.columns, **{c: stamp for c in changed_columns(new)}}, s.inserted,
                                     s.deleted, dict(s.ghost))
        self.published.append(new)
        self.values, self.clock = values, clock
        return new

    def apply(self, run: list[ChangeEvent]) -> None:
        """What the database sink does with a run of one origin's writes of the row."""
        merged = merge(self.state, self.values, run)
        self.values = None if merged.values is None else dict(merged.values)
        self.state = merged.state
        for e in run:
            self.clock = self.clock.merge(e.vclock)   # type: ignore[arg-type]
        # The stored state round-trips through its JSON (row_clocks.col_stamps).
        assert parse_state(state_json(self.state)) == self.state


def expected(writes: list[ChangeEvent], base: dict[str, Any] | None) -> dict[str, Any] | None:
    """The row the set of writes defines: present when the greatest insert stamp (a row that existed
    before: the lowest) is above the greatest delete stamp; each column the value of its max-stamped write."""
    inserted = LOWEST if base is not None else None
    deleted = None
    best: dict[str, tuple[Stamp, Any]] = {c: (LOWEST, v) for c, v in (base or {}).items()}
    for w in writes:
        stamp = write_stamp(w)
        if w.op is Op.DELETE:
            deleted = stamp if deleted is None else max(deleted, stamp)
            continue
        if w.op is Op.INSERT:
            inserted = stamp if inserted is None else max(inserted, stamp)
        for c in changed_columns(w):
            if c not in best or stamp > best[c][0]:
                best[c] = (stamp, w.after[c])   # type: ignore[index]
    if inserted is None or (deleted is not None and deleted > inserted):
        return None
    return {c: v for c, (_, v) in best.items()}


def random_write(region: Region, rnd: random.Random, now: int) -> None:
    if region.values is None:
        region.write(Op.INSERT, {"id": 1, "a": rnd.randint(0, 3), "b": rnd.choice("xyz"), "c": rnd.randint(0, 3)},
                     now)
    elif rnd.random() < 0.15:
        region.write(Op.DELETE, None, now)
    else:
        values = dict(region.values)
        for column in rnd.sample(COLUMNS, rnd.randint(1, 2)):
            values[column] = rnd.choice("xyzw") if column == "b" else rnd.randint(0, 5)
        if values != region.values:    # a write that changes no byte is no write (docs/clocks.md)
            region.write(Op.UPDATE, values, now)


def deliver(regions: dict[str, Region], rnd: random.Random, upto: dict[tuple[str, str], int], *, full: bool) -> None:
    """Per (origin, target) in order (one topic partition), runs of 1..3 (a batch), sometimes again
    from an earlier offset (a replay). `full`: until nothing is left."""
    pairs = [(o, t) for o in regions for t in regions if o != t]
    steps = 0
    while True:
        pending = [(o, t) for o, t in pairs if upto[(o, t)] < len(regions[o].published)]
        if not pending or (not full and steps >= 3):
            return
        steps += 1
        origin, target = rnd.choice(pending)
        start = upto[(origin, target)]
        if start > 0 and rnd.random() < 0.2:
            start = rnd.randrange(0, start)
        end = min(len(regions[origin].published), start + rnd.randint(1, 3))
        regions[target].apply(regions[origin].published[start:end])
        upto[(origin, target)] = max(upto[(origin, target)], end)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), writes=st.integers(1, 16), preexisting=st.booleans())
def test_random_histories_converge_to_each_columns_max_stamped_write(seed: int, writes: int,
                                                                      preexisting: bool) -> None:
    """Regions write on whatever they hold (inserts, updates of one or two columns, deletes,
    re-inserts), exchanging writes at random in between (any order, batched runs, replays); after a
    full delivery every region holds the same row, the one the set of writes defines."""
    rnd = random.Random(seed)
    base = {"id": 1, "a": 0, "b": "x", "c": 0} if preexisting else None
    regions = {r: Region(r, dict(base) if base else None) for r in REGIONS}
    upto = {(o, t): 0 for o in REGIONS for t in REGIONS if o != t}
    if base is None:
        regions[rnd.choice(REGIONS)].write(Op.INSERT, {"id": 1, "a": 1, "b": "y", "c": 1}, 1)
    now = 1
    for _ in range(writes):
        deliver(regions, rnd, upto, full=False)
        now += rnd.choice((0, 1, 5))      # equal timestamps in two regions happen
        random_write(regions[rnd.choice(REGIONS)], rnd, now)
    deliver(regions, rnd, upto, full=True)
    rows = [regions[r].values for r in REGIONS]
    assert rows[0] == rows[1] == rows[2], rows
    assert rows[0] == expected([w for r in REGIONS for w in regions[r].published], base)


def interleavings(sequences: list[list[ChangeEvent]]) -> list[list[ChangeEvent]]:
    """Every merge of the sequences that keeps each one's order (Kafka's order per key and origin)."""
    slots = [i for i, seq in enumerate(sequences) for _ in seq]
    orders = set(itertools.permutations(slots))
    result = []
    for order in sorted(orders):
        cursors = [0] * len(sequences)
        merged = []
        for i in order:
            merged.append(sequences[i][cursors[i]])
            cursors[i] += 1
        result.append(merged)
    return result


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), preexisting=st.booleans())
def test_concurrent_writes_converge_in_every_delivery_order_with_replays(seed: int, preexisting: bool) -> None:
    """Three regions write 1..2 times each on the same version without seeing each other (concurrent
    updates of the same or different columns, deletes, re-inserts); every region then receives the
    other regions' writes in EVERY interleaving that keeps each origin's order, each write sometimes
    twice (a replay right away or at the end). Every region and every order end with the row the set
    of writes defines."""
    rnd = random.Random(seed)
    base = {"id": 1, "a": 0, "b": "x", "c": 0}
    start = Region("base", dict(base))
    if not preexisting:   # the row was inserted by a write every region has applied
        start.write(Op.INSERT, dict(base), 1)
    writers = {r: Region(r, dict(base), start.clock, ColumnState(dict(start.state.columns), start.state.inserted,
                                                                   start.state.deleted, {}))
               for r in REGIONS}
    for r in REGIONS:
        for _ in range(rnd.randint(1, 2)):
            random_write(writers[r], rnd, rnd.randint(2, 4))
    writes = [w for r in REGIONS for w in writers[r].published]
    want = expected(([] if preexisting else start.published) + writes, base if preexisting else None)
    for target in (*REGIONS, "observer"):
        sequences = [writers[r].published for r in REGIONS if r != target]
        for order in interleavings([s for s in sequences if s]):
            region = (Region(target, dict(base), start.clock, ColumnState(
                dict(start.state.columns), start.state.inserted, start.state.deleted, {}))
                if target == "observer" else _copy(writers[target]))
            replays = []
            for write in order:
                region.apply([write])
                if rnd.random() < 0.25:
                    region.apply([write])          # at once
                if rnd.random() < 0.25:
                    replays.append(write)          # later
            for write in replays:
                region.apply([write])
            assert region.values == want, (target, order)


def _copy(region: Region) -> Region:
    s = region.state
    return Region(region.name, None if region.values is None else dict(region.values), region.clock,
                  ColumnState(dict(s.columns), s.inserted, s.deleted, dict(s.ghost)), list(region.published))


# -- the rules, one by one -------------------------------------------------------------------------

def clock(hlc: int, **counters: int) -> VectorClock:
    return VectorClock(counters=counters, hlc_us=hlc)


ROW = {"id": 1, "a": 1, "b": "x", "c": 1}


def test_concurrent_updates_of_different_columns_both_survive() -> None:
    eu = event(Op.UPDATE, "eu", clock(10, eu=2), ROW, dict(ROW, a=2))
    us = event(Op.UPDATE, "us", clock(11, eu=1, us=1), ROW, dict(ROW, b="y"))
    state = ColumnState(inserted=(5, "eu"))
    one = merge(merge(state, ROW, [eu]).state, merge(state, ROW, [eu]).values, [us])
    other = merge(merge(state, ROW, [us]).state, merge(state, ROW, [us]).values, [eu])
    assert one.values == other.values == dict(ROW, a=2, b="y")
    assert one.state == other.state


def test_the_same_column_resolves_by_its_stamp_then_origin() -> None:
    eu = event(Op.UPDATE, "eu", clock(10, eu=2), ROW, dict(ROW, a=2))
    us = event(Op.UPDATE, "us", clock(10, eu=1, us=1), ROW, dict(ROW, a=3))
    state = ColumnState(inserted=(5, "eu"))
    assert merge(merge(state, ROW, [us]).state, dict(ROW, a=3), [eu]).values["a"] == 3   # us > eu at one hlc
    after_eu = merge(state, ROW, [eu])
    assert merge(after_eu.state, after_eu.values, [us]).values["a"] == 3


def test_a_replayed_write_changes_nothing() -> None:
    eu = event(Op.UPDATE, "eu", clock(10, eu=2), ROW, dict(ROW, a=2))
    first = merge(ColumnState(inserted=(5, "eu")), ROW, [eu])
    again = merge(first.state, first.values, [eu])
    assert again.values == first.values and again.state == first.state and again.taken == {}


def test_a_delete_beats_a_later_concurrent_update_and_a_later_insert_brings_the_row_back() -> None:
    delete = event(Op.DELETE, "eu", clock(10, eu=2), ROW, None)
    update = event(Op.UPDATE, "us", clock(12, eu=1, us=1), ROW, dict(ROW, a=7))
    state = ColumnState(inserted=(5, "eu"))
    gone = merge(merge(state, ROW, [delete]).state, None, [update])
    assert gone.values is None and gone.state.ghost == {"a": 7}       # kept for an insert it may beat
    reinsert = event(Op.INSERT, "ap", clock(11, eu=2, ap=1), None, dict(ROW, a=0, b="n", c=0))
    back = merge(gone.state, None, [reinsert])
    assert back.values == {"id": 1, "a": 7, "b": "n", "c": 0}        # a: the update at 12 beats the insert at 11
    other = merge(merge(merge(state, ROW, [update]).state, dict(ROW, a=7), [reinsert]).state, dict(ROW, a=7, b="n", c=0),
                  [delete])
    assert other.values == back.values


def test_an_update_that_arrives_before_its_insert_waits_for_it() -> None:
    insert = event(Op.INSERT, "eu", clock(5, eu=1), None, dict(ROW))
    update = event(Op.UPDATE, "us", clock(8, eu=1, us=1), dict(ROW), dict(ROW, b="q"))
    early = merge(ColumnState(), None, [update])
    assert early.values is None and early.state.ghost == {"b": "q"} and early.state.inserted is None
    late = merge(early.state, early.values, [insert])
    assert late.values == dict(ROW, b="q") and late.state.inserted == (5, "eu")


def test_a_snapshot_fills_only_a_row_never_seen() -> None:
    snap = event(Op.SNAPSHOT, "eu", clock(5, eu=1), None, dict(ROW, a=9))
    assert merge(ColumnState(), None, [snap]).values == dict(ROW, a=9)
    assert merge(ColumnState(inserted=(3, "us")), ROW, [snap]).values == ROW


def test_stamps_round_trip_and_bad_text_is_named() -> None:
    state = ColumnState({"a": (9, "us")}, (5, "eu"), (7, "ap"), {"a": 3})
    assert parse_state(state_json(state)) == state
    assert parse_state('{"i": ["5", "eu"]}').inserted == (5, "eu")   # the triggers may write hlc as text
    assert parse_state(None) == ColumnState()
    with pytest.raises(ColumnStampsError, match="col_stamps"):
        parse_state('{"i": 5}')


# -- the sink's plan of one key (consumers/db/column_planning.py) -----------------------------------

def _plan(local: RowVersion | None, stamps: str | None, run: list[ChangeEvent]):
    from consumers.db.column_planning import planned
    from consumers.db.local_versions import ClockedPlanner, rewritten
    from consumers.db.resolution import ColumnLww, decide
    from consumers.records import SourceRecord

    planner = ClockedPlanner(region="ap", flavor="mariadb", meta_db="m", strategy=lambda d, t: ColumnLww(),
                             decide=decide, converted=lambda e, i, c: [], column_lww=lambda d, t: True)
    records = [SourceRecord("t", 0, n, b"k", b"", e, None) for n, e in enumerate(run)]
    decision = decide(local, remote_version(run[-1]), ColumnLww())
    return planned(record=records[-1], run=records, local=local, decision=decision, stamps=stamps,
                   plan=lambda r, d: planner._planned(r, "1:1", d), rewrite=rewritten)


def test_the_plan_of_concurrent_updates_writes_the_merge_logs_the_columns_and_stores_the_stamps() -> None:
    local = RowVersion(dict(ROW, a=2), clock(10, eu=2), "eu")
    stamps = state_json(ColumnState({"a": (10, "eu")}, (5, "eu")))
    us = event(Op.UPDATE, "us", clock(11, eu=1, us=1), ROW, dict(ROW, b="y"))
    plan = _plan(local, stamps, [us])
    assert plan.action is Action.RESOLVED
    assert plan.write.event.after == dict(ROW, a=2, b="y")
    assert plan.clock.clock == clock(11, eu=2, us=1) and not plan.clock.deleted
    assert parse_state(plan.clock.stamps) == ColumnState({"a": (10, "eu"), "b": (11, "us")}, (5, "eu"))
    assert plan.conflict.strategy == "column-lww" and plan.conflict.columns == {"b": "remote"}
    assert plan.conflict.winner == "merged" and [v.origin for v in plan.conflict.losers] == ["eu"]
    # The same column, the remote write stamped lower: the local value stays; the remote version lost it.
    old = event(Op.UPDATE, "us", clock(9, eu=1, us=1), ROW, dict(ROW, a=7))
    lost = _plan(local, stamps, [old])
    assert lost.write is None and lost.conflict.columns == {"a": "local"}
    assert [v.origin for v in lost.conflict.losers] == ["us"]


def test_a_dominated_write_still_sets_its_columns_and_a_replay_is_skipped() -> None:
    # eu's update reached here only through us's later write (which changed another column).
    local = RowVersion(dict(ROW, b="y"), clock(12, eu=1, us=1), "us")
    stamps = state_json(ColumnState({"b": (12, "us")}, (5, "eu")))
    eu = event(Op.UPDATE, "eu", clock(10, eu=1), ROW, dict(ROW, a=2))
    plan = _plan(local, stamps, [eu])
    assert plan.action is Action.APPLY and plan.write.event.after == dict(ROW, a=2, b="y")
    assert plan.clock.clock == local.clock and plan.conflict is None
    replay = _plan(RowVersion(dict(ROW, a=2, b="y"), local.clock, "us"), plan.clock.stamps, [eu])
    assert replay.action is Action.SKIP and replay.write is None and replay.clock is None


def test_a_write_made_with_the_triggers_off_is_stamped_as_the_triggers_would() -> None:
    from consumers.db.column_merge import local_write
    state = ColumnState({"a": (9, "us")}, (5, "eu"), None, {})
    assert local_write(state, ROW, dict(ROW, b="r"), (20, "ap")) == ColumnState({"a": (9, "us"), "b": (20, "ap")},
                                                                                 (5, "eu"))
    assert local_write(state, None, ROW, (20, "ap")) == ColumnState({}, (20, "ap"))
    assert local_write(state, ROW, None, (20, "ap")).deleted == (20, "ap")


def test_the_plan_of_a_delete_and_of_an_update_waiting_for_its_insert() -> None:
    local = RowVersion(dict(ROW, a=2), clock(10, eu=2), "eu")
    stamps = state_json(ColumnState({"a": (10, "eu")}, (5, "eu")))
    delete = event(Op.DELETE, "us", clock(12, eu=1, us=1), ROW, None)
    plan = _plan(local, stamps, [delete])
    assert plan.write.event.op is Op.DELETE and plan.clock.deleted
    assert parse_state(plan.clock.stamps).deleted == (12, "us")
    assert parse_state(plan.clock.stamps).ghost == {}          # a (10) is below the delete: nothing to keep
    # An update whose insert has not arrived: nothing written to the table, its column kept as a ghost.
    update = event(Op.UPDATE, "us", clock(8, eu=1, us=1), ROW, dict(ROW, c=5))
    waiting = _plan(None, None, [update])
    assert waiting.write is None and waiting.clock.deleted
    assert parse_state(waiting.clock.stamps) == ColumnState({"c": (8, "us")}, None, None, {"c": 5})
