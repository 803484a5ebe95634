"""With --log-format json every line a command writes to stderr is JSON, errors included."""

from __future__ import annotations

import logging
import sys
import threading

import orjson
import pytest
import typer

from cdcsync import logging_setup
from cdcsync.commands.common import fail


@pytest.fixture
def json_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level, sys.excepthook, threading.excepthook
    yield lambda: logging_setup.setup("info", "json", region="eu", component="cache-sink")
    root.handlers[:], level, sys.excepthook, threading.excepthook = saved
    root.setLevel(level)
    logging_setup.json_lines = False


def test_fail_logs_one_json_line(json_logging, capsys) -> None:
    json_logging()
    with pytest.raises(typer.Exit):
        fail("cannot reach the broker at 127.0.0.1:9")
    entry = orjson.loads(capsys.readouterr().err.strip())
    assert entry["level"] == "error" and entry["component"] == "cache-sink"
    assert entry["message"] == "cannot reach the broker at 127.0.0.1:9"


def test_uncaught_thread_error_is_json(json_logging, capsys) -> None:
    json_logging()

    def boom() -> None:
        raise RuntimeError("applier lost")

    thread = threading.Thread(target=boom, name="db-runner")
    thread.start()
    thread.join()
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "applier lost" in lines[0]["message"] and "RuntimeError" in lines[0]["exc"]


def test_text_mode_keeps_the_readable_error(capsys) -> None:
    with pytest.raises(typer.Exit):
        fail("bad password")
    assert capsys.readouterr().err.strip() == "error: bad password"
