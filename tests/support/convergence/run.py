"""One seed, end to end, on a running sandbox: its own database and topic prefix, `cdcsync init`,
every region's producer and db + cache sinks as processes, the workload, quiescence, the checks.

Seeds are isolated as the integration tests are: by database name and topic prefix (which also
names the consumer groups and cache keys), never by restarting servers.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdcsync.tools.clock_init import init_region
from cdcsync.tools.verify import verify
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from schemas.cache_layout import cache_key
from common.redis_connect import redis_client
from deploy.local import Sandbox
from schemas.config import PipelineConfig
from tests.conftest import config_for_test, connect
from tests.support import process_table
from tests.support.convergence.bloom_check import bloom_problems
from tests.support.convergence.checker import Problem, check
from tests.support.convergence.final_state import RegionState, read_region
from tests.support.convergence.history import History
from tests.support.convergence.nemesis import Fault, Nemesis
from tests.support.convergence.region_cut import BrokerFront, RegionCutter
from tests.support.convergence.report import failure_report
from tests.support.convergence.schema import COLUMN_LWW, DELTA_COLUMNS, STOCK_KEYS, create_statements
from tests.support.convergence.shapes import Statement, Touch, Txn, kv_touch
from tests.support.convergence.workload import PAUSE_MS, WorkloadSpec, run_txn, run_workload
from tests.support.producer import CdcsyncProcess, ProducerProcess, SinkProcess, wait_until, write_config
from tests.support.quiescence import wait_quiescent

TOPOLOGIES = ("mesh", "star")


@dataclass
class SeedResult:
    seed: int
    topology: str
    shapes: tuple[str, ...]
    db: str
    prefix: str
    history: History = field(default_factory=History)
    problems: list[Problem] = field(default_factory=list)
    conflicts: int = 0
    dead_letters: int = 0
    report: str = ""
    seconds: float = 0.0
    faults: list[dict[str, Any]] = field(default_factory=list)   # what the nemesis injected, in order

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def divergent_keys(self) -> list[str]:
        """Every key some check failed on (a problem without a key counts as one); not the keys a
        dead component left `undelivered` (see `blame_dead`)."""
        keys = {p.describe().split(": ", 2)[1] for p in self.problems if p.key is not None and p.kind != "undelivered"}
        return sorted(keys) + [p.describe() for p in self.problems if p.key is None]

    @property
    def undelivered_keys(self) -> list[str]:
        return sorted({p.describe().split(": ", 2)[1] for p in self.problems if p.kind == "undelivered"})

    @property
    def dead(self) -> list[str]:
        """The components that died and stayed dead (`db-ap`)."""
        return [p.detail.split(" ", 1)[0] for p in self.problems if p.kind == DEAD]

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        return counts

    def summary(self) -> dict[str, Any]:
        return {"seed": self.seed, "topology": self.topology, "ok": self.ok, "acked_writes": len(self.history.acks),
                "transactions": self.history.attempts, "refused": dict(self.history.refused),
                "conflicts": self.conflicts, "dead_letters": self.dead_letters,
                "divergent_keys": len(self.divergent_keys), "problems": self.kinds(),
                **({"dead": self.dead, "undelivered_keys": len(self.undelivered_keys)} if self.dead else {}),
                "seconds": round(self.seconds, 1), "db": self.db, "prefix": self.prefix,
                **({"faults": self.fault_counts(), "unknown_outcome": self.history.unknown}
                   if self.faults else {})}

    def fault_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for fault in self.faults:
            counts[fault["kind"]] = counts.get(fault["kind"], 0) + 1
        return counts


def seed_config(base: PipelineConfig, seed: int, topology: str, tmp: Path) -> tuple[PipelineConfig, str]:
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}: use one of {', '.join(TOPOLOGIES)}")
    unique = uuid.uuid4().hex[:6]
    db = f"conv{seed}_{unique}"
    top: dict[str, Any] = {"topology": {"mode": topology, "hub": "eu" if topology == "star" else None}}
    if topology == "mesh":   # delta columns and column-lww are offered in a mesh only; in a star, plain lww
        top["tables"] = {f"{db}.{t}": {"delta_columns": list(c)} for t, c in DELTA_COLUMNS.items()}
        top["tables"].update({f"{db}.{t}": {"conflict_strategy": "column-lww"} for t in COLUMN_LWW})
    config = config_for_test(base, prefix=f"cv{seed}{unique}", include=[f"{db}.*"], tmp=tmp, top=top,
                             sink={"batch_max_ms": 50})
    return config, db


def _tail(proc: CdcsyncProcess, lines: int = 15) -> str:
    return "\n      ".join(proc.output().splitlines()[-lines:])


def start_blooms(config: PipelineConfig, path: Path, tmp: Path, procs: dict[str, CdcsyncProcess]) -> None:
    """Every region's `cdcsync bloom` (`bloom-eu`), a process of its own in either pipeline."""
    for region in config.regions:
        procs[f"bloom-{region}"] = CdcsyncProcess(["bloom"], path, region, tmp / f"bloom-{region}.log").start()


