"""Logging for every command: readable text by default, one JSON object per line with --log-format json.

Every line carries the process's region, component and position (common/log_context.py).
"""

from __future__ import annotations

import logging
import sys
import threading

import orjson

from common import log_context

# Set by `setup`: errors the commands print go through logging too, so a JSON log stays JSON.
json_lines = False

TEXT_FORMAT = "%(asctime)s %(levelname)-7s [%(region)s/%(component)s @ %(position)s] %(name)s: %(message)s"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": record.created, "level": record.levelname.lower(), "logger": record.name,
                 "region": getattr(record, "region", "-"), "component": getattr(record, "component", "-"),
                 "position": getattr(record, "position", "-"), "message": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup(level: str = "info", fmt: str = "text", *, region: str | None = None,
          component: str | None = None) -> None:
    if fmt not in ("text", "json"):
        raise ValueError(f"--log-format must be text or json, not {fmt!r}")
    if region is not None or component is not None:
        log_context.set_component(region or "-", component or "-")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(log_context.ContextFilter())
    handler.setFormatter(_JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    global json_lines
    json_lines = fmt == "json"
    if json_lines:
        # An uncaught error is one JSON line too: a log shipper must never meet a bare traceback.
        sys.excepthook = lambda kind, err, tb: logging.getLogger("cdcsync").critical(
            "uncaught %s: %s", kind.__name__, err, exc_info=(kind, err, tb))
        threading.excepthook = lambda args: logging.getLogger("cdcsync").critical(
            "uncaught %s in thread %s: %s", args.exc_type.__name__, getattr(args.thread, "name", "?"), args.exc_value,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
    root.setLevel(level.upper())
    logging.getLogger("pymysqlreplication").setLevel(logging.WARNING)
