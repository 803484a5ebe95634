"""The cache wing: the Redis cache sink, the cache reader applications use, versions, lookup
metrics, the rebuild from the database and the Bloom filters (consumers/cache/bloom/).
"""

__all__ = ["bloom", "lookup_metrics", "reader", "rebuild", "sink", "versions"]
