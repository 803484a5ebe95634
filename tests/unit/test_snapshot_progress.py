"""The producer's snapshot reports progress through a protocol; the command draws the bar."""

from __future__ import annotations

import io

from rich.console import Console

from cdcsync.progress import SnapshotBar
from producers.snapshot_progress import NoProgress, SnapshotProgress


def test_the_bar_is_shown_only_between_the_first_table_and_close() -> None:
    out = io.StringIO()
    bar = SnapshotBar(Console(file=out, force_terminal=False, width=100))
    assert not bar._progress.live.is_started          # nothing drawn before the snapshot reads a table
    bar.start_table("snapshot app.users", 10)
    assert bar._progress.live.is_started
    bar.advance(4)
    bar.finish_table(7)
    task = bar._progress.tasks[0]
    assert (task.completed, task.total) == (7, 7)      # the estimate gives way to the real count
    bar.close()
    assert not bar._progress.live.is_started
    assert "snapshot app.users" in out.getvalue()


def test_a_closed_bar_without_tables_drew_nothing() -> None:
    out = io.StringIO()
    bar = SnapshotBar(Console(file=out, force_terminal=False, width=100))
    bar.close()
    assert out.getvalue() == ""


def test_both_implementations_keep_the_protocol() -> None:
    implementations: list[SnapshotProgress] = [NoProgress(), SnapshotBar(Console(file=io.StringIO()))]
    for progress in implementations:
        progress.start_table("t", 1)
        progress.advance(1)
        progress.finish_table(1)
        progress.close()
