"""`cdcsync consumer`: one member of a region's database-sink or cache-sink consumer group."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import typer

from cdcsync.commands.common import (ConfigOption, LogFormatOption, LogLevelOption, RegionOption, fail, load,
                                     serve_health, start_logging)


def consumer(config: Path = ConfigOption, region: str = RegionOption,
             sink: str = typer.Option(..., "--sink", envvar="CDCSYNC_SINK", help="db or cache."),
             metrics_port: int = typer.Option(None, "--metrics-port", envvar="CDCSYNC_METRICS_PORT",
                                              help="Serve /metrics, /healthz and /readyz on this port "
                                                   "(default: the region's sink.metrics_port)."),
             log_format: str = LogFormatOption, log_level: str = LogLevelOption) -> None:
    """Apply change events: other regions' to this region's database (db), or this region's to its Redis (cache)."""
    from consumers.assignment_watchdog import Unassigned
    from consumers.dlq_limit import DeadLetterFlood
    from consumers.service import build_runners, run_all

    if sink not in ("db", "cache"):
        raise typer.BadParameter(f"--sink must be db or cache, not {sink!r}")
    start_logging(log_level, log_format, region=region, component=f"{sink}-sink")
    cfg = load(config)
    cfg.region(region)
    port = metrics_port if metrics_port is not None else cfg.region(region).sink.metrics_port
    health = serve_health(port)
    runners = build_runners(cfg, region, sink)  # type: ignore[arg-type]
    for runner in runners:
        runner.health = health
        if hasattr(runner.sink, "waiting"):   # a database sink waiting out a broker outage is alive
            runner.sink.waiting = health.beat
    health.ready()
    stopped = threading.Event()

    def stop(*_: object) -> None:
        stopped.set()
        for runner in runners:
            runner.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if runners:
        try:
            run_all(runners)
        except DeadLetterFlood as err:   # expected: stop in one line, committed nothing after the run
            fail(str(err))
        except Unassigned as err:        # expected: one line; a supervisor starts a fresh member
            fail(str(err))
        return
    # A database sink with no source region (a one-region config) has nothing to apply; it idles
    # instead of exiting, so a supervisor does not restart it in a loop.
    logging.getLogger(__name__).info("region %s: no source regions, the %s sink has nothing to apply", region, sink)
    while not stopped.wait(1.0):
        health.beat()
