"""The `_c` text of a cache entry: one text per clock, whatever the counters' order or zero entries."""

from __future__ import annotations

from consumers.cache.sink import clock_json


def test_compact_sorted_without_zero_entries() -> None:
    assert clock_json({"us": 1, "eu": 2}) == '{"eu":2,"us":1}'
    assert clock_json({"us": 1, "ap": 0, "eu": 2}) == clock_json({"eu": 2, "us": 1})
    assert clock_json({}) == "{}"                 # the empty clock is a clock
    assert clock_json(None) == ""                 # no clock
