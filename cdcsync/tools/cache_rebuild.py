"""`cdcsync cache rebuild`: the rebuild itself is consumers/cache/rebuild.py, which the cache sink
also runs for one table after a DDL (docs/schema-changes.md)."""

from __future__ import annotations

from consumers.cache.rebuild import rebuild_cache

__all__ = ["rebuild_cache"]
