import pytest

from consumers.db.clock_skew import ClockSkewError, check_skew
from schemas.events import ChangeEvent

NOW = 1_800_000_000_000_000


def event(hlc_us: int | None) -> ChangeEvent:
    clock = None if hlc_us is None else {"counters": {"eu": 1}, "hlc_us": hlc_us}
    return ChangeEvent(region="eu", origin="eu", server_id=1, gtid="0-1-5", binlog_file="b.000001", binlog_pos=4,
                       txn_id="x", ts_us=0, db="d", table="t", txn_index=0, txn_last=True, op="insert",
                       pk={"id": 1}, before=None, after={"id": 1}, types={"id": "int"}, vclock=clock)


def test_versions_within_the_bound_pass() -> None:
    check_skew(event(NOW + 59_000_000), 60_000, NOW)
    check_skew(event(NOW - 10**12), 60_000, NOW)           # old versions (replays) are fine
    check_skew(event(None), 0, NOW)


def test_a_version_beyond_the_bound_names_region_and_setting() -> None:
    with pytest.raises(ClockSkewError, match=r"region eu .*max_clock_skew_ms = 60000"):
        check_skew(event(NOW + 61_000_000), 60_000, NOW)