@contextmanager
def running_pipeline(config: PipelineConfig, path: Path, tmp: Path, problems: list[Problem],
                     bloom: bool = False) -> Iterator[dict[str, CdcsyncProcess]]:
    """Every region's producer and db + cache sinks, by name (`producer-eu`, `db-us`, `cache-ap`; the
    nemesis replaces a component it killed by its restart), and with `bloom` its Bloom maintainer
    (`bloom-eu`). A process that dies, or does not exit 0 on SIGTERM, is a problem of the seed (with
    the end of its log), not an exception."""
    procs: dict[str, CdcsyncProcess] = {}
    try:
        if bloom:
            start_blooms(config, path, tmp, procs)
        for region in config.regions:
            procs[f"producer-{region}"] = ProducerProcess(path, region, tmp / f"producer-{region}.log").start()
            for sink in ("db", "cache"):
                procs[f"{sink}-{region}"] = SinkProcess(path, region, sink, tmp / f"{sink}-{region}.log").start()
        for region in config.regions:
            wait_until((tmp / "checkpoints" / region / f"{region}.json").exists, timeout=90,
                       what=f"{region} checkpoint")
        yield procs
    finally:
        _stop_all(procs, problems)


class SupervisorProcess(CdcsyncProcess):
    """`cdcsync run` of every region: one supervisor, its components its children."""

    def __init__(self, config_path: Path, log_dir: Path) -> None:
        super().__init__(["run"], config_path, "-", log_dir / "supervisor.log")
        self.argv = [*self.argv[:self.argv.index("--region")], "--log-dir", str(log_dir)]


@contextmanager
def supervised_pipeline(config: PipelineConfig, path: Path, tmp: Path, problems: list[Problem],
                        bloom: bool = False) -> Iterator[dict[str, CdcsyncProcess]]:
    """The same pipeline through `cdcsync run` (`{"supervisor": ...}`; component logs in `tmp`,
    named `eu-producer.log`). It must exit 0 on SIGTERM, its components with it. `cdcsync run` has
    no Bloom maintainer: with `bloom`, they run beside it (`bloom-eu`)."""
    procs: dict[str, CdcsyncProcess] = {"supervisor": SupervisorProcess(path, tmp).start()}
    try:
        if bloom:
            start_blooms(config, path, tmp, procs)
        for region in config.regions:
            wait_until((tmp / "checkpoints" / region / f"{region}.json").exists, timeout=90,
                       what=f"{region} checkpoint")
        yield procs
    finally:
        _stop_all(procs, problems)
        left = process_table.components(path)
        if left:
            problems.append(Problem("pipeline", None, f"components left running after the supervisor stopped: "
                                                      f"{sorted(left)}"))
            for pid in left:
                os.kill(pid, signal.SIGKILL)


DEAD = "dead component"
# What a dead component leaves behind: its region's rows, cache or writes not delivered, not diverged.
UNDELIVERED = ("rows differ", "cache differs", "write lost", "column value", "delta sum")


def dead_components(procs: dict[str, CdcsyncProcess]) -> list[str]:
    """The components that exited (`db-ap (exit 1)`); the nemesis replaces one it killed by its restart."""
    return [f"{name} (exit {proc.proc.returncode})" for name, proc in list(procs.items()) if not proc.alive()]


