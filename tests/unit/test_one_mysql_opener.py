"""cdcsync opens MySQL connections in one place, `common.mysql.connect`, which always applies the
region's TLS settings: a connection built by hand elsewhere is how `cdcsync conflicts` and
`tombstones purge` once sent the applier's password in clear (issue 12)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from common import mysql as common_mysql
from producers.binlog import stream as binlog_stream
from schemas.config import MySQLConfig

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cdcsync", "common", "consumers", "producers", "schemas", "deploy", "bench")
OPENER = Path(inspect.getsourcefile(common_mysql.connect)).resolve()
# The binlog reader's stream: python-mysql-replication opens it with `connection_settings` (TLS included).
BINLOG_OPENER = Path(inspect.getsourcefile(binlog_stream.connection_settings)).resolve()
# The sandbox's root session over its unix socket (no network, no config): not a cdcsync connection.
SANDBOX_ROOT = ROOT / "deploy" / "local" / "mariadb.py"
DRIVER_OPENERS = {("pymysql", "connect"), ("pymysql", "Connect"), ("pymysql", "Connection"),
                  ("connections", "Connection"), ("", "BinLogStreamReader")}


def _settings_from_the_opener(call: ast.Call) -> bool:
    """A binlog reader given `binlog_stream.connection_settings(...)` (the opener's settings, TLS included)."""
    for keyword in call.keywords:
        if keyword.arg == "connection_settings" and isinstance(keyword.value, ast.Call):
            func = keyword.value.func
            return getattr(func, "attr", getattr(func, "id", None)) == "connection_settings"
    return False


def _driver_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            name = (func.value.id, func.attr)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute):
            name = (func.value.attr, func.attr)
        elif isinstance(func, ast.Name):
            name = ("", func.id)
        else:
            continue
        if name == ("", "BinLogStreamReader") and _settings_from_the_opener(node):
            continue
        if name in DRIVER_OPENERS:
            found.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}: {'.'.join(filter(None, name))}(...)")
    return found


def test_only_the_opener_calls_the_driver() -> None:
    allowed = {OPENER, SANDBOX_ROOT}
    offenders = [call for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
                 if path.resolve() not in allowed for call in _driver_calls(path)
                 if not (path.resolve() == BINLOG_OPENER and call.endswith("BinLogStreamReader(...)"))]
    assert offenders == [], "open MySQL connections with common.mysql.connect (TLS settings): " + "; ".join(offenders)


def test_the_scan_sees_a_hand_built_connection(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"
    bad.write_text("import pymysql\nfrom pymysqlreplication import BinLogStreamReader\n"
                   "c = pymysql.connect(host='h')\ns = BinLogStreamReader(connection_settings={})\n"
                   "ok = BinLogStreamReader(connection_settings=binlog_stream.connection_settings(m))\n")
    assert [line.split(": ")[1] for line in _driver_calls(bad)] == ["pymysql.connect(...)", "BinLogStreamReader(...)"]


def test_the_opener_always_applies_tls_and_refuses_overrides(monkeypatch) -> None:
    seen: dict = {}
    monkeypatch.setattr(common_mysql.pymysql, "connect", lambda **kw: seen.update(kw) or "conn")
    mysql = MySQLConfig(host="db.example", user="app", password="pw", ssl_ca=Path("/ca.pem"),
                        ssl_cert=Path("/c.pem"), ssl_key=Path("/k.pem"), connect_timeout=10)
    assert common_mysql.connect(mysql, database="d", connect_timeout=2.5) == "conn"
    assert seen == {"host": "db.example", "port": 3306, "user": "app", "password": "pw", "connect_timeout": 2.5,
                    "ssl_ca": "/ca.pem", "ssl_verify_cert": True, "ssl_verify_identity": True,
                    "ssl_cert": "/c.pem", "ssl_key": "/k.pem", "database": "d", "autocommit": True}
    common_mysql.connect(mysql, connect_timeout=60, autocommit=False)
    assert seen["connect_timeout"] == 10 and seen["autocommit"] is False   # a timeout only shortens
    for override in ({"ssl_ca": None}, {"ssl_disabled": True}, {"host": "elsewhere"}, {"password": "x"}):
        with pytest.raises(TypeError, match="come from the MySQLConfig"):
            common_mysql.connect(mysql, **override)
    assert binlog_stream.connection_settings(mysql)["ssl_ca"] == "/ca.pem"   # the binlog library's too
