"""The broker front of the region cuts (tests/support/convergence/region_cut.py): each connection is
put in the group of the region of the process that opened it (`--region` on its command line, found
through the kernel's socket table), so cutting a region silences that region's processes only."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.support import process_table
from tests.support.convergence.region_cut import BrokerFront

# A component stand-in: connects, sends its name, prints what comes back (one line per round trip).
CLIENT = """
import socket, sys
port = int(sys.argv[1])
with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
    for line in sys.stdin:
        s.sendall(line.encode())
        print(s.recv(100).decode().strip(), flush=True)
"""


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(100), b"")],
                             daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def client(port: int, region: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLIENT, str(port), "--region", region],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


class Reply:
    """The line a client prints back for what it sent, read on a thread (`get` waits for it)."""

    def __init__(self, proc: subprocess.Popen, text: str) -> None:
        self.line: list[str] = []
        proc.stdin.write(text + "\n")
        proc.stdin.flush()
        self.reader = threading.Thread(target=lambda: self.line.append(proc.stdout.readline().strip()), daemon=True)
        self.reader.start()

    def get(self, timeout: float) -> str | None:
        """The reply, or None when none came within `timeout` seconds."""
        self.reader.join(timeout)
        return self.line[0] if self.line else None


def test_a_connection_belongs_to_the_region_of_the_process_that_opened_it(echo_port: int) -> None:
    front = BrokerFront().start()
    front.forward_to(echo_port)
    eu, us = client(front.port, "eu"), client(front.port, "us")
    try:
        assert Reply(eu, "eu-1").get(10) == "eu-1" and Reply(us, "us-1").get(10) == "us-1"
        assert front.proxy.counters["eu"].connections == front.proxy.counters["us"].connections == 1
        front.proxy.cut("blackhole", group="eu")
        assert Reply(us, "us-2").get(10) == "us-2"
        held = Reply(eu, "eu-2")
        assert held.get(1.0) is None, "eu's connection passed through its region's cut"
        front.proxy.heal("eu")
        assert held.get(10) == "eu-2"       # held during the cut, delivered at the heal
    finally:
        for proc in (eu, us):
            proc.kill()
            proc.wait()
        front.close()


def test_the_socket_table_names_the_owner_and_its_region() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    with server, socket.create_connection(("127.0.0.1", port)) as mine:
        import os

        assert process_table.socket_owner(mine.getsockname()[1], port) == os.getpid()
    assert process_table.region_of(os.getpid()) is None
    assert process_table.socket_owner(1, 1) is None
