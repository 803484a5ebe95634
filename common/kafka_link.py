"""One `kafka: lost broker ...` line when a client loses its broker, one `kafka: reconnected after N s`
when it is back.

librdkafka reconnects by itself and says little: a broker stopped (SIGSTOP, a stuck disk, a network
partition) raises no error at all while the connection stays open, only librdkafka's own
`REQTMOUT` / `FAIL` log lines. So two signals are watched, both served on the client's poll thread:

- `error_cb`: `_TRANSPORT` (connection lost) and `_ALL_BROKERS_DOWN` mark the broker lost at once;
  every error is logged as a warning, as before;
- `stats_cb` (every `STATS_INTERVAL_MS`): a broker that has requests waiting but received nothing
  for `stall_s`, or that has been trying to connect for `stall_s`, is lost; once lost, a broker in
  state UP that received something (or connected) after the loss was noticed means reconnected.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

log = logging.getLogger(__name__)

STATS_INTERVAL_MS = 1000
STALL_S = 5.0
LOST_CODES = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}
# Between a connection's loss and its use: states a healthy client passes through in milliseconds.
# (Not DOWN or TRY_CONNECT: an idle connection may rest there; a refused one raises _TRANSPORT.)
CONNECTING = {"CONNECT", "SSL_HANDSHAKE", "AUTH_LEGACY", "AUTH_HANDSHAKE", "AUTH_REQ", "APIVERSION_QUERY"}


class KafkaLinkWatch:
    def __init__(self, client: str, *, stall_s: float = STALL_S, clock: Callable[[], float] = time.monotonic,
                 on_error: Callable[[str], None] | None = None) -> None:
        """`client` names it in the lines (`producer`, `consumer`); `on_error` replaces the warning
        logged for every error."""
        self.client = client
        self.stall_s = stall_s
        self._clock = clock
        self._on_error = on_error or (lambda text: log.warning("kafka %s: %s", client, text))
        self.lost_since: float | None = None      # when the outage began (clock), None while connected
        self._noticed = 0.0                       # when it was noticed: only a receive after it counts

    def settings(self) -> dict[str, Any]:
        """librdkafka settings that feed this watch."""
        return {"error_cb": self.on_error, "stats_cb": self.on_stats, "statistics.interval.ms": STATS_INTERVAL_MS}

    def on_error(self, err: KafkaError) -> None:
        self._on_error(str(err))
        if err.code() in LOST_CODES:
            self._lost(self._clock(), f"{err.str()}")

    def on_stats(self, text: str) -> None:
        try:
            brokers = [b for b in json.loads(text).get("brokers", {}).values() if b.get("source") != "internal"]
        except (ValueError, AttributeError):
            return
        now = self._clock()
        if self.lost_since is None:
            for broker in brokers:
                silent_s = _silent_s(broker)
                if silent_s is not None and silent_s >= self.stall_s:
                    self._lost(now - silent_s, f"{broker.get('name')}: no response for {silent_s:.0f} s, "
                                               f"{broker.get('waitresp_cnt', 0)} request(s) waiting")
                    return
            return
        since_loss = now - self.lost_since
        for broker in brokers:
            if broker.get("state") != "UP":
                continue
            rx_idle = broker.get("rxidle", -1) / 1e6
            if 0 <= rx_idle < now - self._noticed or broker.get("stateage", 0) / 1e6 < now - self._noticed:
                log.info("kafka %s: reconnected after %.1f s (%s)", self.client, since_loss, broker.get("name"))
                self.lost_since = None
                return

    def _lost(self, since: float, why: str) -> None:
        if self.lost_since is None:
            self.lost_since = since
            self._noticed = self._clock()
            log.warning("kafka %s: lost broker (%s); librdkafka reconnects by itself", self.client, why)


def _silent_s(broker: dict[str, Any]) -> float | None:
    """Seconds a broker has left the client without an answer: requests waiting and nothing received,
    or stuck connecting; None when it answers."""
    state = broker.get("state")
    if state in CONNECTING:
        return broker.get("stateage", 0) / 1e6
    rx_idle = broker.get("rxidle", -1)
    # Not the group coordinator's connection: a JoinGroup waits there, by design, for the other members.
    if state == "UP" and broker.get("source") != "logical" and broker.get("waitresp_cnt", 0) > 0 and rx_idle >= 0:
        return rx_idle / 1e6
    return None
