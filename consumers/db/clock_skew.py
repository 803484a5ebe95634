"""The bound on how far ahead of this host's clock a remote version's hybrid-logical time may be.

lww breaks ties by `hlc_us`, and the triggers carry a row's largest `hlc_us` forward (GREATEST(old + 1,
now)). A region whose server clock runs ahead would win every concurrent write until the clocks
agree again, and would push its future time into every row it touches. The sink refuses such a
version instead of applying it: the operator fixes the clock (NTP) or raises the bound, and the sink,
restarted, takes the version again from its uncommitted offset. Nothing is skipped.
"""

from __future__ import annotations

import time

from schemas.events import ChangeEvent


class ClockSkewError(RuntimeError):
    """A version stamped further in the future than `sink.max_clock_skew_ms` allows."""


def check_skew(event: ChangeEvent, limit_ms: int, now_us: int | None = None) -> None:
    """Raise `ClockSkewError` when `event`'s clock is more than `limit_ms` ahead of `now_us` (default:
    this host's UTC clock). Events without a clock pass."""
    if event.vclock is None:
        return
    now = time.time_ns() // 1000 if now_us is None else now_us
    ahead_ms = (event.vclock.hlc_us - now) / 1000
    if ahead_ms > limit_ms:
        raise ClockSkewError(
            f"{event.db}.{event.table} version from region {event.region} (gtid {event.gtid}) is stamped "
            f"{ahead_ms / 1000:.1f} s ahead of this host's clock, beyond sink.max_clock_skew_ms = {limit_ms}: "
            f"fix the clock of region {event.region}'s database server (NTP) or raise the bound; "
            f"the sink stops without applying it")
