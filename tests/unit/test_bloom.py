"""The filter's format (pybloom-live's sizing and hashing, stable across processes), the rebuild
policy, and which changes add keys."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pybloom_live import BloomFilter

from consumers.cache.bloom.format import FORMAT, Sizing, expected_fp_rate, key_text, offsets
from consumers.cache.bloom.maintainer import added_keys
from consumers.cache.bloom.policy import capacity_for, rebuild_reason
from consumers.cache.bloom.store import FilterStats
from schemas.config import LookupConfig
from schemas.events import ChangeEvent


@pytest.mark.parametrize("capacity, rate", [(1000, 0.01), (50, 0.1), (200_000, 0.001)])
def test_offsets_are_the_bits_pybloom_live_sets(capacity: int, rate: float) -> None:
    sizing = Sizing.for_capacity(capacity, rate)
    for pk in ([1], ["k", 7], ["ü", None], [2**63 - 1]):
        reference = BloomFilter(capacity, rate)
        assert (reference.num_slices, reference.bits_per_slice) == (sizing.slices, sizing.bits_per_slice)
        reference.add(key_text(pk))
        assert sorted(offsets(sizing, key_text(pk))) == list(reference.bitarray.search(1))


def test_hashing_is_the_same_in_another_process_whatever_its_hash_seed() -> None:
    sizing = Sizing.for_capacity(5000, 0.01)
    here = [offsets(sizing, key_text([i, "x"])) for i in range(50)]
    code = ("from consumers.cache.bloom.format import Sizing, offsets, key_text; s = Sizing.for_capacity(5000, 0.01); "
            "print([offsets(s, key_text([i, 'x'])) for i in range(50)])")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout
        assert out.strip() == str(here)


def test_format_names_the_pinned_pybloom_version() -> None:
    assert FORMAT.startswith("pybloom-live-4.0.0/")


def test_sizing_meets_the_rate_at_capacity() -> None:
    sizing = Sizing.for_capacity(10_000, 0.01)
    assert expected_fp_rate(sizing, 10_000) <= 0.0101
    assert expected_fp_rate(sizing, 20_000) > 0.02          # an overfull filter: why growth rebuilds
    assert Sizing.from_fields(sizing.to_fields()) == sizing


def _stats(**kw: int) -> FilterStats:
    return FilterStats(table="d.t", gen="g", sizing=Sizing.for_capacity(1000, 0.01), **kw)


def test_rebuild_policy() -> None:
    cfg = LookupConfig(fp_rate=0.01, rebuild_stale_ratio=0.25, rebuild_fp_factor=2.0, rebuild_min_samples=100)
    assert rebuild_reason(_stats(rows_at_build=900, added=50, deleted=100), cfg) is None
    assert rebuild_reason(_stats(rows_at_build=900, added=101), cfg) == "grown"
    assert rebuild_reason(_stats(rows_at_build=400, deleted=101), cfg) == "stale"
    assert rebuild_reason(_stats(rows_at_build=400, rejected=95, fp=5), cfg) == "fp_rate"
    assert rebuild_reason(_stats(rows_at_build=400, rejected=40, fp=5), cfg) is None   # too few samples
    assert rebuild_reason(_stats(rows_at_build=400, rejected=990, fp=10), cfg) is None
    assert capacity_for(10, cfg) == cfg.min_capacity and capacity_for(10_000, cfg) == 20_000


def _event(op: str, pk: dict, before: dict | None = None, after: dict | None = None) -> ChangeEvent:
    return ChangeEvent(region="eu", origin="eu", server_id=1, gtid=None, binlog_file="b.000001", binlog_pos=4,
                       txn_id="x", ts_us=0, db="d", table="t", txn_index=0, txn_last=True, op=op, pk=pk,
                       before=before, after=after, types={})


def test_added_keys() -> None:
    assert added_keys(_event("insert", {"id": 1}, after={"id": 1})) == ["[1]"]
    assert added_keys(_event("snapshot", {"a": "x", "b": 2}, after={"a": "x", "b": 2})) == ['["x",2]']
    assert added_keys(_event("update", {"id": 1}, before={"id": 1, "v": 1}, after={"id": 1, "v": 2})) == []
    assert added_keys(_event("update", {"id": 2}, before={"id": 1}, after={"id": 2})) == ["[2]"]
    assert added_keys(_event("delete", {"id": 1}, before={"id": 1})) == []


def test_key_of_an_undecodable_message_comes_from_its_topic_and_key() -> None:
    from types import SimpleNamespace

    from consumers.cache.bloom.maintainer import BloomMaintainer
    from consumers.records import SourceRecord
    from schemas.config import parse_config

    def key_of(mode: str, topic: str, key: bytes) -> tuple[str, str] | None:
        config = parse_config({"topic_mode": mode, "regions": {"eu": {"server_id": 1}}})
        record = SourceRecord.from_message(topic, 0, 0, key, b"not json")
        assert record.event is None
        return BloomMaintainer._key_of(SimpleNamespace(config=config), record)  # type: ignore[arg-type]

    assert key_of("per_table", "cdcsync.eu.shop.users", b'[42,"x"]') == ("shop.users", '[42,"x"]')
    assert key_of("per_region", "cdcsync.eu.changes", b'shop.users:[42]') == ("shop.users", "[42]")
    assert key_of("per_region", "cdcsync.eu.changes", b'[42]') is None


def test_readers_of_one_process_share_the_default_metrics() -> None:
    from consumers.cache.reader import CacheReader
    from schemas.config import parse_config

    config = parse_config({"regions": {"eu": {"server_id": 1}, "us": {"server_id": 2}}})
    readers = [CacheReader(config, "eu"), CacheReader(config, "eu"), CacheReader(config, "us")]
    assert readers[0].metrics.lookups is readers[2].metrics.lookups
    readers[0].metrics.answered("d.t", "cache_hit")
    readers[1].metrics.answered("d.t", "cache_hit")
    assert readers[0].metrics.lookups.labels("eu", "d.t", "cache_hit")._value.get() == 2
