"""The cache wing: the Redis cache sink, the cache reader applications use, versions, lookup
metrics and the Bloom filters (consumers/cache/bloom/).
"""

__all__ = ["bloom", "lookup_metrics", "reader", "sink", "versions"]
