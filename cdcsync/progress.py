"""Progress bars of the commands: long reads (verify, cache rebuild, region seed) and the producer's snapshot."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["SnapshotBar", "progress_bar"]


def progress_bar(console: Console | None = None) -> Progress:
    """The progress bar of long reads; `console` defaults to rich's (stdout), pass a stderr one to keep stdout clean."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


class SnapshotBar:
    """A `producers.snapshot_progress.SnapshotProgress` drawn as one bar per table, shown only while a
    snapshot runs (started by its first table, stopped by `close`)."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = progress_bar(console)
        self._task: TaskID | None = None
        self._shown = False

    def start_table(self, label: str, estimated_rows: int) -> None:
        if not self._shown:
            self._progress.start()
            self._shown = True
        self._task = self._progress.add_task(label, total=max(estimated_rows, 1))

    def advance(self, rows: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, rows)

    def finish_table(self, rows: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, total=max(rows, 1), completed=max(rows, 1))

    def close(self) -> None:
        if self._shown:
            self._progress.stop()
            self._shown = False
