"""Who keeps a contested unique value (consumers/db/unique_keys.py): a pure, total order."""

from __future__ import annotations

import itertools

from consumers.db.unique_keys import unique_rank
from schemas.row_version import RowVersion
from schemas.vclock import VectorClock


def version(origin: str, hlc: int) -> RowVersion:
    return RowVersion({"email": "x"}, VectorClock(counters={origin: 1}, hlc_us=hlc), origin)


def test_the_same_winner_whatever_the_order() -> None:
    claims = [(version("eu", 10), "1:1"), (version("us", 12), "1:2"), (version("ap", 12), "1:3"),
              (version("us", 12), "1:4")]
    winners = set()
    for order in itertools.permutations(claims):
        holder = order[0]
        for claim in order[1:]:            # each arrival meets the current holder
            if unique_rank(*claim) > unique_rank(*holder):
                holder = claim
        winners.add(holder[1])
    assert winners == {"1:4"}              # latest hlc, then origin (us > ap), then key text


def test_a_row_without_a_clock_loses_to_any_clocked_version() -> None:
    unclocked = RowVersion({"email": "x"}, VectorClock(), "")
    assert unique_rank(version("eu", 1), "1:2") > unique_rank(unclocked, "1:9")
