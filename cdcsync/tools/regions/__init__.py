"""Adding and removing a region: start offsets, the seed copy, and removal.
"""

__all__ = ["add", "offsets", "remove", "seed"]
