"""An in-memory `Source` (consumers/source_protocol.py): partitions as lists, committed offsets and
a consumer group, in one process. It keeps the contract KafkaSource keeps, so the runner's rules
(apply then commit, flush on revoke, dead letters before commit) run in milliseconds, and the same
behavioural suite runs against both (tests/support/runner_rules.py).

`MemoryBroker` holds the topics, each group's committed offsets and its members; it outlives the
sources, so a source that crashes (`crash`) and a new one built on the same broker and group
resumes at the committed offsets, as a restarted process does. Rebalances are scripted by group
membership, at the point a test chooses: a member joins (`subscribe`), leaves (`close`) or is cut
off (`crash`). The broker then deals the subscribed partitions round-robin over the members in
join order; a member gives up partitions inside its next `consume` (the revoke callback runs
there, on its consume thread, and they move once it returns), and a partition reaches its new
owner only after that, at the group's committed offset (or 0: `auto.offset.reset = earliest`).

Differences from Kafka, on purpose: a crashed member's partitions move at once (no session timeout
to wait), and a commit for a partition this member does not hold is refused (logged and recorded
in `refused_commits`), where a Kafka broker may accept it.

Thread-safe between members (one lock and condition for the broker); each source is still owned
by the one thread that consumes from it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from consumers.records import SourceRecord, TopicPartition

__all__ = ["InMemorySource", "MemoryBroker", "SourceClosed"]

log = logging.getLogger(__name__)


class SourceClosed(RuntimeError):
    """The source was closed or crashed; a new one must be built to consume again."""


@dataclass(slots=True)
class _Message:
    key: bytes | None
    payload: bytes | None


@dataclass(slots=True)
class _Group:
    members: list["InMemorySource"] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    owners: dict[TopicPartition, "InMemorySource"] = field(default_factory=dict)


class MemoryBroker:
    """Topics and consumer groups in memory. Safe to use from several threads."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._partitions: dict[TopicPartition, list[_Message]] = {}
        self._groups: dict[str, _Group] = {}

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        """Create `topic` with `partitions` empty partitions; refuse a topic that exists."""
        with self._cond:
            if any(tp.topic == topic for tp in self._partitions):
                raise ValueError(f"topic {topic} exists already; pick a new name")
            for p in range(partitions):
                self._partitions[TopicPartition(topic, p)] = []
            for group in self._groups:
                self._rebalance(group)

    def produce(self, topic: str, partition: int, payload: bytes | None, key: bytes | None = None) -> int:
        """Append a message (`payload` None: a tombstone); return its offset."""
        with self._cond:
            tp = TopicPartition(topic, partition)
            if tp not in self._partitions:
                raise ValueError(f"{topic}[{partition}] does not exist; create the topic first (create_topic)")
            self._partitions[tp].append(_Message(key, payload))
            self._cond.notify_all()
            return len(self._partitions[tp]) - 1

    def committed(self, group: str, tp: TopicPartition) -> int | None:
        """The group's committed offset for `tp` (the next offset to read), or None."""
        with self._cond:
            return self._group(group).committed.get(tp)

    def end_offset(self, tp: TopicPartition) -> int:
        with self._cond:
            return len(self._partitions[tp])

    # Used by InMemorySource, under the lock.

    def _group(self, group: str) -> _Group:
        return self._groups.setdefault(group, _Group())

    def _matching(self, patterns: list[str]) -> list[TopicPartition]:
        """Partitions of the topics that `patterns` name: a leading `^` makes a regex, as in librdkafka."""
        def matches(topic: str) -> bool:
            return any(re.fullmatch(p[1:], topic) if p.startswith("^") else p == topic for p in patterns)
        return sorted((tp for tp in self._partitions if matches(tp.topic)), key=lambda tp: (tp.topic, tp.partition))

    def _rebalance(self, group: str) -> None:
        """Deal the members' partitions round-robin; each member moves towards its share in `consume`."""
        g = self._group(group)
        for member in g.members:
            member._target = set()
        for member in g.members:
            for i, tp in enumerate(self._matching(member._patterns)):
                if g.members[i % len(g.members)] is member:
                    member._target.add(tp)
        self._cond.notify_all()


