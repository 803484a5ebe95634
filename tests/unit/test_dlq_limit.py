"""The poison-flood limit: runs of dead letters counted in consumed order, across batches."""

from __future__ import annotations

import pytest

from consumers.dlq_limit import DeadLetterFlood, DeadLetterLimit
from consumers.records import SourceRecord


def records(first: int, n: int, partition: int = 0) -> list[SourceRecord]:
    return [SourceRecord("t", partition, o, None, b"x", None, "bad", "undecodable") for o in range(first, first + n)]


def letters(batch: list[SourceRecord]) -> list[tuple[SourceRecord, str]]:
    return [(r, f"undecodable: payload {r.offset} is not JSON") for r in batch]


def test_a_run_longer_than_the_limit_is_refused_before_it_counts() -> None:
    limit = DeadLetterLimit(3, region="us", sink="db")
    batch = records(0, 6)
    limit.begin(batch)
    limit.admit(letters(batch[0:3]))                                   # a run of 3: allowed
    with pytest.raises(DeadLetterFlood) as err:
        limit.admit(letters(batch[3:4]))
    message = str(err.value)
    assert "4 consecutive dead letters" in message and "max_consecutive_dead_letters = 3" in message
    assert "starts at or before t[0]@0 and goes over at t[0]@3" in message
    assert "last reason: undecodable: payload 3 is not JSON" in message
    assert "\n" not in message


def test_an_applied_record_between_dead_letters_ends_the_run() -> None:
    limit = DeadLetterLimit(2, region="us", sink="cache")
    batch = records(0, 7)
    limit.begin(batch)
    limit.admit(letters([batch[0], batch[1], batch[3], batch[4], batch[6]]))   # runs of 2, 2, 1: 2 and 5 applied
    limit.end()


def test_the_run_carries_across_batches_and_a_later_group_sees_the_earlier_letters() -> None:
    limit = DeadLetterLimit(3, region="us", sink="db")
    first = records(0, 4)
    limit.begin(first)
    limit.admit(letters(first[2:4]))           # the batch ends with a run of 2
    limit.end()
    second = records(4, 3)
    limit.begin(second)
    limit.admit(letters(second[0:1]))          # 3: allowed
    with pytest.raises(DeadLetterFlood, match="starts at or before t\\[0\\]@4"):
        limit.admit(letters(second[1:2]))      # 4, counted with the letters already admitted in this batch


def test_zero_means_no_limit() -> None:
    limit = DeadLetterLimit(0, region="us", sink="db")
    batch = records(0, 10_000)
    limit.begin(batch)
    limit.admit(letters(batch))
    limit.end()
