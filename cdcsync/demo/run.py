"""The demo from start to teardown.

1. start a three-region sandbox (3 MariaDB, 3 Redis, one broker);
2. create the demo tables in every region, then `cdcsync init` (metadata tables, clock triggers);
3. start every region's producer, database sink and cache sink under one supervisor, the code of
   `cdcsync run`, and wait until every producer streams;
4. run the conflict workload (workload.py) with the live view (progress.py), then wait for
   quiescence (quiescence.py) with the view still up;
5. `verify`, the summary (summary.py), and the verify report.

`main` stops everything it started on the way out, also on Ctrl-C, SIGTERM or an error: the
writers, the status thread, the supervised components, and the sandbox's servers (unless `keep`).
Returns the exit code: 0 when the pipeline settled and verify found every region's databases and
caches equal, 1 otherwise, 130 when interrupted.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Literal

from rich.console import Console
from rich.live import Live

from cdcsync.demo import summary
from cdcsync.demo.progress import LagWatcher, ProgressView
from cdcsync.demo.quiescence import QuiescenceTracker
from cdcsync.demo.tables import STOCK_START, TABLES, create_tables, on_hand, seed_stock, write_demo_config
from cdcsync.demo.workload import ConflictWorkload, WorkloadSpec
from cdcsync.supervisor import Supervisor, components
from cdcsync.tools.verify import VerifyReport
from deploy.local import Sandbox
from schemas.config import PipelineConfig, load_config

console = Console()
REGIONS = ["eu", "us", "ap"]
Mode = Literal["running", "stopped", "removed"]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    dir: Path | None = None          # None: a temporary directory, removed after a passing run
    keep: bool = False               # leave the sandbox's servers running
    spec: WorkloadSpec = WorkloadSpec()
    settle_s: float = 90.0           # how long to wait for quiescence after the writers stop
    producer_start_s: float = 120.0  # how long the producers may take to start streaming


class DemoFailed(Exception):
    """A phase could not complete; the message says which."""


@dataclass(slots=True)
class DemoRun:
    """What the demo started, so teardown stops exactly that."""

    root: Path
    box: Sandbox
    supervisor: Supervisor | None = None
    workload: ConflictWorkload | None = None
    watcher: LagWatcher | None = None
    events: dict[str, int] = field(default_factory=dict)   # change events published, per region
    timings: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, began: float) -> None:
        self.timings[name] = time.monotonic() - began

    def teardown(self, *, keep_servers: bool) -> None:
        if self.workload is not None:
            self.workload.stop()
            self.workload.join()
        if self.watcher is not None:
            self.watcher.stop()
        if self.supervisor is not None:
            bad = {n: c for n, c in self.supervisor.stop(timeout_s=30).items() if c not in (0, None)}
            if bad:
                console.print(f"[yellow]components that did not exit cleanly: {bad}[/yellow]")
        if not keep_servers:
            self.box.down()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(options: DemoOptions) -> int:
    started = time.monotonic()
    root = options.dir.resolve() if options.dir else Path(tempfile.mkdtemp(prefix="cdcsync-demo-"))
    mode: Mode = "running" if options.keep else "stopped" if options.dir else "removed"
    run = DemoRun(root, Sandbox(root))
    # Both stop the demo the same way, also when SIGINT came in ignored (a background job of a shell).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    previous_int = signal.signal(signal.SIGINT, _interrupt)
    try:
        code = 0 if _demo(run, options, mode) else 1
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted[/yellow]")
        code = 130
    except DemoFailed as err:
        console.print(f"[bold red]demo failed:[/bold red] {err}")
        code = 1
    except Exception:   # noqa: BLE001 - shown, and everything is still stopped below
        console.print_exception()
        code = 1
    finally:
        # A second Ctrl-C (or a SIGTERM) must not cut the teardown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            with console.status("stopping the pipeline and the sandbox"):
                run.teardown(keep_servers=options.keep)
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)
    if options.keep:
        console.print(f"the sandbox's servers are left running in {root}: cdcsync sandbox down --dir {root}")
    elif mode == "removed" and code == 0:
        shutil.rmtree(root, ignore_errors=True)
        console.print(f"everything stopped and removed, {time.monotonic() - started:.0f}s after start")
    else:
        console.print(f"everything stopped; files kept in {root} (component logs in {root / 'logs'})")
    return code


def _demo(run: DemoRun, options: DemoOptions, mode: Mode) -> bool:
    started_us = time.time_ns() // 1000
    began = time.monotonic()
    with console.status("starting the sandbox: 3 x MariaDB, 3 x Redis, 1 Kafka-compatible broker"):
        contract = run.box.up(REGIONS)
    config_path = write_demo_config(Path(contract["config"]), run.root / "demo.toml", REGIONS)
    config = load_config(config_path)
    run.timed("sandbox", began)
    console.print(f"sandbox up in {run.root} ({run.timings['sandbox']:.0f}s); config {config_path}")

    began = time.monotonic()
    create_tables(config)
    console.print("tables created in every region: "
                  + ", ".join(f"{t.qualified} ({t.strategy})" for t in TABLES))
    _init(config)
    run.supervisor = Supervisor(components(config_path, REGIONS, run.root / "logs"))
    run.supervisor.start()
    with console.status(f"starting {len(run.supervisor.parts)} components (as `cdcsync run --config {config_path}`)"):
        _wait_for_producers(config, run.supervisor, options.producer_start_s)
    run.timed("pipeline start", began)
    console.print(f"pipeline running ({run.timings['pipeline start']:.0f}s): a producer, a database sink and a "
                  f"cache sink per region under one supervisor, logs in {run.root / 'logs'}")

    with console.status("the stock rows (a delta column: on_hand) in every region"):
        seed_stock(config, options.spec.keys_per_table)
    tracker = _drive(run, config, options.spec, options.settle_s)
    if not tracker.settled:
        console.print(f"[bold red]the pipeline did not settle within {options.settle_s:.0f}s[/bold red]: "
                      + "; ".join(tracker.reasons))

    from cdcsync.tools.verify import verify

    began = time.monotonic()
    with console.status("cdcsync verify: every table across the regions, every cache against its database"):
        report = verify(config)
    run.timed("verify", began)
    _summary(run, config, report, started_us, mode)
    return report.ok and tracker.settled and _stock_sums(run, config, options.spec.keys_per_table)


def _stock_sums(run: DemoRun, config: PipelineConfig, keys: int) -> bool:
    """The delta column: every region's total on hand is the start plus every region's changes."""
    counts = run.workload.snapshot() if run.workload else {}
    expected = keys * STOCK_START + sum(c.on_hand for c in counts.values())
    sums = on_hand(config)
    changes = ", ".join(f"{r} {c.on_hand:+d}" for r, c in counts.items())
    held = ", ".join(f"{r} {s}" for r, s in sums.items())
    if all(s == expected for s in sums.values()):
        console.print(f"[bold green]stock on hand adds up[/bold green]: {keys} x {STOCK_START} {changes} = {expected}; "
                      f"every region holds {expected} (delta column `on_hand`, docs/conflicts.md)")
        return True
    console.print(f"[bold red]stock on hand does NOT add up[/bold red]: expected {expected} ({changes}), held: {held}")
    return False


def _init(config: PipelineConfig) -> None:
    """`cdcsync init`: after the tables exist in every region, before any write."""
    from cdcsync.tools.clock_init import init

    for report in init(config):
        console.print(f"cdcsync init {report.region}: metadata tables in `{config.meta_db}`, "
                      f"{len(report.created) + len(report.replaced) + len(report.unchanged)} clock triggers")
        for warning in report.warnings:
            console.print(f"[yellow]  warning: {warning}[/yellow]")


def _wait_for_producers(config: PipelineConfig, supervisor: Supervisor, timeout_s: float) -> None:
    """A producer writes its checkpoint once it has snapshotted (nothing, here) and streams."""
    deadline = time.monotonic() + timeout_s
    for region in config.regions:
        checkpoint = config.region(region).producer.checkpoint_dir / f"{region}.json"
        while not checkpoint.exists():
            if time.monotonic() > deadline:
                raise DemoFailed(f"the {region} producer did not start streaming within {timeout_s:.0f}s "
                                 f"(see {region}-producer.log in the logs)")
            supervisor.poll()
            time.sleep(0.2)


def _drive(run: DemoRun, config: PipelineConfig, spec: WorkloadSpec, settle_s: float) -> QuiescenceTracker:
    """The workload under the live view, then the wait for quiescence with the view still up."""
    assert run.supervisor is not None
    run.watcher = watcher = LagWatcher(config)
    watcher.start()
    view = ProgressView(config, watcher)
    run.workload = workload = ConflictWorkload(config, spec)
    tracker = QuiescenceTracker()
    began = time.monotonic()
    workload.start()
    stopped_at: float | None = None
    seen_round, last_line = -1, 0.0
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            run.supervisor.poll()
            counts = workload.snapshot()
            view.sample(counts)
            now = time.monotonic()
            if stopped_at is None and not workload.running:
                stopped_at = now
                run.timed("workload", began)
            notes = [f"{p.name} restarted {p.restarts}x (see its log)" for p in run.supervisor.parts if p.restarts]
            if stopped_at is None:
                phase = (f"workload {now - began:.0f}s (at most {spec.duration_s:.0f}s): "
                         f"{spec.writers_per_region} writers per region on {spec.keys_per_table} keys per table")
            else:
                # Only status rounds begun after the last write say anything about quiescence.
                if watcher.rounds != seen_round and watcher.latest_started > stopped_at:
                    seen_round = watcher.rounds
                    if tracker.observe(watcher.latest or []) or now - stopped_at > settle_s:
                        break
                elif now - stopped_at > settle_s:
                    break
                phase = f"writers stopped {now - stopped_at:.0f}s ago; waiting for quiescence"
                notes.append("not settled yet: " + "; ".join(tracker.reasons[:3]))
            live.update(view.render(phase, counts, notes))
            if not console.is_terminal and now - last_line >= 5:
                console.print(view.line(phase, counts), highlight=False, soft_wrap=True)
                last_line = now
            time.sleep(0.5)
        view.sample(workload.snapshot())
        live.update(view.render("writers stopped; the pipeline " + ("settled" if tracker.settled else
                                "did NOT settle"), workload.snapshot(), []))
    run.timed("quiescence", stopped_at or began)
    run.events = {r: rate.total for r, rate in view.events.items()}
    return tracker


def _summary(run: DemoRun, config: PipelineConfig, report: VerifyReport, started_us: int, mode: Mode) -> None:
    from cdcsync.commands.verify import print_report

    counts = run.workload.snapshot() if run.workload else {}
    conflicts, records = summary.read_conflicts(config, started_us)
    examples = summary.pick_examples(records)
    console.rule("summary")
    console.print(summary.rows_table(report))
    console.print(summary.activity_table(counts, run.events))
    console.print(summary.conflicts_table(conflicts, REGIONS))
    if examples:
        console.print(summary.examples(examples))
    focus = None
    if report.row_details:
        console.print(summary.differing_rows(report, records))
        focus = (report.row_details[0].table, report.row_details[0].key)
    # A failed run keeps its directory (main), so its databases can be brought back and explored.
    console.print(summary.explore_commands(run.root, examples, "stopped" if mode == "removed" and not report.ok
                                           else mode, focus=focus))
    console.rule("cdcsync verify")
    print_report(report)
    console.print("timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in run.timings.items()))
    writes = sum(c.writes for c in counts.values())
    logged = sum(sum(per.values()) for per in conflicts.values())
    if report.ok:
        console.print(f"[bold green]converged[/bold green]: {writes} concurrent writes in {len(REGIONS)} regions, "
                      f"{logged} conflict resolutions logged, every database and cache holds the same rows")
    else:
        console.print(f"[bold red]NOT converged[/bold red] after {writes} writes and {logged} conflict resolutions: "
                      "the verify report above names the rows; their conflict-log entries: "
                      "`cdcsync conflicts list --table T --key K`")
