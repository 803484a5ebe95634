"""What a failing seed prints, per differing key: the problems, every region's row, `row_clocks`
rows and cache entries, the acknowledged writes of the key in order, the logged losers, the dead
letters, and the events on the change topics (every region's) that carry the key."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from schemas.config import PipelineConfig
from schemas.events import ChangeEvent
from schemas.topics import TopicNames
from tests.support.convergence.checker import Problem
from tests.support.convergence.final_state import RegionState, TableKey
from tests.support.convergence.history import History
from tests.support.convergence.schema import TABLES, key_text
from tests.support.kafka import Record, read_all, topics_with_prefix

MAX_KEYS = 12


def topic_events(config: PipelineConfig, db: str, tables: Iterable[str]) -> dict[TableKey, list[Record]]:
    """Every change event of `tables` on every region's change topics, by model key."""
    names = TopicNames.of(config)
    wanted = {names.changes(region, db, table) for region in config.regions for table in tables}
    present = [t for t in topics_with_prefix(config.kafka.bootstrap, f"{config.prefix}.") if t in wanted]
    found: dict[TableKey, list[Record]] = defaultdict(list)
    if not present:
        return found
    for record in read_all(config.kafka.bootstrap, present, idle_s=2.0, timeout_s=60.0):
        event = record.message
        if isinstance(event, ChangeEvent) and event.table in TABLES:
            found[(event.table, TABLES[event.table].model_key(event.pk))].append(record)
    return found


def describe_event(record: Record) -> str:
    e = record.message
    assert isinstance(e, ChangeEvent)
    clock = "no vclock" if e.vclock is None else f"{e.vclock.counters} hlc={e.vclock.hlc_us}"
    image = e.after if e.after is not None else e.before
    return (f"{record.topic}[{record.partition}]@{record.offset} {e.op.value} origin={e.origin} "
            f"txn={e.txn_id}#{e.txn_index} {image} [{clock}]")


def failure_report(config: PipelineConfig, db: str, problems: list[Problem], history: History,
                   states: list[RegionState], *, read_topics: bool = True, max_keys: int = MAX_KEYS) -> str:
    lines = [f"{len(problems)} problem(s) in database {db}, topic prefix {config.prefix}"]
    lines += [f"  {p.describe()}" for p in problems if p.key is None]
    keys = list(dict.fromkeys(p.key for p in problems if p.key is not None))
    if len(keys) > max_keys:
        lines.append(f"  ({len(keys)} keys differ; the first {max_keys} follow)")
        keys = keys[:max_keys]
    events: dict[TableKey, list[Record]] = {}
    if read_topics and keys:
        try:
            events = topic_events(config, db, {table for table, _ in keys})
        except Exception as err:  # noqa: BLE001 - the report is still useful without the events
            lines.append(f"  (could not read the change topics: {err})")
    acks = history.by_key()
    for key in keys:
        table = TABLES[key[0]]
        lines.append(f"== {key_text(table, key[1])}")
        lines += [f"  ! {p.kind}: {p.detail}" for p in problems if p.key == key]
        for s in states:
            lines.append(f"  {s.region}: row {s.rows.get(key)}")
            lines += [f"      clock {c.describe()}" for c in s.clock_rows.get(key, [])]
            lines += [f"      cache {name} {row}" for name, row in s.cache.get(key, [])]
            lines += [f"      loser #{x.record_id} {x.values} {x.clock.counters} hlc={x.clock.hlc_us} origin={x.origin}"
                      for x in s.losers if (x.table, x.key) == key]
            lines += [f"      dead letter {d.entry.id} {d.entry.sink} {d.entry.kind}: {d.entry.error}"
                      for d in s.dead_letters if d.table_key == key]
        lines.append("  acknowledged writes:")
        lines += [f"    {ack.describe()}" for ack in acks.get(key, [])]
        if read_topics:
            lines.append("  events:")
            lines += [f"    {describe_event(r)}" for r in sorted(events.get(key, []),
                                                                 key=lambda r: (r.topic, r.partition, r.offset))]
    return "\n".join(lines)
