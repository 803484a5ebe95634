"""A small TCP proxy for the nemesis: forwards a loopback port to an upstream, and can cut and heal.

    proxy = TcpProxy(("127.0.0.1", 9092)).start()      # clients connect to proxy.port
    proxy.cut("blackhole")                             # silence: nothing passes, nothing is closed
    proxy.heal()                                       # held bytes flow again, as TCP retransmits would
    proxy.cut("reset")                                 # every connection reset; new ones reset at once

Two ways a network partition shows, both offered:

- `blackhole` (what a partition usually looks like: silence). Current connections stay open but no
  byte passes either way, not even a FIN: the proxy stops reading, so the senders' kernel buffers
  fill as they would with unacknowledged segments. A new connection is accepted (a user-space proxy
  cannot drop a SYN) and parked: no byte passes and no upstream connection is made until the heal.
  `heal()` resumes them all, held bytes and FINs first, as a partition shorter than TCP's
  retransmission timeout ends; `heal(drop=True)` resets them instead, as when one side's TCP gave up
  during a long partition and answers the other's retransmits with a reset.
- `reset`: every current connection is reset (RST, both sides) and a new one is reset just after its
  accept, until `heal()`.

A cut may target one group of connections: `classify(peer)` names each connection's group when it
is accepted (e.g. the region of the process that opened it, region_cut.py); `cut(mode, group=...)`
then silences only that group. A cut without a group takes every connection.

One thread runs a selector loop; `cut` and `heal` are run by that thread and return once in effect,
so no byte is forwarded for a cut group after `cut()` returns.
"""

from __future__ import annotations

import errno
import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["blackhole", "reset"]
Classify = Callable[[tuple[str, int]], "str | None"]
ALL = "*"             # cut()/heal() target meaning every connection, grouped or not
_CHUNK = 65536
_BUFFER = 1 << 20     # bytes held per direction before the proxy stops reading that side


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    client: socket.socket
    group: str | None
    upstream: socket.socket | None = None
    connecting: bool = False
    to_upstream: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    client_eof: bool = False        # the client sent FIN: pass it on once to_upstream is sent
    upstream_eof: bool = False
    client_shut: bool = False       # FIN passed on to the client
    upstream_shut: bool = False
    held: bool = False              # silenced by a blackhole at least once since the last heal


@dataclass
class Counters:
    connections: int = 0            # accepted in this group, ever
    up: int = 0                     # bytes forwarded client -> upstream
    down: int = 0                   # bytes forwarded upstream -> client
    resets: int = 0                 # connections reset by a cut


