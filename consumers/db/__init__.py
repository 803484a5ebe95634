"""The database wing: applying change events to a peer database (sink, planner, conflict
resolution, unique keys, forwarding, the conflict log, the SQL dialect, parameter conversion and
the session setup of a writing session, waiting for a target's schema and regenerating a table's
clock triggers after it changed).
"""

__all__ = [
    "clock_skew", "conflict_log", "conflict_publisher", "ddl_apply", "dialect", "forwarder", "local_versions", "params",
    "replays", "resolution", "schema_waits", "session_setup", "sink", "trigger_refresh", "unique_keys"
]
