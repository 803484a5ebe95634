"""The python-mysql-replication layer: opening the stream, the library patches (fixes,
table-map cache), the fast row decoder and binlog value encoding.
"""

__all__ = ["fast_rows", "fixes", "stream", "table_map_cache", "value_encoding"]
