"""`cdcsync lookup` (read rows through the cache, as applications do) and `cdcsync bloom` (the
region's filter maintainer)."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import typer
from prometheus_client import start_http_server

from cdcsync import logging_setup
from cdcsync.commands.common import ConfigOption, LogFormatOption, LogLevelOption, RegionOption, fail, load


def _parse_key(text: str) -> object:
    """`42` -> 42, `abc` -> "abc", `[1,"x"]` -> [1, "x"] (composite keys as a JSON list)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def lookup(config: Path = ConfigOption, region: str = RegionOption,
           table: str = typer.Option(..., "--table", "-t", help="`db.table`."),
           key: list[str] = typer.Option(..., "--key", "-k", help="Primary key as JSON: 42, '\"abc\"' (a string "
                                                                  "that looks like a number needs the quotes), "
                                                                  "'[1,\"x\"]' for a composite key; text that is not "
                                                                  "JSON is taken as a string. Repeat for several."),
           explain: bool = typer.Option(False, "--explain", help="Also show which layer answered, and why.")) -> None:
    """Look rows up through the region's cache, Bloom filter and database; one JSON line per key.

    Exit 0 when every key was found, 3 when some were not."""
    from consumers.cache.reader import CacheReader
    from prometheus_client import CollectorRegistry

    from consumers.cache.lookup_metrics import LookupMetrics

    cfg = load(config)
    try:
        cfg.region(region)
    except ValueError as err:
        fail(str(err), 2)
    keys = [_parse_key(k) for k in key]
    with CacheReader(cfg, region, metrics=LookupMetrics(region, CollectorRegistry())) as reader:
        try:
            answers = reader.lookup_many(table, keys)
        except (ValueError, LookupError) as err:
            fail(str(err), 2)
    for pk, answer in zip(keys, answers):
        line: dict[str, object] = {"key": pk, "found": answer.row is not None, "row": answer.row}
        if explain:
            line["layer"] = answer.layer
            if answer.detail:
                line["db_reason"] = answer.detail
        typer.echo(orjson.dumps(line, default=str).decode())
    if any(a.row is None for a in answers):
        raise typer.Exit(3)


def bloom(config: Path = ConfigOption, region: str = RegionOption,
          metrics_port: int = typer.Option(None, "--metrics-port", envvar="CDCSYNC_METRICS_PORT",
                                           help="Serve Prometheus metrics on this port."),
          log_format: str = LogFormatOption, log_level: str = LogLevelOption) -> None:
    """Maintain the region's Bloom filters: build, feed from the change stream, prove freshness, rebuild.

    Run one per region, where the region producer's checkpoint_dir is readable."""
    from consumers.cache.bloom.fetch_watch import FetchStalled
    from consumers.cache.bloom.maintainer import BloomMaintainer

    logging_setup.setup(log_level, log_format)
    cfg = load(config)
    cfg.region(region)
    if metrics_port:
        start_http_server(metrics_port)
    maintainer = BloomMaintainer(cfg, region)
    signal.signal(signal.SIGTERM, maintainer.request_stop)
    signal.signal(signal.SIGINT, maintainer.request_stop)
    try:
        maintainer.run()
    except FetchStalled as err:      # one line, exit 1: a supervisor restarts it (docs/lookup.md)
        fail(str(err))
