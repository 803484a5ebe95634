"""The demo's closing report: rows per region, what the writers and producers did, conflicts per
table and strategy, a few conflict-log entries in words, and the commands to explore them."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cdcsync.demo.tables import TABLES
from cdcsync.demo.workload import RegionCounts
from cdcsync.tools.verify import VerifyReport
from common.mysql import connect
from consumers.db import conflict_log
from schemas.config import PipelineConfig
from schemas.conflict_record import ConflictRecord, VersionImage

STRATEGY = {t.qualified: t.strategy for t in TABLES}


def rows_table(report: VerifyReport) -> Table:
    regions = list(report.regions)
    table = Table("table", "strategy", *regions, "verify", title="rows per region after quiescence",
                  title_justify="left")
    for t in report.tables:
        table.add_row(t.table, STRATEGY.get(t.table, "?"), *(str(t.rows.get(r, "-")) for r in regions),
                      "[green]match[/green]" if t.matched else "not compared" if t.ok else "[red]differ[/red]")
    return table


def activity_table(counts: dict[str, RegionCounts], events: dict[str, int]) -> Table:
    table = Table("region", "inserts", "updates", "deletes", "no-ops", "lock retries", "errors",
                  "change events published", title="writes acknowledged in each region, and events",
                  title_justify="left")
    for region, c in counts.items():
        table.add_row(region, str(c.ops["insert"]), str(c.ops["update"]), str(c.ops["delete"]),
                      str(c.ops["unchanged"]), str(c.retries), str(c.errors), str(events.get(region, "?")))
    return table


def read_conflicts(config: PipelineConfig, since_us: int, per_region: int = 5000
                   ) -> tuple[dict[tuple[str, str], dict[str, int]], list[ConflictRecord]]:
    """Counts per (table, strategy) per region since `since_us`, and each region's latest records."""
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    records: list[ConflictRecord] = []
    for region in config.regions:
        with connect(config.region(region).mysql) as conn:
            for row in conflict_log.stats(conn, config.meta_db, bucket_s=3600, since_us=since_us):
                counts[(row.table, row.strategy)][region] += row.count
            records += conflict_log.query(conn, config.meta_db, since_us=since_us, limit=per_region, latest=True)
    return counts, records


def conflicts_table(counts: dict[tuple[str, str], dict[str, int]], regions: list[str]) -> Table:
    table = Table("table", "strategy", *regions, "total", title="conflicts resolved (conflict_log rows per region; "
                  "one conflict is usually decided in several regions)", title_justify="left")
    for (name, strategy), per in sorted(counts.items()):
        table.add_row(name, strategy, *(str(per.get(r, 0)) for r in regions), str(sum(per.values())))
    if not counts:
        table.add_row("-", "-", *("0" for _ in regions), "0")
    return table


def pick_examples(records: list[ConflictRecord], limit: int = 4) -> list[ConflictRecord]:
    """A few varied records: one per table first (a delete conflict preferred for one of them),
    regions taken in turn, then the most recent others."""
    chosen: list[ConflictRecord] = []
    by_table: dict[str, list[ConflictRecord]] = defaultdict(list)
    for r in reversed(records):                      # most recent first
        by_table[f"{r.db}.{r.table}"].append(r)
    regions_used: set[str] = set()
    for name in sorted(by_table):
        candidates = sorted(by_table[name], key=lambda r: (r.region in regions_used, not _has_delete(r)))
        if candidates and len(chosen) < limit:
            chosen.append(candidates[0])
            regions_used.add(candidates[0].region)
    for r in reversed(records):
        if len(chosen) >= limit:
            break
        if r not in chosen:
            chosen.append(r)
    return chosen


def _has_delete(record: ConflictRecord) -> bool:
    return any(v is not None and v.values is None for v in (record.local, record.remote))


def _clock(version: VersionImage) -> str:
    return " ".join(f"{r}:{n}" for r, n in sorted(version.counters.items())) or "(empty)"


def _values(version: VersionImage | None, key: dict[str, Any]) -> str:
    if version is None:
        return "(no row)"
    if version.values is None:
        return "DELETED"
    return " ".join(f"{c}={v}" for c, v in version.values.items() if c not in key)


