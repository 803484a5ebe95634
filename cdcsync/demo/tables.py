"""The demo's tables (one per conflict strategy) and the pipeline config it runs with.

Applications create their tables in every region before replication starts (issue 4); `cdcsync
init` then installs the clock triggers on them. The demo does exactly that, in that order.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import tomli_w

from common.mysql import connect
from deploy.local.processes import free_port
from schemas.config import PipelineConfig

DB = "shop"


@dataclass(frozen=True, slots=True)
class DemoTable:
    """One demo table: its key column, the value columns writers change, and its strategy."""

    name: str
    key: str
    key_type: str
    columns: dict[str, str]                  # value column -> SQL type
    strategy: str
    settings: dict[str, Any] = field(default_factory=dict)   # other `tables."db.t"` settings

    @property
    def qualified(self) -> str:
        return f"{DB}.{self.name}"

    def ddl(self) -> str:
        cols = ", ".join(f"{c} {t} NOT NULL" for c, t in self.columns.items())
        return f"CREATE TABLE IF NOT EXISTS {self.qualified} ({self.key} {self.key_type} PRIMARY KEY, {cols})"

    def key_value(self, index: int) -> Any:
        return index if self.key_type.upper().startswith("INT") else f"k{index:02d}"

    def value(self, column: str, rnd: random.Random, tag: str) -> Any:
        """A value for `column` that names its writer (`tag`), so a conflict shows who wrote what."""
        sql = self.columns[column].upper()
        if sql.startswith("VARCHAR"):
            return tag
        if sql.startswith("DECIMAL"):
            return Decimal(rnd.randint(100, 9999)) / 100
        return rnd.randint(0, 99)


TABLES: tuple[DemoTable, ...] = (
    DemoTable("products", "sku", "VARCHAR(8)",
              {"name": "VARCHAR(32)", "price": "DECIMAL(8,2)", "stock": "INT"}, "lww"),
    DemoTable("inventory", "sku", "VARCHAR(8)",
              {"on_hand": "INT", "reserved": "INT", "bin": "VARCHAR(32)"}, "custom",
              {"custom_resolver": "cdcsync.demo.resolvers:most_on_hand"}),
    DemoTable("customers", "id", "INT",
              {"email": "VARCHAR(32)", "tier": "VARCHAR(32)", "credit": "DECIMAL(8,2)"}, "region-priority"),
    # A delta column (docs/conflicts.md): every region's `on_hand = on_hand + d` counts, once, everywhere.
    DemoTable("stock", "sku", "VARCHAR(8)", {"on_hand": "INT", "note": "VARCHAR(32)"}, "lww",
              {"delta_columns": ["on_hand"]}),
)
STOCK_START = 1000          # every stock row's on_hand before the workload


def delta_columns(table: DemoTable) -> tuple[str, ...]:
    return tuple(table.settings.get("delta_columns", ()))


def seed_stock(config: PipelineConfig, keys: int, timeout_s: float = 90.0) -> None:
    """The stock rows, written once in the first region (with clocks, through the pipeline) and
    awaited everywhere: the workload only changes their counters, so the sum is known."""
    import time

    stock = next(t for t in TABLES if delta_columns(t))
    first = next(iter(config.regions))
    rows = [(stock.key_value(i), STOCK_START, "start") for i in range(keys)]
    with connect(config.region(first).mysql) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT IGNORE INTO {stock.qualified} ({stock.key}, on_hand, note) VALUES (%s, %s, %s)", rows)
        conn.commit()
    deadline = time.monotonic() + timeout_s
    for region in config.regions:
        while True:
            with connect(config.region(region).mysql) as conn, conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM {stock.qualified}")
                if cur.fetchone()[0] >= keys:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stock rows did not reach {region} within {timeout_s:.0f}s")
            time.sleep(0.3)


def on_hand(config: PipelineConfig) -> dict[str, int]:
    """Region -> the sum of every stock row's on_hand."""
    stock = next(t for t in TABLES if delta_columns(t))
    sums = {}
    for region in config.regions:
        with connect(config.region(region).mysql) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT COALESCE(SUM(on_hand), 0) FROM {stock.qualified}")
            sums[region] = int(cur.fetchone()[0])
    return sums


def create_tables(config: PipelineConfig) -> None:
    """The demo database and tables in every region (idempotent)."""
    for region in config.regions:
        with connect(config.region(region).mysql) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
            for table in TABLES:
                cur.execute(table.ddl())


def table_settings(regions: list[str]) -> dict[str, dict[str, Any]]:
    """`tables` of the demo config: each table's strategy (region-priority in config order)."""
    result: dict[str, dict[str, Any]] = {}
    for table in TABLES:
        entry: dict[str, Any] = {"conflict_strategy": table.strategy, **table.settings}
        if table.strategy == "region-priority":
            entry["region_priority"] = list(regions)
        result[table.qualified] = entry
    return result


def write_demo_config(sandbox_config: Path, target: Path, regions: list[str]) -> Path:
    """The sandbox's config plus what the demo needs: only the demo tables captured, each table's
    strategy, and a Prometheus port per producer (read by the live view)."""
    data = tomllib.loads(sandbox_config.read_text())
    data["tables"] = table_settings(regions)
    for region in data["regions"].values():
        region.setdefault("producer", {})["include"] = [f"{DB}.*"]
        region["metrics_port"] = free_port()
    header = ("# Written by `cdcsync demo`: the sandbox's cdcsync.toml, the demo tables' conflict strategies\n"
              "# and producer metrics ports. Reference: docs/reference/configuration.md.\n")
    target.write_text(header + tomli_w.dumps(data))
    return target
