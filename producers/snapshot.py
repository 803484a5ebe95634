"""Consistent initial snapshot: every existing row, then streaming from exactly that point.

Rows are read in primary-key chunks inside one consistent-snapshot transaction
(common/snapshot_reader.py) and published as `op = "snapshot"` events carrying the snapshot's
binlog position; streaming then resumes at that position, so no change is missed or doubled.
Each event carries the row's clock from `<meta_db>.row_clocks`, read in the same snapshot, and the
table's tombstones follow its rows as `delete` events with theirs (producers/snapshot_clocks.py),
so sinks decide snapshot events like any change.
A producer killed during the snapshot has no checkpoint yet and starts the snapshot over. SIGTERM or
SIGINT during the snapshot stops it at the next chunk boundary (`SnapshotStopped`): what was sent is
flushed, no checkpoint is written, and the next start takes the snapshot again from the beginning (one
consistent view cannot be continued in another; the re-sent events carry the same clocks, so the
sinks find them not newer and skip them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.kafka import TopicCreator
from common.snapshot_reader import ConsistentSnapshot, SnapshotTable
from producers.metrics import ProducerMetrics
from producers.publisher import Publisher
from producers.snapshot_clocks import SnapshotClocks, SnapshotVersion
from schemas import key_fold, messages
from schemas.codec import encode
from schemas.config import PipelineConfig
from schemas.position import BinlogPosition
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


class SnapshotStopped(RuntimeError):
    """A stop was requested during the snapshot; it ended at a chunk boundary, unfinished."""


def progress_bar(console: Console | None = None) -> Progress:
    """The progress bar of long reads; `console` defaults to rich's (stdout), pass a stderr one to keep stdout clean."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


class Snapshotter:
    """Publishes one region's existing rows and returns the position to stream from."""

    def __init__(self, config: PipelineConfig, region: str, publisher: Publisher, topics: TopicCreator,
                 metrics: ProducerMetrics, should_stop: Callable[[], bool] = lambda: False) -> None:
        """`should_stop` is asked after every chunk: True ends the snapshot there with SnapshotStopped."""
        self.config = config
        self._should_stop = should_stop
        self.region = config.region(region)
        self.publisher = publisher
        self.topics = topics
        self.metrics = metrics
        self.names = TopicNames.of(config)
        self._held: tuple[str, bytes, dict[str, Any]] | None = None

    def run(self) -> BinlogPosition:
        settings = self.region.producer
        with ConsistentSnapshot(self.region.mysql.reader(), self.config.meta_db, settings.snapshot_chunk_rows) as snap:
            position = snap.position
            assert position is not None
            info = messages.TxnInfo(self.region.name, self.region.name, self.region.server_id, None,
                                    f"snapshot:{position.gtid_state or f'{position.file}:{position.pos}'}",
                                    time.time_ns() // 1000)
            ack = self.publisher.tracker.open()
            headers = messages.headers("change", self.region.name)
            clocks = SnapshotClocks(snap, self.config.meta_db, settings.snapshot_chunk_rows)
            with progress_bar() as progress:
                for table in snap.tables(settings):
                    if not table.has_primary_key and settings.no_primary_key == "skip":
                        log.warning("table %s.%s has no primary key: skipping it (producer.no_primary_key = "
                                    "'skip')", table.db, table.table)
                        continue
                    task = progress.add_task(f"snapshot {table.db}.{table.table}", total=max(table.estimated_rows, 1))
                    count = tombstones = 0
                    clocked = clocks.clocked(table)
                    for rows in snap.chunks(table):
                        versions = clocks.for_rows(table, rows) if clocked else None
                        self._publish(table, rows, versions, position, info, ack, headers)
                        count += len(rows)
                        progress.advance(task, len(rows))
                        if self._should_stop():
                            raise SnapshotStopped(f"snapshot stopped in {table.db}.{table.table} after {count} rows")
                    if clocked:
                        for chunk in clocks.tombstones(table):
                            self._publish_tombstones(table, chunk, position, info, ack, headers)
                            tombstones += len(chunk)
                    progress.update(task, total=max(count, 1), completed=max(count, 1))
                    log.info("snapshot of %s.%s: %d rows, %d tombstones%s", table.db, table.table, count, tombstones,
                             "" if clocked else " (no clock triggers: published without clocks)")
            if self._held is not None:
                topic, key, message = self._held
                message["txn_last"] = True
                self.publisher.produce(ack, topic, key, encode(message), headers)
            self.publisher.tracker.seal(ack, position)
        return position

    def _publish(self, table: SnapshotTable, rows: list[dict[str, Any]], versions: list[SnapshotVersion] | None,
                 position: BinlogPosition, info: messages.TxnInfo, ack: Any, headers: list[tuple[str, bytes]]) -> None:
        keys = table.key_columns
        for i, after in enumerate(rows):
            pk = {c: after[c] for c in keys}
            message = messages.change(info, position.file, position.pos, table.db, table.table, "snapshot",
                                      pk, None, after, table.encoder.types)
            if versions is not None:
                message.update(versions[i].fields())
            self._hold(table, pk, message, ack, headers)
        self.metrics.snapshot_rows.labels(self.region.name, table.db, table.table).inc(len(rows))
        self.publisher.poll(0)

    def _publish_tombstones(self, table: SnapshotTable, chunk: list[tuple[dict[str, Any], SnapshotVersion]],
                            position: BinlogPosition, info: messages.TxnInfo, ack: Any,
                            headers: list[tuple[str, bytes]]) -> None:
        for pk, version in chunk:
            message = messages.change(info, position.file, position.pos, table.db, table.table, "delete",
                                      pk, None, None, table.encoder.types)
            message.update(version.fields())
            self._hold(table, pk, message, ack, headers)
        self.publisher.poll(0)

    def _hold(self, table: SnapshotTable, pk: dict[str, Any], message: dict[str, Any], ack: Any,
              headers: list[tuple[str, bytes]]) -> None:
        """Publish the message held back and hold this one: the last snapshot event carries txn_last."""
        topic = self.names.changes(self.region.name, table.db, table.table)
        self.topics.ensure(topic)
        prefix = f"{table.db}.{table.table}:".encode() if self.names.mode == "per_region" else b""
        pk_values = list(pk.values())
        if table.fold:   # a text key that its collation folds: named by its fold (schemas/key_fold.py)
            message["pk_fold"] = folded = key_fold.fold_pk(message["pk"], table.fold)
            pk_values = key_fold.key_values(message["pk"], folded)
        if self._held is not None:
            held_topic, held_key, held = self._held
            self.publisher.produce(ack, held_topic, held_key, encode(held), headers)
        self._held = (topic, messages.row_key(pk_values, prefix), message)
