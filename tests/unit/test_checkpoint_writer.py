"""The producer's checkpoint is written off the capture thread (producers/checkpoint_writer.py),
only ever at positions the capture thread handed over as acknowledged, in order, and a failed
write stops the producer at its next checkpoint."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from common.checkpoint_store import FileCheckpointStore
from producers.checkpoint_writer import CheckpointWriter
from producers.publisher import AckTracker
from producers.service import Checkpointer
from schemas.position import BinlogPosition


def pos(n: int) -> BinlogPosition:
    return BinlogPosition(file="mariadb-bin.000001", pos=n, gtid_state=f"0-1-{n}")


class SlowStore(FileCheckpointStore):
    """A store whose save blocks until `release` is set, as an fsync on a loaded disk does."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "eu", 1)
        self.release = threading.Event()
        self.saved: list[int] = []
        self.fail: Exception | None = None

    def save(self, position: BinlogPosition):   # type: ignore[no-untyped-def]
        self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        self.saved.append(position.pos)
        return super().save(position)


def test_submit_does_not_wait_for_the_write_and_the_newest_position_wins(tmp_path: Path) -> None:
    store = SlowStore(tmp_path)
    written: list[int] = []
    writer = CheckpointWriter(store, lambda p: written.append(p.pos))
    began = time.monotonic()
    for n in (10, 20, 30):
        writer.submit(pos(n))
    assert time.monotonic() - began < 1.0, "submit waited for the write"
    store.release.set()
    writer.drain()
    assert store.saved[-1] == 30 and store.saved == sorted(store.saved)
    assert written == store.saved
    assert FileCheckpointStore(tmp_path, "eu", 1).load().position == pos(30)   # type: ignore[union-attr]
    writer.close()


def test_a_failed_write_raises_on_the_capture_thread_and_nothing_is_written_after_it(tmp_path: Path) -> None:
    store = SlowStore(tmp_path)
    store.fail = OSError(28, "No space left on device")
    store.release.set()
    writer = CheckpointWriter(store, lambda p: None)
    writer.submit(pos(10))
    with pytest.raises(RuntimeError, match="No space left on device"):
        writer.drain()
    store.fail = None
    with pytest.raises(RuntimeError, match="No space left on device"):
        writer.submit(pos(20))
    assert store.saved == []


class FakePublisher:
    def __init__(self) -> None:
        self.tracker = AckTracker()

    def poll(self, timeout: float = 0.0) -> None:
        pass


class FakeMetrics:
    def checkpointed(self, region: str, pos: int) -> None:
        pass


def test_the_checkpointer_hands_over_only_acknowledged_positions(tmp_path: Path) -> None:
    store = SlowStore(tmp_path)
    store.release.set()
    publisher = FakePublisher()
    checkpointer = Checkpointer(store, publisher, FakeMetrics(), "eu", pos(4), interval_s=0.0)  # type: ignore[arg-type]
    acked, open_txn = publisher.tracker.open(), publisher.tracker.open()
    publisher.tracker.seal(acked, pos(10))
    open_txn.pending = 1                            # published, not acknowledged yet
    publisher.tracker.seal(open_txn, pos(20))
    assert checkpointer.maybe()
    assert checkpointer.save() == pos(10)
    open_txn.pending = 0                            # now acknowledged
    assert checkpointer.save() == pos(20)
    assert store.saved == [10, 20]
    checkpointer.close()


def test_the_capture_thread_does_not_wait_for_the_fsync(tmp_path: Path) -> None:
    store = SlowStore(tmp_path)
    publisher = FakePublisher()
    checkpointer = Checkpointer(store, publisher, FakeMetrics(), "eu", pos(4), interval_s=0.0)  # type: ignore[arg-type]
    txn = publisher.tracker.open()
    publisher.tracker.seal(txn, pos(10))
    began = time.monotonic()
    assert checkpointer.maybe()
    assert time.monotonic() - began < 1.0, "the capture thread waited for the checkpoint's write"
    assert checkpointer.saved == pos(4)             # not durable yet: not reported as saved
    store.release.set()
    assert checkpointer.save() == pos(10)
    checkpointer.close()
