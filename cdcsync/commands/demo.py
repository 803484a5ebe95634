"""`cdcsync demo`: the newcomer's first run (what `make demo` calls).

Starts a three-region sandbox and the whole pipeline under the supervisor (`cdcsync run`): per
region a producer, a database sink and a cache sink. Writes a small workload in every region,
shows the change events on Kafka, then waits until every region's database and cache hold every
region's rows, and prints the summary. Stops everything it started on the way out.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pymysql
import typer
from confluent_kafka import Consumer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cdcsync.supervisor import Supervisor, components
from consumers.cache_sink import decode_row, redis_client
from deploy.local import Sandbox
from producers.binlog_stream import connect
from schemas.codec import decode
from schemas.config import PipelineConfig, load_config

console = Console()
DB = "shop"
REGIONS = ["eu", "us", "ap"]


def _connect(config: PipelineConfig, region: str) -> pymysql.Connection:
    return connect(config.region(region).mysql)


def _prepare_schema(config: PipelineConfig) -> None:
    """Applications create their tables in every region before replication starts."""
    for region in config.regions:
        with _connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {DB}.products (sku VARCHAR(16) PRIMARY KEY, "
                        "name VARCHAR(64) NOT NULL, price DECIMAL(10,2) NOT NULL, stock INT NOT NULL)")


def _workload(config: PipelineConfig, rnd: random.Random) -> int:
    """Each region sells its own products: inserts, a multi-row transaction of updates, a delete."""
    writes = 0
    for region in config.regions:
        with _connect(config, region) as conn, conn.cursor() as cur:
            skus = [f"{region}-{i:03d}" for i in range(5)]
            for sku in skus:
                cur.execute(f"INSERT INTO {DB}.products VALUES (%s, %s, %s, %s)",
                            (sku, f"Widget {sku}", f"{rnd.uniform(1, 99):.2f}", rnd.randint(1, 50)))
            conn.begin()
            for sku in skus[:3]:
                cur.execute(f"UPDATE {DB}.products SET stock = stock - 1 WHERE sku = %s", (sku,))
            conn.commit()
            cur.execute(f"DELETE FROM {DB}.products WHERE sku = %s", (skus[-1],))
            writes += len(skus) + 3 + 1
    return writes


def _events(config: PipelineConfig, expected: int, timeout: float) -> Table:
    consumer = Consumer({"bootstrap.servers": config.kafka.bootstrap, "group.id": f"demo-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "enable.auto.commit": False})
    consumer.subscribe([f"^{config.prefix}\\.[a-z0-9_-]+\\.{DB}\\.products$"])
    rows: list[tuple] = []
    deadline = time.monotonic() + timeout
    try:
        while len(rows) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                event = decode(msg.value())
                if event.origin != event.region:
                    continue            # applied copies, shown in the convergence table instead
                image = event.after or event.before or {}
                seq = int(event.gtid.rsplit("-", 1)[1]) if event.gtid else 0
                rows.append((event.region, seq, event.txn_index, event.op.value, msg.key().decode(),
                             f"{image.get('name', '')}, {image.get('price', '')}, stock {image.get('stock', '')}",
                             f"{event.txn_id}#{event.txn_index}{' last' if event.txn_last else ''}"))
    finally:
        consumer.close()
    table = Table("region", "op", "key", "row", "transaction#index",
                  title=f"{len(rows)} change events captured from the binlogs")
    for region, _, _, op, key, shown, txn in sorted(rows):
        table.add_row(region, op, key, shown, txn)
    return table


def _state(config: PipelineConfig) -> dict[str, tuple[dict, dict]]:
    """Per region: the products table and the cached products."""
    state = {}
    for region in config.regions:
        with _connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT sku, name, price, stock FROM {DB}.products")
            rows = {r[0]: (r[1], f"{r[2]:.2f}", r[3]) for r in cur.fetchall()}
        client = redis_client(config.region(region).redis)
        cached = {}
        for key in client.scan_iter(f"{config.prefix}:{DB}.products:*"):
            row = decode_row(client.hgetall(key))
            if row is not None:
                cached[row["sku"]] = (row["name"], row["price"], row["stock"])
        client.close()
        state[region] = (rows, cached)
    return state


def _convergence(state: dict[str, tuple[dict, dict]], reference: dict) -> Table:
    table = Table("region", "database rows", "cache rows", "database = every region's writes", "cache = database",
                  title="convergence")
    for region, (rows, cached) in state.items():
        table.add_row(region, str(len(rows)), str(len(cached)), "yes" if rows == reference else "not yet",
                      "yes" if cached == rows else "not yet")
    return table


def demo(dir: Path = typer.Option(None, "--dir", help="Sandbox directory (default: a temporary one, removed "
                                                      "afterwards)."),
         keep: bool = typer.Option(False, "--keep", help="Leave the sandbox running at the end."),
         seed: int = typer.Option(7, "--seed", help="Workload random seed.")) -> None:
    """Start a 3-region sandbox and the pipeline, write in every region, and watch them converge."""
    started = time.monotonic()
    root = Path(dir) if dir else Path(tempfile.mkdtemp(prefix="cdcsync-demo-"))
    box = Sandbox(root)
    supervisor: Supervisor | None = None
    converged = False
    try:
        with console.status("starting the sandbox: 3 x MariaDB, 3 x Redis, 1 Kafka-compatible broker"):
            contract = box.up(REGIONS)
        config = load_config(contract["config"])
        console.print(f"sandbox up in {root}")
        _prepare_schema(config)
        supervisor = Supervisor(components(Path(contract["config"]), REGIONS, root / "logs"))
        supervisor.start()
        with console.status("producers snapshot, then stream; sinks join their consumer groups"):
            for region in REGIONS:
                checkpoint = config.region(region).producer.checkpoint_dir / f"{region}.json"
                while not checkpoint.exists() and time.monotonic() - started < 90:
                    supervisor.poll()
                    time.sleep(0.2)
        writes = _workload(config, random.Random(seed))
        console.print(f"wrote {writes} row changes: each region inserted, updated and deleted its own products")
        console.print(_events(config, writes, timeout=60))
        reference: dict = {}
        deadline = time.monotonic() + 90
        with Live(console=console, refresh_per_second=4) as live:
            while time.monotonic() < deadline:
                supervisor.poll()
                state = _state(config)
                reference = {}
                for region, (rows, _) in state.items():
                    reference.update({k: v for k, v in rows.items() if k.startswith(region + "-")})
                live.update(_convergence(state, reference))
                if all(rows == reference and cached == rows for rows, cached in state.values()):
                    converged = True
                    break
                time.sleep(0.5)
        if converged:
            console.print(f"\n[bold green]converged[/bold green]: all {len(REGIONS)} databases and caches hold "
                          f"the same {len(reference)} products, {time.monotonic() - started:.0f}s after start.")
            if keep:
                console.print(f"explore: cdcsync status --config {contract['config']}")
        else:
            console.print("[bold red]did not converge within 90s[/bold red]; logs in " + str(root / "logs"))
    finally:
        if supervisor is not None:
            codes = supervisor.stop()
            bad = {name: code for name, code in codes.items() if code != 0}
            if bad:
                console.print(f"[yellow]components that did not exit cleanly: {bad}[/yellow]")
        if keep:
            console.print(f"sandbox left running: cdcsync sandbox down --dir {root}")
        else:
            box.down()
            if dir is None:
                shutil.rmtree(root, ignore_errors=True)
            console.print("everything stopped")
    if not converged:
        raise typer.Exit(1)
