"""The collector's threshold for a sink process.

A sink holds a whole batch of decoded events (thousands of dicts and models) while it applies it.
With CPython's default threshold (a young collection every 700 new container objects) the
collector runs several times per batch and its older generations rescan the batch each time: about
a third of the decoding cost in `bench/apply.py`. The events form no reference cycles, so
collecting less often frees nothing later; it only stops rescanning.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def for_batches() -> None:
    """Raise (never lower) the young generation's threshold to `YOUNG_THRESHOLD` for this process."""
    young, middle, old = gc.get_threshold()
    if young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
