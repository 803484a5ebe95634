"""Operator tools behind the CLI that consume nothing: init (clock triggers, metadata tables),
verify, status, tombstones, regions, conflict overrides and filters, the dead-letter reader, cache
rebuild, applier grants and schema drift across regions.
"""

__all__ = [
    "applier_grants", "cache_rebuild", "cascade_triggers", "clock_init", "conflict_filters",
    "conflict_override", "dlq_reader", "foreign_keys", "regions", "schema_drift", "status", "tombstones", "verify"
]
