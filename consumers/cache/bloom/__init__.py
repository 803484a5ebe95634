"""Bloom filters of the keys that exist, per table: format, building, storing, the rebuild
policy and the maintainer that keeps them current.
"""

__all__ = ["build", "format", "maintainer", "policy", "store"]