def _version_line(label: str, version: VersionImage | None, key: dict[str, Any]) -> str:
    if version is None:
        return f"    {label:<7} (no row)"
    return f"    {label:<7} from {version.origin:<3} [{_clock(version)}]  {_values(version, key)}"


def examples(records: list[ConflictRecord]) -> Group:
    """Each record in words: where it was decided, the row, the strategy and winner, then the
    local, remote and resulting versions with their origin, clock and values."""
    lines = [Text("a few conflict-log entries (each region logs the conflicts its database sink decided):",
                  style="bold")]
    for r in records:
        key = ",".join(f"{c}={v}" for c, v in r.pk.items())
        lines.append(Text(f"  {r.region} #{r.id}  {r.db}.{r.table} {key}  {r.strategy}, winner: {r.winner}"))
        for label, version in (("local", r.local), ("remote", r.remote), ("result", r.result)):
            lines.append(Text(_version_line(label, version, r.pk), style="dim" if label != "result" else ""))
    return Group(*lines)


def explore_commands(root: Path, examples: list[ConflictRecord], mode: str,
                     focus: tuple[str, dict[str, Any]] | None = None) -> Group:
    """The commands to explore this run's conflict log. `mode`: `running` (servers left up, --keep),
    `stopped` (--dir: data kept, servers stopped) or `removed` (the default temporary sandbox).
    `focus`: (db.table, key) of the row to list the log of; default the first example's row."""
    base = Path("DIR") if mode == "removed" else root
    cfg = base / ("demo.toml" if mode == "running" else "cdcsync.toml")
    first = examples[0] if examples else None
    lines = [f"cdcsync conflicts list  --config {cfg} --limit 10",
             f"cdcsync conflicts show  {first.id if first else 'ID'} --config {cfg} --region "
             f"{first.region if first else 'REGION'}",
             f"cdcsync conflicts stats --config {cfg} --bucket 1m"]
    if focus is None and first is not None:
        focus = (f"{first.db}.{first.table}", first.pk)
    if focus is not None:
        key = ",".join(f"{c}={v}" for c, v in focus[1].items())
        lines.append(f"cdcsync conflicts list  --config {cfg} --table {focus[0]} --key {key}")
    lines.append(f"cdcsync verify --config {cfg}")
    if mode == "running":
        intro = "explore (the sandbox's servers are still running, the pipeline is stopped):"
        lines.append(f"cdcsync sandbox down --dir {root}    # when done")
    elif mode == "stopped":
        intro = f"explore (the databases are kept in {root}; start its servers again first):"
        lines = [f"cdcsync sandbox up --regions eu,us,ap --dir {root}", *lines,
                 f"cdcsync sandbox down --dir {root}    # when done"]
    else:
        intro = ("explore: this run's sandbox is removed. Run `cdcsync demo --keep --dir DIR` to leave its "
                 "servers running (or `--dir DIR` to keep only its databases), then:")
    return Group(Text(intro, style="bold"), *(Text("  " + line) for line in lines))


def differing_rows(report: VerifyReport, records: list[ConflictRecord], per_region: int = 2) -> Group:
    """For each row verify found different (the first few), the last conflict-log entries of that
    row in every region: what each region decided last is where the regions parted."""
    lines = [Text("the differing rows' last conflict-log entries per region:", style="bold")]
    for d in report.row_details[:3]:
        key = ",".join(f"{c}={v}" for c, v in d.key.items())
        lines.append(Text(f"  {d.table} {key}: {d.kind}"))
        mine = [r for r in records if f"{r.db}.{r.table}" == d.table and r.pk == d.key]
        for region in report.regions:
            for r in [r for r in mine if r.region == region][-per_region:]:
                lines.append(Text(f"    {region} #{r.id} {r.strategy}, winner: {r.winner}"))
                for label, version in (("local", r.local), ("remote", r.remote), ("result", r.result)):
                    lines.append(Text("  " + _version_line(label, version, r.pk), style="dim"))
    return Group(*lines)
