"""`cdcsync run`: the whole pipeline of some or all regions, supervised."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import typer

from cdcsync.commands.common import (ConfigOption, LogFormatOption, LogLevelOption, err_console, fail, load,
                                     serve_health, start_logging)
from cdcsync.supervisor import Supervisor, components


def run(config: Path = ConfigOption,
        regions: str = typer.Option(None, "--regions", envvar="CDCSYNC_REGIONS",
                                    help="Comma-separated regions to run (default: all in the config)."),
        log_dir: Path = typer.Option(Path(".cdcsync/logs"), "--log-dir", envvar="CDCSYNC_LOG_DIR",
                                     help="One log file per component."),
        metrics_port: int = typer.Option(None, "--metrics-port", envvar="CDCSYNC_METRICS_PORT", min=1,
                                         help="Serve the supervisor's /metrics, /healthz, /readyz on this port and "
                                              "each component's on the next ones (eu/producer, eu/db, eu/cache, ...)."),
        log_format: str = LogFormatOption, log_level: str = LogLevelOption) -> None:
    """Run every selected region's producer, database sink and cache sink; restart any that crash."""
    from prometheus_client import Counter, Gauge

    start_logging(log_level, log_format, region="all", component="supervisor")
    cfg = load(config)
    names = [r.strip() for r in regions.split(",")] if regions else list(cfg.regions)
    for name in names:
        cfg.region(name)
    supervisor = Supervisor(components(config, names, log_dir, log_args=["--log-format", log_format,
                                                                         "--log-level", log_level],
                                       first_metrics_port=None if metrics_port is None else metrics_port + 1))
    health = serve_health(metrics_port)
    up = Gauge("cdcsync_supervisor_component_up", "1 while the component's process runs", ["component"])
    restarts = Counter("cdcsync_supervisor_restarts_total", "Restarts of a component after it exited",
                       ["component"])
    counted = {part.name: 0 for part in supervisor.parts}
    stop = {"requested": False}

    def request_stop(*_: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    supervisor.start()
    err_console.print(f"running {len(supervisor.parts)} components for {', '.join(names)}; logs in {log_dir}")
    while not stop["requested"]:
        supervisor.poll()
        alive = supervisor.alive()
        for part in supervisor.parts:
            up.labels(part.name).set(1 if alive[part.name] else 0)
            restarts.labels(part.name).inc(part.restarts - counted[part.name])
            counted[part.name] = part.restarts
        health.beat()
        if all(alive.values()):
            health.ready()
        else:
            health.not_ready()
        time.sleep(0.2)
    codes = supervisor.stop()
    bad = {name: code for name, code in codes.items() if code not in (0, None)}
    if bad:
        fail(f"components exited with errors: {bad}")
