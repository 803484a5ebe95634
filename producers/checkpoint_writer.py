"""Writing the producer's checkpoint on a thread of its own, so the capture thread never waits
for the file's two fsyncs (tens of ms each on a loaded disk, every `checkpoint_interval_ms`,
during which no binlog event was read).

Contract: `submit` takes a position the broker has acknowledged up to (the caller, the capture
thread, proves it from the `AckTracker`); the writer only ever writes such positions, in the
order submitted, so the file is never ahead of the acknowledgements. A position not yet written
when a newer one comes is dropped: the newer covers it. A failed write is raised on the capture
thread, at its next `submit` or `drain`, and nothing more is written after it.

Threading: `submit`, `drain` and `close` are called by the one thread that owns the producer;
the store is touched by the writer thread only, once streaming has begun.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from common.checkpoint_store import FileCheckpointStore
from schemas.position import BinlogPosition

__all__ = ["CheckpointWriter"]


class CheckpointWriter:
    def __init__(self, store: FileCheckpointStore, on_saved: Callable[[BinlogPosition], None]) -> None:
        """`on_saved(position)` runs on the writer thread after each durable write."""
        self._store = store
        self._on_saved = on_saved
        self._cond = threading.Condition()
        self._next: BinlogPosition | None = None
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="checkpoint-writer", daemon=True)
        self._thread.start()

    def submit(self, position: BinlogPosition) -> None:
        """Hand over an acknowledged position; returns at once. Raises an earlier write's error."""
        with self._cond:
            self._raise_failed()
            if self._closed:
                raise RuntimeError("the checkpoint writer is closed")
            self._next = position
            self._cond.notify_all()

    def drain(self, timeout_s: float = 60.0) -> None:
        """Block until everything submitted is written (or raise its error)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._error is not None or (self._next is None and not self._busy),
                                       timeout_s):
                raise TimeoutError(f"the checkpoint was not written within {timeout_s:.0f} s")
            self._raise_failed()

    def close(self, timeout_s: float = 60.0) -> None:
        """Write what is pending, then stop the thread."""
        try:
            self.drain(timeout_s)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join(timeout_s)

    def _raise_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"writing the checkpoint {self._store.path} failed: {self._error}") from self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._next is not None or self._closed)
                if self._next is None:
                    return
                position, self._next = self._next, None
                self._busy = True
            try:
                self._store.save(position)
                self._on_saved(position)
            except BaseException as err:   # raised on the capture thread; nothing is written after it
                with self._cond:
                    self._error = err
                    self._busy = False
                    self._next = None
                    self._closed = True
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = False
                self._cond.notify_all()
