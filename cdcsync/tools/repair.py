"""`cdcsync verify --repair`: every row difference verify found becomes a new version every region accepts.

Regions can diverge outside the pipeline: a write made with the clock triggers off, a row deleted by
hand, a restored backup, a bug. For each differing key (a `RowDifference` of the verify report) the
repair:

1. reads the key's row and `row_clocks` version in every region;
2. picks the winner: the version of `--prefer REGION`, or else the table's strategy over the versions
   no other region's version dominates (`lww_key`; `region-priority`'s order for such tables; a
   `custom` table uses `lww_key`, its resolver being defined on concurrent versions only);
3. writes the winner's values as a local write of one region, with a clock that dominates every
   region's version: the join of all of them, + 1 for that region (`_write_dominating` of
   cdcsync/tools/conflict_override.py, under that region's row lock). Every region then applies it
   as a newer version (APPLY, no conflict), through the normal path, caches included. The region
   written is the winner's when a write there changes a byte; when the winner's region already holds
   those values (the usual case: the divergent region is another), a write there would change no
   byte, log no row event and replicate nothing (docs/clocks.md), so the first region (config order)
   whose row differs is written instead, with the same dominating clock;
4. logs a `kind = 'repair'` record in every region's conflict log (`strategy` `repair`; `winner`
   `local` where that region's version won, else `remote`; `remote` the winning version, `result` the
   version written, whose origin names the region written; `losers` the versions that differed),
   after the write committed.

`dry_run` reads and decides, writes nothing. A difference on a table without a primary key, or
whose key is not readable in a region, is reported and left alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pymysql

from cdcsync.tools.conflict_override import (OverrideError, _clock, _clock_row, _connect, _encoder, _identity,
                                             _read, _write_dominating)
from cdcsync.tools.verify import RowDifference, VerifyReport
from consumers.db import conflict_log, session_setup
from consumers.db.resolution import RegionPriority, lww_key
from schemas.config import PipelineConfig
from schemas.conflict_record import ConflictRecord, VersionImage
from schemas.row_version import RowVersion, value_hash
from schemas.vclock import Order


class RepairError(Exception):
    """A repair that cannot be made (an unknown --prefer region, a key no region can read)."""


@dataclass(frozen=True, slots=True)
class Repair:
    """One key's repair: the winning region and values, where they were (or would be) written."""

    table: str
    key: dict[str, Any]
    winner: str
    values: dict[str, Any] | None
    written_in: str | None          # None: dry run
    versions: dict[str, VersionImage]

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "winner": self.winner, "values": self.values,
                "written_in": self.written_in,
                "versions": {r: v.model_dump(mode="json") for r, v in self.versions.items()}}


def _record_stub(db: str, table: str, key: dict[str, Any], region: str) -> ConflictRecord:
    """A ConflictRecord naming the key: what the override helpers read (db, table, pk)."""
    empty = VersionImage(values=None, origin=region, counters={}, hlc_us=0, hash=value_hash(None))
    return ConflictRecord(logged_at_us=0, region=region, db=db, table=table, pk=key, strategy="repair",
                          winner="local", local=None, remote=empty, result=empty)


def read_versions(config: PipelineConfig, diff: RowDifference) -> dict[str, VersionImage]:
    """Region -> the key's version there: values (None: absent) with the stored clock and origin."""
    db, table = diff.table.split(".", 1)
    versions = {}
    for region in config.regions:
        stub = _record_stub(db, table, diff.key, region)
        with _connect(config, region) as conn, conn.cursor() as cur:
            encoder = _encoder(conn, stub, region)
            key = _identity(conn, stub, encoder.types)
            cur.execute(session_setup.READ)
            values = _read(cur, encoder, stub)
            row = _clock_row(cur, config.meta_db, db, table, key, lock="")
        clock = _clock(row)
        origin = str(row[3]) if row is not None else region
        versions[region] = VersionImage(values=values, origin=origin, counters=dict(clock.counters),
                                        hlc_us=clock.hlc_us, hash=value_hash(values))
    return versions


