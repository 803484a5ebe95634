"""One `lost connection to Redis ...` line when a Redis client loses its server, one `reconnected to
Redis ... after N s` when a command goes through again.

redis-py (8.x) retries a lost connection by itself (10 times, exponential backoff with jitter, up to 1 s), so a
Redis restart shorter than that never reaches the cache sink's own retry (consumers/retry.py) and
was silent. `ReportingRetry` is redis-py's default retry with the two lines added; every connection
of a client shares one outage state (redis-py deep-copies the retry into each connection).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

T = TypeVar("T")
log = logging.getLogger(__name__)


class Outage:
    def __init__(self, server: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.server = server
        self._clock = clock
        self.since: float | None = None

    def lost(self, error: Exception) -> None:
        if self.since is None:
            self.since = self._clock()
            log.warning("lost connection to %s (%s); retrying", self.server, error)

    def ok(self) -> None:
        if self.since is not None:
            log.info("reconnected to %s after %.1f s", self.server, self._clock() - self.since)
            self.since = None


class ReportingRetry(Retry):
    def __init__(self, server: str, *, retries: int = 10, outage: Outage | None = None) -> None:
        super().__init__(ExponentialWithJitterBackoff(base=0.01, cap=1), retries)   # redis-py 8's default
        self.outage = outage or Outage(server)

    def __deepcopy__(self, memo: dict[int, Any]) -> "ReportingRetry":
        return ReportingRetry(self.outage.server, retries=self._retries, outage=self.outage)

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any],
                        is_retryable: Callable[[Exception], bool] | None = None,
                        with_failure_count: bool = False) -> T:
        def noted(error: Exception, *count: int) -> Any:
            self.outage.lost(error)
            return fail(error, *count)

        result = super().call_with_retry(do, noted, is_retryable, with_failure_count)
        self.outage.ok()
        return result
