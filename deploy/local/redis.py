"""One Redis per region, no persistence (the cache is rebuilt from the database)."""

from __future__ import annotations

import shutil
from pathlib import Path

from deploy.local import processes

MARKER = "redis-server"


def start(home: Path, port: int, timeout: float = 20.0) -> int:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    home.mkdir(parents=True, exist_ok=True)
    log = home / "redis.log"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(home), "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"]
    proc = processes.spawn(argv, log)
    processes.wait_for_port(port, timeout=timeout, proc=proc, what=f"redis-server on port {port}", log=log)
    return proc.pid
