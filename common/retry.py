"""Retrying transient errors with exponential backoff and full jitter.

When a retry succeeds after a lost connection, one INFO line says `reconnected to <server>`, so an
operator reading the warnings of an outage also sees where it ended.

A broker outage (`BrokerUnreachable`: a stalled or cut-off Kafka) is not counted in `attempts`: with
`outage_s` it is retried for that long from its first error, one warning per retry saying how long
so far, and `the broker answered again after ...` at the end. Eight attempts are ~40 s of 5 s
lookups; a broker stalled for a minute made the database sink exit (seed 5001, docs/reliability.md)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import pymysql

from common.acked_producer import BrokerUnreachable

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


def broker_outage(err: BaseException) -> bool:
    """The broker did not answer (stalled, cut off): wait for it, within `RetryPolicy.outage_s`."""
    return isinstance(err, BrokerUnreachable)


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
                 connection_lost: Callable[[BaseException], bool] = mysql_connection_lost,
                 outage_s: float = 0.0, outage: Callable[[BaseException], bool] = broker_outage,
                 on_outage: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`server` names it in the `reconnected` line; `connection_lost` tells a lost connection from other
        transient errors (a deadlock is not a reconnection). `outage_s` > 0: a transient error that is
        an `outage` is retried for that many seconds from the outage's first error, beside `attempts`;
        `on_outage(seconds)` is told how long the current outage has lasted (0 once it is over)."""
        self.attempts, self.base_ms, self.max_ms = attempts, base_ms, max_ms
        self.on_retry = on_retry
        self.server = server
        self.connection_lost = connection_lost
        self.outage_s, self.outage, self.on_outage = outage_s, outage, on_outage
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)] seconds."""
        cap = min(self.max_ms, self.base_ms * (2 ** min(attempt, 30)))
        return self._rng.uniform(0, cap) / 1000

    def run(self, fn: Callable[[], T], *, transient: Callable[[BaseException], bool] = is_transient) -> T:
        """Call `fn` until it succeeds, retrying transient errors; the last error propagates."""
        lost = False
        failures = 0                     # transient errors that count against `attempts`
        retry = 0
        outage_since: float | None = None
        while True:
            try:
                result = fn()
            except Exception as err:
                if not transient(err):
                    raise
                waited = self._outage(err, outage_since)
                if waited is None:
                    failures += 1
                    if failures >= self.attempts:
                        raise
                elif waited >= self.outage_s:
                    log.error("the broker has not answered for %.0f s (%s); giving up", waited, err)
                    raise
                elif outage_since is None:
                    outage_since = self._clock()
                lost = lost or self.connection_lost(err)
                delay = self.delay(retry)
                retry += 1
                if self.on_retry is not None:
                    self.on_retry(err, retry, delay)
                if waited is not None:
                    if self.on_outage is not None:
                        self.on_outage(waited)
                    log.warning("broker unreachable for %.0f s (%s); retry %d in %.3fs, for %.0f s more at most",
                                waited, err, retry, delay, self.outage_s - waited)
                else:
                    log.warning("transient error (%s); retry %d in %.3fs", err, retry, delay)
                self._sleep(delay)
                continue
            if outage_since is not None:
                if self.on_outage is not None:
                    self.on_outage(0.0)
                log.info("the broker answered again after %.1f s (%d retr%s)", self._clock() - outage_since,
                         retry, "y" if retry == 1 else "ies")
            if lost:
                log.info("reconnected to %s after %d retr%s", self.server, retry, "y" if retry == 1 else "ies")
            return result

    def _outage(self, err: BaseException, since: float | None) -> float | None:
        """Seconds the current broker outage has lasted (0 at its first error), or None: not an outage,
        or no outage budget (the error then counts against `attempts`)."""
        if self.outage_s <= 0 or not self.outage(err):
            return None
        return 0.0 if since is None else self._clock() - since

