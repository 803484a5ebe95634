"""A sink never sits silently without partitions while its group has work (issue 11).

A consumer-group member with no partition is normal for a moment (a rebalance) or for good when the
group has more members than partitions. It is a fault when it lasts while the group has lag that
nobody applies: the group coordinator is not handing the partitions out. The soak met it on the
sandbox broker (a member that left mid-rebalance stayed the group's leader for good); on any broker
it would otherwise look like an idle sink. So a sink checks, every `check_every_s` while it has no
partition, its group's committed offsets and lag; once the group has had lag and no committed offset
has moved for `limit_s`, it raises `Unassigned` and the sink stops with one line (exit non-zero: a
supervisor starts it again as a fresh member, and the line says what to do if that does not help).

The limit is `LIMIT_SESSIONS` session timeouts (`sink.session_timeout_ms`, 60 s by default): far past
a rebalance that waits for a dead member's session to expire. A check that cannot reach the broker
starts the count again (a stalled broker is not this rule's business: the member rejoins after it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

LIMIT_SESSIONS = 10

# (topic, partition) -> (committed offset or None, lag)
GroupProgress = dict[tuple[str, int], tuple[int | None, int]]


class Unassigned(Exception):
    """The sink has had no partition for too long while its group has lag that does not move."""


class AssignmentWatchdog:
    def __init__(self, *, what: str, group: str, limit_s: float, check_every_s: float,
                 progress: Callable[[], GroupProgress], clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.group = what, group
        self.limit_s, self.check_every_s = limit_s, check_every_s
        self._progress, self._clock = progress, clock
        self._next_check = clock() + check_every_s
        self._stuck_since: float | None = None
        self._baseline: dict[tuple[str, int], int | None] | None = None

    @classmethod
    def for_session(cls, session_timeout_ms: int, **kw: object) -> "AssignmentWatchdog":
        session_s = session_timeout_ms / 1000
        return cls(limit_s=LIMIT_SESSIONS * session_s, check_every_s=session_s, **kw)  # type: ignore[arg-type]

    def observe(self, assigned: bool) -> None:
        """Called by the sink loop. Raises `Unassigned` when the rule above is met."""
        now = self._clock()
        if assigned:
            self._stuck_since = self._baseline = None
            self._next_check = now + self.check_every_s
            return
        if now < self._next_check:
            return
        self._next_check = now + self.check_every_s
        try:
            progress = self._progress()
        except Exception as err:  # noqa: BLE001 - the broker did not answer: judge nothing now
            log.debug("group %s: progress unknown (%s)", self.group, err)
            self._stuck_since = self._baseline = None
            return
        lag = sum(partition_lag for _, partition_lag in progress.values())
        committed = {tp: offset for tp, (offset, _) in progress.items()}
        if lag == 0 or committed != self._baseline:
            # Nothing to do, or another member is applying: start counting from here.
            self._stuck_since, self._baseline = (None, None) if lag == 0 else (now, committed)
            return
        assert self._stuck_since is not None
        if now - self._stuck_since >= self.limit_s:
            raise Unassigned(
                f"{self.what}: no partition assigned for {now - self._stuck_since:.0f}s while group {self.group} has "
                f"lag {lag} that no member applies (its committed offsets have not moved): the group coordinator "
                "is not handing out the partitions. Exiting so that a supervisor restarts this sink as a new "
                "member; if it happens again, check the group with `cdcsync status` and the broker (on the sandbox "
                "broker a member that left mid-rebalance wedges its group until the broker restarts)")
