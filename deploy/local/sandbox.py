"""`cdcsync sandbox up|down|status`: a multi-region sandbox under one directory.

Layout of DIR:
    sandbox.json         the contract other tools read (shape fixed by the capture issue)
    cdcsync.toml         a ready-to-use pipeline config
    state.json           PIDs, ports and passwords of what `up` started (private to this module)
                         and whether the MariaDBs are durable (fsync at every commit)
    <region>/mysql/      datadir, binlogs, socket, log
    <region>/redis/      log
    broker/              broker log
    checkpoints/         producer checkpoints (the config points here)
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from deploy.local import broker, mariadb, processes, redis

SANDBOX_USER = "cdcsync"


class SandboxError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    pid: int | None
    port: int
    running: bool
    accepting: bool


class Sandbox:
    """A sandbox rooted at `root`. All methods are idempotent.

    `durable=True` starts every MariaDB with `sync_binlog=1` and `innodb_flush_log_at_trx_commit=1`
    (the `kill -9` nemesis needs them); None keeps what the sandbox was first started with (False
    for a new one). The choice is recorded in state.json, so restarts keep it."""

    def __init__(self, root: str | Path, *, durable: bool | None = None) -> None:
        self.root = Path(root).resolve()
        self._durable = durable

    # -- files -----------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def contract_path(self) -> Path:
        return self.root / "sandbox.json"

    @property
    def config_path(self) -> Path:
        return self.root / "cdcsync.toml"

    def _load_state(self) -> dict[str, Any]:
        if self.state_path.exists():
            return json.loads(self.state_path.read_text())
        return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def contract(self) -> dict[str, Any]:
        """The parsed sandbox.json."""
        if not self.contract_path.exists():
            raise SandboxError(f"no sandbox at {self.root}: run `cdcsync sandbox up --dir {self.root}` first")
        return json.loads(self.contract_path.read_text())

    # -- up --------------------------------------------------------------------------------
    def up(self, regions: list[str], *, broker_advertised_port: int | None = None) -> dict[str, Any]:
        """Start every missing process, wait until all accept connections, write the two files.

        `broker_advertised_port`: the broker tells clients to connect there (a proxy forwarding to
        its own port, which the nemesis uses to cut a region off); the files then name that port."""
        if not regions:
            raise SandboxError("at least one region is required")
        state = self._load_state()
        known = list(state.get("regions", {}))
        if known and known != regions:
            raise SandboxError(f"{self.root} already holds a sandbox for regions {','.join(known)}; "
                               f"use that list or another --dir")
        recorded = state.get("durable")
        if known and self._durable is not None and bool(recorded) != self._durable:
            raise SandboxError(f"{self.root} holds a sandbox started with durable={bool(recorded)}; "
                               f"stop it (`cdcsync sandbox down`) and use another --dir")
        state["durable"] = bool(recorded) if recorded is not None and known else bool(self._durable)
        state.setdefault("regions", {})
        for index, name in enumerate(regions):
            region = state["regions"].setdefault(name, {
                "server_id": index + 1,
                "gtid_domain_id": index + 1,
                "password": secrets.token_urlsafe(12),
                "mysql": {"port": processes.free_port(), "pid": None},
                "redis": {"port": processes.free_port(), "pid": None},
            })
            self._save_state(state)
            spec = self._mysql_spec(name, region, increment=len(regions), offset=index + 1,
                                    durable=state["durable"])
            if not self._running(region["mysql"], mariadb.MARKER):
                self._ensure_port_free(region["mysql"], f"{name} mariadbd")
                region["mysql"]["pid"] = mariadb.start(spec)
                self._save_state(state)
            mariadb.ensure_user(spec, SANDBOX_USER, region["password"])
            if not self._running(region["redis"], redis.MARKER):
                self._ensure_port_free(region["redis"], f"{name} redis-server")
                region["redis"]["pid"] = redis.start(self.root / name / "redis", region["redis"]["port"])
                self._save_state(state)
        kafka = state.setdefault("kafka", {"port": processes.free_port(), "pid": None})
        if broker_advertised_port is not None and broker_advertised_port != kafka.get("advertised_port"):
            if self._running(kafka, broker.MARKER):
                raise SandboxError(f"the broker of {self.root} already runs, advertising port "
                                   f"{kafka.get('advertised_port') or kafka['port']}; stop the sandbox first")
            kafka["advertised_port"] = broker_advertised_port
        if not self._running(kafka, broker.MARKER):
            self._ensure_port_free(kafka, "broker")
            kafka["pid"] = broker.start(self.root / "broker", kafka["port"],
                                        advertised_port=kafka.get("advertised_port"))
        self._save_state(state)
        (self.root / "checkpoints").mkdir(exist_ok=True)
        contract = self._write_contract(state)
        self._write_config(state)
        return contract

    def _mysql_spec(self, name: str, region: dict[str, Any], *, increment: int, offset: int,
                    durable: bool) -> mariadb.MariaDBSpec:
        # Every region writes: its own AUTO_INCREMENT offset keeps concurrent inserts' ids apart.
        return mariadb.MariaDBSpec(home=self.root / name / "mysql", port=region["mysql"]["port"],
                                   server_id=region["server_id"], gtid_domain_id=region["gtid_domain_id"],
                                   auto_increment_increment=increment, auto_increment_offset=offset,
                                   durable=durable)

    @property
    def durable(self) -> bool:
        """Whether the MariaDBs run with sync_binlog=1 and innodb_flush_log_at_trx_commit=1."""
        return bool(self._load_state().get("durable", self._durable))

    @staticmethod
    def _running(entry: dict[str, Any], marker: str) -> bool:
        return bool(entry.get("pid")) and processes.alive(entry["pid"], marker)

    @staticmethod
    def _ensure_port_free(entry: dict[str, Any], what: str) -> None:
        # A restart reuses the recorded port so the written config stays valid; if something
        # else took it meanwhile, move to a new one (the files are rewritten below).
        if processes.port_open(entry["port"]):
            entry["port"] = processes.free_port()

    @staticmethod
    def _kafka_port(state: dict[str, Any]) -> int:
        """Where clients reach the broker: its advertised port (a proxy's) when it has one."""
        return state["kafka"].get("advertised_port") or state["kafka"]["port"]

    def _write_contract(self, state: dict[str, Any]) -> dict[str, Any]:
        contract = {
            "regions": {
                name: {
                    "mysql": {"host": "127.0.0.1", "port": r["mysql"]["port"], "user": SANDBOX_USER,
                              "password": r["password"]},
                    "redis": {"host": "127.0.0.1", "port": r["redis"]["port"]},
                }
                for name, r in state["regions"].items()
            },
            "kafka": {"bootstrap": f"127.0.0.1:{self._kafka_port(state)}"},
            "config": str(self.config_path),
        }
        self.contract_path.write_text(json.dumps(contract, indent=2) + "\n")
        return contract

    def _write_config(self, state: dict[str, Any]) -> None:
        config = {
            "prefix": "cdcsync",
            "meta_db": "cdcsync",
            "kafka": {"bootstrap": f"127.0.0.1:{self._kafka_port(state)}", "partitions": 3},
            "regions": {
                name: {
                    "server_id": r["server_id"],
                    "mysql": {"host": "127.0.0.1", "port": r["mysql"]["port"], "user": SANDBOX_USER,
                              "password": r["password"], "flavor": "mariadb"},
                    "redis": {"host": "127.0.0.1", "port": r["redis"]["port"]},
                    "producer": {"checkpoint_dir": str(self.root / "checkpoints")},
                }
                for name, r in state["regions"].items()
            },
        }
        header = "# Written by `cdcsync sandbox up`. Reference: docs/reference/configuration.md.\n"
        self.config_path.write_text(header + tomli_w.dumps(config))

    # -- down / status ----------------------------------------------------------------------
    def _services(self, state: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        services = []
        for name, region in state.get("regions", {}).items():
            services.append((f"{name}/mariadbd", region["mysql"], mariadb.MARKER))
            services.append((f"{name}/redis-server", region["redis"], redis.MARKER))
        if "kafka" in state:
            services.append(("broker", state["kafka"], broker.MARKER))
        return services

    def status(self) -> list[ServiceStatus]:
        state = self._load_state()
        result = []
        for name, entry, marker in self._services(state):
            running = self._running(entry, marker)
            result.append(ServiceStatus(name=name, pid=entry.get("pid"), port=entry["port"], running=running,
                                        accepting=running and processes.port_open(entry["port"])))
        return result

    def pid(self, service: str) -> int | None:
        """The PID of a running service (`eu/mariadbd`, `eu/redis-server`, `broker`), None when stopped."""
        for name, entry, marker in self._services(self._load_state()):
            if name == service:
                return entry["pid"] if self._running(entry, marker) else None
        raise SandboxError(f"no service {service!r} in the sandbox at {self.root}")

    def restart(self, service: str) -> int:
        """Stop one service cleanly (SIGTERM) and start it again on the same port and data directory,
        as an operator restarting a server would. Returns the new PID."""
        def stop(pid: int | None, marker: str) -> None:
            if pid:
                processes.stop(pid, marker, timeout=60.0)
        return self._replace(service, stop, pause_s=0.0)

    def crash(self, service: str, pause_s: float = 1.0) -> int:
        """`kill -9` one service, wait `pause_s`, start it again on the same port and data directory
        (MariaDB runs its crash recovery at start). Returns the new PID."""
        def kill(pid: int | None, marker: str) -> None:
            if not pid or not processes.alive(pid, marker):
                raise SandboxError(f"{service} is not running")
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while processes.alive(pid, marker) and time.monotonic() < deadline:
                time.sleep(0.02)
            processes.reap(pid)
        return self._replace(service, kill, pause_s=pause_s)

    def _replace(self, service: str, end: Callable[[int | None, str], None], *, pause_s: float) -> int:
        """End one service with `end(pid, marker)`, wait `pause_s`, start it again; the new PID."""
        state = self._load_state()
        for name, entry, marker in self._services(state):
            if name == service:
                end(entry.get("pid"), marker)
                entry["pid"] = None
                self._save_state(state)
                time.sleep(pause_s)
                self.up(list(state["regions"]))
                new = self.pid(service)
                assert new is not None
                return new
        raise SandboxError(f"no service {service!r} in the sandbox at {self.root}")

    def down(self) -> list[str]:
        """Stop only the processes `up` started (by PID, checked against their command line)."""
        state = self._load_state()
        stopped = []
        for name, entry, marker in reversed(self._services(state)):
            pid = entry.get("pid")
            if pid and processes.stop(pid, marker):
                stopped.append(name)
            entry["pid"] = None
        if state:
            self._save_state(state)
        return stopped
