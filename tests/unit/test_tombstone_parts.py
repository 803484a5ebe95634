"""Pure parts of the tombstone purge: durations, key texts split back, clock identity, candidates."""

from __future__ import annotations

import pytest

from cdcsync.commands.tombstones import parse_duration
from consumers.tombstones import candidates, clock_of
from schemas.row_clock_key import row_clock_key, split_key


@pytest.mark.parametrize("text, seconds", [("0s", 0), ("90", 90), ("15m", 900), ("12h", 43200), ("7d", 604800),
                                           ("2w", 1209600), ("1.5h", 5400), (" 3D ", 259200)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7 days", "-1s", "1y", "h"])
def test_bad_durations_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("pk, types", [
    ({"id": 42}, {"id": "int"}),
    ({"a": "x:1,2:yz", "b": -7}, {"a": "varchar(20)", "b": "bigint"}),
    ({"a": "", "b": "é,:"}, {"a": "varchar(3)", "b": "char(4)"}),
])
def test_split_key_inverts_the_key_text(pk, types) -> None:
    assert split_key(row_clock_key(pk, types)) == [str(v) for v in pk.values()]


@pytest.mark.parametrize("text", ["", "2:4", "x:1", "1:a;1:b", "1:a,", ":a"])
def test_split_key_refuses_what_is_not_a_key(text: str) -> None:
    with pytest.raises(ValueError, match="not a canonical key"):
        split_key(text)


def test_clock_identity_ignores_json_formatting_and_zero_entries() -> None:
    assert clock_of('{"eu": 2, "us": 1}', 5) == clock_of('{"us":1,"ap":0,"eu":2}', 5)
    assert clock_of('{"eu": 2}', 5) != clock_of('{"eu": 2}', 6)
    assert clock_of('{"eu": 2}', 5) != clock_of('{"eu": 3}', 5)


def test_candidates_need_every_region_identical_and_old() -> None:
    same = ("2:10", clock_of('{"eu": 1}', 9), True)
    eu = {("d", "t", b"1"): same, ("d", "t", b"2"): same, ("d", "t", b"3"): same, ("d", "t", b"4"): same}
    us = {("d", "t", b"1"): same, ("d", "t", b"2"): ("2:10", clock_of('{"eu": 1}', 10), True),
          ("d", "t", b"3"): ("2:10", clock_of('{"eu": 1}', 9), False)}
    assert candidates([eu, us]) == {("d", "t", b"1"): ("2:10", clock_of('{"eu": 1}', 9))}
