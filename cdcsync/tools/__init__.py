"""Operator tools behind the CLI that consume nothing: init (clock triggers, metadata tables),
verify, status, tombstones, regions, conflict overrides and filters, the dead-letter reader, cache
rebuild and applier grants.
"""

__all__ = [
    "applier_grants", "cache_rebuild", "cascade_triggers", "clock_init", "conflict_filters",
    "conflict_override", "dlq_reader", "foreign_keys", "regions", "status", "tombstones", "verify"
]
