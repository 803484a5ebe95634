"""`cdcsync run`: the whole pipeline of some or all regions, supervised."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import typer

from cdcsync import logging_setup
from cdcsync.commands.common import ConfigOption, LogFormatOption, LogLevelOption, err_console, fail, load
from cdcsync.supervisor import Supervisor, components


def run(config: Path = ConfigOption,
        regions: str = typer.Option(None, "--regions", envvar="CDCSYNC_REGIONS",
                                    help="Comma-separated regions to run (default: all in the config)."),
        log_dir: Path = typer.Option(Path(".cdcsync/logs"), "--log-dir", envvar="CDCSYNC_LOG_DIR",
                                     help="One log file per component."),
        log_format: str = LogFormatOption, log_level: str = LogLevelOption) -> None:
    """Run every selected region's producer, database sink and cache sink; restart any that crash."""
    logging_setup.setup(log_level, log_format)
    cfg = load(config)
    names = [r.strip() for r in regions.split(",")] if regions else list(cfg.regions)
    for name in names:
        cfg.region(name)
    supervisor = Supervisor(components(config, names, log_dir))
    stop = {"requested": False}

    def request_stop(*_: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    supervisor.start()
    err_console.print(f"running {len(supervisor.parts)} components for {', '.join(names)}; logs in {log_dir}")
    while not stop["requested"]:
        supervisor.poll()
        time.sleep(0.2)
    codes = supervisor.stop()
    bad = {name: code for name, code in codes.items() if code not in (0, None)}
    if bad:
        fail(f"components exited with errors: {bad}")
