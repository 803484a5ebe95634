"""Waiting for quiescence: every producer has read its whole binlog and every sink group has no lag.

A component that exited (and that nothing restarts) never catches up: with `dead`, the wait stops
at once with `ComponentsDead` naming them, instead of running out its timeout and leaving their
region's rows to be reported as "diverged" (seed 5001 of the nemesis soak, docs/reliability.md)."""

from __future__ import annotations

import time
from collections.abc import Callable

from cdcsync.tools.status import RegionStatus, pipeline_status
from schemas.config import PipelineConfig


def _quiet(statuses: list[RegionStatus]) -> bool:
    for status in statuses:
        if status.errors or status.behind_transactions != 0:
            return False
        if not status.groups or any(group.lag != 0 for group in status.groups):
            return False
    return True


class ComponentsDead(AssertionError):
    """Components exited while waiting for quiescence: the pipeline cannot converge without them."""

    def __init__(self, dead: list[str]) -> None:
        super().__init__(f"not quiescent: {', '.join(dead)} exited and nothing restarted "
                         f"{'it' if len(dead) == 1 else 'them'}; a dead component never catches up")
        self.dead = dead


def wait_quiescent(config: PipelineConfig, *, timeout: float = 120.0, settle: int = 3,
                   dead: Callable[[], list[str]] | None = None) -> None:
    """Until `settle` consecutive polls show every producer caught up and every lag at zero.
    `dead()`: the components that exited (e.g. `db-ap (exit 1)`); any raises `ComponentsDead`."""
    deadline = time.monotonic() + timeout
    quiet = 0
    last: list[RegionStatus] = []
    while time.monotonic() < deadline:
        gone = dead() if dead is not None else []
        if gone:
            raise ComponentsDead(gone)
        last = pipeline_status(config, timeout_s=5.0)
        quiet = quiet + 1 if _quiet(last) else 0
        if quiet >= settle:
            return
        time.sleep(0.5)
    raise AssertionError(f"not quiescent after {timeout}s: {[s.to_json() for s in last]}")
