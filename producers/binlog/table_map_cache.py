"""Parse each distinct TABLE_MAP event once per stream (python-mysql-replication 1.0.17, pinned).

Why: MariaDB writes a TABLE_MAP event before the rows of every transaction, identical each time
for an unchanged table, and the library parses every one from scratch (`TableMapEvent.__init__`:
column metadata, optional metadata, charsets, two `Table` objects). For a one-row transaction
that parse was two thirds of the library's time (73 of 111 us for a 6-column table).

What: `install()` replaces `TableMapEvent.__init__`. The first event with given body bytes is
parsed by the original; later events with the same bytes take the attributes of that parse
(sharing its `Column`, `Table` and `OptionalMetaData` objects, which nothing mutates once every
column has a name) and repeat its side effects: `table_map[table_id]` gets the same `Table`,
and the packet is advanced by as many bytes as the parse read. Idempotent.

Key: the event body from the table id to the end of the optional metadata, without the header
(its timestamp and position vary) and without the checksum (which covers the header). The body
holds everything the parse reads. What else it depends on is the stream's: its filters and
settings (fixed per stream, and the cache is per stream: per control connection, which every
stream opens for itself), the format description's post-header lengths and server version
(compared on every hit; a change empties the cache).

Invalidation: as the library's own table map. The library replaces the stream's `table_map` dict
on a rotate, and the cache is emptied when it sees a new dict. `invalidate(stream)` empties it on
DDL (the capture calls it): not needed for correctness, since a changed table has different bytes,
but it keeps entries for dropped table versions from piling up; so does the `MAX_ENTRIES` cap.

Also: `Table.data`, which the library builds anew for every rows event to read the table's
`primary_key`, is replaced by the same dict built by a comprehension (half the time of the
original's generator; same keys, values and order).

Not cached (always parsed by the original): `freeze_schema` streams, events the library leaves
unprocessed (filtered out), and maps with a nameless column (the library fills those names in
later from information_schema, mutating the columns).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from pymysqlreplication.event import BinLogEvent
from pymysqlreplication.row_event import TableMapEvent
from pymysqlreplication.table import Table

MAX_ENTRIES = 1024  # distinct table maps kept per stream before the cache starts over


@dataclass(slots=True)
class _Entry:
    attrs: dict[str, Any]   # the parsed event's attributes, per-event ones included (overwritten on a hit)
    table: Any              # what the parse stored in table_map[table_id]
    consumed: int           # bytes the parse read from the packet


@dataclass(slots=True)
class _StreamCache:
    table_map: dict[int, Any] | None = None
    post_header_lengths: Any = None
    mysql_version: Any = None
    entries: dict[bytes, _Entry] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0


# Per stream, keyed by its control connection (the library gives every stream its own).
_caches: "weakref.WeakKeyDictionary[Any, _StreamCache]" = weakref.WeakKeyDictionary()
_original_init = TableMapEvent.__init__
_original_table_data = vars(Table)["data"]
_installed = False


def _cache_for(ctl_connection: Any, table_map: dict[int, Any], kwargs: dict[str, Any]) -> _StreamCache:
    cache = _caches.get(ctl_connection)
    if cache is None:
        cache = _caches[ctl_connection] = _StreamCache()
    post_header_lengths, mysql_version = kwargs.get("post_header_lengths"), kwargs.get("mysql_version")
    if (cache.table_map is not table_map or cache.post_header_lengths != post_header_lengths
            or cache.mysql_version != mysql_version or len(cache.entries) >= MAX_ENTRIES):
        # A rotate (the library's new table_map), a new format description, or too many entries.
        cache.entries.clear()
        cache.table_map, cache.post_header_lengths, cache.mysql_version = table_map, post_header_lengths, mysql_version
    return cache


def _init(self: TableMapEvent, from_packet: Any, event_size: int, table_map: dict[int, Any], ctl_connection: Any,
          **kwargs: Any) -> None:
    if kwargs.get("freeze_schema"):
        _original_init(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        return
    raw = from_packet.packet  # pymysql's packet; the wrapper has read only the event header from it
    start = raw._position
    body = raw._data[start:start + event_size]
    cache = _cache_for(ctl_connection, table_map, kwargs)
    entry = cache.entries.get(body)
    if entry is None:
        cache.misses += 1
        read_before = from_packet.read_bytes
        _original_init(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        if self._processed and all(column.name for column in self.columns):
            cache.entries[body] = _Entry(dict(vars(self)), table_map[self.table_id],
                                         from_packet.read_bytes - read_before)
        return
    cache.hits += 1
    # Per-event attributes (packet, timestamp, table_map, ...) as the base class sets them, then
    # the parse's own attributes over them.
    BinLogEvent.__init__(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
    fresh = vars(self)
    self.__dict__ = {**entry.attrs, **fresh}
    table_map[self.table_id] = entry.table
    from_packet.advance(entry.consumed)


def _table_data(self: Table) -> dict[str, Any]:
    return {k: v for k, v in self.__dict__.items() if k[0] != "_"}


def install() -> None:
    """Patch `TableMapEvent.__init__` and `Table.data` in place. Idempotent; call before the stream
    reads events."""
    global _installed
    if _installed:
        return
    TableMapEvent.__init__ = _init  # type: ignore[method-assign]
    Table.data = property(_table_data)  # type: ignore[method-assign,assignment]
    _installed = True


def _existing(stream: Any) -> _StreamCache | None:
    ctl_connection = getattr(stream, "_ctl_connection", None)
    return _caches.get(ctl_connection) if ctl_connection is not None else None


def invalidate(stream: Any) -> None:
    """Forget the parsed table maps of `stream` (a BinLogStreamReader), e.g. after DDL."""
    cache = _existing(stream)
    if cache is not None:
        cache.entries.clear()


def stats(stream: Any) -> tuple[int, int]:
    """(hits, misses) of `stream`'s cache so far; (0, 0) before it read a table map."""
    cache = _existing(stream)
    return (cache.hits, cache.misses) if cache is not None else (0, 0)
