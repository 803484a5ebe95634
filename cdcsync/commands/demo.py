"""`cdcsync demo`: the newcomer's first run (what `make demo` calls).

Starts a three-region sandbox, one producer per region, writes a small workload in every region,
and prints the change events as they arrive on Kafka. Stops everything it started on the way out.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pymysql
import typer
from confluent_kafka import Consumer
from rich.console import Console
from rich.table import Table

from deploy.local import Sandbox
from schemas.codec import decode
from schemas.config import PipelineConfig, load_config

console = Console()
DB = "shop"


def _connect(config: PipelineConfig, region: str) -> pymysql.Connection:
    m = config.region(region).mysql
    return pymysql.connect(host=m.host, port=m.port, user=m.user, password=m.password.get_secret_value(),
                           autocommit=True)


def _prepare_schema(config: PipelineConfig) -> None:
    for region in config.regions:
        with _connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {DB}.products (sku VARCHAR(16) PRIMARY KEY, "
                        "name VARCHAR(64) NOT NULL, price DECIMAL(10,2) NOT NULL, stock INT NOT NULL, "
                        "updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))")


def _workload(config: PipelineConfig, rnd: random.Random) -> int:
    writes = 0
    for region in config.regions:
        with _connect(config, region) as conn, conn.cursor() as cur:
            skus = [f"{region}-{i:03d}" for i in range(5)]
            for sku in skus:
                cur.execute(f"REPLACE INTO {DB}.products (sku, name, price, stock) VALUES (%s, %s, %s, %s)",
                            (sku, f"Widget {sku}", f"{rnd.uniform(1, 99):.2f}", rnd.randint(1, 50)))
            conn.begin()
            for sku in skus[:3]:
                cur.execute(f"UPDATE {DB}.products SET stock = stock - 1 WHERE sku = %s", (sku,))
            conn.commit()
            cur.execute(f"DELETE FROM {DB}.products WHERE sku = %s", (skus[-1],))
            writes += len(skus) + 3 + 1
    return writes


def _show(config: PipelineConfig, expected: int, timeout: float) -> int:
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
                image = event.after or event.before or {}
                shown = f"{image.get('name', '')}, {image.get('price', '')}, stock {image.get('stock', '')}"
                seq = int(event.gtid.rsplit("-", 1)[1]) if event.gtid else 0
                rows.append((event.region, seq, event.txn_index, event.op.value, msg.key().decode(), shown,
                             f"{event.txn_id}#{event.txn_index}{' last' if event.txn_last else ''}"))
    finally:
        consumer.close()
    table = Table("region", "op", "key", "row", "transaction#index", title="change events on Kafka")
    for region, _, _, op, key, shown, txn in sorted(rows):
        table.add_row(region, op, key, shown, txn)
    seen = len(rows)
    console.print(table)
    return seen


def demo(dir: Path = typer.Option(None, "--dir", help="Sandbox directory (default: a temporary one, removed "
                                                      "afterwards)."),
         keep: bool = typer.Option(False, "--keep", help="Leave the sandbox running at the end."),
         seed: int = typer.Option(7, "--seed", help="Workload random seed.")) -> None:
    """Start a 3-region sandbox, capture a small workload from every region, and print the events."""
    root = Path(dir) if dir else Path(tempfile.mkdtemp(prefix="cdcsync-demo-"))
    box = Sandbox(root)
    producers: list[subprocess.Popen] = []
    try:
        with console.status("starting the sandbox: 3 x MariaDB, 3 x Redis, 1 Kafka-compatible broker"):
            contract = box.up(["eu", "us", "ap"])
        config = load_config(contract["config"])
        console.print(f"sandbox up in {root} (config {contract['config']})")
        _prepare_schema(config)
        logs = root / "logs"
        logs.mkdir(exist_ok=True)
        for region in config.regions:
            out = open(logs / f"producer-{region}.log", "ab")
            producers.append(subprocess.Popen([sys.executable, "-m", "cdcsync", "producer", "--config",
                                               contract["config"], "--region", region], stdout=out,
                                              stderr=subprocess.STDOUT))
        with console.status("producers: initial snapshot, then streaming the binlog"):
            for region in config.regions:
                checkpoint = config.region(region).producer.checkpoint_dir / f"{region}.json"
                deadline = time.monotonic() + 60
                while not checkpoint.exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
        writes = _workload(config, random.Random(seed))
        console.print(f"wrote {writes} row changes across {len(config.regions)} regions; reading them back")
        seen = _show(config, writes, timeout=60)
        console.print(f"[bold]{seen}/{writes}[/bold] committed row changes are on Kafka, keyed by primary key.")
        if seen < writes:
            raise typer.Exit(1)
    finally:
        for proc in producers:
            proc.send_signal(signal.SIGTERM)
        for proc in producers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if keep:
            console.print(f"sandbox left running: cdcsync sandbox down --dir {root}")
        else:
            box.down()
            if dir is None:
                shutil.rmtree(root, ignore_errors=True)
            console.print("sandbox stopped")
