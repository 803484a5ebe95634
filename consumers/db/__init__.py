"""The database wing: applying change events to a peer database (sink, planner, conflict
resolution, delta columns and column-lww merges, unique keys, forwarding, the conflict log, the SQL dialect, parameter conversion and
the session setup of a writing session, waiting for a target's schema and regenerating a table's
clock triggers after it changed).
"""

__all__ = [
    "clock_skew", "column_merge", "column_planning", "conflict_log", "conflict_publisher", "ddl_apply",
    "delta_merge", "delta_planning", "dialect", "forwarder", "local_versions", "params",
    "replays", "resolution", "schema_waits", "session_setup", "sink", "trigger_refresh", "unique_keys"
]