class TcpProxy:
    def __init__(self, upstream: tuple[str, int] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 classify: Classify | None = None) -> None:
        """`upstream` may be set later (before the first connection): a broker that must advertise the
        proxy's port is started once the port is known."""
        self.upstream = upstream
        self.classify = classify
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._commands: queue.Queue[tuple[Callable[[], object], queue.Queue]] = queue.Queue()
        self._links: set[_Link] = set()
        self._cuts: dict[str, Mode] = {}       # group (or ALL) -> mode
        self._registered: dict[socket.socket, int] = {}
        self.counters: dict[str | None, Counters] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "TcpProxy":
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._loop, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> "TcpProxy":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the controls (any thread) -------------------------------------------------------------------
    def cut(self, mode: Mode = "blackhole", group: str = ALL) -> int:
        """Cut `group` (default: every connection); returns how many current connections it takes."""
        if mode not in ("blackhole", "reset"):
            raise ValueError(f"unknown cut mode {mode!r}: use blackhole or reset")
        return self._call(lambda: self._cut(mode, group))

    def heal(self, group: str = ALL, *, drop: bool = False) -> int:
        """End the cut of `group`; `drop`: reset the connections the blackhole held instead of resuming
        them. Returns how many connections were resumed (or dropped)."""
        return self._call(lambda: self._heal(group, drop))

    def is_cut(self, group: str | None = None) -> bool:
        return self._mode(group) is not None

    def connections(self, group: str | None = ALL) -> int:
        """Open connections (of `group`)."""
        return self._call(lambda: sum(1 for link in self._links if group == ALL or link.group == group))

    def close(self) -> None:
        if self._closed:
            return
        if self._thread is not None and self._thread.is_alive():
            self._call(self._shutdown)
            self._thread.join(10)
        self._closed = True
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _call(self, fn: Callable[[], object]):  # noqa: ANN202 - returns what fn returns
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the proxy is not running")
        answer: queue.Queue = queue.Queue(1)
        self._commands.put((fn, answer))
        self._wake_w.send(b"x")
        ok, value = answer.get(timeout=30)
        if not ok:
            raise value
        return value

    # -- the loop (its own thread) ---------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._closed:
            for key, mask in self._sel.select(timeout=1.0):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._run_commands()
                else:
                    link, side = key.data
                    if link in self._links:
                        self._ready(link, side, mask)

    def _run_commands(self) -> None:
        try:
            self._wake_r.recv(4096)
        except BlockingIOError:
            pass
        while not self._commands.empty():
            fn, answer = self._commands.get_nowait()
            try:
                answer.put((True, fn()))
            except Exception as err:  # noqa: BLE001 - handed back to the caller
                answer.put((False, err))

    def _shutdown(self) -> None:
        for link in list(self._links):
            self._close(link, hard=True)
        self._closed = True

    def _mode(self, group: str | None) -> Mode | None:
        return self._cuts.get(ALL) or (self._cuts.get(group) if group is not None else None)

    def _count(self, group: str | None) -> Counters:
        return self.counters.setdefault(group, Counters())

    def _accept(self) -> None:
        try:
            client, peer = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            group = self.classify(peer) if self.classify else None
        except Exception:  # noqa: BLE001 - an unknown peer is simply in no group
            group = None
        self._count(group).connections += 1
        if self._mode(group) == "reset":
            self._count(group).resets += 1
            reset(client)
            return
        client.setblocking(False)
        link = _Link(client, group)
        self._links.add(link)
        if self._mode(group) == "blackhole":
            link.held = True        # parked: connected upstream only at the heal
        else:
            self._connect(link)
        self._update(link)

    def _connect(self, link: _Link) -> None:
        if self.upstream is None:
            self._close(link, hard=True)
            return
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.setblocking(False)
        link.upstream, link.connecting = up, True
        err = up.connect_ex(self.upstream)
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
            self._close(link, hard=True)

    def _update(self, link: _Link) -> None:
        """Register what each socket of the link waits for; nothing while its group is blackholed."""
        if link not in self._links:
            return
        silent = self._mode(link.group) is not None or link.upstream is None
        wants: dict[socket.socket, int] = {link.client: 0}
        if link.upstream is not None:
            wants[link.upstream] = 0
        if not silent:
            assert link.upstream is not None
            if not link.client_eof and len(link.to_upstream) < _BUFFER:
                wants[link.client] |= selectors.EVENT_READ
            if link.to_client:
                wants[link.client] |= selectors.EVENT_WRITE
            if link.connecting:
                wants[link.upstream] = selectors.EVENT_WRITE
            else:
                if not link.upstream_eof and len(link.to_client) < _BUFFER:
                    wants[link.upstream] |= selectors.EVENT_READ
                if link.to_upstream:
                    wants[link.upstream] |= selectors.EVENT_WRITE
        for sock, events in wants.items():
            side = "client" if sock is link.client else "upstream"
            now = self._registered.get(sock, 0)
            if events == now:
                continue
            if events == 0:
                self._sel.unregister(sock)
                del self._registered[sock]
            elif now == 0:
                self._sel.register(sock, events, (link, side))
                self._registered[sock] = events
            else:
                self._sel.modify(sock, events, (link, side))
                self._registered[sock] = events

    def _ready(self, link: _Link, side: str, mask: int) -> None:
        assert link.upstream is not None
        counters = self._count(link.group)
        try:
            if side == "upstream" and link.connecting:
                error = link.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    self._close(link, hard=True)    # upstream refused: the client sees a reset
                    return
                link.connecting = False
            else:
                if mask & selectors.EVENT_READ:
                    sock, buf = (link.client, link.to_upstream) if side == "client" else (link.upstream, link.to_client)
                    data = sock.recv(_CHUNK)
                    if data:
                        buf += data
                    elif side == "client":
                        link.client_eof = True
                    else:
                        link.upstream_eof = True
                if mask & selectors.EVENT_WRITE:
                    sock, buf = (link.client, link.to_client) if side == "client" else (link.upstream, link.to_upstream)
                    sent = sock.send(buf)
                    del buf[:sent]
                    if side == "client":
                        counters.down += sent
                    else:
                        counters.up += sent
            # A FIN is passed on once everything before it has been.
            if link.client_eof and not link.to_upstream and not link.upstream_shut and not link.connecting:
                link.upstream.shutdown(socket.SHUT_WR)
                link.upstream_shut = True
            if link.upstream_eof and not link.to_client and not link.client_shut:
                link.client.shutdown(socket.SHUT_WR)
                link.client_shut = True
            if link.client_shut and link.upstream_shut:
                self._close(link, hard=False)
                return
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            # One side reset or failed: the other side sees a reset too.
            self._close(link, hard=True)
            return
        self._update(link)

    def _close(self, link: _Link, *, hard: bool) -> None:
        self._links.discard(link)
        for sock in (link.client, link.upstream):
            if sock is None:
                continue
            if sock in self._registered:
                self._sel.unregister(sock)
                del self._registered[sock]
            if hard:
                reset(sock)
            else:
                sock.close()

    def _cut(self, mode: Mode, group: str) -> int:
        self._cuts[group] = mode
        taken = [link for link in self._links if group == ALL or link.group == group]
        for link in taken:
            if mode == "reset":
                self._count(link.group).resets += 1
                self._close(link, hard=True)
            else:
                link.held = True
                self._update(link)
        return len(taken)

    def _heal(self, group: str, drop: bool) -> int:
        if group == ALL:
            self._cuts.clear()
        else:
            self._cuts.pop(group, None)
        healed = [link for link in self._links
                  if (group == ALL or link.group == group) and link.held and self._mode(link.group) is None]
        for link in healed:
            link.held = False
            if drop:
                self._count(link.group).resets += 1
                self._close(link, hard=True)
                continue
            if link.upstream is None:
                self._connect(link)
            self._update(link)
        return len(healed)
