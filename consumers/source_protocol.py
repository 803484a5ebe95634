"""The `Source` protocol: what the sink runner needs from the stream it applies, written once.

Two implementations keep it: `consumers.source.KafkaSource` (a member of a Kafka consumer group)
and `consumers.memory_source.InMemorySource` (partitions as lists, for fast tests of the runner's
rules). `tests/support/runner_rules.py` is one behavioural suite run against both.

The contract:

- **Who commits, and when.** Only the runner commits, explicitly, through `commit`, and only
  records it has applied (or dead-lettered, with the broker's acknowledgement). A source never
  commits on its own: no auto-commit, no commit on `close`. A restarted member of the group
  resumes at the offset after the last committed record of each partition; anything consumed but
  not committed is delivered again (at least once).
- **Threading.** A source is owned by one thread: the one that calls `consume`. `commit`, `lag`
  and `close` are called from that thread too, and the rebalance callback runs on it, inside
  `consume` (or inside `close`). Nothing in it is safe to call from another thread; to stop a
  runner from another thread, ask the runner (`SinkRunner.request_stop`), not the source.
- **Rebalances.** The source is built with an `on_revoke(partitions)` callback. Before partitions
  leave this member (another member joins, the group shrinks, or `close` leaves the group), the
  source calls it on the consume thread, from within `consume` or `close`, and they move only
  once it has returned: the runner applies and commits its in-flight batch there. Records of a
  revoked partition are not delivered afterwards. Partitions taken without a revoke (*lost*: the
  member was cut off for longer than the session timeout) get no callback; their next owner may
  replay what this member applied but did not commit, which the sinks make harmless.
- **Blocking.** `consume` blocks up to `timeout_s` and returns at most `max_messages` records,
  in offset order per partition (an empty list when none arrived). `commit` blocks until the
  commit is acknowledged. `close` blocks until the member has left the group.
- **What may be raised.** `consume` raises on a fatal source error (the runner stops; transient
  errors are logged and retried inside), and re-raises what the `on_revoke` callback raised (the
  partitions are revoked all the same). A commit for partitions that have moved (a rebalance
  raced it) may be accepted (the Tansu broker accepts it) or refused; a refused one is logged, not
  raised, and the next owner replays from the last commit that held. The runner therefore commits
  a partition's batch inside the revoke callback, never after it. `lag` may raise anything; it is informational and the runner ignores its failures.
- **Holding a partition.** `hold({partition: offset})` stops delivering that partition's records
  and moves its position back to `offset`; `release(partitions)` delivers again from there. The
  runner holds a partition whose record the sink cannot apply yet (consumers/partition_holds.py),
  having committed nothing at or after that offset. A hold does not survive a rebalance that takes
  the partition away: its next owner starts at the committed offset, as always.
- **Poison.** Every message is delivered as a `SourceRecord`, decoded or with the reason it is
  poison (`SourceRecord.from_message`); a source never drops a message. A source may leave a
  message undecoded when its headers prove the sink discards it (`SourceRecord.discarded`, the
  Kafka source's `discard`: a database sink's echoes); the runner counts it and commits it with
  its batch.
"""

from __future__ import annotations

from typing import Protocol

from consumers.records import SourceRecord, TopicPartition

__all__ = ["Source"]


class Source(Protocol):
    assigned: set[TopicPartition]   # the partitions this member holds now (the runner commits only these)

    def consume(self, max_messages: int, timeout_s: float) -> list[SourceRecord]:
        """Up to `max_messages` records, waiting up to `timeout_s`; runs the revoke callback first
        when a rebalance takes partitions away."""
        ...

    def commit(self, records: list[SourceRecord]) -> None:
        """Commit, synchronously, the offset after the last of `records` in each partition."""
        ...

    def lag(self) -> dict[TopicPartition, int]:
        """End of each assigned partition minus its committed offset."""
        ...

    def hold(self, offsets: dict[TopicPartition, int]) -> None:
        """Pause each assigned partition and move its position to the offset given."""
        ...

    def release(self, partitions: list[TopicPartition]) -> None:
        """Resume the held partitions (those still assigned)."""
        ...

    def close(self) -> None:
        """Leave the group (revoking, through the callback, what this member holds). Commits nothing."""
        ...
