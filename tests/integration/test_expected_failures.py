"""A refused login or an unreachable server ends a command with ONE line naming the fix (a JSON line
with `--log-format json`); `--debug` shows the traceback (cdcsync/expected_errors.py)."""

from __future__ import annotations

import re
import socket

import orjson
import pytest

from tests.conftest import config_for_test
from tests.support.producer import ProducerProcess, SinkProcess, write_config

pytestmark = pytest.mark.integration


def _config_with(sandbox_config, unique, tmp_path, **mysql):
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"ef_{unique}.*"], tmp=tmp_path)
    data = config.model_dump(mode="python")
    for name, region in data["regions"].items():
        region["mysql"]["password"] = config.regions[name].mysql.password.get_secret_value()
    data["regions"]["eu"]["mysql"].update(mysql)
    return write_config(type(config).model_validate(data), tmp_path / "cdcsync.toml")


_INFO = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ INFO ")


def _lines(proc) -> list[str]:
    """What the process wrote, less its INFO log lines (e.g. a topic it created before the login)."""
    return [line for line in proc.output().splitlines() if line.strip() and not _INFO.match(line)]


def test_wrong_password_is_one_line(sandbox_config, unique, tmp_path) -> None:
    path = _config_with(sandbox_config, unique, tmp_path, password="not-the-password")

    sink = SinkProcess(path, "eu", "db", tmp_path / "sink.log").start()
    assert sink.wait(60) == 1
    lines = _lines(sink)
    assert len(lines) == 1, sink.output()
    assert lines[0].startswith("error: MySQL refused the login (1045: Access denied") and "[regions.eu.mysql]" in lines[0]

    producer = ProducerProcess(path, "eu", tmp_path / "producer.log").start()
    assert producer.wait(60) == 1
    assert len(_lines(producer)) == 1 and "MySQL refused the login (1045" in producer.output(), producer.output()

    as_json = SinkProcess(path, "eu", "db", tmp_path / "json.log", "--log-format", "json").start()
    assert as_json.wait(60) == 1
    entries = [e for e in map(orjson.loads, _lines(as_json)) if e["level"] != "info"]   # all JSON
    assert len(entries) == 1 and entries[0]["level"] == "error" and "exc" not in entries[0]
    assert entries[0]["message"].startswith("MySQL refused the login")

    debug = SinkProcess(path, "eu", "db", tmp_path / "debug.log", "--debug").start()
    assert debug.wait(60) == 1
    assert "Traceback" in debug.output() and "OperationalError: (1045" in debug.output()


def test_unreachable_server_is_one_line(sandbox_config, unique, tmp_path) -> None:
    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = _config_with(sandbox_config, unique, tmp_path, port=port, connect_timeout=2)
    sink = SinkProcess(path, "eu", "db", tmp_path / "sink.log").start()
    assert sink.wait(60) == 1
    lines = _lines(sink)
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach MySQL (2003"), sink.output()