def blame_dead(problems: list[Problem]) -> list[Problem]:
    """With a component dead, the differences the checks found are what it did not deliver: each is
    reported as `undelivered`, naming the dead, never as a divergence of a pipeline that ran."""
    dead = [p.detail.split(" ", 1)[0] for p in problems if p.kind == DEAD]   # as SeedResult.dead
    if not dead:
        return problems
    return [Problem("undelivered", p.key, f"{p.kind} with {', '.join(dead)} dead: {p.detail}")
            if p.kind in UNDELIVERED else p for p in problems]


def _stop_all(procs: dict[str, CdcsyncProcess], problems: list[Problem]) -> None:
    for name, proc in procs.items():
        if not proc.alive():
            problems.append(Problem(DEAD, None, f"{name} died (exit {proc.proc.returncode}):\n      {_tail(proc)}"))
            continue
        try:
            code = proc.terminate()
        except Exception:  # noqa: BLE001 - a process that ignores SIGTERM is killed and reported
            proc.kill9()
            code = -9
        if code != 0:
            problems.append(Problem("pipeline", None, f"{name} exited {code} on SIGTERM:\n      {_tail(proc)}"))


WARMUP_KEY = 1000     # kv keys 1000 + i: one row per region, outside the shapes' keys


def wait_until_flowing(config: PipelineConfig, db: str, history: History, timeout: float = 120.0) -> None:
    """One acknowledged row per region, and wait until every region's database and cache hold all of
    them: the sinks have joined their groups and apply. Without it the whole workload can finish
    before the first sink batch, and every key then conflicts once, in one batch."""
    keys = [WARMUP_KEY + i for i, _ in enumerate(config.regions)]
    for key, region in zip(keys, config.regions, strict=True):
        with connect(config, region, db) as conn:
            conn.autocommit(False)
            txn = Txn("warmup", (Statement("INSERT INTO kv (id, v, n) VALUES (%s, %s, 0)", (key, f"warmup-{region}")),),
                      kv_touch(key))
            acks = run_txn(conn, txn, region=region, client=0, number=0, meta_db=config.meta_db, db=db)
            if not isinstance(acks, list):
                raise AssertionError(f"warm-up insert refused in {region}: {acks}")
            history.record(acks)
    first = next(iter(config.regions))
    with connect(config, first, db) as conn:   # the rows the `delta` shape counts on, at 0
        conn.autocommit(False)
        stock = range(STOCK_KEYS)
        txn = Txn("warmup", tuple(Statement("INSERT INTO stock (id, qty, v) VALUES (%s, 0, 'warmup')", (k,))
                                  for k in stock), tuple(Touch("stock", "id = %s", (k,)) for k in stock))
        acks = run_txn(conn, txn, region=first, client=0, number=1, meta_db=config.meta_db, db=db)
        if not isinstance(acks, list):
            raise AssertionError(f"warm-up insert of stock refused in {first}: {acks}")
        history.record(acks)

    def everywhere() -> bool:
        for region in config.regions:
            with connect(config, region, db) as conn, conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM kv WHERE id IN ({', '.join(['%s'] * len(keys))})", keys)
                if cur.fetchone()[0] != len(keys):
                    return False
                cur.execute("SELECT COUNT(*) FROM stock")
                if cur.fetchone()[0] != STOCK_KEYS:
                    return False
            client = redis_client(config.region(region).redis)
            try:
                if client.exists(*(cache_key(config.prefix, db, "kv", [k]) for k in keys)) != len(keys):
                    return False
            finally:
                client.close()
        return True

    wait_until(everywhere, timeout=timeout, interval=0.3, what="the warm-up rows in every region and cache")


