"""producers/clock_matching.py `StreamingPairs`: a local transaction paired as the binlog brings it,
published in order with bounded memory, refusing exactly what the buffered pairing refuses."""

from __future__ import annotations

from typing import Any

import pytest

from producers.clock_matching import ClockPairingError, ClockRows, StreamingPairs
from tests.unit.test_clock_pairing import LOCAL_MISMATCHES, change, clock, eu


class Run:
    """Feeds steps (a change message, or a list of clock rows: one event) as the capture does."""

    def __init__(self, window: int = 10_000) -> None:
        self.pairs = StreamingPairs(window, lambda db, table: table != "unpublished")
        self.out: list[dict[str, Any]] = []
        self.most_held = 0

    def step(self, step: Any) -> None:
        if isinstance(step, list):
            rows = ClockRows()
            rows.add(step, 0)
            self.pairs.clock_rows(rows)
        else:
            self.pairs.add(("topic", b"k", step, []))
        self.most_held = max(self.most_held, len(self.pairs))
        self.out += [item[2] for item in self.pairs.release()]

    def all(self, *steps: Any) -> list[dict[str, Any]]:
        for step in steps:
            self.step(step)
        self.out += [item[2] for item in self.pairs.seal()]
        return self.out


def test_each_change_goes_out_with_the_clock_row_written_right_after_it() -> None:
    out = Run().all(change("insert", 1), [clock(1, 1)], change("update", 1), [clock(1, 2)], change("update", 2),
                    change("update", 3), [clock(3, 6), clock(2, 5)], change("delete", 1), [clock(1, 3, deleted=1)],
                    change("delete", 4), change("insert", 5), [clock(4, 2, deleted=1)], [clock(5, 3)])
    assert [eu(m) for m in out] == [1, 2, 5, 6, 3, 2, 3]
    assert [m["txn_last"] for m in out if "txn_last" in m] == [True]
    assert out[-1]["txn_last"] is True


def test_unclocked_unpublished_and_non_row_messages_pass_as_the_buffered_pairing_lets_them() -> None:
    ddl = {"kind": "ddl", "db": "shop", "table": "t"}
    out = Run().all(ddl, change("update", 1, table="plain"), [clock(9, 1, table="unpublished")],
                    change("update", 1), [clock(1, 2)])
    assert out[0] is ddl and [eu(m) for m in out[1:]] == [None, 2]


@pytest.mark.parametrize("steps, problem", LOCAL_MISMATCHES)
def test_every_local_mismatch_is_refused_with_the_key_named(steps, problem: str) -> None:
    with pytest.raises(ClockPairingError, match="likely cause") as raised:
        Run().all(*[[dict(row) for row in s] if isinstance(s, list) else dict(s) for s in steps])
    assert problem in str(raised.value)
    assert raised.value.db == "shop" and raised.value.table == "t" and raised.value.key in ("1:1", "1:2")


def test_a_hundred_thousand_paired_changes_hold_two_messages_at_most() -> None:
    run = Run()
    released = 0
    for key in range(100_000):
        run.step(change("insert", key))
        run.step([clock(key, 1)])
        released += len(run.out)
        run.out.clear()
    assert run.most_held <= 2 and released == 99_999
    assert len(run.all()) == 1


def test_a_table_without_clock_rows_is_decided_clockless_at_the_window() -> None:
    run = Run(window=1000)
    out = run.all(*[change("insert", key, table="plain") for key in range(50_000)])
    assert run.most_held <= 1001
    assert len(out) == 50_000 and all(m["vclock"] is None for m in out)


def test_a_clock_row_after_the_table_was_decided_clockless_is_refused() -> None:
    run = Run(window=10)
    for key in range(20):
        run.step(change("insert", key))
    with pytest.raises(ClockPairingError, match="after 20 changes of the table published without one"):
        run.step([clock(19, 1)])


def test_a_change_of_a_clocked_table_still_open_at_the_window_is_refused_before_the_commit() -> None:
    run = Run(window=10)
    run.step(change("insert", 1))
    run.step([clock(1, 1)])
    run.step(change("update", 2))   # its clock row never comes
    with pytest.raises(ClockPairingError, match="a row change \\(update\\) with no clock row"):
        for key in range(3, 20):
            run.step(change("insert", key))
            run.step([clock(key, 1)])
