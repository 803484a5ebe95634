"""When the pipeline has settled after the writers stop.

Settled means: in two consecutive status rounds (cdcsync/tools/status.py), both begun after the last
write, every producer has checkpointed its server's whole binlog, every sink group has committed
everything on every partition it reads, and every server's GTID position (`@@gtid_binlog_pos`) is
the same in both rounds. A sink commits its offsets only after applying, and every database change
(a local write, an applied remote version, a conflict-log row) moves the GTID position, so nothing
is in flight and no database changed between the rounds. Only then is `verify` meaningful.
"""

from __future__ import annotations

from cdcsync.tools.status import RegionStatus


def busy(statuses: list[RegionStatus]) -> list[str]:
    """Why the pipeline is not idle in this status round (empty: idle)."""
    reasons = []
    for s in statuses:
        reasons += [f"{s.region}: {e}" for e in s.errors]
        behind = s.behind_transactions
        if behind is None:
            reasons.append(f"{s.region}: producer position unknown")
        elif behind:
            reasons.append(f"{s.region}: producer {behind} transactions behind")
        for g in s.groups:
            if g.lag is None:
                reasons.append(f"{s.region}: {g.sink} sink lag unknown")
            elif g.lag:
                reasons.append(f"{s.region}: {g.sink} sink {g.lag} events behind")
    return reasons


def positions(statuses: list[RegionStatus]) -> dict[str, str | None]:
    return {s.region: None if s.server is None else s.server.gtid_state for s in statuses}


class QuiescenceTracker:
    """Fed one status round at a time (each begun after the writers stopped); `settled` once two
    consecutive idle rounds show the same server positions."""

    def __init__(self) -> None:
        self.settled = False
        self.reasons: list[str] = ["no status round yet"]
        self._idle_positions: dict[str, str | None] | None = None

    def observe(self, statuses: list[RegionStatus]) -> bool:
        self.reasons = busy(statuses)
        if self.reasons:
            self._idle_positions = None
            return False
        now = positions(statuses)
        if self._idle_positions == now:
            self.settled = True
        else:
            self.reasons = ["databases changed since the last round"] if self._idle_positions else \
                ["idle once; confirming"]
            self._idle_positions = now
        return self.settled
