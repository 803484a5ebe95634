"""A component that died and stayed dead is reported as dead, not as a divergence: the quiescence
wait stops at once naming it (not after its timeout), and the differences the checks then find are
`undelivered`, naming it (seed 5001 of the nemesis soak: ap's database sink exited during a broker
stall, and the seed said `rows differ`; docs/convergence-checker.md)."""

from __future__ import annotations

import time

import pytest

from tests.support.convergence.checker import Problem
from tests.support.convergence.run import DEAD, SeedResult, blame_dead, dead_components
from tests.support.quiescence import ComponentsDead, wait_quiescent


class _Proc:
    def __init__(self, code: int | None) -> None:
        self.proc = type("P", (), {"returncode": code})()

    def alive(self) -> bool:
        return self.proc.returncode is None


def test_the_quiescence_wait_stops_at_once_on_a_dead_component() -> None:
    procs = {"db-ap": _Proc(1), "db-eu": _Proc(None)}
    started = time.monotonic()
    with pytest.raises(ComponentsDead, match=r"db-ap \(exit 1\) exited and nothing restarted it") as raised:
        wait_quiescent(None, timeout=120, dead=lambda: dead_components(procs))   # type: ignore[arg-type]
    assert raised.value.dead == ["db-ap (exit 1)"]
    assert time.monotonic() - started < 5      # not the 120 s timeout: no status is even asked


def test_differences_left_by_a_dead_sink_are_undelivered_not_divergent() -> None:
    result = SeedResult(5001, "mesh", ("plain",), "db", "p")
    result.problems = blame_dead([
        Problem("pipeline", None, "not quiescent: db-ap (exit 1) exited and nothing restarted it"),
        Problem("rows differ", ("kv", (7,)), "eu={'v': 'b'}; us={'v': 'b'}; ap={'v': 'a'}"),
        Problem("dead letter", ("kv", (8,)), "unexplained"),
        Problem(DEAD, None, "db-ap died (exit 1):\n      error: cannot reach Kafka (topic id of ...)"),
    ])
    kinds = [p.kind for p in result.problems]
    assert kinds == ["pipeline", "undelivered", "dead letter", DEAD]
    assert result.problems[1].detail.startswith("rows differ with db-ap dead: ")
    assert not result.ok
    assert result.dead == ["db-ap"]
    assert result.undelivered_keys == ["kv(7)"]
    assert "kv(7)" not in result.divergent_keys and "kv(8)" in result.divergent_keys
    summary = result.summary()
    assert summary["dead"] == ["db-ap"] and summary["undelivered_keys"] == 1 and summary["ok"] is False


def test_without_a_dead_component_a_difference_stays_a_divergence() -> None:
    problems = [Problem("rows differ", ("kv", (7,)), "x")]
    assert blame_dead(problems) == problems
    result = SeedResult(1, "mesh", ("plain",), "db", "p", problems=problems)
    assert result.divergent_keys == ["kv(7)"] and "dead" not in result.summary()
