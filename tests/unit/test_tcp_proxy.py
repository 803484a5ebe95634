"""The nemesis's TCP proxy (tests/support/tcp_proxy.py) with plain sockets: it forwards both ways
(FIN included), a blackhole passes no byte either way and closes nothing until the heal, which
delivers what was held, a reset cut resets current and new connections, and a cut of one group of
connections leaves the others alone."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import TcpProxy


class EchoServer:
    """Upstream: echoes every byte back, closes after the client's FIN; counts what it accepted."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.received = bytearray()
        self.resets = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    self.received += data
                    conn.sendall(data)
            except ConnectionResetError:
                self.resets += 1


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.sock.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[TcpProxy]:
    with TcpProxy(("127.0.0.1", echo.port)) as p:
        yield p


def dial(proxy: TcpProxy, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def silent(sock: socket.socket, seconds: float = 0.6) -> bool:
    """Nothing arrives (neither data nor EOF nor reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(5.0)
    return False


def test_it_forwards_both_ways_and_passes_the_fin_on(proxy: TcpProxy, echo: EchoServer) -> None:
    with dial(proxy) as sock:
        payload = bytes(range(256)) * 4096       # 1 MiB, more than one buffer
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        assert recv_exactly(sock, len(payload)) == payload
        sender.join()
        sock.shutdown(socket.SHUT_WR)            # the echo server closes after our FIN ...
        assert sock.recv(1) == b""               # ... and its FIN comes back through the proxy
    assert proxy.counters[None].up == len(payload) == proxy.counters[None].down


def test_a_blackhole_holds_every_byte_and_closes_nothing_until_the_heal(proxy: TcpProxy, echo: EchoServer) -> None:
    with dial(proxy) as sock:
        sock.sendall(b"before")
        assert recv_exactly(sock, 6) == b"before"
        assert proxy.cut("blackhole") == 1
        sock.sendall(b"during")
        assert silent(sock), "a byte (or a close) came through the blackhole"
        assert bytes(echo.received) == b"before", "the upstream got bytes sent during the cut"
        assert proxy.heal() == 1
        assert recv_exactly(sock, 6) == b"during"    # held, then delivered: TCP after a short partition
        assert bytes(echo.received) == b"beforeduring"


def test_a_new_connection_in_a_blackhole_is_parked_then_connected_at_the_heal(proxy: TcpProxy,
                                                                             echo: EchoServer) -> None:
    proxy.cut("blackhole")
    with dial(proxy) as sock:
        sock.sendall(b"hello")
        assert silent(sock)
        assert echo.accepted == 0, "the proxy connected upstream during the cut"
        proxy.heal()
        assert recv_exactly(sock, 5) == b"hello"
        assert echo.accepted == 1


def test_a_fin_sent_during_a_blackhole_is_held_too(proxy: TcpProxy, echo: EchoServer) -> None:
    with dial(proxy) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        proxy.cut("blackhole")
        sock.shutdown(socket.SHUT_WR)
        assert silent(sock), "the FIN went through the blackhole (the echo server closed)"
        proxy.heal()
        assert sock.recv(1) == b""


def test_heal_with_drop_resets_the_held_connections(proxy: TcpProxy) -> None:
    with dial(proxy) as sock:
        proxy.cut("blackhole")
        sock.sendall(b"lost")
        assert proxy.heal(drop=True) == 1
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    with dial(proxy) as sock:                    # healed: new connections pass again
        sock.sendall(b"ok")
        assert recv_exactly(sock, 2) == b"ok"


def test_a_reset_cut_resets_current_connections_on_both_sides_and_every_new_one(proxy: TcpProxy,
                                                                                echo: EchoServer) -> None:
    with dial(proxy) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        assert proxy.cut("reset") == 1
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    with pytest.raises(ConnectionResetError):     # at the connect, or at the first read
        with dial(proxy) as sock:
            sock.sendall(b"b")
            sock.recv(1)
    assert echo.accepted == 1
    proxy.heal()
    with dial(proxy) as sock:
        sock.sendall(b"c")
        assert recv_exactly(sock, 1) == b"c"
    assert proxy.counters[None].resets == 2


def test_a_refused_upstream_resets_the_client() -> None:
    spare = socket.create_server(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()                                # nothing listens there any more
    with TcpProxy(("127.0.0.1", port)) as proxy, pytest.raises(ConnectionResetError):
        with dial(proxy) as sock:
            sock.sendall(b"x")
            sock.recv(1)


def test_a_cut_of_one_group_leaves_the_other_groups_alone(echo: EchoServer) -> None:
    groups: dict[int, str] = {}

    def classify(peer: tuple[str, int]) -> str | None:
        return groups.get(peer[1])

    with TcpProxy(("127.0.0.1", echo.port), classify=classify) as proxy:
        socks = {}
        for name in ("eu", "us"):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            groups[sock.getsockname()[1]] = name     # known before the connect: what the proxy asks
            sock.connect(("127.0.0.1", proxy.port))
            sock.settimeout(5)
            socks[name] = sock
        try:
            assert proxy.cut("blackhole", group="eu") == 1
            for sock in socks.values():
                sock.sendall(b"ping")
            assert recv_exactly(socks["us"], 4) == b"ping"
            assert silent(socks["eu"])
            assert proxy.is_cut("eu") and not proxy.is_cut("us")
            proxy.heal("eu")
            assert recv_exactly(socks["eu"], 4) == b"ping"
        finally:
            for sock in socks.values():
                sock.close()
        assert proxy.counters["eu"].connections == proxy.counters["us"].connections == 1


def test_an_unknown_mode_is_refused(proxy: TcpProxy) -> None:
    with pytest.raises(ValueError, match="unknown cut mode 'drop': use blackhole or reset"):
        proxy.cut("drop")  # type: ignore[arg-type]
