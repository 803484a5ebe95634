"""Vector clocks: merge is a join (commutative, associative, idempotent) and compare is the partial order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.codec import decode, encode
from schemas.vclock import Order, VectorClock

REGIONS = ["eu", "us", "ap", "sa"]
clocks = st.builds(lambda counters, hlc: VectorClock(counters=counters, hlc_us=hlc),
                   st.dictionaries(st.sampled_from(REGIONS), st.integers(0, 6), max_size=4),
                   st.integers(0, 10**6))


def definition(a: VectorClock, b: VectorClock) -> Order:
    """The textbook definition, written independently of the implementation."""
    keys = set(a.counters) | set(b.counters)
    le = all(a.counters.get(k, 0) <= b.counters.get(k, 0) for k in keys)
    ge = all(a.counters.get(k, 0) >= b.counters.get(k, 0) for k in keys)
    return Order.EQUAL if le and ge else Order.BEFORE if le else Order.AFTER if ge else Order.CONCURRENT


@given(clocks, clocks)
def test_merge_is_commutative(a, b) -> None:
    assert a.merge(b) == b.merge(a)


@given(clocks, clocks, clocks)
def test_merge_is_associative(a, b, c) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@given(clocks)
def test_merge_is_idempotent(a) -> None:
    assert a.merge(a) == a


@given(clocks, clocks)
def test_merge_dominates_both_and_is_the_least_such(a, b) -> None:
    m = a.merge(b)
    assert m.dominates(a) and m.dominates(b)
    for region in m.counters:
        assert m.counters[region] == max(a.counters.get(region, 0), b.counters.get(region, 0))


@given(clocks, clocks)
def test_compare_agrees_with_the_definition(a, b) -> None:
    assert a.compare(b) == definition(a, b)
    flipped = {Order.BEFORE: Order.AFTER, Order.AFTER: Order.BEFORE}
    assert b.compare(a) == flipped.get(a.compare(b), a.compare(b))


@given(clocks, st.sampled_from(REGIONS), st.integers(0, 2 * 10**6))
def test_increment_happens_after_and_time_never_goes_back(a, region, now) -> None:
    b = a.increment(region, now)
    assert a.compare(b) is Order.BEFORE
    assert b.hlc_us > a.hlc_us and b.hlc_us >= now


def test_concurrent_writes_in_two_regions() -> None:
    base = VectorClock(counters={"eu": 1})
    w_eu, w_us = base.increment("eu", 10), base.increment("us", 10)
    assert w_eu.compare(w_us) is Order.CONCURRENT
    assert w_eu.merge(w_us).counters == {"eu": 2, "us": 1}


def test_canonical_form_and_explicit_region_removal() -> None:
    assert VectorClock(counters={"us": 0, "eu": 2}) == VectorClock(counters={"eu": 2})
    assert VectorClock().compare(VectorClock(counters={"eu": 0})) is Order.EQUAL
    assert VectorClock(counters={"eu": 2, "us": 1}).without("us").counters == {"eu": 2}
    with pytest.raises(ValidationError, match="negative"):
        VectorClock(counters={"eu": -1})


def test_clock_travels_in_change_events() -> None:
    event = {"schema_version": 1, "kind": "change", "region": "eu", "origin": "eu", "server_id": 1, "gtid": "1-1-1",
             "binlog_file": "b.000001", "binlog_pos": 4, "txn_id": "1-1-1", "ts_us": 0, "db": "a", "table": "t",
             "txn_index": 0, "txn_last": True, "op": "insert", "pk": {"id": 1}, "before": None, "after": {"id": 1},
             "types": {"id": "int"}, "vclock": {"counters": {"us": 3, "eu": 1}, "hlc_us": 17}}
    clock = decode(encode(event)).vclock
    assert clock == VectorClock(counters={"eu": 1, "us": 3}, hlc_us=17)
