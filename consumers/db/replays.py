"""When a consumed record is provably a replay: the database sink's replay rule (docs/apply.md).

A record is skipped as already applied only with a proof, from the partition's `apply_marker` row
(`common.metadata_tables.Marker`, read under its row lock):

1. **By source history.** The record and the marker's last applied record come from one binlog
   history: the same producer epoch (a fresh checkpoint starts a new one: after RESET MASTER, a
   failover, `--resnapshot`), the record read from its own region's binlog, and the same GTID
   domain and server id (MariaDB `d-s-n`; MySQL `uuid:n`). Within one history GTIDs grow with
   binlog order, so (sequence, index) at or below the marker's was applied, and above it was not,
   whatever the offsets say.
2. **By offset**, when (1) cannot compare: an offset at or below the marker's in the same topic
   incarnation (the Kafka topic id stored with the marker). A recreated topic, or a restarted
   in-memory broker, has another id: its offsets say nothing.

Anything else is applied (at least once: a clocked change that was applied is then skipped by the
vector-clock decision, consumers/db/local_versions.py). The one case that can be neither proven nor
safely applied stops the sink: an offset at or below the marker's, with no comparable history and
no topic id to compare (`SourceHistoryError`, whose message names the fix). A marker without a topic
id, under a topic that has one now, is such a case: it does not say which incarnation its offset
belongs to (the topic may have been recreated since), so it proves nothing by offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from common.metadata_tables import Marker
from schemas.events import ChangeEvent


class SourceHistoryError(RuntimeError):
    """A record the sink can neither prove applied nor safely apply: an operator must re-base."""


class Reset(StrEnum):
    """A change of the source's history or of the topic, seen while deciding (logged, counted)."""

    EPOCH = "epoch_changed"                  # the producer started a fresh checkpoint
    SERVER = "gtid_server_changed"           # same domain, another server id (a failover)
    OFFSETS = "offsets_restarted"            # offsets at or below the marker, history newer: topic restarted
    TOPIC = "topic_recreated"                # another topic id: the marker's offsets are another topic's


@dataclass(frozen=True, slots=True)
class Verdict:
    applied: bool                 # True: provably applied before, skip it
    reset: Reset | None = None    # a history or topic change this record shows


def gtid_position(gtid: str | None, index: int | None) -> tuple[str, int, int] | None:
    """(history, sequence, index) of a GTID: `domain-server` for MariaDB `d-s-n`, the uuid for MySQL
    `uuid:n`. Two positions compare only when their histories are equal."""
    if not gtid or index is None:
        return None
    if ":" in gtid:                                   # MySQL uuid:n
        uuid, _, seq = gtid.rpartition(":")
        return uuid, int(seq), index
    domain, _, rest = gtid.partition("-")             # MariaDB d-s-n
    server, _, seq = rest.rpartition("-")
    return f"{domain}-{server}", int(seq), index


def _domain(history: str) -> str:
    return history.split("-", 1)[0]


def verdict(event: ChangeEvent, offset: int, marker: Marker | None, *, own_region: bool,
            topic_id: str | None) -> Verdict:
    """Whether `event` at `offset` was provably applied, given its partition's marker.

    `own_region`: the event was read from its region's own binlog (False for a star hub's forwarded
    versions, which interleave other regions' histories). `topic_id`: the topic's current Kafka id,
    None when unknown. Raises `SourceHistoryError` when neither rule can decide an offset at or
    below the marker's (see the module docstring)."""
    if marker is None:
        return Verdict(False)
    mine = gtid_position(event.gtid, event.txn_index) if own_region else None
    last = gtid_position(marker.gtid, marker.txn_index)
    reset: Reset | None = None
    comparable = False
    if mine is not None and last is not None:
        if event.epoch is None or event.epoch != marker.epoch:
            reset = Reset.EPOCH if event.epoch is not None and marker.epoch is not None else None
        elif mine[0] == last[0]:
            comparable = True
        elif _domain(mine[0]) == _domain(last[0]):
            reset = Reset.SERVER if mine[1:] <= last[1:] else None   # a failover that reuses sequence numbers
    if comparable:
        if mine[1:] <= last[1:]:   # type: ignore[index]
            return Verdict(True)   # a consumer replay, or a producer re-delivery at a new offset
        return Verdict(False, Reset.OFFSETS if offset <= marker.offset else None)
    if offset > marker.offset:
        return Verdict(False, reset)
    if topic_id is not None and marker.topic_id is not None:
        return Verdict(True) if topic_id == marker.topic_id else Verdict(False, Reset.TOPIC)
    if topic_id is not None:
        # A marker without an id (written before topic ids, or by a version that stored None when the
        # id lookup went unanswered) does not say which incarnation its offset belongs to: the topic may
        # have been recreated since, and skipping would lose the new incarnation's records.
        raise SourceHistoryError(
            f"offset {offset} is at or below the applied offset {marker.offset}, but the marker has no topic id "
            f"(written before topic ids, or by an older cdcsync when the id lookup went unanswered), so nothing "
            f"proves its offset belongs to this incarnation of the topic (id {topic_id} now), and the source "
            f"history cannot compare (epoch {event.epoch or '-'} GTID {event.gtid or '-'}, marker: epoch "
            f"{marker.epoch or '-'} GTID {marker.gtid or '-'})")
    raise SourceHistoryError(
        f"offset {offset} is at or below the applied offset {marker.offset}, but neither the source history "
        f"(epoch {event.epoch or '-'} GTID {event.gtid or '-'}, marker: epoch {marker.epoch or '-'} GTID "
        f"{marker.gtid or '-'}) nor the topic id (now {topic_id or 'unknown'}, marker: {marker.topic_id or 'none'}) "
        f"proves it applied or new")
