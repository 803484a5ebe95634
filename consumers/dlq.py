"""The dead-letter topic `<prefix>.<region>.dlq`: events a sink could not apply, with why and where from.

A dead letter is published, and acknowledged by the broker, BEFORE the sink commits the batch it
came from, so a crash can duplicate a dead letter but never lose the event. With a `limit`
(consumers/dlq_limit.py), every publish is first admitted by it: a poison flood raises
`DeadLetterFlood` before anything is published or committed.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import orjson
from common.acked_producer import AckedProducer, Outgoing
from consumers.dlq_limit import DeadLetterLimit
from consumers.records import SourceRecord


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    error: str
    kind: str          # undecodable | unsupported_version | missing_table | missing_column | constraint | ...


def to_json(letter: DeadLetter, *, region: str, sink: str) -> dict[str, Any]:
    r = letter.record
    return {
        "region": region, "sink": sink, "kind": letter.kind, "error": letter.error,
        "source_topic": r.topic, "source_partition": r.partition, "source_offset": r.offset,
        "key": base64.b64encode(r.key).decode() if r.key is not None else None,
        "payload": base64.b64encode(r.payload).decode(),
        "dead_at_us": time.time_ns() // 1000,
    }


class DeadLetterPublisher:
    def __init__(self, producer_settings: dict[str, object], topic: str, *, region: str, sink: str) -> None:
        self._producer = AckedProducer(producer_settings, f"dead-letter topic {topic}")
        self.topic, self.region, self.sink = topic, region, sink
        self.limit: DeadLetterLimit | None = None   # set by the runner that owns this publisher

    def publish(self, letters: list[DeadLetter], timeout: float = 30.0) -> None:
        """Publish and wait for the broker's acknowledgement; raise if any is not acknowledged, or
        `DeadLetterFlood` (publishing nothing) if the limit refuses them."""
        if not letters:
            return
        if self.limit is not None:
            self.limit.admit((letter.record, f"{letter.kind}: {letter.error}") for letter in letters)
        self._producer.send((Outgoing(self.topic, orjson.dumps(to_json(letter, region=self.region, sink=self.sink)),
                                      letter.record.key) for letter in letters), timeout)