def _conflicts(config: PipelineConfig, db: str) -> int:
    total = 0
    for region in config.regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{config.meta_db}`.`{CONFLICT_LOG}` WHERE db = %s", (db,))
            total += cur.fetchone()[0]
    return total


def drop_seed(config: PipelineConfig, db: str) -> None:
    for region in config.regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
            cur.execute(f"DELETE FROM `{config.meta_db}`.`{ROW_CLOCKS}` WHERE db = %s", (db,))
            cur.execute(f"DELETE FROM `{config.meta_db}`.`{CONFLICT_LOG}` WHERE db = %s", (db,))


AfterQuiescence = Callable[[PipelineConfig, str, History], None]


def run_seed(base: PipelineConfig, seed: int, *, topology: str, shapes: tuple[str, ...], tmp: Path,
             clients_per_region: int = 2, txns_per_client: int = 40, pause_ms: int = PAUSE_MS, keep: bool = False,
             read_topics: bool = True, after_quiescence: AfterQuiescence | None = None,
             faults: list[Fault] | None = None, sandbox: Sandbox | None = None,
             supervised: bool = False, front: BrokerFront | None = None, bloom: bool = False) -> SeedResult:
    """Run one seed and check it; the result holds the problems and, when there are any, the report.

    `faults` (with the `sandbox` the servers run in) is a nemesis schedule injected while the
    workload runs (nemesis.py); the checks are the same, after the last fault and quiescence.
    `supervised` runs the components under one `cdcsync run` instead of one process each.
    `front`: the proxy the broker advertises (`base` names it as bootstrap), which the region cuts
    of the schedule use (region_cut.py).
    `bloom` runs every region's Bloom maintainer too, and adds its verdict (bloom_check.py): no
    present key missing from its region's filter or answered absent by `CacheReader`.

    `after_quiescence(config, db, history)` runs while the pipeline still runs, once it is quiescent
    (the checker's own test uses it to break a region on purpose)."""
    started = time.monotonic()
    tmp.mkdir(parents=True, exist_ok=True)
    config, db = seed_config(base, seed, topology, tmp)
    result = SeedResult(seed, topology, shapes, db, config.prefix)
    path = write_config(config, tmp / "cdcsync.toml")
    spec = WorkloadSpec(seed, shapes, clients_per_region, txns_per_client, pause_ms)
    regions = list(config.regions)
    for region in regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            for statement in create_statements(db):
                cur.execute(statement)
        init_region(config, region)
    states: list[RegionState] = []
    try:
        pipeline = supervised_pipeline if supervised else running_pipeline
        with pipeline(config, path, tmp, result.problems, bloom=bloom) as procs:
            wait_until_flowing(config, db, result.history)
            nemesis = None
            cutter = RegionCutter(front, config, db) if front is not None else None
            if faults:
                if sandbox is None:
                    raise ValueError("a nemesis schedule needs the sandbox its servers run in")
                nemesis = Nemesis(sandbox, path, procs, faults, cutter=cutter).start()
            try:
                workload = run_workload(lambda region: connect(config, region, db), spec, regions,
                                        meta_db=config.meta_db, db=db)
            finally:
                if nemesis is not None:
                    # Region cuts last minutes: the schedule's own length is part of the timeout.
                    nemesis.join(600.0 + sum(f.duration_s for f in faults or []))
                    result.faults = nemesis.log()
                    result.problems.extend(Problem("nemesis", None, error) for error in nemesis.errors)
            result.history.merge(workload)
            if cutter is not None:
                result.history.merge(cutter.history)
            try:
                wait_quiescent(config, timeout=120, dead=lambda: dead_components(procs))
            except AssertionError as err:
                result.problems.append(Problem("pipeline", None, str(err)[:2000]))
            if after_quiescence is not None:
                after_quiescence(config, db, result.history)
            if bloom:
                result.problems.extend(bloom_problems(config, db))
        for region in regions:
            with connect(config, region) as conn:
                states.append(read_region(config, region, conn, db=db))
        delta = {t: tuple(c) for t, c in DELTA_COLUMNS.items() if config.table(db, t).delta_columns}
        per_column = tuple(t for t in COLUMN_LWW if config.table(db, t).conflict_strategy == "column-lww")
        result.problems[:0] = check(result.history, states, delta, per_column)
        if not any(p.kind in ("rows differ", "cache differs") for p in result.problems):
            verdict = verify(config, check_cache=True)
            if not verdict.ok:   # the checker saw no difference: then `cdcsync verify` must not either
                result.problems.append(Problem("verify", None, f"cdcsync verify disagrees: {verdict.to_json()}"))
        result.problems = blame_dead(result.problems)
        result.conflicts = _conflicts(config, db)
        result.dead_letters = sum(len(s.dead_letters) for s in states)
        if result.problems:
            result.report = failure_report(config, db, result.problems, result.history, states,
                                           read_topics=read_topics)
    finally:
        result.seconds = time.monotonic() - started
        if not keep:
            drop_seed(config, db)
    return result
