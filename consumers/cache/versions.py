"""Row versions for the cache: a position in the capturing region's binlog, as a sortable string.

`<file number:10>.<position:12>.<index in transaction:8>`, zero-padded, so byte order is binlog
order and a Lua `<` compares them. A cache sink reads only its own region's topics, so all the
versions it compares come from one binlog. Snapshot events carry the snapshot's position: after
every change it saw and before every change it did not.

The cache also stores a version's vector-clock counters (`_c`, consumers/cache/sink.py) when it has
one, and compares those first; this binlog version decides only when either side has no clock or
the clocks are concurrent. A read-through fill stores `_v = ""`, below every binlog version.
"""

from __future__ import annotations

from schemas.events import ChangeEvent


def binlog_version(file: str, pos: int, index: int = 0) -> str:
    number = int(file.rsplit(".", 1)[1]) if "." in file else 0
    return f"{number:010d}.{pos:012d}.{index:08d}"


def event_version(event: ChangeEvent) -> str:
    return binlog_version(event.binlog_file, event.binlog_pos, event.txn_index)
