"""Publishing a batch and waiting until the broker has acknowledged every message of it.

The sinks publish dead letters, forwarded versions and conflict records this way: each call either
returns with every message acknowledged (`acks=all`, idempotent producer) or raises.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from confluent_kafka import Producer


class Outgoing(NamedTuple):
    topic: str
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]] | None = None
    partition: int | None = None


class AckedProducer:
    def __init__(self, producer_settings: dict[str, object], what: str) -> None:
        self._producer = Producer({**producer_settings, "enable.idempotence": True, "acks": "all"})
        self._what = what

    def send(self, messages: Iterable[Outgoing], timeout: float = 30.0) -> None:
        """Produce and flush; raise RuntimeError naming `what` if any message is not acknowledged."""
        failures: list[str] = []

        def on_delivery(err: object, msg: object) -> None:
            if err is not None:
                failures.append(str(err))

        for m in messages:
            extra = {} if m.partition is None else {"partition": m.partition}
            self._producer.produce(m.topic, m.value, m.key, headers=m.headers, on_delivery=on_delivery, **extra)
        remaining = self._producer.flush(timeout)
        if remaining or failures:
            raise RuntimeError(f"{self._what}: {remaining} unacknowledged, errors {failures[:3]}")