class InMemorySource:
    """One member of a consumer group on a `MemoryBroker`; see the module docstring and
    consumers/source_protocol.py for the contract. `assigned` holds the partitions it owns now."""

    def __init__(self, broker: MemoryBroker, group_id: str, *,
                 on_revoke: Callable[[list[TopicPartition]], None]) -> None:
        self._broker = broker
        self._group_id = group_id
        self._on_revoke = on_revoke
        self._patterns: list[str] = []
        self._target: set[TopicPartition] = set()
        self._position: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._gone: str | None = None           # "closed" or "crashed"
        self.assigned: set[TopicPartition] = set()
        self.refused_commits: list[tuple[TopicPartition, int]] = []

    def subscribe(self, patterns: list[str]) -> None:
        """Join the group for the topics `patterns` name (exact names, or regexes starting with `^`)."""
        with self._broker._cond:
            self._check_open()
            self._patterns = list(patterns)
            group = self._broker._group(self._group_id)
            if self not in group.members:
                group.members.append(self)
            self._broker._rebalance(self._group_id)

    def consume(self, max_messages: int, timeout_s: float) -> list[SourceRecord]:
        deadline = time.monotonic() + timeout_s
        while True:
            self._give_up_revoked()
            with self._broker._cond:
                self._check_open()
                if self.assigned - self._target:
                    continue                      # rebalanced again while the callback ran
                self._take_assigned()
                records = self._fetch(max_messages)
                remaining = deadline - time.monotonic()
                if records or remaining <= 0:
                    return records
                self._broker._cond.wait(remaining)

    def commit(self, records: list[SourceRecord]) -> None:
        next_offsets: dict[TopicPartition, int] = {}
        for r in records:
            next_offsets[r.tp] = max(next_offsets.get(r.tp, 0), r.offset + 1)
        with self._broker._cond:
            self._check_open()
            group = self._broker._group(self._group_id)
            for tp, offset in next_offsets.items():
                if tp in self.assigned:
                    group.committed[tp] = offset
                else:
                    self.refused_commits.append((tp, offset))
                    log.warning("offset commit for %s[%d] refused: not assigned to this member", tp.topic,
                                tp.partition)

    def hold(self, offsets: dict[TopicPartition, int]) -> None:
        with self._broker._cond:
            for tp, offset in offsets.items():
                if tp in self.assigned:
                    self._paused.add(tp)
                    self._position[tp] = offset

    def release(self, partitions: list[TopicPartition]) -> None:
        with self._broker._cond:
            self._paused.difference_update(partitions)
            self._broker._cond.notify_all()

    def lag(self) -> dict[TopicPartition, int]:
        with self._broker._cond:
            group = self._broker._group(self._group_id)
            return {tp: max(0, len(self._broker._partitions[tp]) - group.committed.get(tp, 0))
                    for tp in self.assigned}

    def close(self) -> None:
        """Revoke what this member holds (the callback runs here), then leave the group. Idempotent."""
        if self._gone is not None:
            return
        with self._broker._cond:
            self._target = set()
        try:
            self._give_up_revoked()
        finally:
            self._leave("closed")

    def crash(self) -> None:
        """Vanish as a killed process does: no revoke callback, nothing committed; the group deals its
        partitions to the other members at once. Every later call raises `SourceClosed`."""
        self._leave("crashed")

    def _leave(self, how: str) -> None:
        with self._broker._cond:
            if self._gone is not None:
                return
            self._gone = how
            group = self._broker._group(self._group_id)
            for tp in self.assigned:
                if group.owners.get(tp) is self:
                    del group.owners[tp]
            self.assigned = set()
            if self in group.members:
                group.members.remove(self)
            self._broker._rebalance(self._group_id)

    def _check_open(self) -> None:
        if self._gone is not None:
            raise SourceClosed(f"in-memory source of group {self._group_id} is {self._gone}; build a new one")

    def _give_up_revoked(self) -> None:
        """Run the revoke callback for the partitions leaving this member, on this thread and
        outside the broker lock (the callback commits); they move once it returns, or raises."""
        with self._broker._cond:
            self._check_open()
            revoked = sorted(self.assigned - self._target, key=lambda tp: (tp.topic, tp.partition))
        if not revoked:
            return
        try:
            self._on_revoke(revoked)
        finally:
            with self._broker._cond:
                group = self._broker._group(self._group_id)
                for tp in revoked:
                    self.assigned.discard(tp)
                    self._position.pop(tp, None)
                    self._paused.discard(tp)
                    if group.owners.get(tp) is self:
                        del group.owners[tp]
                self._broker._cond.notify_all()

    def _take_assigned(self) -> None:
        group = self._broker._group(self._group_id)
        for tp in sorted(self._target - self.assigned, key=lambda tp: (tp.topic, tp.partition)):
            if tp in group.owners:
                continue                          # its owner has not given it up yet
            group.owners[tp] = self
            self.assigned.add(tp)
            self._position[tp] = group.committed.get(tp, 0)

    def _fetch(self, max_messages: int) -> list[SourceRecord]:
        records: list[SourceRecord] = []
        for tp in sorted(self.assigned - self._paused, key=lambda tp: (tp.topic, tp.partition)):
            log_ = self._broker._partitions[tp]
            while self._position[tp] < len(log_) and len(records) < max_messages:
                offset = self._position[tp]
                message = log_[offset]
                records.append(SourceRecord.from_message(tp.topic, tp.partition, offset, message.key,
                                                         message.payload))
                self._position[tp] = offset + 1
        return records
