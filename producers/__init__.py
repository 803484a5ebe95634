"""Capture: reads one region's binlog (streaming) or tables (snapshot) and publishes change events
to its Kafka topics, keeping the checkpoint. The binlog library layer lives in producers/binlog/.
Imports common/ and schemas/, never consumers/ or cdcsync/.
"""

__all__ = [
    "auto_increment", "binlog", "capture", "checkpoint_writer", "clock_matching", "fence", "metrics", "preflight", "publisher",
    "service", "snapshot", "snapshot_clocks", "snapshot_progress", "unclocked"
]
