"""A workload client whose server is down when it starts (the nemesis killed it) waits for it,
as it does after losing a connection mid-run."""

from __future__ import annotations

import pymysql

from tests.support.convergence.history import History
from tests.support.convergence.shapes import SharedPool
from tests.support.convergence.workload import WorkloadSpec, client_loop


class FakeConnection:
    def autocommit(self, on: bool) -> None:
        self.on = on

    def close(self) -> None:
        self.closed = True


def test_a_client_starting_while_its_server_restarts_waits_for_it(monkeypatch) -> None:
    monkeypatch.setattr("tests.support.convergence.workload.time.sleep", lambda s: None)
    attempts = []

    def connect(region: str) -> FakeConnection:
        attempts.append(region)
        if len(attempts) < 3:
            raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server (Connection refused)")
        return FakeConnection()

    client_loop(connect, WorkloadSpec(1, ("plain",), txns_per_client=0), "eu", 0, SharedPool(), History(),
                meta_db="cdcsync", db="d")
    assert attempts == ["eu", "eu", "eu"]