def _version(image: VersionImage) -> RowVersion:
    from schemas.vclock import VectorClock
    return RowVersion(image.values, VectorClock(counters=image.counters, hlc_us=image.hlc_us), image.origin)


def pick_winner(config: PipelineConfig, table: str, versions: dict[str, VersionImage], prefer: str | None) -> str:
    """The region whose version wins: `prefer`, or the table's strategy over the versions that no
    other region's version strictly dominates. Deterministic: ties fall to the config order."""
    if prefer is not None:
        if prefer not in versions:
            raise RepairError(f"--prefer {prefer!r}: not a region of the config ({', '.join(versions)})")
        return prefer
    rows = {r: _version(v) for r, v in versions.items()}
    maximal = [r for r, v in rows.items()
               if not any(o.clock.compare(v.clock) is Order.AFTER for o in rows.values())]
    db, name = table.split(".", 1)
    settings = config.table(db, name)
    if settings.conflict_strategy == "region-priority":
        key = RegionPriority(settings.region_priority).key
        return max(maximal, key=lambda r: (key(rows[r]), -list(versions).index(r)))
    return max(maximal, key=lambda r: (lww_key(rows[r]), -list(versions).index(r)))


def repair(config: PipelineConfig, report: VerifyReport, *, prefer: str | None = None,
           dry_run: bool = False) -> list[Repair]:
    """Repair every row difference of `report` (module docstring). Returns what was (or would be) done."""
    done = []
    for diff in report.row_details:
        versions = read_versions(config, diff)
        winner = pick_winner(config, diff.table, versions, prefer)
        values = versions[winner].values
        differing = [r for r, v in versions.items() if v.hash != versions[winner].hash]
        if not differing:     # the regions converged since verify read them
            continue
        target = None if dry_run else differing[0]
        if target is not None:
            _repair_key(config, diff, versions, winner, target)
        done.append(Repair(diff.table, diff.key, winner, None if values is None else dict(values), target, versions))
    return done


def _repair_key(config: PipelineConfig, diff: RowDifference, versions: dict[str, VersionImage], winner: str,
                target: str) -> None:
    db, table = diff.table.split(".", 1)
    values = versions[winner].values
    stub = _record_stub(db, table, diff.key, target).model_copy(update={"remote": versions[winner]})

    def record(region: str, result: VersionImage, gtid: str | None) -> ConflictRecord:
        # As each region sees it: `local` (its own version) won, or `remote` (the winner's).
        return ConflictRecord(
            kind="repair", logged_at_us=time.time_ns() // 1000, region=region, db=db, table=table, pk=diff.key,
            strategy="repair", winner="local" if versions[region].hash == versions[winner].hash else "remote",
            local=versions[region], remote=versions[winner], result=result,
            losers=[v for v in versions.values() if v.hash != versions[winner].hash],
            local_gtid=gtid if region == target else None)

    for region in config.regions:
        record(region, versions[winner], None)   # a record that cannot be built fails before any write
    with _connect(config, target) as conn:
        result, previous, gtid = _write_dominating(config, conn, target, stub, None if values is None else dict(values))
    for region in config.regions:
        entry = record(region, result, gtid)
        try:
            with _connect(config, region) as conn, conn.cursor() as cur:
                key = _identity(conn, entry, _encoder(conn, entry, region).types)
                conflict_log.insert(cur, config.meta_db, entry, key=key)
                conn.commit()
        except (pymysql.MySQLError, OverrideError) as err:
            raise RepairError(f"{diff.table} {diff.key}: repaired (written in {target}, it replicates from there), "
                              f"but the repair record could not be logged in {region}: {err}") from None


__all__ = ["Repair", "RepairError", "pick_winner", "read_versions", "repair"]
