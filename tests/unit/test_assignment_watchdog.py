"""The rule that keeps a sink from sitting silently without partitions (consumers/assignment_watchdog.py)."""

from __future__ import annotations

import pytest

from consumers.assignment_watchdog import LIMIT_SESSIONS, AssignmentWatchdog, Unassigned


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _watchdog(progress, clock: Clock) -> AssignmentWatchdog:
    return AssignmentWatchdog.for_session(6000, what="db sink of region eu", group="p.eu.db", progress=progress,
                                          clock=clock)


def _run(dog: AssignmentWatchdog, clock: Clock, seconds: float, *, assigned: bool = False) -> None:
    """The sink loop: an observation every 0.25 s for `seconds`."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now += 0.25
        dog.observe(assigned)


def test_unassigned_with_lag_that_does_not_move_stops_after_the_limit() -> None:
    clock = Clock()
    dog = _watchdog(lambda: {("t", 0): (None, 5), ("t", 1): (3, 0)}, clock)
    assert dog.limit_s == LIMIT_SESSIONS * 6
    _run(dog, clock, dog.limit_s)        # the first check starts the count, one session in
    with pytest.raises(Unassigned) as err:
        _run(dog, clock, 2 * 6)
    message = str(err.value)
    assert message.startswith("db sink of region eu: no partition assigned for 60s while group p.eu.db has lag 5")
    assert "restarts this sink" in message and "\n" not in message


def test_no_lag_means_nothing_to_do_however_long() -> None:
    clock = Clock()
    dog = _watchdog(lambda: {("t", 0): (7, 0)}, clock)
    _run(dog, clock, 10 * dog.limit_s)


def test_another_member_applying_is_not_a_fault() -> None:
    """More members than partitions: this one has none, the others commit as they go."""
    clock = Clock()
    committed = [0]

    def progress():
        committed[0] += 1
        return {("t", 0): (committed[0], 10)}

    dog = _watchdog(progress, clock)
    _run(dog, clock, 10 * dog.limit_s)


def test_an_assignment_resets_the_count() -> None:
    clock = Clock()
    dog = _watchdog(lambda: {("t", 0): (None, 5)}, clock)
    _run(dog, clock, dog.limit_s - 1)
    _run(dog, clock, 1, assigned=True)
    _run(dog, clock, dog.limit_s - 1)
    with pytest.raises(Unassigned):
        _run(dog, clock, dog.limit_s)


def test_a_broker_that_does_not_answer_restarts_the_count() -> None:
    """A stalled broker takes every assignment away; judging the group then would only add a restart."""
    clock = Clock()
    answers = {"up": True}

    def progress():
        if not answers["up"]:
            raise RuntimeError("Local: Timed out")
        return {("t", 0): (None, 5)}

    dog = _watchdog(progress, clock)
    _run(dog, clock, dog.limit_s - 1)
    answers["up"] = False
    _run(dog, clock, 30)
    answers["up"] = True
    _run(dog, clock, dog.limit_s - 1)
    with pytest.raises(Unassigned):
        _run(dog, clock, dog.limit_s)


def test_the_group_is_asked_once_per_session_timeout_only() -> None:
    clock = Clock()
    calls = []
    dog = _watchdog(lambda: calls.append(clock.now) or {}, clock)
    _run(dog, clock, 60)
    assert 9 <= len(calls) <= 10
