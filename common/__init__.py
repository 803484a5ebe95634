"""The shared layer below producers/ and consumers/: opening MySQL connections (TLS always
honoured), consistent snapshot reads and their encoding, the table catalog, Kafka admin and the acked
producer, retry, the checkpoint file, the metadata tables and clock triggers, ALTER TABLE classification, health and log context.
Imports only schemas/ and the drivers, never producers/, consumers/ or cdcsync/.
"""

__all__ = [
    "acked_producer", "checkpoint_store", "group_lag", "clock_coverage", "clock_triggers", "ddl_classes", "health_server",
    "kafka",
    "log_context", "metadata_tables", "mysql", "redis_connect", "redis_link", "retry", "snapshot_encoding", "snapshot_reader",
    "table_catalog"
]
