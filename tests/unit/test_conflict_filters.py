"""What an operator types to `cdcsync conflicts` (--since/--until, --bucket, --key), and the override's
choice of values: pure parsing, no servers."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest

from cdcsync.tools.conflict_filters import FilterError, canonical_key, parse_bucket_s, parse_key, parse_time_us
from cdcsync.tools.conflict_override import OverrideError, chosen_values
from schemas.conflict_record import ConflictRecord, VersionImage
from schemas.row_clock_key import row_clock_key

NOW_US = 1_780_000_000_123_456


@pytest.mark.parametrize(("text", "seconds"), [("1m", 60), ("1h", 3600), ("1d", 86400), ("30s", 30), ("15m", 900),
                                               (" 2h ", 7200)])
def test_bucket_sizes(text: str, seconds: int) -> None:
    assert parse_bucket_s(text) == seconds


@pytest.mark.parametrize("text", ["0m", "1w", "", "m", "-1h", "1.5h", "1h30m", "h1"])
def test_bad_bucket_names_the_input(text: str) -> None:
    with pytest.raises(FilterError, match="positive duration"):
        parse_bucket_s(text)


def test_relative_times_count_back_from_now() -> None:
    assert parse_time_us("10m", NOW_US) == NOW_US - 600_000_000
    assert parse_time_us("2h", NOW_US) == NOW_US - 7_200_000_000
    assert parse_time_us("1d", NOW_US) == NOW_US - 86_400_000_000
    assert parse_time_us("now", NOW_US) == NOW_US


@pytest.mark.parametrize("text", ["2026-11-29T12:00:00", "2026-11-29 12:00:00", "2026-11-29T12:00:00Z",
                                  "2026-11-29T14:00:00+02:00", "2026-11-29T12:00"])
def test_iso_times_are_utc_unless_an_offset_is_given(text: str) -> None:
    expected = int(datetime(2026, 11, 29, 12, tzinfo=timezone.utc).timestamp()) * 1_000_000
    assert parse_time_us(text, NOW_US) == expected


def test_iso_time_keeps_microseconds() -> None:
    base = int(datetime(2026, 11, 29, 12, tzinfo=timezone.utc).timestamp()) * 1_000_000
    assert parse_time_us("2026-11-29 12:00:00.000007", NOW_US) == base + 7


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "10 minutes"])
def test_bad_time_names_the_input(text: str) -> None:
    with pytest.raises(FilterError, match="ISO time"):
        parse_time_us(text, NOW_US)


INT_KEY = [("id", "int")]
COMPOSITE = [("k", "varchar(20)"), ("n", "bigint unsigned")]


def test_key_as_json_list_or_assignments_gives_the_canonical_text() -> None:
    assert canonical_key("[42]", INT_KEY) == "2:42"
    assert canonical_key('["42"]', INT_KEY) == "2:42"
    assert canonical_key("id=42", INT_KEY) == "2:42"
    assert canonical_key(' id = 42 ', INT_KEY) == "2:42"
    assert canonical_key('["k,1:", 18446744073709551615]', COMPOSITE) == "4:k,1:,20:18446744073709551615"
    # col=value in any order; a value with commas continues until the next `col=`
    assert canonical_key("n=7,k=a,b", COMPOSITE) == "3:a,b,1:7"
    assert parse_key("n=7,k=x", COMPOSITE) == {"k": "x", "n": 7}   # key order, wire values


def test_key_values_normalised_to_their_wire_form() -> None:
    # DECIMAL: the scale's digits; DATETIME(fsp): the wire's 6 fraction digits cut to fsp
    assert canonical_key("[1.5]", [("d", "decimal(5,2)")]) == "4:1.50"
    assert canonical_key("d=1.5", [("d", "decimal(5,2)")]) == "4:1.50"
    assert canonical_key("t=2024-01-02 03:04:05.1", [("t", "datetime(3)")]) == "23:2024-01-02 03:04:05.100"
    assert canonical_key("t=2024-01-02 03:04:05", [("t", "datetime")]) == "19:2024-01-02 03:04:05"
    raw = base64.b64encode(b"\x00\xff").decode()
    assert canonical_key(f'["{raw}"]', [("b", "varbinary(4)")]) == "4:00ff"
    # the same text row_clock_key gives for the wire pk of that row
    wire = {"k": "a,b", "n": 7}
    assert canonical_key("k=a,b,n=7", COMPOSITE) == row_clock_key(wire, dict(COMPOSITE))


@pytest.mark.parametrize(("text", "problem"), [
    ("[1, 2]", "2 values for the 1 key columns"),
    ("[1", "not valid JSON"),
    ("other=1", "'other' is not a key column"),
    ("id=1,id=2", "'id' given twice"),
    ("idx", "expected col=value"),
    ("id=abc", "'abc' is not an integer"),
    ("[1.5]", "1.5 is not an integer"),
    ("[null]", "never null"),
])
def test_bad_keys_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(FilterError, match=problem.replace("[", r"\[")):
        canonical_key(text, INT_KEY)


def test_missing_key_column_and_unsupported_key_type() -> None:
    with pytest.raises(FilterError, match=r"missing key columns \['n'\]"):
        canonical_key("k=a", COMPOSITE)
    with pytest.raises(FilterError, match="unsupported primary-key type"):
        canonical_key("[1]", [("f", "float")])


def _version(values, origin="eu", counters=None) -> VersionImage:
    return VersionImage(values=values, origin=origin, counters=counters or {origin: 1}, hlc_us=1, hash="h")


def _record(local, remote) -> ConflictRecord:
    return ConflictRecord(id=7, logged_at_us=1, region="eu", db="d", table="t", pk={"id": 1}, strategy="lww",
                          winner="remote", local=local, remote=remote, result=remote)


def test_override_takes_the_chosen_side_or_operator_json() -> None:
    record = _record(_version({"id": 1, "v": "L"}), _version(None, "us"))
    assert chosen_values(record, "local") == {"id": 1, "v": "L"}
    assert chosen_values(record, "remote") is None                       # a deleted version: delete
    assert chosen_values(record, "json", {"v": "J"}) == {"id": 1, "v": "J"}   # the key filled in
    assert chosen_values(record, "json", {"id": 1, "v": "J"}) == {"id": 1, "v": "J"}
    assert chosen_values(record, "json", None) is None
    with pytest.raises(OverrideError, match="changes key column 'id'"):
        chosen_values(record, "json", {"id": 2, "v": "J"})
    with pytest.raises(OverrideError, match="JSON object"):
        chosen_values(record, "json", [1, 2])
    with pytest.raises(OverrideError, match="no local version"):
        chosen_values(_record(None, _version({"id": 1}, "us")), "local")
