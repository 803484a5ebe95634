"""Publishing a batch and waiting until the broker has acknowledged every message of it.

The sinks publish dead letters, forwarded versions and conflict records this way: each call either
returns with every message acknowledged (`acks=all`, idempotent producer) or raises.

A broker that does not answer in time (stalled, or cut off by a network partition) raises
`BrokerUnreachable`, a `TimeoutError`: transient for the sinks' retry (common/retry.py), which
rolls the batch back and runs it again, instead of exiting at the first outage longer than the
timeout (a star hub's database sink did, in a region cut of 90 s: docs/reliability.md). The copies
that were not acknowledged stay queued and may still be delivered: a retried batch can publish a
message twice, which its readers skip (an equal version; a dead letter or conflict record twice).
Any other delivery error (a message too large, an authorization error) stays a RuntimeError.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from confluent_kafka import KafkaError, Producer


class Outgoing(NamedTuple):
    topic: str
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]] | None = None
    partition: int | None = None


class BrokerUnreachable(TimeoutError):
    """Messages not acknowledged in time, or timed out in librdkafka: the broker is away, not refusing."""


def _timed_out(err: KafkaError) -> bool:
    return err.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT,
                          KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)


class AckedProducer:
    def __init__(self, producer_settings: dict[str, object], what: str) -> None:
        self._producer = Producer({**producer_settings, "enable.idempotence": True, "acks": "all"})
        self._what = what

    def send(self, messages: Iterable[Outgoing], timeout: float = 30.0) -> None:
        """Produce and flush; raise naming `what` if any message is not acknowledged: BrokerUnreachable
        when the broker did not answer within `timeout`, RuntimeError when it refused a message."""
        failures: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, msg: object) -> None:
            if err is not None:
                failures.append(err)

        for m in messages:
            extra = {} if m.partition is None else {"partition": m.partition}
            self._producer.produce(m.topic, m.value, m.key, headers=m.headers, on_delivery=on_delivery, **extra)
        remaining = self._producer.flush(timeout)
        if failures and not all(_timed_out(err) for err in failures):
            raise RuntimeError(f"{self._what}: {remaining} unacknowledged, errors {[str(e) for e in failures[:3]]}")
        if remaining or failures:
            raise BrokerUnreachable(f"{self._what}: {remaining + len(failures)} messages not acknowledged by the broker "
                                    f"within {timeout:.0f} s (stalled or unreachable)")
