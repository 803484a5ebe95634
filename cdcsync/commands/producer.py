"""`cdcsync producer`: one region's binlog -> Kafka."""

from __future__ import annotations

from pathlib import Path

import typer
from prometheus_client import start_http_server

from cdcsync import logging_setup
from cdcsync.commands.common import ConfigOption, LogFormatOption, LogLevelOption, RegionOption, fail, load


def producer(config: Path = ConfigOption, region: str = RegionOption,
             resnapshot: bool = typer.Option(False, "--resnapshot",
                                             help="Discard the checkpoint and take a new consistent snapshot."),
             metrics_port: int = typer.Option(None, "--metrics-port", envvar="CDCSYNC_METRICS_PORT",
                                              help="Serve Prometheus metrics on this port."),
             log_format: str = LogFormatOption, log_level: str = LogLevelOption) -> None:
    """Capture one region's committed row changes and publish them to its Kafka topics."""
    from producers.capture import CaptureError
    from producers.checkpoint import CheckpointError
    from producers.preflight import PreflightError
    from producers.publisher import PublishError
    from producers.service import PositionGone, ProducerService

    logging_setup.setup(log_level, log_format)
    cfg = load(config)
    service = ProducerService(cfg, region, resnapshot=resnapshot)
    port = metrics_port if metrics_port is not None else cfg.region(region).metrics_port
    if port:
        start_http_server(port)
    service.install_signal_handlers()
    try:
        service.run()
    except (PreflightError, PositionGone, CheckpointError, CaptureError, PublishError) as err:
        fail(str(err))
