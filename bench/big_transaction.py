"""Producer memory through one huge transaction (issue 11: 850k rows took it to ~6 GB).

What it measures. In a one-region sandbox of its own, a table with clock triggers (`cdcsync init`)
gets one transaction of `--rows` rows (1M by default: `INSERT ... SELECT` from MariaDB's sequence
engine, so the binlog holds every row and, after each, its `row_clocks` row). The real producer
(`python -m cdcsync producer`, a subprocess, started before the write and streaming from now) is
sampled every 50 ms for its resident memory (VmRSS from /proc) from the commit until its checkpoint
reaches the transaction's end, i.e. until the broker acknowledged every one of its events.

Baseline: a bare python-mysql-replication loop (blocking BinLogStreamReader from the same start,
decoding every row of the table and of `row_clocks`) reads the same range, in this process.

The last line of stdout is one JSON object:

    {"rows": ..., "peak_rss_mb": ..., "rss_before_mb": ..., "producer_s": ..., "raw_s": ..., "ratio": ...}

`ratio` = raw_s / producer_s (1.0: the producer keeps up with the bare loop; 0.5: it needs twice
its time). `producer_s` runs from the commit to the checkpoint, so it includes the broker's
acknowledgements and up to one `checkpoint_interval_ms`.

    .venv/bin/python bench/big_transaction.py [--rows N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import RowsEvent

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for `python bench/big_transaction.py`

from bench._common import connect, emit, narrowed_config, progress, sandbox  # noqa: E402
from cdcsync.tools.clock_init import init_region  # noqa: E402
from common.checkpoint_store import FileCheckpointStore  # noqa: E402
from common.mysql import current_position  # noqa: E402
from producers.binlog import stream as binlog_stream  # noqa: E402
from schemas.config import PipelineConfig  # noqa: E402
from schemas.position import BinlogPosition  # noqa: E402
from tests.support.producer import CdcsyncProcess, rss_mb, write_config  # noqa: E402

REGION = "eu"
DB = "bench_big"
TIMEOUT_S = 1800.0
_reader_ids = itertools.count(6001)


def raw_seconds(config: PipelineConfig, start: str, rows: int) -> float:
    """Wall time of a bare library loop decoding `rows` row changes from GTID state `start`."""
    mysql = config.region(REGION).mysql
    began = time.perf_counter()
    stream = BinLogStreamReader(connection_settings=binlog_stream.connection_settings(mysql),
                                server_id=next(_reader_ids), is_mariadb=True, auto_position=start, blocking=True,
                                only_schemas=[DB, config.meta_db])
    seen = 0
    try:
        for event in stream:
            if isinstance(event, RowsEvent):
                seen += len(event.rows)
                if seen >= rows:
                    break
    finally:
        stream.close()
    return time.perf_counter() - began


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the one transaction (default 1M)")
    rows = parser.parse_args(argv).rows
    with sandbox([REGION]) as running:
        root = running.root
        config = narrowed_config(running.config, prefix="big", include=[f"{DB}.*"],
                                 checkpoint_dir=root / "bench-checkpoints", checkpoint_interval_ms=200)
        with connect(config, REGION) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB}")
            cur.execute(f"CREATE TABLE {DB}.t (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(40) NOT NULL, "
                        f"n INT NOT NULL, at DATETIME(6) NOT NULL)")
        init_region(config, REGION)
        producer = CdcsyncProcess(["producer"], write_config(config, root / "big.toml"), REGION,
                                  root / "producer.log").start()
        try:
            peak, before, after, producer_s, start = measure(config, producer, root, rows)
        finally:
            if producer.alive():
                producer.terminate()
        raw_s = raw_seconds(config, start.gtid_state, 2 * rows)
        progress(f"raw library loop: {raw_s:.1f}s for {2 * rows} rows (table + row_clocks)")
    emit([{"rows": rows, "peak_rss_mb": round(peak), "rss_before_mb": round(before),
           "rss_after_mb": round(after), "producer_s": round(producer_s, 1), "raw_s": round(raw_s, 1),
           "ratio": round(raw_s / producer_s, 2), "load": round(os.getloadavg()[0], 2)}])
    return 0


def measure(config: PipelineConfig, producer: CdcsyncProcess, root: Path,
            rows: int) -> tuple[float, float, float, float, BinlogPosition]:
    """Write the transaction once the producer runs; (peak, before, after RSS in MB, seconds from
    the commit to the checkpoint, the start position)."""
    region = config.region(REGION)
    store = FileCheckpointStore(region.producer.checkpoint_dir, REGION, region.server_id)
    deadline = time.monotonic() + 120
    while store.load() is None:
        if time.monotonic() > deadline or not producer.alive():
            raise RuntimeError(f"the producer did not start: {(root / 'producer.log').read_text()[-2000:]}")
        time.sleep(0.2)
    pid = producer.proc.pid  # type: ignore[union-attr]
    before = rss_mb(pid)
    progress(f"producer {pid} ready, RSS {before:.0f} MB; writing {rows} rows in one transaction")
    with connect(config, REGION) as conn, conn.cursor() as cur:
        start = current_position(conn, "mariadb")
        conn.begin()
        cur.execute(f"INSERT INTO {DB}.t SELECT seq, CONCAT('row-', seq), seq % 1000, "
                    f"'2024-01-01' + INTERVAL seq SECOND FROM {DB}.seq_1_to_{rows}")
        conn.commit()
        committed = time.perf_counter()
        end = current_position(conn, "mariadb")
    progress(f"committed {start.describe()} -> {end.describe()}")
    peak = before
    while True:
        peak = max(peak, rss_mb(pid))
        saved = store.load()
        if saved is not None and saved.gtid_state == end.gtid_state:
            break
        if not producer.alive() or time.monotonic() > deadline + TIMEOUT_S:
            raise RuntimeError(f"the producer stopped or stalled: {(root / 'producer.log').read_text()[-2000:]}")
        time.sleep(0.05)
    producer_s = time.perf_counter() - committed
    after = rss_mb(pid)
    progress(f"producer: {producer_s:.1f}s, peak RSS {peak:.0f} MB, after {after:.0f} MB")
    for line in (root / "producer.log").read_text().splitlines():
        if "transaction" in line and ("open for" in line or "committed" in line):
            progress(f"  log: {line[-200:]}")
    return peak, before, after, producer_s, start


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
