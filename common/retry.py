"""Retrying transient errors with exponential backoff and full jitter.

When a retry succeeds after a lost connection, one INFO line says `reconnected to <server>`, so an
operator reading the warnings of an outage also sees where it ended."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import pymysql

T = TypeVar("T")
log = logging.getLogger(__name__)

# Lost connection, server gone, can't connect, deadlock, lock wait timeout, server shutting down.
TRANSIENT_MYSQL = {2003, 2006, 2013, 2055, 1213, 1205, 1053, 1927}
# The subset that means the connection itself was lost (a deadlock is retried on the same one).
LOST_MYSQL = {2003, 2006, 2013, 2055, 1053, 1927}


def is_transient(err: BaseException) -> bool:
    if isinstance(err, (pymysql.err.OperationalError, pymysql.err.InternalError, pymysql.err.InterfaceError)):
        code = err.args[0] if err.args else None
        return code in TRANSIENT_MYSQL or isinstance(err, pymysql.err.InterfaceError)
    return isinstance(err, (ConnectionError, TimeoutError))


def mysql_connection_lost(err: BaseException) -> bool:
    if isinstance(err, pymysql.err.InterfaceError):
        return True
    return isinstance(err, (pymysql.err.OperationalError, pymysql.err.InternalError)) and bool(err.args) \
        and err.args[0] in LOST_MYSQL


class RetryPolicy:
    def __init__(self, attempts: int = 8, base_ms: int = 50, max_ms: int = 5000,
                 on_retry: Callable[[BaseException, int, float], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None, *,
                 server: str = "the server",
                 connection_lost: Callable[[BaseException], bool] = mysql_connection_lost) -> None:
        """`server` names it in the `reconnected` line; `connection_lost` tells a lost connection from other
        transient errors (a deadlock is not a reconnection)."""
        self.attempts, self.base_ms, self.max_ms = attempts, base_ms, max_ms
        self.on_retry = on_retry
        self.server = server
        self.connection_lost = connection_lost
        self._sleep = sleep
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)] seconds."""
        cap = min(self.max_ms, self.base_ms * (2 ** attempt))
        return self._rng.uniform(0, cap) / 1000

    def run(self, fn: Callable[[], T], *, transient: Callable[[BaseException], bool] = is_transient) -> T:
        """Call `fn` until it succeeds, retrying transient errors; the last error propagates."""
        lost = False
        for attempt in range(self.attempts):
            try:
                result = fn()
            except Exception as err:
                if not transient(err) or attempt == self.attempts - 1:
                    raise
                lost = lost or self.connection_lost(err)
                delay = self.delay(attempt)
                if self.on_retry is not None:
                    self.on_retry(err, attempt + 1, delay)
                log.warning("transient error (%s); retry %d in %.3fs", err, attempt + 1, delay)
                self._sleep(delay)
                continue
            if lost:
                log.info("reconnected to %s after %d retr%s", self.server, attempt, "y" if attempt == 1 else "ies")
            return result
        raise AssertionError("unreachable")
