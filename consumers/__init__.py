"""Apply: the sink runner (poll, apply, commit), its Kafka source, dead letters and metrics, with
the database wing (consumers/db/) and the cache wing (consumers/cache/). Imports common/ and
schemas/, never producers/ or cdcsync/.
"""

__all__ = [
    "cache", "db", "dlq", "dlq_limit", "gc_tuning", "memory_source", "metrics", "partition_holds", "records", "runner", "service", "source",
    "source_lag", "source_protocol", "topic_ids", "unclocked_changes"
]
