"""`cdcsync producer`: one region's binlog -> Kafka."""

from __future__ import annotations

from pathlib import Path

import typer

from cdcsync.commands.common import (ConfigOption, LogFormatOption, LogLevelOption, RegionOption, fail, load,
                                     serve_health, start_logging)


def producer(config: Path = ConfigOption, region: str = RegionOption,
             resnapshot: bool = typer.Option(False, "--resnapshot",
                                             help="Discard the checkpoint and take a new consistent snapshot."),
             metrics_port: int = typer.Option(None, "--metrics-port", envvar="CDCSYNC_METRICS_PORT",
                                              help="Serve /metrics, /healthz and /readyz on this port "
                                                   "(default: the region's metrics_port)."),
             accept_unpaired: list[str] = typer.Option(
                 None, "--accept-unpaired", metavar="GTID",
                 help="Publish this transaction although its clock rows and row changes do not pair up (the "
                      "producer stopped on it and named it): its unpaired changes go without a clock. Repeatable. "
                      "Fix the cause first (`cdcsync init`), and run `cdcsync verify` after."),
             log_format: str = LogFormatOption, log_level: str = LogLevelOption) -> None:
    """Capture one region's committed row changes and publish them to its Kafka topics."""
    from producers.capture import CaptureError
    from schemas.checkpoint import CheckpointError
    from producers.preflight import PreflightError
    from producers.publisher import PublishError
    from producers.service import PositionGone, ProducerService

    start_logging(log_level, log_format, region=region, component="producer")
    cfg = load(config)
    port = metrics_port if metrics_port is not None else cfg.region(region).metrics_port
    service = ProducerService(cfg, region, resnapshot=resnapshot, health=serve_health(port),
                              accept_unpaired=frozenset(accept_unpaired or ()))
    service.install_signal_handlers()
    try:
        service.run()
    except (PreflightError, PositionGone, CheckpointError, CaptureError, PublishError) as err:
        fail(str(err))
