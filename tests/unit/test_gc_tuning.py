"""A sink process collects garbage less often than CPython's default (consumers/gc_tuning.py)."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from consumers import gc_tuning
from consumers.metrics import SinkMetrics
from consumers.runner import SinkRunner
from tests.unit.test_echo_headers import NoDeadLetters, RecordingSink, RecordingSource


def test_a_sink_runner_raises_the_collectors_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        SinkRunner(source=RecordingSource(), sink=RecordingSink(), dead_letters=NoDeadLetters(),  # type: ignore[arg-type]
                   metrics=SinkMetrics("ap", CollectorRegistry()), batch_max_events=10, batch_max_ms=10)
        assert gc.get_threshold() == (gc_tuning.YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(50_000, 10, 10)
        gc_tuning.for_batches()
        assert gc.get_threshold()[0] == 50_000, "lowered a threshold set higher"
    finally:
        gc.set_threshold(*before)
