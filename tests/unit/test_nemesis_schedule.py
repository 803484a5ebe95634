"""The nemesis schedule (tests/support/convergence/nemesis.py): seeded, every kind asked for, no two
faults at once, and one clear error for an unknown kind."""

from __future__ import annotations

import pytest

from tests.support.convergence.nemesis import KINDS, parse_kinds, schedule

REGIONS = ["eu", "us", "ap"]


def test_a_seed_always_gives_the_same_schedule_and_another_seed_another() -> None:
    one = schedule(7, KINDS, REGIONS, count=10, span_s=30)
    assert one == schedule(7, KINDS, REGIONS, count=10, span_s=30)
    assert one != schedule(8, KINDS, REGIONS, count=10, span_s=30)


def test_every_kind_appears_when_the_count_allows_and_must_kinds_first() -> None:
    faults = schedule(3, KINDS, REGIONS, count=len(KINDS) + 2, span_s=20)
    assert {f.kind for f in faults} == set(KINDS)
    short = schedule(3, ("kill-producer", "kill-db", "stop-broker", "kill-cache"), REGIONS, count=3, span_s=5,
                     must=("kill-producer", "kill-db", "stop-broker"))
    assert sorted(f.kind for f in short) == ["kill-db", "kill-producer", "stop-broker"]


def test_faults_never_overlap_and_the_broker_is_only_stopped() -> None:
    faults = schedule(5, KINDS, REGIONS, count=12, span_s=10, stop_s=(5, 60))
    for before, after in zip(faults, faults[1:]):
        assert after.at_s >= before.at_s + before.duration_s
    for fault in faults:
        assert (fault.target == "broker") == (fault.kind == "stop-broker")
        if fault.kind == "stop-broker":
            assert 5 <= fault.duration_s <= 60


def test_kind_lists() -> None:
    assert parse_kinds("all") == KINDS == parse_kinds("")
    assert parse_kinds("stop-broker,kill-db") == ("kill-db", "stop-broker")
    assert "kill-supervisor" not in parse_kinds("-kill-supervisor")
    with pytest.raises(ValueError, match="unknown fault kind kill-broker"):
        parse_kinds("kill-broker")


def test_a_region_cut_lasts_cut_s_and_targets_a_region() -> None:
    kinds = ("cut-region", "cut-region-mid-txn", "kill-db")
    faults = schedule(9, kinds, REGIONS, count=8, span_s=10, cut_s=(20, 30))
    assert {f.kind for f in faults} == set(kinds)
    for fault in faults:
        if fault.kind.startswith("cut-region"):
            assert 20 <= fault.duration_s <= 30 and fault.target in REGIONS
        else:
            assert fault.duration_s == 1.0
    assert parse_kinds("cut-region,cut-region-mid-txn") == ("cut-region", "cut-region-mid-txn")
