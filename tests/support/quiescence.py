"""Waiting for quiescence: every producer has read its whole binlog and every sink group has no lag."""

from __future__ import annotations

import time

from cdcsync.tools.status import RegionStatus, pipeline_status
from schemas.config import PipelineConfig


def _quiet(statuses: list[RegionStatus]) -> bool:
    for status in statuses:
        if status.errors or status.behind_transactions != 0:
            return False
        if not status.groups or any(group.lag != 0 for group in status.groups):
            return False
    return True


def wait_quiescent(config: PipelineConfig, *, timeout: float = 120.0, settle: int = 3) -> None:
    """Until `settle` consecutive polls show every producer caught up and every lag at zero."""
    deadline = time.monotonic() + timeout
    quiet = 0
    last: list[RegionStatus] = []
    while time.monotonic() < deadline:
        last = pipeline_status(config, timeout_s=5.0)
        quiet = quiet + 1 if _quiet(last) else 0
        if quiet >= settle:
            return
        time.sleep(0.5)
    raise AssertionError(f"not quiescent after {timeout}s: {[s.to_json() for s in last]}")
