"""`cdcsync init` on MariaDB and on MySQL 8: the statements per flavor (no MySQL server here, so
the generated SQL is checked, and `init_region` runs against a fake connection that records it)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cdcsync.tools import clock_init
from common.clock_triggers import triggers
from schemas.config import parse_config

COLUMNS = [("id", "int"), ("code", "varchar"), ("price", "double"), ("at", "timestamp")]
KW = dict(meta_db="cdcsync", db="shop", table="orders", pk=[("id", "int(11)"), ("code", "varchar(8)")],
          region="eu", columns=COLUMNS)

# Functions the bodies may call: each exists in MariaDB 10.11 and in MySQL >= 8.0.21 (JSON_VALUE).
PORTABLE = {"CONCAT", "CHAR_LENGTH", "CONVERT", "CAST", "LOWER", "HEX", "UNHEX", "SHA2", "JSON_OBJECT", "JSON_SET",
            "JSON_VALUE", "JSON_MERGE_PATCH", "COALESCE", "GREATEST", "IF", "UNIX_TIMESTAMP", "NOW", "VALUES",
            "SYSDATE", "TIMESTAMPDIFF", "JSON_ARRAY", "CONCAT_WS"}
KEYWORDS = {"IN", "INTO", "AND", "OR", "ON", "THEN", "ELSE", "SIGNED", "CHAR", "BIGINT", "TEXT", "VARCHAR", "NOT"}


def test_mariadb_replaces_in_one_statement() -> None:
    made = triggers(**KW)[0]
    statements = made.create("mariadb")
    assert statements == [f"CREATE OR REPLACE TRIGGER `shop`.`cdcsync_orders_ai` AFTER INSERT ON `shop`.`orders` "
                          f"FOR EACH ROW {made.body}"]
    assert made.create() == statements   # mariadb is the default


def test_mysql_drops_then_creates() -> None:
    made = triggers(**KW)[2]
    assert made.create("mysql") == [
        "DROP TRIGGER IF EXISTS `shop`.`cdcsync_orders_ad`",
        f"CREATE TRIGGER `shop`.`cdcsync_orders_ad` AFTER DELETE ON `shop`.`orders` FOR EACH ROW {made.body}"]
    assert not any("OR REPLACE" in s for s in made.create("mysql"))


def test_unknown_flavor_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown mysql.flavor 'postgres'"):
        triggers(**KW)[0].create("postgres")


@pytest.mark.parametrize("stamps", [False, True])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_bodies_call_only_functions_both_servers_have(index: int, stamps: bool) -> None:
    body = triggers(**KW, column_stamps=stamps)[index].body
    called = {name.upper() for name in re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(", body)}
    assert called - KEYWORDS <= PORTABLE, called - KEYWORDS - PORTABLE
    assert "OR REPLACE" not in body and "RETURNING" not in body


class FakeCursor:
    """Answers the three information_schema reads of `init_region`; records every statement."""

    def __init__(self, log: list[str], existing: list[tuple[str, str, str, str]]) -> None:
        self.log, self.existing, self.rows = log, existing, []

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def execute(self, sql: str, params: Any = None) -> None:
        self.log.append(sql)
        if "information_schema.TABLES" in sql:
            self.rows = [("shop", "orders")]
        elif "information_schema.STATISTICS" in sql:
            self.rows = [("shop", "orders", "id", "int(11)", None), ("shop", "orders", "code", "varchar(8)", "utf8mb4_nopad_bin")]
        elif "information_schema.COLUMNS" in sql:
            self.rows = [("shop", "orders", c, t) for c, t in COLUMNS]
        elif "information_schema.TRIGGERS" in sql:
            self.rows = self.existing
        else:
            self.rows = []

    def fetchall(self) -> list[Any]:
        return self.rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None


class FakeConnection:
    def __init__(self, existing: list[tuple[str, str, str, str]]) -> None:
        self.log: list[str] = []
        self.existing = existing

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.log, self.existing)


def _config(flavor: str):
    return parse_config({"regions": {"eu": {"server_id": 1, "mysql": {"flavor": flavor}},
                                     "us": {"server_id": 2, "mysql": {"flavor": flavor}}},
                         "meta_db": "cdcsync"})


@pytest.mark.parametrize("flavor", ["mariadb", "mysql"])
def test_init_region_uses_the_flavors_statements(monkeypatch, flavor: str) -> None:
    wanted = triggers(**KW)
    # The insert trigger is current, the update trigger changed, the delete trigger missing.
    existing = [("shop", wanted[0].name, "orders", wanted[0].body), ("shop", wanted[1].name, "orders", "BEGIN END")]
    conn = FakeConnection(existing)
    monkeypatch.setattr(clock_init, "connect_region", lambda config, region: conn)
    report = clock_init.init_region(_config(flavor), "eu")
    assert report.unchanged == ["shop.cdcsync_orders_ai"]
    assert report.replaced == ["shop.cdcsync_orders_au"] and report.created == ["shop.cdcsync_orders_ad"]
    ddl = [s for s in conn.log if "TRIGGER" in s and "information_schema" not in s]
    expected = [s for t in wanted[1:] for s in t.create(flavor)]
    assert ddl == expected
    if flavor == "mysql":
        assert [s.split(" `")[0] for s in ddl] == ["DROP TRIGGER IF EXISTS", "CREATE TRIGGER"] * 2
    else:
        assert all(s.startswith("CREATE OR REPLACE TRIGGER") for s in ddl)


def test_update_trigger_ticks_only_when_a_column_changes_byte_wise() -> None:
    """Bytes, as the server decides whether to log a row event: a case-only change under a _ci
    collation is a change; FLOAT/DOUBLE by value (their text rounds), TIMESTAMP by instant."""
    from common.clock_triggers import changed_condition

    assert changed_condition([("v", "varchar"), ("f", "float"), ("d", "double"), ("t", "timestamp"),
                              ("b`x", "blob")]) == (
        "NOT (CAST(OLD.`v` AS BINARY) <=> CAST(NEW.`v` AS BINARY)\n        AND OLD.`f` <=> NEW.`f`"
        "\n        AND OLD.`d` <=> NEW.`d`\n        AND UNIX_TIMESTAMP(OLD.`t`) <=> UNIX_TIMESTAMP(NEW.`t`)"
        "\n        AND CAST(OLD.`b``x` AS BINARY) <=> CAST(NEW.`b``x` AS BINARY))")
    update = triggers(**KW)[1].body
    assert all(f"OLD.`{c}`" in update for c, _ in COLUMNS)   # every column is compared
    with pytest.raises(ValueError):
        changed_condition([])


def test_column_stamps_only_on_tables_that_ask_and_per_changed_column() -> None:
    plain = triggers(**KW)
    stamped = triggers(**KW, column_stamps=True)
    assert not any("col_stamps" in t.body for t in plain)
    insert, update, delete = (t.body for t in stamped)
    assert "JSON_OBJECT('i', JSON_ARRAY(hlc_us, 'eu'), 'c', NULL, 'g', NULL)" in insert
    assert "JSON_OBJECT('d', JSON_ARRAY(hlc_us, 'eu'), 'g', NULL)" in delete
    # One stamp per column, each under the column's own comparison; the new hlc_us (assigned before).
    for column, same in [("price", "OLD.`price` <=> NEW.`price`"),
                         ("at", "UNIX_TIMESTAMP(OLD.`at`) <=> UNIX_TIMESTAMP(NEW.`at`)")]:
        assert f"IF({same}, NULL, CONCAT('\"{column}\":[', hlc_us, ',\"eu\"]'))" in update
    assert update.index("hlc_us = GREATEST") < update.index("col_stamps = JSON_MERGE_PATCH")
    # A key change: the old key's tombstone gets the delete stamp, the new key the insert stamp.
    assert "JSON_OBJECT('d', JSON_ARRAY(hlc_us, 'eu'), 'g', NULL)" in update and "JSON_OBJECT('i'," in update
