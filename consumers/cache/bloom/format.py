"""The Bloom filter's format: how a key becomes bit offsets, and how a filter is sized.

Sizing and hashing are pybloom-live's (pinned at 4.0.0 in pyproject: 4.x changed the hash, so
bits set by one version are meaningless to another). The bits themselves live in a Redis bitmap
(consumers/cache/bloom/store.py) so that every process of a region shares one filter; slice `i` of
pybloom-live's sliced filter occupies bits `[i * bits_per_slice, (i + 1) * bits_per_slice)`.
Hashing is pybloom-live's salted hashlib/xxhash digest of the key's UTF-8 bytes: the same in
every process and on every host (never Python's randomised `hash()`).

The key text is the canonical primary-key text of the cache keys: the JSON list of the key's wire
values (`[42]`, `["k",7]`; text folded by collation, schemas/key_fold.py), exactly the suffix of
`<prefix>:<db>.<table>:<pk json>`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from typing import Any

import orjson
from pybloom_live.pybloom import make_hashfuncs

PYBLOOM_VERSION = version("pybloom-live")
# Stored with every filter; a filter of another format is treated as missing (and rebuilt).
FORMAT = f"pybloom-live-{PYBLOOM_VERSION}/redis-bitmap/1"


def key_text(pk_values: Sequence[Any]) -> str:
    """The canonical text of a primary key (its wire values, in key order)."""
    return orjson.dumps(list(pk_values)).decode()


@dataclass(frozen=True, slots=True)
class Sizing:
    capacity: int
    error_rate: float
    slices: int
    bits_per_slice: int

    @property
    def bits(self) -> int:
        return self.slices * self.bits_per_slice

    @classmethod
    def for_capacity(cls, capacity: int, error_rate: float) -> "Sizing":
        """pybloom-live's BloomFilter sizing: k = ceil(log2(1/p)) slices of m = ceil(n*|ln p| / (k*ln2^2)) bits."""
        capacity = max(1, capacity)
        slices = int(math.ceil(math.log(1.0 / error_rate, 2)))
        bits_per_slice = int(math.ceil((capacity * abs(math.log(error_rate))) / (slices * (math.log(2) ** 2))))
        return cls(capacity, error_rate, slices, bits_per_slice)

    def to_fields(self) -> dict[str, str]:
        return {"capacity": str(self.capacity), "error_rate": repr(self.error_rate), "slices": str(self.slices),
                "bits_per_slice": str(self.bits_per_slice)}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "Sizing":
        return cls(int(fields["capacity"]), float(fields["error_rate"]), int(fields["slices"]),
                   int(fields["bits_per_slice"]))


@lru_cache(maxsize=64)
def _hasher(slices: int, bits_per_slice: int) -> Callable[[str], Any]:
    return make_hashfuncs(slices, bits_per_slice)[0]


def offsets(sizing: Sizing, key: str) -> list[int]:
    """The bitmap offsets of `key`: one bit in each slice."""
    hashes = _hasher(sizing.slices, sizing.bits_per_slice)(key)
    return [i * sizing.bits_per_slice + h for i, h in enumerate(hashes)]


def expected_fp_rate(sizing: Sizing, keys: int) -> float:
    """The false-positive rate of a sliced filter holding `keys` keys: (1 - e^(-n/m))^k."""
    if keys <= 0:
        return 0.0
    return (1.0 - math.exp(-keys / sizing.bits_per_slice)) ** sizing.slices
