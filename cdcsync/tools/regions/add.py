"""`cdcsync region add NAME --seed-from SEED`: bring a new region in with a copy of the seed region.

The operator has added `[regions.NAME]` to the config and the application has created its tables
in NAME's database. Then, in this order (docs/regions.md says why each step is where it is):

1. Preconditions, each refused with a `RegionAddError` naming the problem: NAME is configured and is
   not SEED; NAME's replicated tables exist and are empty (no rows, no clocks, no apply markers of this
   pipeline); NAME's db group has no committed offsets.
2. NAME's db group's start offsets are recorded (cdcsync/tools/regions/offsets.py), BEFORE the snapshot.
3. The metadata tables are created in NAME, and a consistent snapshot of SEED, rows and row clocks,
   is copied into NAME (cdcsync/tools/regions/seed.py). Then `cdcsync init` runs in every region (the
   clock triggers bake in the region list) and NAME's topics are created.
4. NAME's producer checkpoint is written at NAME's binlog position AFTER the copy, so the copied rows
   are never published as NAME's writes.
5. The recorded offsets are committed for NAME's db group.

Not atomic: a failure after step 3 began leaves rows in NAME; empty NAME's tables and
`<meta_db>.row_clocks` and run it again (the preconditions refuse a half-filled region).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cdcsync.tools.clock_init import InitReport, init_region
from cdcsync.tools.regions.offsets import (ClusterOffsets, RegionAddError, commit_start_offsets,
    record_start_offsets, refuse_used_group)
from cdcsync.tools.regions.seed import (CopyReport, Progress, applied_markers, applier_session, copy_snapshot,
    empty_target_problems, replicated_tables)
from common import metadata_tables
from common.checkpoint_store import FileCheckpointStore
from common.kafka import TopicCreator
from common.mysql import connect, current_position
from schemas.checkpoint import Checkpoint
from schemas.config import PipelineConfig
from schemas.topics import TopicNames

__all__ = ["RegionAddError", "RegionAddReport", "add_region", "check_preconditions"]


@dataclass(slots=True)
class RegionAddReport:
    name: str
    seed: str
    offsets: list[ClusterOffsets] = field(default_factory=list)
    copy: CopyReport = field(default_factory=CopyReport)
    init: list[InitReport] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    checkpoint_path: str = ""
    committed: int = 0


def check_preconditions(config: PipelineConfig, name: str, seed: str) -> list[tuple[str, str]]:
    """Refuse (RegionAddError) unless NAME can be seeded from SEED; returns the tables to copy."""
    if name not in config.regions:
        raise RegionAddError(f"region {name!r} is not in the config (it has {', '.join(config.regions)}): "
                             f"add [regions.{name}] with its connection settings first")
    if seed not in config.regions:
        raise RegionAddError(f"seed region {seed!r} is not in the config (it has {', '.join(config.regions)})")
    if name == seed:
        raise RegionAddError(f"region {name} cannot be seeded from itself: --seed-from names an existing region")
    with connect(config.region(seed).mysql.reader()) as conn:
        tables = replicated_tables(conn, config, seed)
    if not tables:
        raise RegionAddError(f"region {seed} has no replicated tables (producer include/exclude): nothing to copy")
    with connect(config.region(name).mysql) as conn:
        problems = empty_target_problems(conn, config.meta_db, tables)
        markers = applied_markers(conn, config.meta_db, config.prefix)
    if markers:
        problems.append(f"{config.meta_db}.apply_marker already records applied source offsets "
                        f"({', '.join(markers[:5])}{', ...' if len(markers) > 5 else ''}): a database sink ran there")
    if problems:
        raise RegionAddError(f"region {name} cannot take the copy, which never overwrites data: "
                             + "; ".join(problems))
    refuse_used_group(config, name)
    return tables


def _create_topics(config: PipelineConfig, name: str, tables: list[tuple[str, str]]) -> list[str]:
    names = TopicNames.of(config)
    topics = sorted({*(names.changes(name, db, table) for db, table in tables), names.schema(name), names.dlq(name)})
    TopicCreator(config.kafka_for(name)).ensure(*topics)
    return topics


def add_region(config: PipelineConfig, name: str, seed: str, *, progress: Progress | None = None,
               step: Callable[[str], None] | None = None,
               after_offsets: Callable[[], None] | None = None) -> RegionAddReport:
    """Run every step; blocks until done. `step(text)` is told each step as it starts.
    `after_offsets` runs between recording the offsets and opening the snapshot (tests write there)."""
    say = step or (lambda text: None)
    report = RegionAddReport(name, seed)
    say("checking preconditions")
    tables = check_preconditions(config, name, seed)
    say(f"recording start offsets of {name}'s database sink")
    report.offsets = record_start_offsets(config, name, seed)
    if after_offsets is not None:
        after_offsets()
    say(f"copying a consistent snapshot of {seed} into {name}")
    target = applier_session(config, name)
    try:
        metadata_tables.ensure(target, config.meta_db)
        report.copy = copy_snapshot(config, seed, target, tables=tables, progress=progress)
    finally:
        target.close()
    say(f"registering {name}: clock triggers in every region, {name}'s topics")
    report.init = [init_region(config, region) for region in config.regions]
    report.topics = _create_topics(config, name, tables)
    say(f"writing {name}'s producer checkpoint")
    settings = config.region(name)
    with connect(settings.mysql.reader()) as conn:
        position = current_position(conn, settings.mysql.flavor)
    store = FileCheckpointStore(settings.producer.checkpoint_dir, name, settings.server_id)
    report.checkpoint, report.checkpoint_path = store.save(position), str(store.path)
    say(f"committing {name}'s database sink start offsets")
    report.committed = commit_start_offsets(config, name, report.offsets)
    return report
