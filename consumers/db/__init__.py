"""The database wing: applying change events to a peer database (sink, planner, conflict
resolution, unique keys, forwarding, the conflict log, the SQL dialect, parameter conversion and
the session setup of a writing session).
"""

__all__ = [
    "clock_skew", "conflict_log", "conflict_publisher", "dialect", "forwarder", "local_versions", "params",
    "replays", "resolution", "session_setup", "sink", "unique_keys"
]
