"""producers/binlog/table_map_cache.py bookkeeping: which cache a stream gets, and when it starts over.

The parse itself is compared with the library's in tests/integration/test_table_map_cache.py.
"""

from __future__ import annotations

from typing import Any

from pymysqlreplication.row_event import TableMapEvent

from producers.binlog import table_map_cache


class Ctl:
    """Stands in for a stream's control connection (the cache's owner)."""


SETTINGS = {"post_header_lengths": (1, 2), "mysql_version": (10, 11, 0)}


def test_one_cache_per_control_connection() -> None:
    one, two, table_map = Ctl(), Ctl(), {}
    cache = table_map_cache._cache_for(one, table_map, SETTINGS)
    cache.entries[b"x"] = "entry"  # type: ignore[assignment]
    assert table_map_cache._cache_for(one, table_map, dict(SETTINGS)) is cache
    assert cache.entries == {b"x": "entry"}
    assert table_map_cache._cache_for(two, table_map, SETTINGS).entries == {}
    assert cache.entries == {b"x": "entry"}


def test_new_table_map_dict_or_format_empties_the_cache() -> None:
    ctl, table_map = Ctl(), {}
    cache = table_map_cache._cache_for(ctl, table_map, SETTINGS)
    cache.entries[b"x"] = "entry"  # type: ignore[assignment]
    assert table_map_cache._cache_for(ctl, {}, SETTINGS).entries == {}  # the library's rotate: a new dict
    cache.entries[b"x"] = "entry"  # type: ignore[assignment]
    table_map_cache._cache_for(ctl, cache.table_map, SETTINGS | {"post_header_lengths": (1, 3)})
    assert cache.entries == {}
    cache.entries[b"x"] = "entry"  # type: ignore[assignment]
    table_map_cache._cache_for(ctl, cache.table_map, SETTINGS | {"post_header_lengths": (1, 3),
                                                                 "mysql_version": (11, 4, 0)})
    assert cache.entries == {}


def test_full_cache_starts_over(monkeypatch) -> None:
    monkeypatch.setattr(table_map_cache, "MAX_ENTRIES", 2)
    ctl, table_map = Ctl(), {}
    cache = table_map_cache._cache_for(ctl, table_map, SETTINGS)
    cache.entries[b"a"] = "1"  # type: ignore[assignment]
    assert table_map_cache._cache_for(ctl, table_map, SETTINGS).entries == {b"a": "1"}
    cache.entries[b"b"] = "2"  # type: ignore[assignment]
    assert table_map_cache._cache_for(ctl, table_map, SETTINGS).entries == {}


def test_invalidate_and_stats_of_a_stream() -> None:
    class Stream:
        _ctl_connection = Ctl()

    stream: Any = Stream()
    assert table_map_cache.stats(stream) == (0, 0)
    cache = table_map_cache._cache_for(stream._ctl_connection, {}, SETTINGS)
    cache.entries[b"x"] = "entry"  # type: ignore[assignment]
    cache.hits, cache.misses = 3, 1
    assert table_map_cache.stats(stream) == (3, 1)
    table_map_cache.invalidate(stream)
    assert cache.entries == {}
    table_map_cache.invalidate(object())  # a stream that never connected: nothing to do


def test_install_is_idempotent() -> None:
    table_map_cache.install()
    table_map_cache.install()
    assert TableMapEvent.__init__ is table_map_cache._init
    assert table_map_cache._original_init is not table_map_cache._init


def test_table_data_is_the_libraries_dict() -> None:
    """`install` replaces `Table.data` (read for every rows event) by a faster build of the same dict."""
    from pymysqlreplication.table import Table

    original = table_map_cache._original_table_data
    table_map_cache.install()
    assert vars(Table)["data"] is not original
    table = Table(7, "shop", "orders", [], primary_key=("a", "b"))
    table._hidden = "not data"   # type: ignore[attr-defined]
    assert table.data == original.fget(table) == {"table_id": 7, "schema": "shop", "table": "orders", "columns": [],
                                                  "primary_key": ("a", "b"), "column_name_flag": False}
    assert list(table.data) == list(original.fget(table))
