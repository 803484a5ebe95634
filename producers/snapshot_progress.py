"""How a snapshot reports its progress, without drawing anything itself.

The producer is a component: what a person sees (a progress bar, a log line) is chosen by the command
that runs it (cdcsync/progress.py draws a rich bar). Calls come from the snapshot's thread, one table
at a time: `start_table`, any number of `advance`, then `finish_table`; `close` once the snapshot
ends, finished or not.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NoProgress", "SnapshotProgress"]


class SnapshotProgress(Protocol):
    def start_table(self, label: str, estimated_rows: int) -> None: ...

    def advance(self, rows: int) -> None: ...

    def finish_table(self, rows: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    """Reports nothing; the default, and what tests and library callers get."""

    def start_table(self, label: str, estimated_rows: int) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass

    def finish_table(self, rows: int) -> None:
        pass

    def close(self) -> None:
        pass
