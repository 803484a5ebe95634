"""The Bloom maintainer's liveness rule: partitions that hold records it does not fetch.

A freshness proof waits until every assigned partition is applied up to its high watermark. When a
proof times out, `FetchWatch.judge` tells apart a stream that is slow (some waiting partition moved
during the wait: say which, keep waiting) from one that is stuck (a partition holds records past the
maintainer's position and that position did not move for the whole wait, while the broker answered
the watermark query just before). Stuck: the maintainer recreates its Kafka consumer and assigns
every partition at its explicit stored position; stuck again `max_recoveries` proofs in a row (no
proof in between): `FetchStalled`, the maintainer exits non-zero with that one line, for a
supervisor to restart it. The soak met a stuck consumer: partitions assigned at OFFSET_BEGINNING 3 s
after a broker stall were never fetched, and every later proof timed out without a word
(docs/reliability.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# (topic, partition) -> (next offset to apply, high watermark)
Waiting = dict[tuple[str, int], tuple[int, int]]


class FetchStalled(Exception):
    """Partitions hold records the maintainer's consumer does not fetch, even after recreating it."""


@dataclass(frozen=True)
class Verdict:
    stuck: bool          # True: recover (recreate the consumer); False: slow, keep waiting
    line: str            # the one log line that names the partitions and positions


def describe(waiting: Waiting, limit: int = 12) -> str:
    """`topic[0] at 3 of 20, ...` (at most `limit`, then how many more)."""
    parts = [f"{topic}[{partition}] at {position} of {high}"
             for (topic, partition), (position, high) in sorted(waiting.items())]
    more = len(parts) - limit
    return ", ".join(parts[:limit]) + (f" and {more} more" if more > 0 else "")


class FetchWatch:
    def __init__(self, region: str, *, max_recoveries: int = 2) -> None:
        self.region = region
        self.max_recoveries = max_recoveries
        self.recoveries = 0          # consumer recreations since the last proof

    def proven(self) -> None:
        self.recoveries = 0

    def judge(self, waiting: Waiting, started: dict[tuple[str, int], int], waited_s: float) -> Verdict:
        """A proof timed out after `waited_s` waiting on `waiting`; `started`: the positions when it
        began waiting. Raises `FetchStalled` once recoveries did not help."""
        stuck = {tp: ends for tp, ends in waiting.items() if started.get(tp) == ends[0]}
        if not stuck:
            return Verdict(False, f"bloom {self.region}: no freshness proof in {waited_s:.0f} s: still applying "
                                  f"{describe(waiting)} (moving, slowly); readers ask the database for absent keys "
                                  "meanwhile")
        problem = (f"bloom {self.region}: no freshness proof in {waited_s:.0f} s: {len(stuck)} partition(s) hold "
                   f"records past this maintainer's position, which did not move although the broker answered: "
                   f"{describe(stuck)}")
        if self.recoveries >= self.max_recoveries:
            raise FetchStalled(f"{problem}; still so after recreating the Kafka consumer {self.recoveries} time(s): "
                               "exiting for a supervisor to restart `cdcsync bloom` (the positions stay with the "
                               "bits in Redis); if that does not help, check the broker's fetches of those "
                               "partitions")
        self.recoveries += 1
        return Verdict(True, f"{problem}; recreating the Kafka consumer and assigning every partition at its stored "
                             f"position (recovery {self.recoveries} of {self.max_recoveries})")
