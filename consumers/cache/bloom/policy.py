"""When a filter is rebuilt, and how big the new one is. Pure; `cdcsync bloom` applies it.

Deleted keys stay in a Bloom filter, so a filter only grows more wrong: it is rebuilt from a key
scan when it holds more keys than it was sized for (growth), when deletes pass
`rebuild_stale_ratio` of its keys, or when the false-positive rate readers observed (after
`rebuild_min_samples` absent-key lookups) passes `fp_rate * rebuild_fp_factor`.
"""

from __future__ import annotations

import math

from consumers.cache.bloom.store import FilterStats
from schemas.config import LookupConfig


def rebuild_reason(stats: FilterStats, cfg: LookupConfig) -> str | None:
    if stats.keys > stats.sizing.capacity:
        return "grown"
    if stats.keys and stats.deleted / stats.keys > cfg.rebuild_stale_ratio:
        return "stale"
    observed = stats.observed_fp_rate
    if (stats.rejected + stats.fp >= cfg.rebuild_min_samples and observed is not None
            and observed > cfg.fp_rate * cfg.rebuild_fp_factor):
        return "fp_rate"
    return None


def capacity_for(rows: int, cfg: LookupConfig) -> int:
    return max(cfg.min_capacity, int(math.ceil(rows * cfg.headroom)))
