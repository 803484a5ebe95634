"""RetryPolicy says `reconnected to <server>` once after a lost connection comes back, never after
other transient errors (common/retry.py)."""

from __future__ import annotations

import logging

import pymysql
import redis

from common.retry import RetryPolicy
from consumers.cache.sink import _transient as redis_transient


def _failing(*errors: BaseException):
    pending = list(errors)

    def call() -> str:
        if pending:
            raise pending.pop(0)
        return "done"
    return call


def _reconnected(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("reconnected")]


def test_lost_mysql_connection_logs_reconnected_once(caplog) -> None:
    caplog.set_level(logging.INFO, logger="common.retry")
    policy = RetryPolicy(sleep=lambda s: None, server="MySQL 127.0.0.1:3306")
    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    assert policy.run(_failing(lost, pymysql.err.OperationalError(2003, "Can't connect"))) == "done"
    assert _reconnected(caplog) == ["reconnected to MySQL 127.0.0.1:3306 after 2 retries"]


def test_deadlock_retry_is_not_a_reconnection(caplog) -> None:
    caplog.set_level(logging.INFO, logger="common.retry")
    policy = RetryPolicy(sleep=lambda s: None, server="MySQL x:1")
    assert policy.run(_failing(pymysql.err.OperationalError(1213, "Deadlock found"))) == "done"
    assert policy.run(_failing()) == "done"
    assert _reconnected(caplog) == []


def test_redis_connection_error(caplog) -> None:
    caplog.set_level(logging.INFO, logger="common.retry")
    policy = RetryPolicy(sleep=lambda s: None, server="Redis 127.0.0.1:6379", connection_lost=redis_transient)
    assert policy.run(_failing(redis.ConnectionError("Connection refused")), transient=redis_transient) == "done"
    assert _reconnected(caplog) == ["reconnected to Redis 127.0.0.1:6379 after 1 retry"]
