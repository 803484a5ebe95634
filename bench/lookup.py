"""Lookup benchmark: `CacheReader` with and without its Bloom filter, and against bare redis-py GET.

    .venv/bin/python bench/lookup.py [--rows N] [--absent M] [--hits H] [--fp RATE] [--runs K]

Starts its own one-region sandbox with the region's producer and filter maintainer (`cdcsync
bloom`) as subprocesses, loads N rows into `bench.items`, and waits for the filter and a freshness
proof. The filter is sized with `headroom = 1` (N keys in a filter for N keys), the worst case for
its false-positive rate. Then, in the same run:

- absent keys, with the filter: M lookups of keys that never existed (`get_many`, 1000 a call);
  database statements counted on the server (`Com_select`);
- absent keys, without the filter: the same for M other keys through a plain read-through cache
  (`CacheReader(use_filter=False)`): every lookup is a database statement;
- cache hits: H `get` calls of cached rows against H bare redis-py `GET`s of the same rows stored
  as JSON strings under keys of the same shape (K rounds after a warm-up round; within a round the
  two sides alternate every 500 keys; best round of each, and each round's ratio);
- the measured false-positive rate: absent keys the filter let through / M.

Prints one JSON line: db_queries_with_filter, db_queries_without_filter, query_reduction,
hit_ratio_vs_get, fp_measured, fp_configured, and the rates behind them (with
hit_ratio_per_round).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import tomli_w
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Running, connect, emit, progress, sandbox  # noqa: E402
from consumers.cache.bloom.store import BloomStore  # noqa: E402
from consumers.cache.lookup_metrics import LookupMetrics  # noqa: E402
from consumers.cache.reader import CacheReader  # noqa: E402
from consumers.cache.sink import redis_client  # noqa: E402
from schemas.config import PipelineConfig, parse_config  # noqa: E402

REGION, DB, TABLE = "eu", "bench", "items"
NAME = f"{DB}.{TABLE}"
BATCH = 1000
HIT_BLOCK = 500     # keys per alternation of the cache-hit comparison


def bench_config(base: PipelineConfig, root: Path, fp: float) -> PipelineConfig:
    data = base.model_dump(mode="python")
    data["prefix"] = "benchlookup"
    data["regions"] = {REGION: data["regions"][REGION]}
    data["tables"] = {NAME: {"cache_format": "json"}}
    data["lookup"] = {"fp_rate": fp, "headroom": 1.0, "check_interval_s": 3600}   # no rebuild mid-run
    region = data["regions"][REGION]
    region["mysql"]["password"] = base.regions[REGION].mysql.password.get_secret_value()
    region["producer"].update(include=[f"{DB}.*"], checkpoint_dir=root / "checkpoints" / REGION,
                              checkpoint_interval_ms=20, heartbeat_s=0.1)
    return parse_config(data)


def write_config(config: PipelineConfig, path: Path) -> Path:
    data = config.model_dump(mode="json", exclude_none=True)
    data["regions"][REGION]["mysql"]["password"] = config.region(REGION).mysql.password.get_secret_value()
    path.write_text(tomli_w.dumps(data))
    return path


def com_select(config: PipelineConfig) -> int:
    with connect(config, REGION) as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Com_select'")
        return int(cur.fetchone()[1])


def load_rows(config: PipelineConfig, n: int) -> None:
    with connect(config, REGION) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {NAME} (id BIGINT PRIMARY KEY, name VARCHAR(32), qty INT)")
        for start in range(0, n, 5000):
            cur.executemany(f"INSERT INTO {NAME} VALUES (%s, %s, %s)",
                            [(i, f"item-{i}", i % 97) for i in range(start, min(n, start + 5000))])


def absent_run(config: PipelineConfig, keys: list[int], *, use_filter: bool) -> tuple[float, int, int]:
    """(seconds, statements counted on the server, lookups the database answered) for `keys`."""
    reader = CacheReader(config, REGION, metrics=LookupMetrics(REGION, CollectorRegistry()), use_filter=use_filter)
    reader.get(NAME, 0)                                     # table metadata loaded before counting
    before, started, db_answered = com_select(config), time.perf_counter(), 0
    for i in range(0, len(keys), BATCH):
        answers = reader.lookup_many(NAME, keys[i:i + BATCH])
        assert all(a.row is None for a in answers), "an absent key was found"
        db_answered += sum(a.layer == "db_miss" for a in answers)
    seconds = time.perf_counter() - started
    queries = com_select(config) - before
    reader.close()
    return seconds, queries, db_answered


def hit_runs(config: PipelineConfig, n: int, hits: int, runs: int) -> tuple[float, float, list[float]]:
    """(best cache-hit lookups/s, best bare GETs/s, each round's ratio) over the same random keys.

    Like with like: one round trip per lookup on each side, through the same redis-py client
    settings, the same keys in the same order, bare keys of the cache keys' shape and length, and
    values the same JSON bytes. The two sides alternate in blocks of `HIT_BLOCK` keys (which one goes
    first flips every block), so a busy moment of the shared machine falls on both alike."""
    reader = CacheReader(config, REGION, metrics=LookupMetrics(REGION, CollectorRegistry()))
    client = redis_client(config.region(REGION).redis)
    keys = random.Random(7).sample(range(n), hits)
    bare_keys = {key: f"{config.prefix}:{DB}.plain:[{key}]" for key in keys}   # `items` -> `plain`: same length
    for i in range(0, len(keys), BATCH):                    # read-through fills the cache
        rows = reader.get_many(NAME, keys[i:i + BATCH])
        pipe = client.pipeline(transaction=False)
        for key, row in zip(keys[i:i + BATCH], rows):
            pipe.set(bare_keys[key], orjson.dumps(row))
        pipe.execute()

    def through_reader(block: list[int]) -> float:
        started = time.perf_counter()
        for key in block:
            if reader.get(NAME, key) is None:
                raise AssertionError(f"cached key {key} not found")
        return time.perf_counter() - started

    def bare_get(block: list[int]) -> float:
        started = time.perf_counter()
        for key in block:
            if client.get(bare_keys[key]) is None:
                raise AssertionError(f"bare key {key} not found")
        return time.perf_counter() - started

    best = {"ours": 0.0, "bare": 0.0}
    ratios: list[float] = []
    for attempt in range(runs + 1):                         # the first round is a warm-up
        seconds = {"ours": 0.0, "bare": 0.0}
        for b, i in enumerate(range(0, len(keys), HIT_BLOCK)):
            block = keys[i:i + HIT_BLOCK]
            sides = [("ours", through_reader), ("bare", bare_get)]
            for side, run in (sides if b % 2 == 0 else sides[::-1]):
                seconds[side] += run(block)
        rates = {side: len(keys) / seconds[side] for side in seconds}
        progress(f"  round {attempt}: cache-hit get {rates['ours']:,.0f}/s, bare GET {rates['bare']:,.0f}/s, "
                 f"ratio {rates['ours'] / rates['bare']:.3f}")
        if attempt:
            ratios.append(round(rates["ours"] / rates["bare"], 3))
            for side in best:
                best[side] = max(best[side], rates[side])
    reader.close()
    client.close()
    return best["ours"], best["bare"], ratios


def run_all(running: Running, args: argparse.Namespace) -> None:
    config = bench_config(running.config, running.root, args.fp)
    path = write_config(config, running.root / "lookup.toml")
    progress(f"loading {args.rows} rows")
    load_rows(config, args.rows)
    producer = subprocess.Popen([sys.executable, "-m", "cdcsync", "producer", "--config", str(path), "--region",
                                 REGION], stdout=subprocess.DEVNULL, stderr=open(running.root / "producer.log", "wb"),
                                env={**os.environ})
    maintainer: subprocess.Popen | None = None
    store = BloomStore(redis_client(config.region(REGION).redis), config.prefix, REGION)
    try:
        deadline = time.monotonic() + 120
        while not (running.root / "checkpoints" / REGION / f"{REGION}.json").exists():
            if time.monotonic() > deadline or producer.poll() is not None:
                raise RuntimeError("the producer did not start; see producer.log")
            time.sleep(0.1)
        maintainer = subprocess.Popen([sys.executable, "-m", "cdcsync", "bloom", "--config", str(path), "--region",
                                       REGION], stdout=subprocess.DEVNULL,
                                      stderr=open(running.root / "bloom.log", "wb"), env={**os.environ})
        while store.current(NAME) is None or store.fresh_us() == 0:
            if time.monotonic() > deadline or maintainer.poll() is not None:
                raise RuntimeError("no filter; see bloom.log")
            time.sleep(0.1)
        stats = store.stats(NAME)
        progress(f"filter ready: {stats.keys} keys, capacity {stats.sizing.capacity}, {stats.bitmap_bytes} bytes")
        absent_with = list(range(10**9, 10**9 + args.absent))
        absent_without = list(range(2 * 10**9, 2 * 10**9 + args.absent))
        with_s, with_q, with_db = absent_run(config, absent_with, use_filter=True)
        progress(f"absent, with filter: {args.absent} in {with_s:.2f}s, {with_q} statements on the server")
        without_s, without_q, _ = absent_run(config, absent_without, use_filter=False)
        progress(f"absent, without filter: {args.absent} in {without_s:.2f}s, {without_q} statements on the server")
        hit_rate, get_rate, round_ratios = hit_runs(config, args.rows, args.hits, args.runs)
    finally:
        for proc in (maintainer, producer):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    fp_measured = with_db / args.absent
    result = {
        "db_queries_with_filter": with_q,
        "db_queries_without_filter": without_q,
        "query_reduction": round(without_q / max(1, with_q), 1),
        "hit_ratio_vs_get": round(hit_rate / get_rate, 3),
        "hit_ratio_per_round": round_ratios,
        "fp_measured": round(fp_measured, 5),
        "fp_configured": args.fp,
        "absent_lookups": args.absent,
        "absent_per_s_with_filter": round(args.absent / with_s, 1),
        "absent_per_s_without_filter": round(args.absent / without_s, 1),
        "hit_lookups_per_s": round(hit_rate, 1),
        "bare_get_per_s": round(get_rate, 1),
        "targets_met": {"query_reduction_50x": without_q >= 50 * max(1, with_q),
                        "hit_ratio_0_7": hit_rate >= 0.7 * get_rate,
                        "fp_within_1_5x": fp_measured <= 1.5 * args.fp},
    }
    emit([result])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows in the table (and keys in the filter)")
    parser.add_argument("--absent", type=int, default=100_000, help="absent-key lookups per side")
    parser.add_argument("--hits", type=int, default=20_000, help="cache-hit lookups per run")
    parser.add_argument("--fp", type=float, default=0.01, help="configured false-positive rate")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with sandbox([REGION]) as running:
        run_all(running, args)


if __name__ == "__main__":
    main()
