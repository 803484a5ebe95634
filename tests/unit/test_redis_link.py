"""common/redis_link.py: redis-py's own retries of a lost connection now say so, once per outage."""

from __future__ import annotations

import copy
import logging

import pytest
import redis

from common.redis_link import ReportingRetry


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "common.redis_link"]


def test_an_outage_gets_one_lost_and_one_reconnected_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "common.redis_link")
    retry = ReportingRetry("Redis h:1")
    connection = copy.deepcopy(retry)            # what redis-py does per connection: the outage is shared
    assert connection.outage is retry.outage
    calls = iter([redis.ConnectionError("refused"), redis.ConnectionError("refused"), "OK"])

    def do() -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert connection.call_with_retry(do, lambda error: None) == "OK"
    assert retry.call_with_retry(lambda: "OK", lambda error: None) == "OK"
    got = lines(caplog)
    assert got[0] == "lost connection to Redis h:1 (refused); retrying"
    assert got[1].startswith("reconnected to Redis h:1 after ") and len(got) == 2


def test_no_line_while_the_server_answers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "common.redis_link")
    retry = ReportingRetry("Redis h:1")
    for _ in range(3):
        retry.call_with_retry(lambda: 1, lambda error: None)
    assert lines(caplog) == []
