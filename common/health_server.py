"""The HTTP endpoints of every long-running command: `/metrics`, `/healthz`, `/readyz`.

- `/metrics`: Prometheus text format of the process's registry.
- `/healthz` (liveness): 200 while the component's main loop keeps beating; 503 once it has not
  beaten for `stall_after_s` after becoming ready (a wedged loop: restart the process). Before it is
  ready (preflight, snapshot, group join) it is live as long as it answers.
- `/readyz` (readiness): 200 once the component does its work (producer streaming, sink consuming,
  supervisor with every child running) and while it is live; 503 otherwise.

Served from one daemon thread; the component's own thread only calls `ready()`, `beat()`,
`not_ready()`, which are lock-free attribute writes.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


class HealthState:
    """What the component reports about itself. `clock` is injectable for tests."""

    def __init__(self, stall_after_s: float = 120.0, clock=time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._ready = False
        self._last_beat = clock()

    def ready(self) -> None:
        self._last_beat = self._clock()
        self._ready = True

    def not_ready(self) -> None:
        self._ready = False

    def beat(self) -> None:
        self._last_beat = self._clock()

    def live(self) -> bool:
        return not self._ready or self._clock() - self._last_beat < self.stall_after_s

    def is_ready(self) -> bool:
        return self._ready and self.live()


def serve(port: int, state: HealthState, registry: CollectorRegistry = REGISTRY,
          host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Start serving on `port` (0: any free port; see `server.server_address`) in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = state.live()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
            elif path == "/readyz":
                ok = state.is_ready()
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found: /metrics, /healthz, /readyz\n")

        def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # probes every few seconds would drown the component's own log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    log.info("metrics and health on port %d (/metrics, /healthz, /readyz)", server.server_address[1])
    return server
