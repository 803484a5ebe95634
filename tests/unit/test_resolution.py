"""Conflict resolution: every strategy converges whatever the delivery order, replays are skipped,
and every losing version is in the conflict log. Plus one test per rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.db.resolution import (LWW, Action, Custom, RegionPriority, ResolverError, Strategy, decide,
    load_resolver, lww_key, strategy_for)
from schemas.config import ConfigError, TableConfig
from schemas.row_version import RowVersion, value_hash
from schemas.vclock import VectorClock

REGIONS = ["eu", "us", "ap", "sa"]
COLUMNS = ["a", "b", "c"]


def column_max(local: RowVersion, remote: RowVersion) -> dict[str, Any] | None:
    """A custom resolver that is a join: column-wise maximum; a deleted row is the bottom."""
    if local.values is None or remote.values is None:
        return dict(remote.values or local.values or {}) or None
    return {c: max(v for v in (local.values.get(c), remote.values.get(c)) if v is not None)
            for c in sorted(local.values.keys() | remote.values.keys())}


NOT_CALLABLE = 42

STRATEGIES: dict[str, Strategy] = {
    "lww": LWW,
    "region-priority": RegionPriority(("us", "eu", "sa", "ap")),
    "custom": Custom(column_max, "tests.unit.test_resolution:column_max"),
}


def clock(hlc: int, **counters: int) -> VectorClock:
    return VectorClock(counters=counters, hlc_us=hlc)


# --- the generated scenario ------------------------------------------------------------------

row_values = st.fixed_dictionaries({c: st.integers(0, 3) for c in COLUMNS})


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[RowVersion, list[RowVersion]]:
    """A base version and 2..4 concurrent descendants of it, one per region."""
    base_values = draw(st.none() | row_values)
    base_clock = VectorClock(counters=draw(st.dictionaries(st.sampled_from(REGIONS), st.integers(1, 3))),
                             hlc_us=draw(st.integers(0, 5)))
    base = RowVersion(base_values, base_clock, draw(st.sampled_from(REGIONS)))
    regions = draw(st.lists(st.sampled_from(REGIONS), min_size=2, max_size=4, unique=True))
    versions = []
    for region in regions:
        kind = draw(st.sampled_from(["delete", "update", "same", "insert"]))
        if kind == "delete":
            values = None
        elif kind == "insert" or base.values is None:   # an insert, or a re-insert after a delete
            values = draw(row_values)
        elif kind == "same":                             # rewrites the values it already had
            values = dict(base.values)
        else:                                            # changes one or more columns
            changed = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, unique=True))
            values = {**base.values, **{c: draw(st.integers(0, 3)) for c in changed}}
        now = base_clock.hlc_us + draw(st.integers(1, 2))   # small range: equal timestamps are common
        versions.append(RowVersion(values, base_clock.increment(region, now), region))
    return base, versions


def deliver(start: RowVersion, order: list[RowVersion], strategy: Strategy
            ) -> tuple[RowVersion, list[RowVersion], list[Action]]:
    """What a sink does: apply the remote versions one by one; collect the losers and the actions."""
    state, losers, actions = start, [], []
    for remote in order:
        decision = decide(state, remote, strategy)
        actions.append(decision.action)
        losers.extend(decision.losers)
        state = decision.result
    return state, losers, actions


@pytest.mark.parametrize("name", list(STRATEGIES))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), data=st.data())
def test_every_strategy_converges_in_any_order(name: str, scenario, data) -> None:
    strategy = STRATEGIES[name]
    base, versions = scenario
    finals = []
    for _ in range(4):                                  # four simulated regions
        start = data.draw(st.sampled_from([base, *versions]))
        order = data.draw(st.permutations(versions))
        replays = data.draw(st.lists(st.sampled_from([base, *versions]), max_size=3))
        final, losers, actions = deliver(start, [*order, *replays], strategy)
        finals.append(final)

        # Replays are harmless: once every version is in, re-delivering any of them is a SKIP.
        assert set(actions[len(order):]) <= {Action.SKIP}
        assert all(decide(final, v, strategy).action is Action.SKIP for v in [base, *versions])
        # The final clock dominates every delivered clock.
        assert all(final.clock.dominates(v.clock) for v in [start, *versions])
        # Conflict-log completeness: every version that did not survive was logged as a loser.
        if name in ("lww", "region-priority"):
            logged = {(v.origin, v.hash) for v in losers}
            for version in versions:
                if (version.origin, version.hash) != (final.origin, final.hash):
                    assert (version.origin, version.hash) in logged
        else:
            logged_values = {v.hash for v in losers}
            for version in versions:
                if version.values != final.values:
                    assert version.hash in logged_values
    assert all(f == finals[0] for f in finals), finals

    # Against a model written independently: winner-takes-all strategies keep the greatest key.
    if name == "lww":
        assert finals[0].values == max(versions, key=lww_key).values
    if name == "region-priority":
        assert finals[0].values == max(versions, key=STRATEGIES[name].key).values  # type: ignore[attr-defined]


# --- one test per rule -----------------------------------------------------------------------

def test_no_local_row_applies() -> None:
    remote = RowVersion({"a": 1}, clock(5, eu=1), "eu")
    decision = decide(None, remote)
    assert decision.action is Action.APPLY and decision.result == remote


def test_after_applies_before_and_equal_skip() -> None:
    old = RowVersion({"a": 1}, clock(5, eu=1), "eu")
    new = RowVersion({"a": 2}, clock(6, eu=1, us=1), "us")
    assert decide(old, new).action is Action.APPLY
    assert decide(new, old).action is Action.SKIP and decide(new, old).result == new
    assert decide(new, new).action is Action.SKIP


def test_insert_insert_same_key_is_resolved_with_merged_clock() -> None:
    eu = RowVersion({"a": 1}, clock(10, eu=1), "eu")
    us = RowVersion({"a": 2}, clock(11, us=1), "us")
    for local, remote in ((eu, us), (us, eu)):
        decision = decide(local, remote)
        assert decision.action is Action.RESOLVED and decision.strategy == "lww"
        assert decision.result == RowVersion({"a": 2}, clock(11, eu=1, us=1), "us")
        assert decision.losers == (eu,)


def test_update_update_newer_timestamp_wins() -> None:
    eu = RowVersion({"a": 5, "b": 1}, clock(20, eu=2, us=1), "eu")
    us = RowVersion({"a": 1, "b": 9}, clock(15, eu=1, us=2), "us")
    assert decide(us, eu).result.values == {"a": 5, "b": 1}


def test_update_delete_delete_wins_an_equal_timestamp() -> None:
    update = RowVersion({"a": 5}, clock(20, eu=2, us=1), "us")
    delete = RowVersion(None, clock(20, eu=1, us=2), "eu")
    assert decide(update, delete).result.values is None
    assert decide(delete, update).result.values is None
    newer_update = RowVersion({"a": 5}, clock(21, eu=2, us=1), "us")
    assert decide(delete, newer_update).result.values == {"a": 5}


def test_delete_delete_keeps_a_tombstone() -> None:
    eu = RowVersion(None, clock(20, eu=2, us=1), "eu")
    us = RowVersion(None, clock(20, eu=1, us=2), "us")
    decision = decide(eu, us)
    assert decision.action is Action.RESOLVED and decision.result.deleted
    assert decision.result.clock == clock(20, eu=2, us=2)


def test_lww_ties_break_by_origin_then_value_hash() -> None:
    eu = RowVersion({"a": 1}, clock(7, eu=1), "eu")
    us = RowVersion({"a": 0}, clock(7, us=1), "us")
    assert decide(eu, us).result.origin == "us" and decide(us, eu).result.origin == "us"  # "us" > "eu"
    x = RowVersion({"a": 1}, clock(7, eu=1), "eu")
    y = RowVersion({"a": 2}, clock(7, ap=1), "eu")     # same timestamp and origin: the value hash decides
    greater = max((x, y), key=lambda v: v.hash)
    assert decide(x, y).result.values == greater.values == decide(y, x).result.values


def test_value_hash_is_stable_and_key_order_free() -> None:
    assert value_hash({"b": 1, "a": "x"}) == value_hash({"a": "x", "b": 1})
    assert value_hash(None) != value_hash({})
    assert value_hash({"a": 1}) == "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"


def test_region_priority_beats_timestamps_and_ties_by_lww() -> None:
    strategy = RegionPriority(("eu", "us"))
    eu = RowVersion({"a": 1}, clock(5, eu=1), "eu")
    us = RowVersion({"a": 2}, clock(50, us=1), "us")
    result = decide(us, eu, strategy).result
    assert (result.values, result.clock, result.origin) == ({"a": 1}, clock(50, eu=1, us=1), "eu")
    assert result.siblings == (eu, us)
    assert decide(eu, us, strategy).losers == (us,)
    other = RowVersion({"a": 3}, clock(60, ap=1), "ap")            # unlisted: lowest priority
    assert decide(other, us, strategy).result.values == {"a": 2}


def test_custom_resolver_result_clock_and_record() -> None:
    strategy = strategy_for(TableConfig(conflict_strategy="custom",
                                        custom_resolver="tests.unit.test_resolution:column_max"), "d.t")
    eu = RowVersion({"a": 1, "b": 9}, clock(3, eu=1), "eu")
    us = RowVersion({"a": 4, "b": 2}, clock(2, us=1), "us")
    decision = decide(eu, us, strategy)
    result = decision.result
    assert (result.values, result.clock, result.origin) == ({"a": 4, "b": 9}, clock(3, eu=1, us=1), "eu")
    record = decision.record()
    assert record["strategy"] == "custom" and len(record["losers"]) == 2
    assert record["result"]["counters"] == {"eu": 1, "us": 1}


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("tests.unit.test_resolution:missing", "has no attribute 'missing'"),
    ("tests.unit.test_resolution:NOT_CALLABLE", "is not callable"),
    ("nocolon", "must be `module:function`"),
])
def test_custom_loading_errors_name_the_config_key(spec: str, message: str) -> None:
    key = 'tables."shop.orders".custom_resolver'
    with pytest.raises(ConfigError, match=message) as err:
        load_resolver(spec, key)
    assert str(err.value).startswith(key)


def test_custom_resolver_must_return_values() -> None:
    strategy = Custom(lambda a, b: "oops", "m:f")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="m:f returned str"):
        decide(RowVersion({"a": 1}, clock(1, eu=1), "eu"), RowVersion({"a": 2}, clock(1, us=1), "us"), strategy)


@pytest.mark.parametrize("returned, problem", [
    ({"id": 7, "stock": 5}, "missing column(s) ['name']"),
    ({"id": 7, "stock": 5, "name": "x", "extra": 1}, "unknown column(s) ['extra']"),
    ({"id": 7, "stock": "5", "name": "x"}, "column 'stock' is str, the versions hold int"),
    ({"id": 7, "stock": True, "name": "x"}, "column 'stock' is bool, the versions hold int"),
    ({"id": 7, "stock": 5.5, "name": "x"}, "column 'stock' is float, the versions hold int"),
])
def test_custom_resolver_must_return_a_whole_row_typed_as_its_inputs(returned, problem) -> None:
    strategy = Custom(lambda a, b: returned, "shop.res:partial", "shop.inventory")
    local = RowVersion({"id": 7, "stock": 3, "name": None}, clock(1, eu=1), "eu")
    remote = RowVersion({"id": 7, "stock": 4, "name": "b"}, clock(2, us=1), "us")
    with pytest.raises(ResolverError) as err:
        decide(local, remote, strategy)
    message = str(err.value)
    assert message.startswith("custom resolver shop.res:partial (table shop.inventory) must return every column")
    assert problem in message


def test_custom_resolver_checks_accept_whole_rows_nulls_and_ints_for_floats() -> None:
    local = RowVersion({"id": 7, "price": 1.5, "name": None}, clock(1, eu=1), "eu")
    remote = RowVersion({"id": 7, "price": 2.5, "name": None}, clock(2, us=1), "us")
    for returned in ({"id": 7, "price": 2, "name": "any type: no version holds a value"},
                     {"id": 7, "price": None, "name": None}, None):
        decision = decide(local, remote, Custom(lambda a, b, r=returned: r, "m:f"))
        assert decision.result.values == returned


def test_custom_resolver_cannot_make_a_row_out_of_deletes() -> None:
    strategy = Custom(lambda a, b: {"id": 1}, "m:f")
    with pytest.raises(ResolverError, match="every version it was given is a delete"):
        decide(RowVersion(None, clock(1, eu=1), "eu"), RowVersion(None, clock(2, us=1), "us"), strategy)


def test_strategy_for_each_config() -> None:
    assert strategy_for(TableConfig()) is LWW
    ranked = strategy_for(TableConfig(conflict_strategy="region-priority", region_priority=("us", "eu")))
    assert isinstance(ranked, RegionPriority) and ranked.name == "region-priority"


@pytest.mark.parametrize("name", list(STRATEGIES))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_causal_histories_converge(name: str, data) -> None:
    """Beyond one round of concurrent writes: regions write on top of whatever they hold (chains,
    writes on resolved versions), exchange some versions, and finally receive everything. The
    strategies converge: lww because a later write always has a greater timestamp,
    region-priority and custom because a resolved version keeps its concurrent heads."""
    strategy = STRATEGIES[name]
    regions = data.draw(st.lists(st.sampled_from(REGIONS), min_size=2, max_size=3, unique=True))
    state = {r: RowVersion({c: 0 for c in COLUMNS}, clock(1, eu=1), "eu") for r in regions}
    written: list[RowVersion] = []
    now = 1
    for _ in range(data.draw(st.integers(2, 10))):
        region = data.draw(st.sampled_from(regions))
        if written and data.draw(st.booleans()):
            state[region] = decide(state[region], data.draw(st.sampled_from(written)), strategy).result
            continue
        now += data.draw(st.integers(0, 1))
        current = state[region]
        values = data.draw(st.none() | st.builds(lambda changes: {**(current.values or {c: 0 for c in COLUMNS}),
                                                                    **changes},
                                                  st.dictionaries(st.sampled_from(COLUMNS), st.integers(0, 3))))
        version = RowVersion(values, current.clock.increment(region, now), region)  # a write: no siblings
        state[region] = version
        written.append(version)
    finals = []
    for region in regions:
        final, _, _ = deliver(state[region], data.draw(st.permutations(written)), strategy)
        finals.append(final)
    assert all(f == finals[0] for f in finals)


def test_region_priority_lets_a_later_write_supersede_the_winner() -> None:
    """eu > us > ap. W (eu) and X (us) are concurrent; V (ap) is written on top of W. V supersedes W,
    so the concurrent set is {V, X} and X wins, whichever order a region sees them in."""
    strategy = RegionPriority(("eu", "us", "ap"))
    w = RowVersion({"a": "w"}, clock(10, eu=1), "eu")
    x = RowVersion({"a": "x"}, clock(20, us=1), "us")
    v = RowVersion({"a": "v"}, clock(11, eu=1, ap=1), "ap")
    a, _, _ = deliver(w, [x, v], strategy)
    b, _, _ = deliver(w, [v, x], strategy)
    assert a == b and a.values == {"a": "x"} and a.siblings == (x, v)
